-- Self-introspection (Pardo et al., arXiv:1910.04903; docs/design.md): record a
-- classifier's hidden activations, encode them into a 2-D map with an
-- InfoVAE, and learn the classifier's expected error on that map.
--
--   local I = lm.introspect
--   local rec = I.Recorder(net)                  -- every hidden ELU output
--   local H, outputs = rec:record_set(train.x)   -- [N, 2400] for Net1, and the outputs [N, C]
--   local vae = I.InfoVAE{inputs = H:size(2)}
--   I.fit_autoencoder(vae, H, {epochs = 20})
--   local Z = vae:encode_all(H)                  -- [N, 2]
--   local est = I.Estimator()
--   I.fit_estimator(est, Z, I.log_errors(outputs, train.y), {epochs = 20})
local lm = require 'lumen'
local nn, F = lm.nn, lm.nn.functional
local Progress = require 'lumen.progress'
local checks = require 'lumen.nn.checks'

local I = {}

-- Inputs go to the device of the model that takes them (recordings and
-- results stay in host memory: a recording can be larger than a GPU), and
-- images kept as bytes become float32 there, a block at a time.
local function on_device_of(model, t)
  t = lm.data.to_float(t)
  local device = lm.train.device_of(model)
  return device == t:device() and t or t:to(device)
end

--- The floor of the per-sample error before log10 (docs/design.md).
I.ERROR_FLOOR = 1e-8

--- Rows per block when a whole set goes through a model without gradients:
--- about a million input values (4 MB) a block, at most 2000 rows, so a wide
--- input (a 2400-unit recording) makes temporaries of a few MB, not 20.
function I.block_rows(width)
  checks.number(width, "width", "lm.introspect.block_rows")
  return math.max(64, math.min(2000, (1 << 20) // math.max(1, width)))
end

-- ---- recording --------------------------------------------------------------------------------

local Recorder = {}
Recorder.__index = Recorder

local POOLS = {mean = true, max = true, none = true, cls = true}

-- One recorded output as rows [N, units]: conv feature maps [N, C, H, W]
-- pooled over space and token sequences [N, T, D] over tokens ('cls': the
-- first token), unless pool is 'none' (flattened).
local function pooled(o, pool)
  local d = o:dim()
  if d <= 2 or pool == "none" then return o:reshape(o:size(1), -1) end
  if d == 4 then
    local flat = o:reshape(o:size(1), o:size(2), -1)
    if pool == "max" then return (flat:max(3)) end
    if pool == "cls" then
      error("Recorder: pool = 'cls' is for token sequences [N, T, D], got " .. o:shape_string(), 0)
    end
    return flat:mean(3)
  end
  if d == 3 then
    if pool == "cls" then return o:select(2, 1) end
    if pool == "max" then return (o:max(2)) end
    return o:mean(2)
  end
  return o:reshape(o:size(1), -1)
end

--- A Recorder select function taking each nn.ELU that directly follows a
--- module of type `kind` in `model`'s module order: Net2's dense layers are
--- I.elus_after(net, "nn.Linear"), its convolutions' I.elus_after(net,
--- "nn.Conv2d").
function I.elus_after(model, kind)
  checks.module(model, "model", "lm.introspect.elus_after")
  checks.string(kind, "kind", "lm.introspect.elus_after")
  local modules = model:modules() -- the order of named_modules, which the Recorder walks
  return function(m, i) return m.__name == "nn.ELU" and i > 1 and modules[i - 1].__name == kind end
end

--- Records the outputs of a model's hidden layers, in module order,
--- concatenated per sample. By default every nn.ELU, nn.ReLU, nn.Tanh,
--- nn.GELU and nn.SiLU (the paper records the hidden non-linearities);
--- opts.select picks others: a function(module, index, name) or a list of
--- module names as named_modules gives them ({"layer1", "layer2.1", "fc"}).
--- opts.pool ('mean', the default, 'max', 'cls' or 'none') reduces conv
--- feature maps [N, C, H, W] over space and token sequences [N, T, D] over
--- tokens ('cls': the first token) so each layer gives one vector per
--- sample; 'none' flattens them. After a recording, rec.layer_sizes lists
--- the units of each recorded layer and rec.layer_names their names. A
--- recorded layer that runs twice in one forward pass (or capture's fn) is an error.
function I.Recorder(model, opts)
  checks.module(model, "model", "lm.introspect.Recorder")
  opts = checks.options(opts, "lm.introspect.Recorder")
  checks.opts(opts, "lm.introspect.Recorder", {"select", "pool"})
  local pool = opts.pool or "mean"
  if not POOLS[pool] then error("Recorder: pool must be 'mean', 'max', 'cls' or 'none', got " .. tostring(pool), 2) end
  local select = opts.select or function(m)
    return m.__name == "nn.ELU" or m.__name == "nn.ReLU" or m.__name == "nn.Tanh" or m.__name == "nn.GELU"
      or m.__name == "nn.SiLU"
  end
  local wanted
  if type(select) == "table" then
    wanted = {}
    for i, name in ipairs(select) do
      if type(name) ~= "string" then
        error(string.format("Recorder: select[%d] must be a module name (a string), got %s", i, checks.shown(name)), 2)
      end
      wanted[name] = false
    end
    select = function(_, _, name) return wanted[name] ~= nil end
  elseif type(select) ~= "function" then
    error("Recorder: select must be a function(module, index, name) or a list of module names", 2)
  end
  local self = setmetatable({model = model, layers = {}, layer_names = {}, outputs = {}, pool = pool,
    hooks = {}, hook_places = {}}, Recorder)
  local place_of = {} -- module -> its name: a module at two places has one hook for both
  for i, pair in ipairs(model:named_modules()) do
    local name, m = pair[1], pair[2]
    if m ~= model and select(m, i, name) then
      if place_of[m] then
        error(string.format("Recorder: one %s object is at '%s' and at '%s', so its two outputs cannot be told "
          .. "apart: give each place a module of its own (a new %s())", m.__name, place_of[m], name, m.__name), 2)
      end
      place_of[m] = name
      local k = #self.layers + 1
      self.layers[k], self.layer_names[k] = m, name
      if wanted then wanted[name] = true end
      -- a module applied more than once in one forward pass (a ResNet block's
      -- one ReLU, as torchvision's) records its last output: the block's
      self.hooks[k] = function(_, _, output) self.outputs[k] = output end
      self.hook_places[k] = #m._hooks + 1 -- after the hooks the layer has now, before later ones
    end
  end
  if wanted then
    local unknown = {}
    for _, name in ipairs(opts.select) do if not wanted[name] then unknown[#unknown + 1] = name end end
    if #unknown > 0 then
      error("Recorder: the model has no module named " .. table.concat(unknown, ", ")
        .. " (names as net:named_modules() gives them)", 2)
    end
  end
  if #self.layers == 0 then
    error("Recorder: the model has no layer to record" .. (opts.select and "" or
      " (by default it records every nn.ELU, nn.ReLU, nn.Tanh, nn.GELU and nn.SiLU; opts.select picks others: "
      .. "a list of module names, or a function(module, index, name))"), 2)
  end
  return self
end

-- The hooks are on the layers only while the recorder records: at other
-- times the model runs as if no recorder existed (nn.Sequential fuses a
-- Linear with its activation where no hook watches the activation).
local function run_hooked(self, fn, ...)
  for k, m in ipairs(self.layers) do
    table.insert(m._hooks, math.min(self.hook_places[k], #m._hooks + 1), self.hooks[k])
  end
  -- the model's own calls are counted: a capture whose fn runs it twice would
  -- hold the last run's outputs only (collect refuses it)
  local model_runs = 0
  local function count() model_runs = model_runs + 1 end
  local model_hooks = self.model._hooks
  model_hooks[#model_hooks + 1] = count
  self.outputs, self.model_runs = {}, nil
  local results = table.pack(pcall(fn, ...))
  for k, m in ipairs(self.layers) do
    for i, h in ipairs(m._hooks) do
      if h == self.hooks[k] then
        table.remove(m._hooks, i)
        break
      end
    end
  end
  for i, h in ipairs(model_hooks) do
    if h == count then
      table.remove(model_hooks, i)
      break
    end
  end
  self.model_runs = model_runs
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- The recorded outputs of the last call as rows, and their sizes.
local function collect(self)
  local parts, sizes = {}, {}
  if self.model_runs and self.model_runs > 1 then
    self.outputs = {}
    error(string.format("Recorder: the model ran %d times in one recording (capture's fn runs it once: one "
      .. "recording holds one output a layer)", self.model_runs), 3)
  end
  for k = 1, #self.layers do
    local o = self.outputs[k]
    if not o then
      error(string.format("Recorder: layer '%s' did not run in the forward pass", self.layer_names[k]), 3)
    end
    parts[k] = pooled(o, self.pool)
    sizes[k] = parts[k]:size(2)
  end
  self.outputs = {}
  return parts, sizes
end

--- Runs the model in evaluation mode without recording gradients and returns
--- (activations [N, Nh], model output).
function Recorder:record(x)
  checks.tensor(x, "x", "recorder:record")
  x = on_device_of(self.model, x)
  local out = nn.evaluating(self.model, function()
    return run_hooked(self, lm.no_grad, function() return self.model(x) end)
  end)
  -- a layer output of one dimension has no batch dimension: its values would become rows
  for k = 1, #self.layers do
    local o = self.outputs[k]
    if o and (o:dim() < 1 or o:dim() == 1 and (x:dim() < 2 or o:size(1) ~= x:size(1))) then
      self.outputs = {}
      error(string.format("recorder:record: layer '%s' gave an output of shape [%s] for x of shape [%s]: x must be "
        .. "a batch [N, ...] of samples (one sample as x:view(1, ...))", self.layer_names[k], o:shape_string(),
        x:shape_string()), 2)
    end
  end
  local parts, sizes = collect(self)
  self.layer_sizes = sizes -- the units of each recorded layer, in order
  return lm.cat(parts, 2), out
end

--- Runs fn() with the hooks capturing (in whatever mode the model is, with
--- gradients as they are) and returns fn's result and the concatenated
--- activations [N, Nh] of that call.
function Recorder:capture(fn)
  checks.callable(fn, "fn", "recorder:capture")
  local result = run_hooked(self, fn)
  local parts = collect(self)
  return result, lm.cat(parts, 2)
end

--- The size of one recorded vector (runs one sample).
function Recorder:width(sample)
  checks.tensor(sample, "sample", "recorder:width")
  local ok, h = pcall(self.record, self, sample)
  if not ok then checks.reraise(h, 2) end -- at the caller's line
  return h:size(2)
end

-- The widths of a recording and of the model's outputs, from one sample of
-- zeros shaped as x's samples: an empty set has no sample to record.
local function probe_widths(self, x)
  local shape = x:shape()
  shape[1] = 1
  local ok, h, out = pcall(self.record, self, lm.zeros(shape, x:dtype()))
  if not ok then
    error("record_set: x has no samples, and the sample of zeros run to size the recording failed: "
      .. checks.message(h), 0)
  end
  return h:size(2), out:size(2)
end

--- Activations of a whole data set [N, Nh] in one preallocated tensor, in
--- batches (opts.batch_size, 1000). Also returns the model outputs [N, C].
--- With opts.path the recording streams to that safetensors file instead
--- (tensors "activations" and "outputs", a batch at a time, the file
--- appearing only when complete) and comes back memory-mapped from it: for
--- recordings larger than memory, which the system then pages. A set of
--- more than one batch shows a progress bar (opts.progress = false: none).
--- opts.append_rows: a list of [m, Nh] tensors (recordings made before, such
--- as training-history snapshots) copied after the set's rows, so the
--- activations have N + sum(m) rows in one tensor and whoever trains on all
--- of them needs no second copy; the outputs keep N rows. An empty set
--- (N = 0) gives [0, Nh] and [0, C], the widths from a sample of zeros.
function Recorder:record_set(x, opts)
  checks.tensor(x, "x", "recorder:record_set")
  opts = checks.options(opts, "recorder:record_set")
  checks.opts(opts, "recorder:record_set", {"batch_size", "append_rows", "path", "progress", "tty"})
  checks.optional_size(opts.batch_size, "opts.batch_size", "recorder:record_set")
  if opts.append_rows ~= nil then checks.table(opts.append_rows, "opts.append_rows", "recorder:record_set") end
  if opts.path ~= nil then checks.string(opts.path, "opts.path", "recorder:record_set") end
  local n, bs = x:size(1), opts.batch_size or 1000
  local extra = 0
  for i, t in ipairs(opts.append_rows or {}) do
    if not lm.is_tensor(t) or t:dim() ~= 2 then
      error(string.format("record_set: append_rows[%d] must be a 2-D tensor", i), 0)
    end
    extra = extra + t:size(1)
  end
  local function check_width(width)
    for i, t in ipairs(opts.append_rows or {}) do
      if t:size(2) ~= width then
        error(string.format("record_set: append_rows[%d] has %d columns, the recording %d", i, t:size(2), width), 0)
      end
    end
  end
  local batches = (n + bs - 1) // bs
  local progress = opts.progress ~= false and batches > 1 and Progress.new("recording", batches, {tty = opts.tty})
  local record = function(start, len)
    local ok, h, out = pcall(self.record, self, x:narrow(1, start, len))
    if not ok then error(checks.message(h), 0) end -- (not a line inside Lumen)
    if progress then progress:update(1, string.format("%d samples", start + len - 1)) end
    return h, out
  end
  if opts.path then
    local writer
    local function open(width, classes)
      check_width(width)
      writer = lm.safetensors_writer(opts.path, {{name = "activations", shape = {n + extra, width}},
        {name = "outputs", shape = {n, classes}}})
    end
    local ok, err = pcall(function()
      for start = 1, n, bs do
        local len = math.min(bs, n - start + 1)
        local h, out = record(start, len)
        if not writer then open(h:size(2), out:size(2)) end
        writer:append("activations", h)
        writer:append("outputs", out)
        h:free() -- the batch's rows (made here by record's cat) go back for the next batch
        collectgarbage("step")
      end
      if not writer then open(probe_widths(self, x)) end
      for _, t in ipairs(opts.append_rows or {}) do writer:append("activations", t) end
      writer:close()
    end)
    if not ok then
      if writer then writer:abort() end
      error(err, 0)
    end
    if progress then progress:finish() end
    local t = lm.load(opts.path, {map = true})
    return t.activations, t.outputs
  end
  local H, Y
  local function allocate(width, classes)
    check_width(width)
    H, Y = lm.zeros(n + extra, width), lm.zeros(n, classes)
  end
  for start = 1, n, bs do
    local len = math.min(bs, n - start + 1)
    local h, out = record(start, len)
    if not H then allocate(h:size(2), out:size(2)) end
    H:narrow(1, start, len):copy_(h)
    Y:narrow(1, start, len):copy_(out)
    h:free() -- the batch's rows (made here by record's cat) go back for the next batch
    collectgarbage("step")
  end
  if not H then allocate(probe_widths(self, x)) end
  local row = n + 1
  for _, t in ipairs(opts.append_rows or {}) do
    if t:size(1) > 0 then H:narrow(1, row, t:size(1)):copy_(t) end
    row = row + t:size(1)
  end
  if progress then progress:finish() end
  return H, Y
end

I.Recorder_class = Recorder

-- A "Name: N kB" field of a /proc file, in bytes, or nil where the file or
-- the field is missing.
local function proc_kb(path, field)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local kb = text:match(field .. ":%s*(%d+) kB")
  return kb and tonumber(kb) * 1024 or nil
end

--- Bytes of memory the system can still give (MemAvailable), or nil where
--- /proc/meminfo does not say.
function I.available_memory() return proc_kb("/proc/meminfo", "MemAvailable") end

--- Bytes of this process's peak resident memory so far (VmHWM), or nil
--- where /proc/self/status does not say.
function I.peak_memory() return proc_kb("/proc/self/status", "VmHWM") end

-- ---- errors ---------------------------------------------------------------------------------------

--- Per-sample error e = 1/2 sum_k (y_k - y_hat_k)^2 for outputs [N, C] and
--- 1-based labels.
-- outputs [N, C] and N labels, or an error naming fname at its caller's line
local function check_errors_args(outputs, labels, fname)
  checks.tensor(outputs, "outputs", fname, 4)
  checks.tensor(labels, "labels", fname, 4)
  if outputs:dim() ~= 2 or labels:numel() ~= outputs:size(1) then
    error(string.format("%s: outputs must be [N, C] with one label a row, got outputs %s and %d labels", fname,
      outputs:shape_string(), labels:numel()), 3)
  end
end

function I.sample_errors(outputs, labels)
  check_errors_args(outputs, labels, "lm.introspect.sample_errors")
  return lm.no_grad(function()
    return F.mse(outputs, lm.data.one_hot(labels, outputs:size(2)):float(), {reduction = "none"})
  end)
end

--- log10(max(e, 1e-8)) of the per-sample errors, the estimator's target.
function I.log_errors(outputs, labels)
  check_errors_args(outputs, labels, "lm.introspect.log_errors")
  local e = I.sample_errors(outputs, labels)
  return lm.no_grad(function() return e:clamp(I.ERROR_FLOOR):log() / math.log(10) end)
end

-- ---- the autoencoder -------------------------------------------------------------------------------

local function mlp(sizes, final_activation)
  local layers = {}
  for i = 1, #sizes - 1 do
    layers[#layers + 1] = nn.Linear(sizes[i], sizes[i + 1])
    if i < #sizes - 1 or final_activation then layers[#layers + 1] = nn.ELU() end
  end
  return nn.Sequential(table.unpack(layers))
end

--- The mean and standard deviation (unbiased, clamped at 1e-3) of every
--- column of H [N, k], without gradients; one row has standard deviations 1
--- (the unbiased one is 0 / 0), no rows are an error. With `distributed`
--- under several ranks, H is this rank's rows and both come from sums over all ranks.
function I.standardization(H, distributed)
  local fname = "lm.introspect.standardization"
  checks.tensor(H, "H", fname)
  if H:dim() ~= 2 then error(fname .. ": H must be a recording [N, k], got shape " .. H:shape_string(), 2) end
  local sharded = distributed and lm.dist.size() > 1
  local n = sharded and lm.dist.allreduce_(lm.tensor{H:size(1)}, 'sum'):item() or H:size(1)
  if n == 0 then error(fname .. ": H has no rows (no mean or standard deviation to take)", 2) end
  return lm.no_grad(function()
    if n == 1 and not sharded then return H:mean(1), lm.ones(H:size(2)) end
    if not sharded then
      return H:mean(1), H:std(1):clamp(1e-3)
    end
    local d = lm.dist
    local mean = d.allreduce_(H:sum(1):view(-1), 'sum') / n
    -- squared deviations a block of rows at a time: no copy of the recording
    local sq = lm.zeros(H:size(2))
    for r = 1, H:size(1), 4096 do
      local dev = H:narrow(1, r, math.min(4096, H:size(1) - r + 1)) - mean
      sq:add_((dev * dev):sum(1):view(-1))
    end
    if n == 1 then return mean, lm.ones(H:size(2)) end -- (n is every rank's: all return here)
    local var = d.allreduce_(sq, 'sum') / (n - 1) -- unbiased, as H:std(1)
    return mean, var:sqrt():clamp(1e-3)
  end)
end

--- (x - mean) / std per column; divided in place when no gradient flows
--- (x - mean is fresh then), one [N, k] block less per batch.
function I.standardize(x, mean, std)
  checks.tensor(x, "x", "lm.introspect.standardize")
  checks.tensor(mean, "mean", "lm.introspect.standardize")
  checks.tensor(std, "std", "lm.introspect.standardize")
  local k = x:dim() > 0 and x:size(x:dim()) or 1
  if mean:numel() ~= k or std:numel() ~= k then -- (a broadcast would fail inside, or make [k, k])
    error(string.format("lm.introspect.standardize: mean and std must have one value a column of x (%d), got %d "
      .. "and %d", k, mean:numel(), std:numel()), 2)
  end
  local centred = x - mean
  if centred:requires_grad() then return centred / std end
  return centred:div_(std)
end

local InfoVAE = nn.Module:extend("InfoVAE")

--- The paper's InfoVAE: encoder inputs -> hidden x depth -> latent (ELU,
--- linear bottleneck), decoder mirrored with a linear output. opts.inputs,
--- opts.hidden (200), opts.depth (3), opts.latent (2), opts.mmd_weight,
--- opts.bw (kernel bandwidth, default the latent size), opts.standardize
--- (true: inputs are standardised per unit with the training recording's
--- mean and standard deviation, kept as buffers).
function InfoVAE:init(opts)
  opts = checks.options(opts, "lm.introspect.InfoVAE")
  checks.opts(opts, "lm.introspect.InfoVAE", {"inputs", "hidden", "depth", "latent", "mmd_weight", "bw", "standardize"})
  assert(opts.inputs, "InfoVAE: needs inputs (the recorded vector size)")
  checks.size(opts.inputs, "opts.inputs", "lm.introspect.InfoVAE")
  for _, k in ipairs({"hidden", "depth", "latent"}) do
    checks.optional_size(opts[k], "opts." .. k, "lm.introspect.InfoVAE")
  end
  -- the loss's settings, checked here: a bad one failed at the first loss
  local mmd_weight = checks.eps(opts.mmd_weight, 1, "opts.mmd_weight", "lm.introspect.InfoVAE")
  local bws = type(opts.bw) == "table" and opts.bw or {opts.bw}
  if opts.bw ~= nil and #bws == 0 then bws = {false} end
  for _, bw in ipairs(bws) do
    if not (checks.is_finite(bw) and bw > 0) then
      error("lm.introspect.InfoVAE: opts.bw must be a number > 0 or a list of them (the kernel bandwidths), got "
        .. checks.shown(opts.bw), 2)
    end
  end
  local most = lm._functional._mmd_max_bandwidths
  if #bws > most then
    error(string.format("lm.introspect.InfoVAE: opts.bw lists %d bandwidths; the kernel takes at most %d", #bws,
      most), 2)
  end
  local hidden, depth, latent = opts.hidden or 200, opts.depth or 3, opts.latent or 2
  self.latent, self.mmd_weight, self.bw = latent, mmd_weight, opts.bw
  self.standardize = opts.standardize ~= false
  local enc, dec = {opts.inputs}, {latent}
  for _ = 1, depth do enc[#enc + 1] = hidden; dec[#dec + 1] = hidden end
  enc[#enc + 1] = latent
  dec[#dec + 1] = opts.inputs
  self:child("encoder", mlp(enc, false))
  self:child("decoder", mlp(dec, false))
  self:buffer("mean", lm.zeros(opts.inputs))
  self:buffer("std", lm.ones(opts.inputs))
end

-- h must be a recording of the width the autoencoder was made for: [N, inputs]
local function check_recording(self, h, what, fname)
  checks.tensor(h, what, fname, 4)
  local inputs = self.mean:numel()
  if h:dim() ~= 2 or h:size(2) ~= inputs then
    error(string.format("%s: %s must be a recording [N, %d], got shape %s", fname, what, inputs, h:shape_string()),
      3)
  end
end

--- Sets the standardisation from a recording H [N, Nh]. With distributed
--- = true, H is this rank's part of the recording and the statistics are
--- those of every rank's parts together (sums over ranks, two passes).
function InfoVAE:fit_standardization(H, distributed)
  check_recording(self, H, "H", "vae:fit_standardization")
  local mean, std = I.standardization(H, distributed)
  self.mean:copy_(mean)
  self.std:copy_(std)
end

function InfoVAE:prepare(h)
  if not self.standardize then return h end
  return I.standardize(h, self.mean, self.std)
end

function InfoVAE:encode(h)
  check_recording(self, h, "h", "vae:encode")
  return self.encoder(self:prepare(on_device_of(self, h)))
end

--- Decoded activations in the original (unstandardised) units.
function InfoVAE:decode(z)
  local out = self.decoder(z)
  if not self.standardize then return out end
  return out * self.std + self.mean
end

function InfoVAE:forward(h)
  check_recording(self, h, "h", "vae:forward")
  return self:encode(h)
end

--- Loss of a batch: reconstruction 1/2 ||h_hat - h||^2 (mean over the batch,
--- in standardised units) + mmd_weight * MMD(z, fresh N(0, I) samples).
--- gather (optional) maps the batch's codes to those the MMD compares, as
--- data-parallel training gathers the codes of the global batch
--- (lm.dist.all_gather_rows): the MMD is not a mean over samples, so the
--- ranks' MMDs of their parts do not add up to the batch's.
function InfoVAE:loss(h, gather)
  check_recording(self, h, "h", "vae:loss")
  if gather ~= nil then checks.callable(gather, "gather", "vae:loss") end
  local x = self:prepare(h)
  local z = self.encoder(x)
  local recon = F.mse(self.decoder(z), x)
  if gather then z = gather(z) end
  local prior = lm.randn(z:size(1), self.latent, z:device())
  local mmd = F.mmd(z, prior, {bw = self.bw})
  return recon + mmd * self.mmd_weight, recon, mmd
end

--- The mean loss over the batches of a held-out recording H (batch_size
--- rows each, 128; a last partial batch is left out: the MMD is a batch's;
--- fewer rows than a batch are one batch of them all), without gradients
--- and with the prior samples of a fixed seed, so that every call compares
--- the model on the same draw (the caller's random
--- stream is left as it was).
function InfoVAE:validation_loss(H, batch_size)
  check_recording(self, H, "H", "vae:validation_loss")
  checks.optional_size(batch_size, "batch_size", "vae:validation_loss")
  if H:size(1) == 0 then error("vae:validation_loss: H has no rows (no loss to take)", 2) end
  batch_size = math.min(batch_size or 128, H:size(1))
  local seed, offset = lm.rng_state()
  lm.manual_seed(0x5EED)
  local total, count = 0, 0
  lm.no_grad(function()
    for s = 1, H:size(1) - batch_size + 1, batch_size do
      total, count = total + self:loss(on_device_of(self, H:narrow(1, s, batch_size))):item(), count + 1
    end
  end)
  lm.set_rng_state(seed, offset)
  return total / count
end

--- Latents of a whole recording, in batches, without gradients.
function InfoVAE:encode_all(H, batch_size)
  check_recording(self, H, "H", "vae:encode_all")
  checks.optional_size(batch_size, "batch_size", "vae:encode_all")
  batch_size = batch_size or I.block_rows(H:size(2))
  local n = H:size(1)
  local Z = lm.zeros(n, self.latent)
  lm.no_grad(function()
    for s = 1, n, batch_size do
      local len = math.min(batch_size, n - s + 1)
      Z:narrow(1, s, len):copy_(self:encode(H:narrow(1, s, len)))
    end
  end)
  return Z
end

I.InfoVAE = InfoVAE

--- The estimator of log10(e): latent -> hidden x depth -> 1 (ELU, linear out).
function I.Estimator(opts)
  opts = checks.options(opts, "lm.introspect.Estimator")
  checks.opts(opts, "lm.introspect.Estimator", {"hidden", "depth", "latent"})
  for _, k in ipairs({"hidden", "depth", "latent"}) do
    checks.optional_size(opts[k], "opts." .. k, "lm.introspect.Estimator")
  end
  local sizes = {opts.latent or 2}
  for _ = 1, opts.depth or 3 do sizes[#sizes + 1] = opts.hidden or 200 end
  sizes[#sizes + 1] = 1
  return mlp(sizes, false)
end

-- ---- training -------------------------------------------------------------------------------------

-- Minibatch epochs over rows of the given tensors with a step function
-- step(ctx, batch...). With opts.rows under several ranks the tensors are
-- this rank's rows of a larger set and each global batch (the batch one
-- process would take from the whole set) is split by owner: ctx tells the
-- step its part ({rows, total, layout, size}); the epoch's loss is the
-- sum over ranks of what the steps return.
local function epochs_over(tensors, opts, step)
  local plan = opts.rows and lm.dist.size() > 1 and lm.dist.row_owners(opts.rows)
  local n = plan and plan.n or tensors[1]:size(1)
  local bs = math.min(opts.batch_size or 128, n) -- a set smaller than a batch is one batch
  local history = {}
  local loader_seed = opts.seed or 0
  local progress_opts = {tty = opts.tty}
  -- progress = false (as record_set takes it), or a rank other than the first: no bar, no lines
  if opts.progress == false or not lm.dist.is_main() then progress_opts = {tty = false, interval = math.huge} end
  opts._buffers = opts._buffers or {}
  -- reading a loss back waits for the device: a GPU's are summed where they
  -- are and read every 32 steps (opts.read_every), the CPU's every step
  local read_every = opts.read_every or (opts.device and opts.device ~= "cpu" and 32 or 1)
  local stop = false
  for epoch = 1, opts.epochs or 10 do
    if stop then break end
    local seed, offset = lm.rng_state()
    lm.manual_seed(loader_seed * 7919 + epoch)
    local perm = lm.randperm(n) - 1
    lm.set_rng_state(seed, offset)
    local progress = Progress.new(string.format("%s epoch %d", opts.title or "training", epoch), n // bs,
      progress_opts)
    local total, count, unread = 0, 0, nil
    for b = 0, n // bs - 1 do
      local idx = perm:narrow(1, b * bs + 1, bs)
      local ctx, len = nil, bs
      if plan then
        local layout
        idx, layout = plan:part(idx)
        len = idx:size(1)
        ctx = {rows = len, total = bs, layout = layout, size = plan.size}
      end
      local batch = {}
      for k, t in ipairs(tensors) do
        local shape = t:shape()
        shape[1] = bs
        opts._buffers[k] = opts._buffers[k] or lm.zeros(shape)
        local buf = len == bs and opts._buffers[k] or opts._buffers[k]:narrow(1, 1, len)
        batch[k] = lm._index_select_into(buf, t, idx)
      end
      if opts.device and opts.device ~= "cpu" then
        for k = 1, #batch do batch[k] = batch[k]:to(opts.device) end
      end
      local l = step(ctx, table.unpack(batch))
      count = count + 1
      if lm.is_tensor(l) and read_every == 1 then
        total = total + l:item()
      elseif lm.is_tensor(l) then -- a loss on the device: summed there, read every read_every steps
        unread = unread and unread:add_(l) or l:clone()
        if count % read_every == 0 then total, unread = total + unread:item(), nil end
      else
        total = total + l
      end
      collectgarbage("step")
      progress:update(1, not unread and string.format("loss %.4f", total / count) or nil) -- nil: not read yet
      if opts.after_step and opts.after_step() then stop = true; break end
    end
    if unread then total = total + unread:item() end
    local seconds = progress:finish()
    if plan then total = lm.dist.allreduce_(lm.tensor{total}, 'sum'):item() end
    -- every later step would be NaN too, and the call return as if trained; the
    -- cyclic regime with a best cycle kept stops instead and puts it back
    if not checks.is_finite(total) and opts.keeps_best and opts.keeps_best() then break end
    if not checks.is_finite(total) then
      error(string.format("%s: the loss became %s in epoch %d; stopping (the model's weights are no longer finite: "
        .. "a learning rate too large?)", opts.fname, total ~= total and "nan" or tostring(total), epoch), 0)
    end
    history[epoch] = {loss = total / count, seconds = seconds}
    if opts.log then opts.log(epoch, history[epoch]) end
  end
  return history
end

-- Adam (opts.lr, 1e-3) over minibatch epochs of the rows of `tensors`,
-- loss_of(ctx, batch...) giving a batch's loss and, under several ranks
-- (ctx, see epochs_over), also this rank's part of the batch's loss value;
-- the model ends in evaluation mode.
-- The paper's training regime (opts.cyclic = {max, min = 0, period,
-- cycles, patience = 5, validate}): Adam under a triangular cyclic rate
-- over [min, max] stepped every iteration, validate() (the validation loss)
-- called at the end of each cycle of `period` iterations, training stopped
-- after `cycles` cycles or after `patience` cycles without a better
-- validation loss, the best cycle's weights put back. Sets the hooks on
-- opts that epochs_over calls; returns the cycles' records and the function
-- that ends the regime.
local function cyclic_regime(model, opt, c, opts)
  local clr = lm.optim.CyclicLR(opt, {min = c.min or 0, max = c.max, period = c.period})
  local stopper = lm.optim.EarlyStopping{patience = c.patience or 5}
  local records, steps = {}, 0
  opts.epochs = math.huge -- the cycles end the run
  opts.after_step = function()
    clr:step()
    steps = steps + 1
    if steps % c.period ~= 0 then return false end
    model:evaluate()
    local val = c.validate()
    model:train()
    -- a NaN is never better (EarlyStopping): once a cycle was, patience ends
    -- the run and its weights come back; before any, the run has nothing to keep
    if type(val) ~= "number" or not checks.is_finite(val) and not stopper.best_state then
      error(string.format("%s: opts.cyclic.validate must return a finite number (the validation loss), got %s "
        .. "after cycle %d", opts.fname, checks.shown(val), #records + 1), 0)
    end
    local stop = stopper:step(val, model)
    records[#records + 1] = {cycle = #records + 1, val_loss = val, steps = steps, best = stopper.bad == 0}
    if opts.log_cycle then opts.log_cycle(#records, records[#records]) end
    return stop or #records >= c.cycles
  end
  opts.keeps_best = function() return stopper.best_state ~= nil end
  return records, function()
    if stopper.best_state then stopper:restore(model) end
  end
end

-- The options fit_autoencoder and fit_estimator take (a misspelt one would
-- train with the default silently); after_step and _buffers are Lumen's own.
local FIT_OPTIONS = {estimator = {"epochs", "batch_size", "lr", "seed", "log", "log_cycle", "cyclic", "rows", "graph",
  "device", "title", "tty", "progress", "read_every", "after_step", "_buffers"}}
FIT_OPTIONS.autoencoder = {"fit_standardization", table.unpack(FIT_OPTIONS.estimator)}
FIT_OPTIONS.jointly = {"epochs", "batch_size", "lr", "seed", "log"}

-- The option values of fit_autoencoder and fit_estimator, and their data,
-- checked before anything changes (a bad batch size divided by zero, a bad
-- log failed after an epoch, a bad lr was Adam's error); errors point at
-- the caller of `fname`. tensors: the data as {name, tensor} pairs, none empty (unless this rank's
-- part of a sharded set) nor holding a NaN or an infinity (every loss NaN).
local function check_fit(model, tensors, opts, fname)
  local L = 4 -- the checks' level: the caller of fname
  checks.opts(opts, fname, FIT_OPTIONS[fname:match("fit_(%w+)$")], nil, L)
  for _, k in ipairs({"epochs", "batch_size", "read_every"}) do
    checks.optional_size(opts[k], "opts." .. k, fname, L)
  end
  checks.eps(opts.lr, nil, "opts.lr", fname, L)
  if opts.seed ~= nil and not checks.is_whole(opts.seed) then
    error(string.format("%s: opts.seed must be an integer, got %s", fname, checks.shown(opts.seed)), L - 1)
  end
  for _, k in ipairs({"log", "log_cycle", "after_step"}) do
    if opts[k] ~= nil then checks.callable(opts[k], "opts." .. k, fname, L) end
  end
  for _, k in ipairs({"graph", "progress", "tty", "fit_standardization"}) do
    checks.flag(opts[k], nil, "opts." .. k, fname, L)
  end
  if opts.title ~= nil then checks.string(opts.title, "opts.title", fname, L) end
  checks.optional_tensor(opts.rows, "opts.rows", fname, L)
  local sharded = opts.rows and lm.dist.size() > 1
  if opts.graph and (lm.train.device_of(model) == "cpu" or sharded) then
    error(fname .. ": graph = true captures CUDA graphs: it needs the model on a GPU and one process", L - 1)
  end
  local c = opts.cyclic
  if c ~= nil then
    local what = fname .. ": opts.cyclic"
    checks.table(c, "opts.cyclic", fname, L)
    checks.opts(c, what, {"max", "min", "period", "cycles", "patience", "validate"}, nil, L)
    if c.max == nil or c.period == nil or c.cycles == nil or c.validate == nil then
      error(fname .. ": opts.cyclic needs {max = number, period = iterations, cycles = number, validate = function}",
        L - 1)
    end
    checks.eps(c.max, nil, "opts.cyclic.max", fname, L)
    checks.eps(c.min, nil, "opts.cyclic.min", fname, L)
    if (c.min or 0) > c.max then
      error(string.format("%s: opts.cyclic.min (%s) is above opts.cyclic.max (%s)", fname, c.min, c.max), L - 1)
    end
    if not (checks.is_whole(c.period) and c.period >= 2) then
      error(string.format("%s: opts.cyclic.period must be an integer >= 2 (iterations a cycle), got %s", fname,
        checks.shown(c.period)), L - 1)
    end
    checks.optional_size(c.cycles, "opts.cyclic.cycles", fname, L)
    checks.optional_size(c.patience, "opts.cyclic.patience", fname, L)
    checks.callable(c.validate, "opts.cyclic.validate", fname, L)
    if opts.epochs ~= nil then -- the cycles end the run: epochs would be ignored
      error(fname .. ": opts.cyclic replaces opts.epochs (the cycles end the run): give one of them", L - 1)
    end
  end
  for _, named in ipairs(tensors) do
    local name, t = named[1], named[2]
    if not sharded and t:size(1) == 0 then
      error(string.format("%s: %s has no rows to train on", fname, name), L - 1)
    end
    -- one pass, no copy: a sum is finite unless a value is not
    local bad = t:numel() > 0 and not checks.is_finite(t:sum():item())
    if sharded then -- every rank raises, not the one holding the NaN alone
      local ranks = lm.dist.allreduce_(lm.tensor({bad and 1 or 0}, 'int32'), 'sum')[1]
      if ranks > 0 then
        error(string.format("%s: %s holds a NaN or an infinity in the part of %d of the %d ranks (every loss would "
          .. "be NaN)%s", fname, name, ranks, lm.dist.size(), bad and ", this rank's among them" or ""), L - 1)
      end
    end
    if bad then
      error(string.format("%s: %s holds a NaN or an infinity (every loss would be NaN)", fname, name), L - 1)
    end
  end
end

local function fit(model, tensors, opts, title, loss_of)
  -- the working state (device, title, buffers, the cyclic regime's) goes
  -- into a copy, not into the caller's table
  local own = {}
  for k, v in pairs(opts) do own[k] = v end
  opts = own
  opts.fname = "lm.introspect.fit_" .. title
  opts.device = lm.train.device_of(model)
  local sharded = opts.rows and lm.dist.size() > 1
  if sharded then
    lm.dist.broadcast_parameters(model, 0) -- every rank starts from rank 0's weights
    -- and rank 0's random stream: the MMD's prior samples are drawn on every
    -- rank and must be one draw (ranks seeded apart trained something no
    -- single process would)
    lm.dist.broadcast_rng_state(0)
  end
  local opt = lm.optim.Adam(model:parameters(), {lr = opts.lr or 1e-3})
  local cycles, finish
  if opts.cyclic then cycles, finish = cyclic_regime(model, opt, opts.cyclic, opts) end
  model:train()
  opts.title = opts.title or title
  local function step(ctx, ...)
    opt:zero_grad()
    local loss, part = loss_of(ctx, ...)
    if loss then loss:backward() end
    if sharded then lm.dist.average_gradients(model) end
    opt:step()
    return part or loss:detach() -- epochs_over reads it when it needs the number
  end
  -- opts.graph (a GPU, one process): the second step captured as a CUDA
  -- graph, every later one a replay of it on the batch copied into its
  -- inputs (every batch of epochs_over has one shape), with the same numbers
  local graph, inputs, graph_loss, steps = nil, nil, nil, 0
  -- (pcall: a failed step or log leaves the model in evaluation mode, as a finished fit)
  local ok, history = pcall(epochs_over, tensors, opts, function(ctx, ...)
    steps = steps + 1
    if not opts.graph or steps == 1 then return step(ctx, ...) end
    if not graph then
      inputs = table.pack(...)
      graph, graph_loss = lm.cuda.graph(step, ctx, table.unpack(inputs, 1, inputs.n))
    else
      for k = 1, inputs.n do inputs[k]:copy_((select(k, ...))) end
    end
    graph:replay()
    return graph_loss -- (epochs_over adds it up or clones it before the next replay)
  end)
  if graph then graph:free() end
  if not ok then
    model:evaluate()
    error(history, 0)
  end
  if finish then finish(); history.cycles = cycles end
  model:evaluate()
  return history
end

--- Trains an InfoVAE on a recording H [N, Nh] with Adam. opts.epochs (10),
--- opts.batch_size (128), opts.lr (1e-3), opts.seed, opts.log(epoch, record);
--- or, instead of epochs at a constant rate, the paper's regime: opts.cyclic
--- = {max, min (0), period (iterations a cycle), cycles, patience (5),
--- validate (a function returning the validation loss, called after each
--- cycle)}, which keeps the best cycle's weights and returns its records as
--- history.cycles (opts.log_cycle(cycle, record) after each);
--- the input standardisation is fitted to H first unless
--- opts.fit_standardization is false (keeps the one already set).
--- Every option and H (rows, all finite) are checked before anything
--- changes; cyclic with epochs is an error (the cycles end the run). A loss
--- or validation loss that is not finite stops the fit with an error naming
--- its epoch or cycle. The model ends in evaluation mode, also when the fit fails.
--- Data parallel under several ranks (docs/distributed.md): opts.rows (an
--- int32 tensor) gives the 0-based rows of the whole recording that this
--- rank's H holds, every row on one rank; the ranks then take the steps of
--- one process on the whole recording. The MMD of each global batch is
--- computed on every rank from the batch's gathered codes.
function I.fit_autoencoder(vae, H, opts)
  checks.autoencoder(vae, "vae", "lm.introspect.fit_autoencoder", nil, true)
  checks.tensor(H, "H", "lm.introspect.fit_autoencoder")
  opts = checks.options(opts, "lm.introspect.fit_autoencoder")
  local mean = rawget(vae, "mean") -- an InfoVAE's: its width is the recording's
  if lm.is_tensor(mean) and (H:dim() ~= 2 or H:size(2) ~= mean:numel()) then
    error(string.format("lm.introspect.fit_autoencoder: H must be a recording [N, %d] (the autoencoder's inputs), "
      .. "got shape %s", mean:numel(), H:shape_string()), 2)
  end
  check_fit(vae, {{"H", H}}, opts, "lm.introspect.fit_autoencoder") -- before the standardisation changes
  local sharded = opts.rows and lm.dist.size() > 1
  if vae.standardize and opts.fit_standardization ~= false then vae:fit_standardization(H, sharded) end
  if not sharded then
    return fit(vae, {H}, opts, "autoencoder", function(_, h) return (vae:loss(h)) end)
  end
  return fit(vae, {H}, opts, "autoencoder", function(ctx, h)
    local k, share = ctx.size, ctx.rows / ctx.total
    local _, recon, mmd = vae:loss(h, function(z) return lm.dist.all_gather_rows(z, ctx.layout) end)
    -- the batch's loss is sum over ranks of share * recon, plus the MMD every
    -- rank computes whole; average_gradients divides by k, and each rank's
    -- backward gives only its rows' part of the MMD's gradient: both times k
    if ctx.rows == 0 then -- no rows of this batch here: the MMD's gradient part is zero
      return mmd * (vae.mmd_weight * k), vae.mmd_weight * mmd:item() / k
    end
    local loss = recon * (share * k) + mmd * (vae.mmd_weight * k)
    return loss, share * recon:item() + vae.mmd_weight * mmd:item() / k
  end)
end

--- Trains the estimator on latents Z [N, 2] and targets T [N] (log10 e)
--- with the mean squared error; opts as fit_autoencoder's (opts.rows: the
--- rows of the whole set this rank holds, for data-parallel training).
function I.fit_estimator(est, Z, T, opts)
  checks.module(est, "est", "lm.introspect.fit_estimator")
  checks.tensor(Z, "Z", "lm.introspect.fit_estimator")
  checks.tensor(T, "T", "lm.introspect.fit_estimator")
  opts = checks.options(opts, "lm.introspect.fit_estimator")
  if Z:dim() < 1 or Z:size(1) ~= T:numel() then
    error(string.format("lm.introspect.fit_estimator: Z has %d rows but T %d targets (one a row)",
      Z:dim() > 0 and Z:size(1) or 0, T:numel()), 2)
  end
  check_fit(est, {{"Z", Z}, {"T", T}}, opts, "lm.introspect.fit_estimator")
  if not (opts.rows and lm.dist.size() > 1) then
    return fit(est, {Z, T:view(-1, 1)}, opts, "estimator", function(_, z, t) return F.mse(est(z), t) end)
  end
  return fit(est, {Z, T:view(-1, 1)}, opts, "estimator", function(ctx, z, t)
    if ctx.rows == 0 then return nil, 0 end -- no rows of this batch here: no gradient
    local share = ctx.rows / ctx.total
    local mse = F.mse(est(z), t)
    return mse * (share * ctx.size), share * mse:item()
  end)
end

--- Trains classifier, autoencoder and estimator at the same time, with the
--- method's three stop-gradients: the autoencoder sees the recorded
--- activations detached from the classifier, the estimator sees the latents
--- detached from the encoder, and its target log10(e) is computed from the
--- classifier's outputs detached. One backward pass over the summed losses
--- updates all three (each with its own Adam). opts.epochs, opts.batch_size,
--- opts.lr (1e-3 for all three), opts.seed, opts.log(epoch, record) with the
--- three mean losses. The autoencoder's standardisation is fixed from the
--- first batch. Every option and set.x (all finite) are checked before
--- anything changes; a loss that is not finite stops the fit with an error
--- naming its epoch; the three end in evaluation mode, also when it fails.
function I.fit_jointly(model, recorder, vae, est, set, opts)
  local fname = "lm.introspect.fit_jointly"
  checks.module(model, "model", fname)
  checks.recorder(recorder, "recorder", fname)
  checks.autoencoder(vae, "vae", fname, nil, true)
  checks.module(est, "est", fname)
  checks.set(set, "set", fname)
  opts = checks.options(opts, fname)
  check_fit(model, {{"set.x", set.x}}, opts, fname)
  local lr = opts.lr or 1e-3
  local opt_c = lm.optim.Adam(model:parameters(), {lr = lr})
  local opt_a = lm.optim.Adam(vae:parameters(), {lr = lr})
  local opt_e = lm.optim.Adam(est:parameters(), {lr = lr})
  local made, loader = pcall(lm.data.loader, set, {batch_size = opts.batch_size or 128, seed = opts.seed or 0})
  if not made then checks.reraise(loader, 2, fname .. ": ") end -- (a batch larger than the set)
  local classes
  local history = {}
  local function train_all()
    for epoch = 1, opts.epochs or 5 do
      local sums, batches = {0, 0, 0}, 0
      for x, y in loader:epoch_iter() do
        local out, h = recorder:capture(function() return model(x) end)
        classes = classes or out:size(2)
        h = h:detach()                                        -- stop-gradient 1
        if epoch == 1 and batches == 0 and vae.standardize then vae:fit_standardization(h) end
        local loss_c = F.mse(out, lm.data.one_hot(y, classes):float())
        local loss_a = vae:loss(h)
        local z = vae:encode(h):detach()                      -- stop-gradient 2
        local target = I.log_errors(out:detach(), y)          -- stop-gradient 3
        local loss_e = F.mse(est(z), target:view(-1, 1))
        opt_c:zero_grad(); opt_a:zero_grad(); opt_e:zero_grad()
        ;(loss_c + loss_a + loss_e):backward()
        opt_c:step(); opt_a:step(); opt_e:step()
        sums[1], sums[2], sums[3] = sums[1] + loss_c:item(), sums[2] + loss_a:item(), sums[3] + loss_e:item()
        batches = batches + 1
        collectgarbage("step")
      end
      history[epoch] = {classifier = sums[1] / batches, autoencoder = sums[2] / batches,
        estimator = sums[3] / batches}
      for _, part in ipairs({"classifier", "autoencoder", "estimator"}) do
        if not checks.is_finite(history[epoch][part]) then
          error({caller = string.format("%s: the %s's loss is not finite in epoch %d (%s)", fname, part, epoch,
            checks.shown(history[epoch][part]))}) -- raised below at the caller's line
        end
      end
      if opts.log then opts.log(epoch, history[epoch]) end
    end
  end
  model:train(); vae:train(); est:train()
  -- (pcall: a failed step or log leaves the three in evaluation mode, as a finished fit)
  local ok, err = pcall(train_all)
  model:evaluate(); vae:evaluate(); est:evaluate()
  if not ok then
    if type(err) == "table" and err.caller then error(err.caller, 2) end
    error(err, 0)
  end
  return history
end

--- The whole map for new inputs in one call: classifier -> recorder ->
--- encoder -> estimator. Returns z [N, 2], log10 e_hat [N] and the
--- classifier's outputs [N, C], without gradients.
function I.interrogate(recorder, vae, est, x)
  local fname = "lm.introspect.interrogate"
  checks.recorder(recorder, "recorder", fname)
  checks.autoencoder(vae, "vae", fname, nil, true)
  checks.module(est, "est", fname)
  checks.tensor(x, "x", fname)
  local h, out = recorder:record(x)
  local z = lm.no_grad(function() return vae:encode(h) end)
  return z, I.estimate(est, z), out
end

--- Estimated log10 error for latents Z [N, 2] (no gradients): [N], in
--- blocks of `batch` rows (I.block_rows), for an estimator of any input width.
function I.estimate(est, Z, batch)
  checks.module(est, "est", "lm.introspect.estimate")
  checks.tensor(Z, "Z", "lm.introspect.estimate")
  checks.optional_size(batch, "batch", "lm.introspect.estimate")
  if Z:dim() ~= 2 then
    error("lm.introspect.estimate: Z must be latents [N, d] (one row a sample), got shape " .. Z:shape_string(), 2)
  end
  batch = batch or I.block_rows(Z:size(2))
  local n = Z:size(1)
  if n <= batch then return lm.no_grad(function() return est(on_device_of(est, Z)):view(-1) end) end
  local out -- in blocks of rows: a wide input (a recording) makes no whole-set temporaries
  lm.no_grad(function()
    for s = 1, n, batch do
      local len = math.min(batch, n - s + 1)
      local e = est(on_device_of(est, Z:narrow(1, s, len))):view(-1)
      out = out or lm.zeros(n):to(e:device())
      out:narrow(1, s, len):copy_(e)
    end
  end)
  return out
end

--- Baseline confidence scores (high = confident), one per row of x, from
--- the classifier's logits so that saturated outputs never tie: sigmoid(17)
--- is exactly 1.0 in float32, so a quarter of a trained Net1's test set
--- would share the top max-sigmoid score. For a network ending in
--- nn.Sigmoid: the largest logit (the same order as the largest sigmoid);
--- ending in nn.Softmax: the log of the largest probability, computed in
--- double from the logits (the probability rounds to 1.0 when the others
--- are 37 below); otherwise the largest output. o.batch (1000) rows at a time,
--- in evaluation mode, without gradients. Returns a list of numbers and the
--- name of the score.
function I.baseline_scores(net, x, o)
  checks.module(net, "net", "lm.introspect.baseline_scores")
  checks.tensor(x, "x", "lm.introspect.baseline_scores")
  o = checks.options(o, "lm.introspect.baseline_scores")
  checks.opts(o, "lm.introspect.baseline_scores", {"batch"})
  checks.optional_size(o.batch, "o.batch", "lm.introspect.baseline_scores")
  if x:dim() < 2 then
    error("lm.introspect.baseline_scores: x must be a batch [N, ...] (one row a sample), got shape "
      .. x:shape_string(), 2)
  end
  local last = net.__name == "nn.Sequential" and net:size() > 0 and net[net:size()] or nil
  local kind = last and ({["nn.Sigmoid"] = "max_logit", ["nn.Softmax"] = "max_softmax"})[last.__name] or "max_output"
  if kind ~= "max_output" then
    local S = require 'lumen.introspect.scores' -- it requires this module: loaded when called
    local logits = S.logits(net, x, o)
    if logits:size(2) >= 2 then return S.confidences(logits)[kind], kind end
    local one = logits:view(-1):totable() -- one output: its logit, or a softmax of 1
    if kind == "max_softmax" then for i in ipairs(one) do one[i] = 0 end end -- log 1
    return one, kind
  end
  local batch = o.batch or 1000
  local scores = {}
  nn.evaluating(net, function() return lm.no_grad(function()
    for s = 1, x:size(1), batch do
      local out = net(on_device_of(net, x:narrow(1, s, math.min(batch, x:size(1) - s + 1))))
      for r, v in ipairs(out:max(2):view(-1):to("cpu"):totable()) do scores[s + r - 1] = v end
    end
  end) end)
  return scores, kind
end

-- ---- measures ------------------------------------------------------------------------------------------

--- Fraction of points whose k (at most N - 1) nearest other points (Euclidean, in Z) mostly
--- share their label (majority vote; on a tie, the class whose count got
--- there first, that is with the nearer neighbours, wins). o.first and
--- o.count (1-based) take only those points as queries, their neighbours
--- still among all of Z (a rank's part of the work). o.chunk: queries per
--- block (default: about 8 MB of distances a block).
function I.knn_accuracy(Z, labels, k, o)
  local fname = "lm.introspect.knn_accuracy"
  checks.tensor(Z, "Z", fname)
  checks.tensor(labels, "labels", fname)
  checks.optional_size(k, "k", fname)
  o = checks.options(o, fname)
  checks.opts(o, fname, {"first", "count", "chunk"})
  checks.optional_size(o.first, "o.first", fname)
  checks.optional_size(o.chunk, "o.chunk", fname)
  if o.count ~= nil and (math.type(o.count) ~= "integer" or o.count < 0) then
    error(fname .. ": o.count must be an integer >= 0 (or nil), got " .. checks.shown(o.count), 2)
  end
  if Z:dim() ~= 2 or labels:numel() ~= Z:size(1) then
    error(string.format("%s: Z must be [N, d] with one label per row, got Z %s and %d labels", fname,
      Z:shape_string(), labels:numel()), 2)
  end
  -- a set of N points has N - 1 others: k is at most that
  k = math.min(k or 10, Z:size(1) - 1)
  if k < 1 then return 0 / 0 end
  local first = o and o.first or 1
  local n = o and o.count or Z:size(1) - first + 1
  local last = first + n - 1
  if last > Z:size(1) then
    error(string.format("%s: the queries %d..%d (o.first, o.count) run past the %d points", fname, first, last,
      Z:size(1)), 2)
  end
  local lab = labels:totable()
  -- queries in blocks whose [chunk, N] distances stay near 8 MB, each
  -- freed before the next: the whole set's would be N^2 floats
  local correct, chunk = 0, o and o.chunk or math.max(16, math.min(1000, (1 << 21) // math.max(1, Z:size(1))))
  if n == 0 then return 0 / 0 end
  lm.no_grad(function()
    for s = first, last, chunk do
      local len = math.min(chunk, last - s + 1)
      local q = Z:narrow(1, s, len)
      local d = F.squared_distances(q, Z)                              -- [len, N], one block
      local _, idx = d:topk(k + 1)                                     -- itself first
      d:free()
      local rows = idx:totable()
      for i = 1, len do
        local votes, best, most, taken = {}, nil, -1, 0
        for t = 1, k + 1 do
          local j = rows[i][t]
          if j ~= s + i - 1 and taken < k then -- skip the point itself
            taken = taken + 1
            local c = lab[j]
            votes[c] = (votes[c] or 0) + 1
            if votes[c] > most then best, most = c, votes[c] end
          end
        end
        if best == lab[s + i - 1] then correct = correct + 1 end
      end
    end
  end)
  return correct / n
end

--- The inputs of a ranking measure (auroc, aupr, fpr_at_tpr): a list of
--- numbers, none NaN (a NaN has no place in an order: the measure would
--- depend on the input's order), and a list of as many booleans (0 and 1
--- would both count as true in Lua). `fn` names the measure in errors.
function I.check_scored(fn, scores, positives)
  if type(scores) ~= "table" or type(positives) ~= "table" then
    error(string.format("%s: expects a list of scores and a list of booleans, got a %s and a %s", fn,
      type(scores), type(positives)), 3)
  end
  if #scores ~= #positives then
    error(string.format("%s: %d scores but %d labels", fn, #scores, #positives), 3)
  end
  local nan = 0
  for i = 1, #scores do
    local v = scores[i]
    if type(v) ~= "number" then error(string.format("%s: score %d is a %s, not a number", fn, i, type(v)), 3) end
    if v ~= v then nan = nan + 1 end
    if type(positives[i]) ~= "boolean" then
      error(string.format("%s: label %d is a %s, not a boolean (true = positive)", fn, i, type(positives[i])), 3)
    end
  end
  if nan > 0 then error(string.format("%s: %d of the %d scores are NaN", fn, nan, #scores), 3) end
end

--- The samples ranked by score (ascending, or descending when
--- `descending`) in groups of equal scores: an iterator of (first, last,
--- hits), the group's ranks and how many of its samples are flagged.
--- Equal scores are one threshold in every ranking measure, so no measure
--- depends on the order of ties (or the sort's).
function I.tie_groups(scores, flags, descending)
  checks.table(scores, "scores", "lm.introspect.tie_groups")
  checks.table(flags, "flags", "lm.introspect.tie_groups")
  for i = 1, #scores do
    if type(scores[i]) ~= "number" then
      error(string.format("lm.introspect.tie_groups: scores[%d] must be a number, got %s", i, checks.shown(scores[i])),
        2)
    end
  end
  local n, order = #scores, {}
  for i = 1, n do order[i] = i end
  table.sort(order, descending and function(a, b) return scores[a] > scores[b] end
    or function(a, b) return scores[a] < scores[b] end)
  local r = 1
  return function()
    if r > n then return nil end
    local first, last = r, r
    while last < n and scores[order[last + 1]] == scores[order[first]] do last = last + 1 end
    local hits = 0
    for t = first, last do if flags[order[t]] then hits = hits + 1 end end
    r = last + 1
    return first, last, hits
  end
end

--- Area under the ROC curve for scores where higher means "positive";
--- positives is a list of booleans. Ties count one half (a group's mean
--- rank). NaN scores are an error (I.check_scored); without positives or
--- negatives it is NaN.
function I.auroc(scores, positives)
  I.check_scored("auroc", scores, positives)
  local rank_sum, npos = 0, 0
  for first, last, hits in I.tie_groups(scores, positives) do
    rank_sum, npos = rank_sum + hits * (first + last) / 2, npos + hits
  end
  local nneg = #scores - npos
  if npos == 0 or nneg == 0 then return 0 / 0 end
  return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)
end

--- Area under the precision-recall curve (average precision) of finding the
--- positives by descending score (inputs as I.auroc's). A group of equal
--- scores counts its positives at the group's precision.
function I.aupr(scores, positives)
  I.check_scored("aupr", scores, positives)
  local total = 0
  for i = 1, #scores do if positives[i] then total = total + 1 end end
  if total == 0 then return 0 / 0 end
  local hits, ap = 0, 0
  for _, last, group in I.tie_groups(scores, positives, true) do
    hits = hits + group
    ap = ap + group * hits / last
  end
  return ap / total
end

return I
