-- The stages of a self-introspection study after the classifier, shared by
-- the bundled experiments (experiments/introspect_*.lua) and open to any
-- model: record the hidden activations, fit the InfoVAE and the estimator
-- (each cached in the output folder), measure, draw and report. The main
-- experiment's whole pipeline, Net1 on MNIST from training on, is
-- study.mnist(opts); study.load_map reads a cached map back.
--
--   local study = require 'lumen.introspect.study'
--   local metrics = study.run{
--     name = "Net1", data = d,                    -- d.name, d.classes
--     train = train_set, test = test_set,         -- {x, y} on the host
--     test_name = "test set",                     -- what `test` is, for titles
--     val = val_set,                              -- optional: picks the estimators' epochs
--     net = net, recorder = recorder,             -- on any device
--     snapshots = {...}, trajectory_index = idx,  -- optional trajectories (freed
--                                                 -- once copied into the recording)
--     out = "results/run", stage = stage_fn,      -- stage(name, fn) times a stage
--     ae_epochs = 20, est_epochs = 20, mmd_weight = 500, bw = {0.1, 1, ...},
--     seed = 1, device = "cpu" | "cuda",          -- where the map is trained
--     graph = false,                              -- cuda: the map's fits as CUDA graph replays
--     retrain = false,                            -- true: the network is new, no cached map is reused
--     image_range = {0, 1}, overlays = {...},     -- for atlas.html (see atlas.lua)
--     record_to = "auto" | "memory" | "file",     -- file: streamed, then mapped
--   }
local lm = require 'lumen'
local I = require 'lumen.introspect'
local S = require 'lumen.introspect.scores'
local plot = require 'lumen.plot'
local A = require 'lumen.introspect.analyses'

local study = {}

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- The first of a list of file paths that does not exist, or nil when all do.
function study.missing(paths)
  for _, path in ipairs(paths) do
    if not exists(path) then return path end
  end
  return nil
end

--- Whether the paths `a` and `b` name one folder, however spelt (relative
--- or absolute, with ./, .. or a trailing slash, through a link); a path
--- that does not exist yet names none that does.
function study.same_folder(a, b)
  local ra, rb = lm.real_path(a), lm.real_path(b)
  if ra and rb then return ra == rb end
  return a:gsub("/+$", "") == b:gsub("/+$", "") -- neither made yet: as written
end

--- Raises an error, saying how to make one, unless `dir` holds a run of the
--- main experiment (classifier, autoencoder and estimator); `who` names the
--- script that needs it.
function study.require_mnist_run(dir, who)
  local missing = study.missing{dir .. "/classifier.safetensors", dir .. "/autoencoder.safetensors",
    dir .. "/estimator.safetensors"}
  if missing then
    error(string.format("%s: %s is missing; run the main experiment first:\n" ..
      "  lumen experiments/introspect_mnist.lua --out %s", who, missing, dir), 0)
  end
end

-- A run's JSON record (metrics.json, options.json) in `dir`, or nil where there is none.
local function run_record(dir, name)
  local path = dir .. "/" .. name
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, record = pcall(lm.json.decode, text)
  if not ok then
    error(string.format("%s is damaged (%s); make the run again (its experiment's --fresh) or use another run",
      path, (tostring(record):gsub("^.-json:", "json:"))), 0)
  end
  return record
end

--- The seed a run cached in `dir` split its training set with (its
--- options.json's `seed`, which made its models, else its metrics.json's,
--- which a run that failed after --fresh may have left stale; 1, the runs'
--- default, where neither says), so that a later script splits the same
--- images off for validation. With `data` (a data set's name), a run on
--- another data set is an error naming `who`.
function study.run_seed(dir, who, data)
  local ran = run_record(dir, "metrics.json")
  if ran and data and ran.data and ran.data ~= data then
    error(string.format("%s: %s was a run on %s, not %s (give the --data of that run, or a run of this data set)",
      who, dir, ran.data, data), 0)
  end
  local options = run_record(dir, "options.json")
  return options and options.seed or ran and ran.seed or 1
end

--- The data set (lm.data.mnist's kind) a script working on the run in `dir`
--- reads: `given` (its --data, when the command line gave one), else the
--- one the run recorded in its options.json or metrics.json (Fashion-MNIST
--- where the run fell back to it), else 'mnist'.
function study.run_data(dir, given)
  if given then return given end
  local options = run_record(dir, "options.json")
  if options and (options.data == "mnist" or options.data == "fashion") then return options.data end
  local ran = run_record(dir, "metrics.json")
  return ran and ran.data == "Fashion-MNIST" and "fashion" or "mnist"
end

--- Keeps the options that define the models cached in `dir` in
--- dir/options.json, so that a rerun reuses them only when it asks for the
--- same: a run whose `options` (name -> number, string, boolean or list of numbers) differ
--- from the recorded ones is an error naming each difference and `who`
--- (replace the run with --fresh, or use another --out). `how.labels`
--- (name -> words) names the entries that are no command-line option
--- (default --name); `how.models` lists the files in `dir` the options
--- made: a record beside none of them is left by a run that failed first
--- and is replaced, and models without a record are refused (nothing says
--- what made them). The first run, or one after --fresh (which removes the
--- file), records them; under several processes rank 0 writes. Returns `options`.
function study.check_run_options(dir, options, who, how)
  how = how or {}
  local ran = run_record(dir, "options.json")
  local held -- the first of how.models in dir
  for _, name in ipairs(how.models or {}) do
    if not held and exists(dir .. "/" .. name) then held = name end
  end
  if how.models and not held then ran = nil end -- left by a run that failed before its first model
  if held and not ran then
    error(string.format("%s: %s holds models (%s) but no options.json saying what made them; replace them "
      .. "with --fresh, or use another --out", who, dir, held), 0)
  end
  if ran then
    local keys, changed = {}, {}
    for k in pairs(options) do keys[#keys + 1] = k end
    table.sort(keys)
    -- a list of numbers (e.g. bandwidths) as on the command line
    local function shown(v) return type(v) == "table" and table.concat(v, ",") or tostring(v) end
    for _, k in ipairs(keys) do
      local was, now = ran[k], options[k]
      -- an older Lumen recorded a list of numbers as its command-line text
      if type(was) == "string" and type(now) == "table" then
        local list = {}
        for item in was:gmatch("[^,]+") do list[#list + 1] = tonumber(item) or item end
        was = list
      end
      local same = was == now
      if type(was) == "table" and type(now) == "table" and #was == #now then
        same = true
        for i = 1, #now do same = same and was[i] == now[i] end
      end
      if not same then
        local label = how.labels and how.labels[k] or "--" .. k:gsub("_", "-")
        changed[#changed + 1] = string.format("%s %s (this run: %s)", label,
          was == nil and "not recorded (a run of an older Lumen, or made without it)" or shown(was), shown(now))
      end
    end
    if #changed > 0 then
      error(string.format("%s: %s holds models made with %s; replace them with --fresh, or use another --out",
        who, dir, table.concat(changed, ", ")), 0)
    end
    return options
  end
  if lm.dist.is_main() then lm.json.write(dir .. "/options.json", options) end
  return options
end

local FNV_PRIME = 1099511628211

-- Folds `bytes` (zero-padded to 8) into the 64-bit hash h, eight bytes at a
-- time (the wrapping products make it a hash), and then their count.
local function hash_bytes(h, bytes)
  bytes = bytes .. string.rep("\0", -#bytes % 8)
  local n, unpack, P = #bytes, string.unpack, FNV_PRIME
  local i = 1
  while i + 63 <= n do -- 64 bytes an unpack: a MiB in a few milliseconds
    local a, b, c, e, f, g, k, l = unpack("<i8i8i8i8i8i8i8i8", bytes, i)
    h = (((((((h * P + a) * P + b) * P + c) * P + e) * P + f) * P + g) * P + k) * P + l
    i = i + 64
  end
  for j = i, n, 8 do h = h * P + unpack("<i8", bytes, j) end
  return h * P + n
end

--- A cheap fingerprint of the files at `paths` (a data set's), as hex: a
--- hash of each one's size and of its first and last MiB (the whole file
--- when smaller), so that another or a changed data set in the same place
--- tells itself apart in milliseconds (MNIST's 55 MB whole would take 0.4 s).
function study.files_fingerprint(paths)
  local h, MiB = 0, 2 ^ 20
  for _, path in ipairs(paths) do
    local f = assert(io.open(path, "rb"))
    local size = f:seek("end")
    f:seek("set")
    local bytes = f:read(math.min(size, 2 * MiB)) or ""
    if size > 2 * MiB then
      f:seek("set", size - MiB)
      bytes = bytes:sub(1, MiB) .. f:read(MiB)
    end
    f:close()
    h = hash_bytes(h, bytes) * FNV_PRIME + size
  end
  return string.format("%016x", h)
end

--- CIFAR-10 for the training experiments (net2_cifar10.lua,
--- train_cifar10.lua): the images kept as bytes (154 MB, not 614: the
--- loaders give float batches), a seeded 10 % validation split of the
--- training images (opts.seed) and, with opts.subset > 0, the first
--- opts.subset training and subset // 10 (at least 10) validation images;
--- opts.data_dir names the folder ("" searches). Prints what it loaded;
--- returns the data set (its test, test_note, classes, folder) and the two
--- splits.
function study.cifar10_training_sets(opts)
  local t0 = lm.clock()
  local d = lm.data.cifar10{dir = opts.data_dir ~= "" and opts.data_dir or nil, dtype = "uint8"}
  local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = opts.seed})
  if opts.subset > 0 then
    train_set = lm.data.head(train_set, opts.subset)
    val_set = lm.data.head(val_set, math.max(opts.subset // 10, 10))
  end
  print(string.format("CIFAR-10 from %s: %d training, %d validation images; test: %s (%.1f s to load)",
    d.folder, train_set.x:size(1), val_set.x:size(1), d.test_note or "none", lm.clock() - t0))
  return d, train_set, val_set
end

--- The training experiments' --steps N: N training steps of c.model on
--- batches of c.batch from c.set (a loader seeded with c.seed, with
--- c.transform), each moved to c.device, loss = c.loss(c.forward(x), y)
--- (c.forward defaults to the model), c.optimizer and c.schedule stepped
--- after it. Prints each step's loss and the time a step; returns the first
--- and the last loss.
function study.fixed_steps(c)
  local loader = lm.data.loader(c.set, {batch_size = c.batch, seed = c.seed, transform = c.transform})
  local forward = c.forward or c.model
  local it = loader:epoch_iter()
  local first, last
  local t = lm.clock()
  c.model:train()
  for step = 1, c.steps do
    local x, y = it()
    if not x then it = loader:epoch_iter(); x, y = it() end
    x, y = x:to(c.device), y:to(c.device)
    c.optimizer:zero_grad()
    local loss = c.loss(forward(x), y)
    loss:backward()
    c.optimizer:step()
    c.schedule:step()
    collectgarbage("step")
    last = loss:item()
    first = first or last
    print(string.format("step %d: loss %.5f", step, last))
  end
  print(string.format("%.3f s per step of %d images", (lm.clock() - t) / c.steps, c.batch))
  return first, last
end

--- A fingerprint of a network's weights for study.check_run_options: a
--- 64-bit hash of every parameter's float32 bytes, in order, as hex (the
--- same on every device and thread count; a model retrained into the same
--- file differs).
function study.weights_fingerprint(net)
  local h = 0
  for _, p in ipairs(net:parameters()) do h = hash_bytes(h, lm.encode(p:detach():to("cpu"):contiguous(), "float32")) end
  return string.format("%016x", h)
end

--- The options a run in `dir` recorded (study.check_run_options), or nil
--- where it recorded none.
function study.run_options(dir)
  return run_record(dir, "options.json")
end

--- For a script that works on the map a run in `dir` made of a network:
--- the width the run recorded, unless the command line gave one (`given`,
--- which must then agree); after loading, check(net) says whether `net`
--- is the network the run mapped (its weights' fingerprint), an error
--- naming `who` if not. Returns width, check.
function study.mapped_network(dir, who, width, given)
  local recorded = study.run_options(dir) or {}
  if recorded.width and given and recorded.width ~= width then
    error(string.format("%s: the map in %s is of a Net2 of width %s, not %s (leave out --width)", who, dir,
      tostring(recorded.width), tostring(width)), 0)
  end
  return recorded.width or width, function(net)
    if recorded.weights and study.weights_fingerprint(net) ~= recorded.weights then
      error(string.format("%s: --model is not the network the map in %s was made of (that was %s)", who, dir,
        tostring(recorded.model)), 0)
    end
  end
end

--- The InfoVAE and the estimator a study cached in `dir`
--- (autoencoder.safetensors, estimator.safetensors) for `recorder`'s
--- recordings (`sample`, one input, gives their width), in evaluation mode.
--- Returns vae, est.
function study.load_map(dir, recorder, sample)
  local vae = I.InfoVAE{inputs = recorder:width(sample)}
  vae:load(dir .. "/autoencoder.safetensors")
  vae:evaluate()
  local est = I.Estimator()
  est:load(dir .. "/estimator.safetensors")
  est:evaluate()
  return vae, est
end

--- A stage runner for experiments: stage(name, fn) prints the name, runs fn,
--- records its seconds in timings[name] and returns fn's results (under
--- several processes, rank 0 prints).
function study.stage_timer(timings)
  return function(name, fn)
    local main = lm.dist.is_main()
    if main then print("== " .. name) end
    local t = lm.clock()
    local results = table.pack(fn())
    timings[name] = lm.clock() - t
    -- the stage's garbage and cached blocks go back before the next stage:
    -- its sizes rarely recur, and they would add to the next stage's peak
    collectgarbage()
    lm.empty_cache()
    local peak = I.peak_memory()
    if main then
      print(string.format("   %s: %.1f s%s", name, timings[name],
        peak and string.format(" (peak memory so far %.0f MB)", peak / 1e6) or ""))
    end
    return table.unpack(results, 1, results.n)
  end
end

--- Writes the interactive atlas (lumen.introspect.atlas) of a study to `path`:
--- the training and test maps with their images, the test activations in the
--- reordered network, the estimator's error map, and o.overlays. Units are
--- sorted by o.Eh [K, Nh] (E[h|H_k], e.g. decoded from the map), or else by
--- the direct class means of the training recording (of the test recording
--- when o.train is nil: then the page shows the test set only).
--- o.attributions (atlas.lua's set field: rows of the test set, maps, regions)
--- go with the test set. Returns the page's bytes.
function study.atlas(path, o)
  local atlas = require 'lumen.introspect.atlas'
  local d = o.data
  local Eh = o.Eh or (o.train and A.class_means(o.H_train, o.train.y, #d.classes)
    or A.class_means(o.H_test, o.test.y, #d.classes))
  local sizes = o.recorder.layer_sizes
  local function set(name, s, Z, Yhat, H)
    return {name = name, z = Z, labels = s.y, predicted = Yhat:argmax(2), log10_error = I.estimate(o.est, Z):to("cpu"),
      images = s.x, image_range = o.image_range, activations = H}
  end
  local heat = A.error_grid(o.est, {lim = 4}) -- the estimated log10 error, row 1 at the bottom
  local test = set(o.test_name or "test", o.test, o.Z_test, o.Y_test, o.H_test)
  test.attributions = o.attributions
  local sets = {test}
  if o.train then sets = {set("train", o.train, o.Z_train, o.Y_train), test} end
  local bytes = atlas.write(path, {
    title = o.name .. " on " .. d.name, classes = d.classes, sets = sets,
    network = {layer_sizes = sizes, orders = A.sort_units(Eh, sizes), unit_classes = A.unit_classes(Eh):totable()},
    heat = {values = heat, lim = 4}, overlays = o.overlays})
  print(string.format("   atlas: %s (%.1f MB)", path, bytes / 2 ^ 20))
  return bytes
end

-- ---- data parallelism (docs/distributed.md) -------------------------------------------------------
-- Under `mpirun -n K` each rank records rows [lo, hi) of the training and
-- test sets (lm.dist.part), trains the InfoVAE and the estimator data
-- parallel on its rows, and measures on its rows; what the metrics need
-- whole (latents, outputs, scores: a few numbers a sample) is gathered to
-- every rank, what only the figures and the atlas need (the test recording,
-- the training latents) to rank 0 only, which alone prints and writes.

local function say(...)
  if lm.dist.is_main() then print(...) end
end

-- Rank 0's answer on every rank (whether a cached file exists: every rank
-- must take the same branch, and only rank 0 wrote it).
local function agree(flag)
  if lm.dist.size() == 1 then return flag end
  return lm.dist.broadcast_(lm.tensor({flag and 1 or 0}, "int32"), 0)[1] == 1
end

-- 0-based rows lo .. hi - 1, shifted by base, appended to list.
local function add_rows(list, lo, hi, base)
  for r = lo, hi - 1 do list[#list + 1] = base + r end
  return list
end

-- A list of Lua numbers gathered from every rank in rank order, each sent
-- as two float32 (the value and its remainder), so that doubles computed
-- from float32 keep their order and ties.
local function gather_numbers(list)
  local n = #list
  local value, rest = lm.zeros(n), lm.zeros(n)
  if n > 0 then
    value:copy_(lm.tensor(list))
    local rounded, left = value:totable(), {}
    for i, v in ipairs(list) do left[i] = v - rounded[i] end
    rest:copy_(lm.tensor(left))
  end
  local a, b = lm.dist.all_gather(value):totable(), lm.dist.all_gather(rest):totable()
  for i = 1, #a do a[i] = a[i] + b[i] end
  return a
end

-- The models study.run caches in its out folder (name.safetensors) and
-- the stages each is made from: the classifier (the network given) or
-- another of them.
local MAP_STAGES = {autoencoder = {"classifier"}, autoencoder_record = {"classifier"},
  estimator = {"classifier", "autoencoder"}, estimator_recording = {"classifier"}}

--- Removes the models study.run cached in `dir` that were made from the
--- stage `name` ('classifier' or one of the map's: 'autoencoder', ...),
--- when that stage is trained again: they would not be made from it.
function study.remove_made_from(dir, name)
  for model, from in pairs(MAP_STAGES) do
    for _, f in ipairs(from) do
      if f == name then os.remove(dir .. "/" .. model .. ".safetensors") end
    end
  end
end

--- Runs stages 2-8 and returns the metrics table (also in out/metrics.json).
--- Under several processes (mpirun) the stages run data parallel and give
--- the metrics of one process (docs/distributed.md); only rank 0 prints
--- and writes files, and every rank returns the metrics.
function study.run(c)
  local opts, d, out = c, c.data, c.out
  local train_set, test_set, net, recorder = c.train, c.test, c.net, c.recorder
  local snapshots, traj_index = c.snapshots or {}, c.trajectory_index
  local timings = c.timings or {}
  local stage = c.stage or study.stage_timer(timings)
  local device = c.device or "cpu"
  -- c.graph: the map's fits as CUDA graph replays (a GPU, one process)
  local fit_graph = c.graph or nil
  local test_name = c.test_name or "test set"
  local bw = c.bw
  -- the paper's regime for the autoencoders and the 2-D estimator
  -- ({lr_max, period, cycles, patience}; study.mnist's --paper), two
  -- autoencoders as in its §3.1; nil: Lumen's defaults
  local paper = c.paper
  if paper and not c.val then
    error("study.run: the paper's regime (c.paper) checks its losses on a validation set: give c.val", 0)
  end
  local dist = lm.dist
  local ranks, rank, main = dist.size(), dist.rank(), dist.is_main()
  local sharded = ranks > 1
  lm.mkdir(out)
  -- this rank's rows of each set (all of them in one process)
  local n_train, n_test = train_set.x:size(1), test_set.x:size(1)
  local lo, hi = dist.part(n_train)
  local tlo, thi = dist.part(n_test)
  local function mine(t, a, b) return sharded and t:narrow(1, a + 1, b - a) or t end
  local x_train, x_test = mine(train_set.x, lo, hi), mine(test_set.x, tlo, thi)
  local y_train, y_test = mine(train_set.y, lo, hi), mine(test_set.y, tlo, thi)
  -- the training-history snapshots join the training recording in the
  -- autoencoder's data, so the trajectories of early cycles lie on the
  -- learned map too: the recording is made with room for them after its
  -- rows (one tensor, no second copy); each rank takes its part of each
  local snapshot_parts, ae_rows = {}, sharded and add_rows({}, lo, hi, 0) or nil
  for k, s in ipairs(snapshots) do
    if sharded then
      local slo, shi = dist.part(s:size(1))
      snapshot_parts[k] = s:narrow(1, slo + 1, shi - slo)
      add_rows(ae_rows, slo, shi, n_train + (k - 1) * s:size(1))
    else
      snapshot_parts[k] = s
    end
  end
  -- ---- 2. recording --------------------------------------------------------------------------------
  -- The training and validation sets now; the test set once the models are
  -- trained (stage 4c), so that its recording and the training set's are
  -- never in memory together.
  local recording_path -- the file a recording streams to, or nil to keep it in memory
  local H_ae, Y_train, H_val, Y_val = stage("recording", function()
    -- in memory, or streamed to files in `out` and mapped back when the
    -- recordings would take more than half the memory still available
    -- (each rank: its rows against its share of that memory)
    local mode = c.record_to or "auto"
    if mode == "auto" then
      local width = recorder:width(train_set.x:narrow(1, 1, 1))
      -- the validation recording lives beside the training set's (with its
      -- snapshot rows) and then beside the test set's, made once the
      -- training set's is freed
      local train_rows = x_train:size(1)
      for _, t in ipairs(snapshot_parts) do train_rows = train_rows + t:size(1) end
      local rows = math.max(train_rows, x_test:size(1)) + (c.val and c.val.x:size(1) or 0)
      local bytes = rows * width * 4
      local free = I.available_memory()
      mode = (free and bytes > free / 2 / ranks) and "file" or "memory"
      if mode == "file" then
        say(string.format("   %.1f GB of recordings, %.1f GB of memory available: streaming them to %s",
          bytes * ranks / 1e9, free / 1e9, out))
      end
    end
    if mode ~= "memory" and mode ~= "file" then
      error("study.run: record_to must be 'memory', 'file' or 'auto', got '" .. tostring(mode) .. "'", 0)
    end
    recording_path = function(name)
      if mode ~= "file" then return nil end
      return out .. "/recording_" .. name .. (sharded and ("_rank" .. rank) or "") .. ".safetensors"
    end
    local a, b = recorder:record_set(x_train, {path = recording_path("train"), progress = main,
      append_rows = snapshot_parts})
    if not sharded then -- the snapshots become views of their copy in a: one copy in memory
      local row = n_train + 1
      for k, s in ipairs(snapshots) do
        snapshots[k], row = a:narrow(1, row, s:size(1)), row + s:size(1)
        s:free() -- this handle only: a caller's view of a larger tensor leaves that intact
      end
      snapshot_parts = nil
      lm.empty_cache() -- the originals' blocks (120 MB for Net1) go back before the next recording
    end
    -- the validation split's (c.val), in memory: the models choose their
    -- epoch or cycle on it (see fit_estimator below) and the metrics report it
    local hv, yv
    if c.val then hv, yv = recorder:record_set(c.val.x, {progress = false}) end
    return a, b, hv, yv
  end)
  local H_train = H_ae:narrow(1, 1, x_train:size(1))
  local n_snapshot_rows = H_ae:size(1) - x_train:size(1)
  local recording_bytes = H_ae:numel() * 4 -- this rank's
  say(string.format("   %d x %d activations (train)%s", n_train, H_train:size(2),
    sharded and string.format(", recorded in %d parts", ranks) or ""))

  -- ---- 3. autoencoder --------------------------------------------------------------------------------
  -- the test set is read only for the final metrics
  local wrong_val
  if c.val then
    wrong_val = {}
    for i, ok in ipairs(Y_val:argmax(2):eq(c.val.y):totable()) do wrong_val[i] = ok == 0 end
  end
  local my_rows = sharded and lm.tensor(add_rows({}, lo, hi, 0), "int32") or nil
  local function log(e, r) say(string.format("   epoch %d: loss %.4f (%.1f s)", e, r.loss, r.seconds)) end
  local function log_cycle(k, r)
    say(string.format("   cycle %d (%d iterations): validation loss %.5f%s", k, r.steps, r.val_loss,
      r.best and "  best so far" or ""))
  end
  -- the paper's regime for a model with its validation loss: c.paper's
  -- settings, or for the 2-D estimator without them c.est_regime's
  local function regime(validate, settings)
    settings = settings or paper
    return {max = settings.lr_max, min = 0, period = settings.period, cycles = settings.cycles,
      patience = settings.patience or 5, validate = validate}
  end
  local cycles_run, chosen = {}, {}
  -- what a fit chose (its epoch, its cycles) is kept in the model's file,
  -- so that a rerun loading the model reports it as the run that fit it
  local function save_model(model, path, name)
    model:save(path, {metadata = {lumen_study_fit = lm.json.encode({epoch = chosen[name], cycles = cycles_run[name]})}})
  end
  local function load_model(model, path, name)
    model:load(path)
    model:evaluate()
    local _, meta = lm.load(path)
    local ok, fit = pcall(lm.json.decode, meta.lumen_study_fit or "")
    if ok and type(fit) == "table" then chosen[name], cycles_run[name] = fit.epoch, fit.cycles end
  end
  local function note_cycles(name, history)
    local best = 0
    for _, r in ipairs(history.cycles) do if r.best then best = r.cycle end end
    cycles_run[name] = {cycles = #history.cycles, best = best}
    say(string.format("   kept cycle %d of %d", best, #history.cycles))
  end
  -- A multi-scale MMD kernel (bandwidths times the latent size): with the
  -- single kernel of docs/design.md (bw = 2) the latents drifted to a mean of 36 and a
  -- standard deviation of 68, far outside where that narrow kernel has any
  -- gradient; summing kernels from 0.1 to 1000 keeps a pull at every distance
  -- and gave a latent with mean 0.0 and std 0.99 at the same kNN accuracy.
  -- A cached model is reused only when the models it was made from are:
  -- once a stage trains, what was made from it trains too (c.retrain: the
  -- network is new, every map stale), and its files go before the fit, so
  -- that an interruption leaves no model made from the old one.
  local trained = {classifier = c.retrain or false}
  local function cached(name, rank0_only) -- rank0_only: a stage rank 0 runs alone
    for _, from in ipairs(MAP_STAGES[name]) do if trained[from] then return false end end
    local there = exists(opts.out .. "/" .. name .. ".safetensors")
    if rank0_only then return there end -- (agree is a collective: every rank must call it)
    return agree(there)
  end
  local function training(name)
    trained[name] = true
    if main then study.remove_made_from(opts.out, name) end
  end
  -- each model's initialisation and fit from a stream of its own, seeded
  -- from the run's seed: the global stream's position depended on which
  -- earlier stages trained, so a model retrained beside cached ones came
  -- out other than in a fresh run
  local function seed_stage(k) lm.manual_seed((opts.seed or 1) + 1000 * k) end
  seed_stage(1)
  local vae = I.InfoVAE{inputs = H_train:size(2), mmd_weight = opts.mmd_weight, bw = bw}
  vae:to(device)
  stage("autoencoder", function()
    local path = opts.out .. "/autoencoder.safetensors"
    if cached("autoencoder") then load_model(vae, path, "autoencoder"); return end
    training("autoencoder")
    if paper then -- §3.1: the map's autoencoder learns the final recording alone
      note_cycles("autoencoder", I.fit_autoencoder(vae, H_train, {seed = opts.seed, log = log, log_cycle = log_cycle,
        rows = my_rows, graph = fit_graph, cyclic = regime(function() return vae:validation_loss(H_val) end)}))
    else
      I.fit_autoencoder(vae, H_ae, {epochs = opts.ae_epochs, seed = opts.seed, log = log, graph = fit_graph,
        rows = ae_rows and lm.tensor(ae_rows, "int32")})
    end
    if main then save_model(vae, path, "autoencoder") end
  end)
  local Z_train = vae:encode_all(H_train)
  local Z_val = H_val and vae:encode_all(H_val)

  -- ---- 3b. the paper's second autoencoder, on the learning record --------------------------------------
  -- (§3.1; c.paper only) it places the trajectories; a tenth of the
  -- recorded samples (every cycle of each) is held out for its validation
  -- loss. Only rank 0 draws the trajectories, so only rank 0 trains it.
  local vae_record
  if paper and #snapshots > 1 and main then
    seed_stage(2)
    vae_record = I.InfoVAE{inputs = H_train:size(2), mmd_weight = opts.mmd_weight, bw = bw}
    vae_record:to(device)
    stage("record autoencoder", function()
      local path = opts.out .. "/autoencoder_record.safetensors"
      if cached("autoencoder_record", true) then load_model(vae_record, path, "record autoencoder"); return end
      training("autoencoder_record")
      local record = sharded and lm.cat(snapshots, 1) or H_ae:narrow(1, x_train:size(1) + 1, n_snapshot_rows)
      local m, fit_rows, val_rows = snapshots[1]:size(1), {}, {}
      for k = 1, #snapshots do
        for i = 1, m do
          local list = i % 10 == 0 and val_rows or fit_rows
          list[#list + 1] = (k - 1) * m + i
        end
      end
      local R_fit = record:index_select(lm.tensor(fit_rows, "int32"))
      local R_val = record:index_select(lm.tensor(val_rows, "int32"))
      note_cycles("record autoencoder", I.fit_autoencoder(vae_record, R_fit, {seed = opts.seed, log = log,
        log_cycle = log_cycle, title = "record autoencoder", graph = fit_graph,
        cyclic = regime(function() return vae_record:validation_loss(R_val) end)}))
      save_model(vae_record, path, "record autoencoder")
    end)
  end

  -- ---- 4. estimator ------------------------------------------------------------------------------------
  local T_train = I.log_errors(Y_train, y_train)
  local T_val = Y_val and I.log_errors(Y_val, c.val.y)
  -- the 2-D estimator in the paper's regime (c.paper's settings, or else
  -- c.est_regime's) when there is a validation set: its validation loss
  -- decides the cycle kept. Measured on the validation split with the same
  -- map, this finds the classifier's errors far better than 20 epochs at a
  -- constant rate (AUROC 0.90 against 0.83, AUPR 0.30 against 0.17;
  -- docs/method.md). The recording's estimator keeps the epoch of the best
  -- validation AUROC + AUPR.
  local function fit_estimator(name, model, X, X_val, settings)
    local fit_opts = {epochs = opts.est_epochs, seed = opts.seed, log = log, title = name, rows = my_rows,
      graph = fit_graph}
    if settings and X_val then
      fit_opts.log_cycle, fit_opts.epochs = log_cycle, nil -- the cycles end the run
      fit_opts.cyclic = regime(function()
        return lm.nn.functional.mse(I.estimate(model, X_val):view(-1, 1), T_val:view(-1, 1):to(device)):item()
      end, settings)
      note_cycles(name, I.fit_estimator(model, X, T_train, fit_opts))
      return
    end
    local restore
    if H_val then fit_opts, restore = S.keep_best_epoch(model, X_val, wrong_val, fit_opts) end
    I.fit_estimator(model, X, T_train, fit_opts)
    if restore then
      local epoch, score = restore()
      say(string.format("   kept epoch %d (validation AUROC + AUPR %.4f)", epoch, score))
      chosen[name] = epoch
    end
  end
  seed_stage(3)
  local est = I.Estimator()
  est:to(device)
  stage("estimator", function()
    local path = opts.out .. "/estimator.safetensors"
    if cached("estimator") then load_model(est, path, "estimator"); return end
    training("estimator")
    fit_estimator("estimator", est, Z_train, Z_val, paper or c.est_regime)
    if main then save_model(est, path, "estimator") end
  end)

  -- ---- 4b. the estimator on the recording (beyond the paper) ------------------------------------------
  -- The same network trained on the standardised recording instead of z:
  -- the 2-D map cannot carry enough to match the classifier's own
  -- confidence at finding its errors, this can (docs/analyses/error-scores.md).
  -- The map, its figures and the atlas keep the 2-D estimator.
  seed_stage(4)
  local est_rec = S.StandardizedEstimator{inputs = H_train:size(2)}
  est_rec:to(device)
  stage("recording estimator", function()
    local path = opts.out .. "/estimator_recording.safetensors"
    if cached("estimator_recording") then load_model(est_rec, path, "recording estimator"); return end
    training("estimator_recording")
    est_rec:fit_standardization(H_train, sharded)
    fit_estimator("recording estimator", est_rec, H_train, H_val)
    if main then save_model(est_rec, path, "recording estimator") end
  end)

  -- The training recording's last reader is done. What the figures and the
  -- atlas need of it is taken now: its class means (summed over ranks) and
  -- the trajectories' latents; then it goes back (with the snapshot rows,
  -- views of it), 638 MB for Net1, before the metrics, figures and atlas.
  local Eh = lm.no_grad(function()
    if not sharded then return A.class_means(H_train, y_train, #d.classes) end
    local onehot = lm.data.one_hot(y_train, #d.classes):float()
    local sums = dist.allreduce_(lm.autocast(false, lm.matmul, onehot:t(), H_train), "sum")
    local counts = dist.allreduce_(onehot:sum(1):contiguous(), "sum"):clamp(1, math.huge):view(-1, 1)
    return sums / counts
  end)
  local Z_snapshots = {}
  if main and #snapshots > 1 then
    for k, s in ipairs(snapshots) do Z_snapshots[k] = (vae_record or vae):encode_all(s) end
  end
  if not sharded then -- the snapshots are views of H_ae made above; under several ranks they are the caller's
    for k = 1, #snapshots do snapshots[k]:free() end
  end
  H_train:free()
  H_ae:free()
  H_train, H_ae = nil, nil
  collectgarbage() -- the views the stages made of it, now garbage, hold it too
  lm.empty_cache()

  -- ---- 4c. the test set's recording, read by the trained models ---------------------------------------
  local H_test, Y_test = stage("test recording", function()
    return recorder:record_set(x_test, {path = recording_path("test"), progress = main})
  end)
  say(string.format("   %d x %d activations (test)", n_test, H_test:size(2)))
  local Z_test, T_test = vae:encode_all(H_test), I.log_errors(Y_test, y_test)
  local E_test, E_rec_test = I.estimate(est, Z_test):to("cpu"), I.estimate(est_rec, H_test):to("cpu")

  -- ---- 4d. the recording's estimate and the classifier's confidence, combined (beyond the paper) -------
  -- a logistic regression of "wrong" on the two error scores, fitted on the
  -- validation split (every rank holds it whole, so every rank fits the
  -- same): on CIFAR-10 the recording's estimator alone varied with its
  -- initialisation on the test images, ahead of the baseline or behind it;
  -- together with the largest logit it was ahead at each of three seeds
  -- (docs/analyses/error-scores.md). Fitted when the split holds at least
  -- 10 errors and 10 correct images, so that each fit of the five folds
  -- measuring it out of fold (unstratified) sees both outcomes in practice.
  local val_scores, combination, val_errors
  if H_val then
    val_scores = lm.no_grad(function()
      return {estimator = I.estimate(est, Z_val):to("cpu"):totable(),
        recording_estimator = I.estimate(est_rec, H_val):to("cpu"):totable(),
        baseline = S.negated(I.baseline_scores(net, c.val.x))}
    end)
    val_errors = 0
    for _, w in ipairs(wrong_val) do if w then val_errors = val_errors + 1 end end
    if val_errors >= 10 and #wrong_val - val_errors >= 10 then
      combination = S.fit_logistic({val_scores.recording_estimator, val_scores.baseline}, wrong_val)
    else
      say(string.format("   no combined score: %d of the %d validation images misclassified (needs 10 of each outcome)",
        val_errors, #wrong_val))
    end
  end

  -- ---- 5. metrics ----------------------------------------------------------------------------------------
  -- each rank's part of the reconstruction and the kNN queries; the test
  -- set's latents, outputs and scores gathered whole (a few numbers a sample)
  local metrics = stage("metrics", function()
    local recon_sum = lm.no_grad(function() -- in blocks of rows: no whole-set temporaries
      local sum, rows = 0, I.block_rows(H_test:size(2))
      for r = 1, H_test:size(1), rows do
        local len = math.min(rows, H_test:size(1) - r + 1)
        local x = vae:prepare(H_test:narrow(1, r, len):to(device))
        local x_hat = vae.decoder(vae.encoder(x))
        sum = sum + lm.nn.functional.mse(x_hat, x):item() * len
        x:free() -- a block's copies go back now, for the next block
        x_hat:free()
      end
      return sum
    end)
    local baseline, baseline_kind = I.baseline_scores(net, x_test)
    local knn
    if sharded then
      Z_test, Y_test, E_test = dist.all_gather(Z_test), dist.all_gather(Y_test:contiguous()), dist.all_gather(E_test)
      E_rec_test = dist.all_gather(E_rec_test)
      T_test = I.log_errors(Y_test, test_set.y)
      baseline = gather_numbers(baseline)
      recon_sum = dist.allreduce_(lm.tensor{recon_sum}, "sum"):item()
      -- the neighbours of this rank's test rows among the whole test set
      local hits = 0
      if thi > tlo then
        hits = math.floor(I.knn_accuracy(Z_test, test_set.y, 10, {first = tlo + 1, count = thi - tlo})
          * (thi - tlo) + 0.5)
      end
      knn = dist.allreduce_(lm.tensor({hits}, "int32"), "sum")[1] / n_test
    else
      knn = I.knn_accuracy(Z_test, test_set.y, 10)
    end
    local pred = Y_test:argmax(2)
    local correct, n_right = {}, 0 -- counted here: a float32 mean is not the fraction (0.699999988 for 0.7)
    for i, v in ipairs(pred:eq(test_set.y):totable()) do
      correct[i] = v == 1
      if v == 1 then n_right = n_right + 1 end
    end
    local confidence = (-E_test):totable()           -- c = -log10(e_hat): high = likely right
    local confidence_rec = (-E_rec_test):totable()
    -- max-sigmoid's order, from the logits: saturated outputs would tie in float32
    local wrong = {}
    for i, ok in ipairs(correct) do wrong[i] = not ok end
    local neg_conf, neg_base, neg_rec = {}, {}, {}
    for i = 1, #confidence do
      neg_conf[i], neg_base[i], neg_rec[i] = -confidence[i], -baseline[i], -confidence_rec[i]
    end
    local combined = combination and S.evaluate(S.apply(combination, {neg_rec, neg_base}), wrong)
    return {
      data = d.name, model = c.name,
      classifier_test_accuracy = n_right / #correct,
      misclassified = #correct - n_right,
      autoencoder_reconstruction_per_unit = recon_sum / n_test / H_test:size(2),
      latent_mean = Z_test:mean(1):totable(), latent_std = Z_test:std(1):totable(),
      latent_knn10_accuracy = knn,
      estimator_mse_log10 = lm.nn.functional.mse(E_test:view(-1, 1), T_test:view(-1, 1)):item() * 2,
      auroc_correct = I.auroc(confidence, correct), auroc_correct_baseline = I.auroc(baseline, correct),
      aupr_error = I.aupr(neg_conf, wrong), aupr_error_baseline = I.aupr(neg_base, wrong),
      auroc_correct_recording = I.auroc(confidence_rec, correct), aupr_error_recording = I.aupr(neg_rec, wrong),
      auroc_correct_combined = combined and combined.auroc_correct,
      aupr_error_combined = combined and combined.aupr_error,
      combined_weights = combination and combination.weights, baseline_score = baseline_kind,
      mmd_weight = opts.mmd_weight, ae_epochs = opts.ae_epochs, seed = opts.seed,
      estimator_epoch = chosen["estimator"], recording_estimator_epoch = chosen["recording estimator"],
      paper_preset = paper ~= nil, cycles = next(cycles_run) and cycles_run or nil,
      threads = lm.get_num_threads(), processes = ranks, device = device, seconds = timings,
    }
  end)
  for _, k in ipairs{"classifier_test_accuracy", "latent_knn10_accuracy", "auroc_correct", "auroc_correct_baseline",
    "auroc_correct_recording", "aupr_error", "aupr_error_baseline", "aupr_error_recording", "auroc_correct_combined",
    "aupr_error_combined", "estimator_mse_log10", "autoencoder_reconstruction_per_unit"} do
    if metrics[k] then say(string.format("   %-36s %.4f", k, metrics[k])) end
  end
  -- the same measures on the validation split, where settings are compared
  -- without reading the test set (every rank holds the whole split); a
  -- stage of its own, so that its blocks go back before the figures
  if H_val then
    metrics.validation = stage("validation", function() return lm.no_grad(function()
      local v = {classifier_accuracy = 1 - val_errors / #wrong_val,
        latent_knn10_accuracy = I.knn_accuracy(Z_val, c.val.y, 10)}
      -- the combination measured out of fold: each fifth by a fit on the rest
      if combination then
        local features = {val_scores.recording_estimator, val_scores.baseline}
        local function part(rows) return {S.pick(features[1], rows), S.pick(features[2], rows)} end
        val_scores.combined = S.cross_fit(#wrong_val, function(rows)
          return S.fit_logistic(part(rows), S.pick(wrong_val, rows))
        end, function(model, rows) return S.apply(model, part(rows)) end, {seed = opts.seed})
      end
      for name, score in pairs(val_scores) do
        local r = S.evaluate(score, wrong_val)
        v["auroc_correct_" .. name], v["aupr_error_" .. name] = r.auroc_correct, r.aupr_error
      end
      return v
    end) end)
    local v = metrics.validation
    say(string.format("   validation: accuracy %.4f, kNN-10 %.4f, AUROC / AUPR e_hat %.4f / %.4f, "
      .. "baseline %.4f / %.4f, recording %.4f / %.4f, combined (out of fold) %.4f / %.4f", v.classifier_accuracy,
      v.latent_knn10_accuracy, v.auroc_correct_estimator, v.aupr_error_estimator, v.auroc_correct_baseline,
      v.aupr_error_baseline, v.auroc_correct_recording_estimator, v.aupr_error_recording_estimator,
      v.auroc_correct_combined or 0 / 0, v.aupr_error_combined or 0 / 0))
  end
  say(string.format("   latent mean (%.2f, %.2f), std (%.2f, %.2f)", metrics.latent_mean[1], metrics.latent_mean[2],
    metrics.latent_std[1], metrics.latent_std[2]))

  -- what the figures and the atlas need whole, on rank 0 only: the
  -- training latents and outputs and the test recording
  if sharded then
    Z_train, Y_train = dist.gather(Z_train, 0), dist.gather(Y_train:contiguous(), 0)
    H_test = dist.gather(H_test:contiguous(), 0)
  end
  if not main then return metrics end

  -- ---- 6. figures --------------------------------------------------------------------------------------
  -- the report links the figures drawn now: a file left by an earlier run may show other models
  local drawn = {}
  local function save(fig, name)
    fig:save(opts.out .. "/" .. name)
    drawn[#drawn + 1] = name
  end
  stage("figures", function()
    local function class_colors(labels)
      local colors = {}
      for i, l in ipairs(labels:totable()) do colors[i] = plot.with_alpha(plot.class_color(l), 0.55) end
      return colors
    end
    local legend = {}
    for k, name in ipairs(d.classes) do legend[k] = {name, plot.class_color(k)} end
    local function map(Z, labels, title, name, n)
      n = math.min(n or Z:size(1), Z:size(1))
      local fig = plot.figure{width = 760, height = 640, title = title}
      local ax = fig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
      local zs = Z:narrow(1, 1, n)
      ax:scatter(zs:select(2, 1), zs:select(2, 2), {colors = class_colors(labels:narrow(1, 1, n)), radius = 1.6})
      ax:legend(legend, "outside")
      save(fig, name)
    end
    map(Z_train, train_set.y, "Activation map: training set by class", "map_train.png", 20000)
    map(Z_test, test_set.y, "Activation map: " .. test_name .. " by class", "map_test.png")
    -- estimator heat map over [-4, 4]^2 with the test points, misclassified marked
    local fig = plot.figure{width = 760, height = 640, title = "Estimated log10 error over the map"}
    local ax = fig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
    A.error_heatmap(ax, est, {lim = 4, colorbar = "log10 e_hat"})
    ax:scatter(Z_test:select(2, 1), Z_test:select(2, 2), {color = 0xFFFFFF50, radius = 1})
    local wx, wy = {}, {}
    local pred = Y_test:argmax(2):totable()
    local lab = test_set.y:totable()
    local zt = Z_test:totable()
    for i = 1, #lab do if pred[i] ~= lab[i] then wx[#wx + 1], wy[#wy + 1] = zt[i][1], zt[i][2] end end
    ax:scatter(wx, wy, {color = 0xFF2020FF, radius = 2.2, outline = 0x000000FF})
    ax:legend({{test_name .. " sample", 0xDDDDDDFF}, {"misclassified", 0xFF2020FF}}, "lower left")
    save(fig, "map_error.png")
    -- learning trajectories: each recorded sample across cycles, grey to its class colour
    if #Z_snapshots > 1 then
      local tfig = plot.figure{width = 760, height = 640, title = "Learning trajectories over training cycles"}
      local tax = tfig:axes{rect = {70, 50, 520, 520}, xlabel = "z1", ylabel = "z2", xlim = {-4, 4}, ylim = {-4, 4}}
      local tz = {}
      for k, z in ipairs(Z_snapshots) do tz[k] = z:totable() end
      local labels = train_set.y:index_select(traj_index):totable()
      for i = 1, #labels do
        local col = plot.class_color(labels[i])
        local r, g, b = (col >> 24) / 255, ((col >> 16) & 255) / 255, ((col >> 8) & 255) / 255
        for k = 2, #tz do
          local t = (k - 1) / (#tz - 1) -- fades from grey to the class colour
          local mix = plot.rgba(0.75 * (1 - t) + r * t, 0.75 * (1 - t) + g * t, 0.75 * (1 - t) + b * t, 0.25 + 0.5 * t)
          tax:line({tz[k - 1][i][1], tz[k][i][1]}, {tz[k - 1][i][2], tz[k][i][2]}, {color = mix, width = 1})
        end
      end
      tax:legend(legend, "outside")
      save(tfig, "trajectories.png")
    end
  end)

  lm.json.write(opts.out .. "/metrics.json", metrics)

  -- ---- 7. the interactive atlas --------------------------------------------------------------------
  stage("atlas", function()
    study.atlas(opts.out .. "/atlas.html", {name = c.name, data = d, recorder = recorder, est = est,
      train = train_set, test = test_set, test_name = test_name, image_range = c.image_range,
      Y_train = Y_train, Z_train = Z_train, H_test = H_test, Y_test = Y_test, Z_test = Z_test,
      Eh = Eh, overlays = c.overlays})
  end)
  -- the whole run's peak memory against its largest recording (the
  -- training set's activations, snapshots included)
  metrics.peak_rss_bytes, metrics.recording_bytes = I.peak_memory(), recording_bytes
  if metrics.peak_rss_bytes then
    say(string.format("   peak resident memory %.0f MB, %.2f x the training recording (%.0f MB)",
      metrics.peak_rss_bytes / 1e6, metrics.peak_rss_bytes / metrics.recording_bytes, metrics.recording_bytes / 1e6))
  end
  lm.json.write(opts.out .. "/metrics.json", metrics)

  -- ---- 8. report ---------------------------------------------------------------------------------------
  -- names are the caller's text: escaped (the atlas escapes the same names)
  local esc = require('lumen.introspect.atlas_page').escape_html
  local html = {[[<!doctype html><html><head><meta charset="utf-8"><title>Lumen: introspection of ]] .. esc(c.name)
    .. [[</title>
  <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}img{max-width:49%;border:1px solid #ddd}
  table{border-collapse:collapse}td{padding:2px 12px;border-bottom:1px solid #eee}</style></head><body>]],
    "<h1>Self-introspection of " .. esc(c.name) .. " on " .. esc(d.name) .. "</h1><table>"}
  local keys = {}
  for k, v in pairs(metrics) do if type(v) ~= "table" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = metrics[k]
    -- counts as counts (seed 1, not 1.0000), measures to 4 decimals
    local shown = type(v) == "number" and (math.tointeger(v) and string.format("%d", math.tointeger(v))
      or string.format("%.4f", v)) or esc(tostring(v))
    html[#html + 1] = string.format("<tr><td>%s</td><td>%s</td></tr>", esc(k), shown)
  end
  html[#html + 1] = string.format("<tr><td>latent mean / std</td><td>(%.3f, %.3f) / (%.3f, %.3f)</td></tr></table>",
    metrics.latent_mean[1], metrics.latent_mean[2], metrics.latent_std[1], metrics.latent_std[2])
  -- and the classifier's learning curve, which its training (this run's or the cached one's) drew
  local curve = "classifier_run/learning_curve.png"
  if exists(opts.out .. "/" .. curve) then drawn[#drawn + 1] = curve end
  for _, f in ipairs(drawn) do html[#html + 1] = string.format('<img src="%s" alt="%s">', f, f) end
  if exists(opts.out .. "/atlas.html") then
    html[#html + 1] = '<p><a href="atlas.html">Open the interactive activation atlas</a> '
      .. '(pan, zoom, hover a point for its input).</p>'
  end
  html[#html + 1] = "</body></html>\n"
  lm.write_file(opts.out .. "/index.html", table.concat(html, "\n"))
  print("report: " .. opts.out .. "/index.html")
  return metrics
end

-- ---- the main experiment: Net1 on MNIST -----------------------------------------------------------

--- The options of study.mnist with their defaults (a new table each call;
--- experiments/introspect_mnist.lua's command line).
function study.mnist_defaults()
  return {data = "mnist", seed = 1, threads = 0, out = "", fresh = false, cycles = 25, ae_epochs = 20,
    est_epochs = 20, mmd_weight = 500, subset = 0, trajectory_samples = 500, bandwidths = "0.1,1,10,100,1000",
    data_dir = "", noise_max = 0, record_to = "auto", device = "cpu",
    -- --graph (with --device cuda): the classifier's steps and the map's
    -- fits as replays of CUDA graphs (lm.train's graph option; the same
    -- numbers)
    graph = false,
    -- the 2-D estimator: cycles of est_period iterations of a cyclic rate
    -- over [0, 1e-3], at most est_cycles, the best on the validation loss
    -- (the paper's regime); est_epochs is the recording estimator's length
    est_period = 3000, est_cycles = 30,
    -- --paper: the paper's regime (docs/method.md): the classifier under a
    -- triangular cyclic rate over [0, 1e-5] with cycles of paper_period
    -- iterations, at most paper_cycles; the autoencoders and the estimator
    -- under the same form peaking at paper_models_lr; two autoencoders
    paper = false, paper_period = 3000, paper_cycles = 30, paper_models_lr = 1e-3}
end

--- What each option of the main experiment does, for --help.
function study.mnist_option_help()
  return {
    data = "mnist or fashion (Fashion-MNIST; also the fallback when MNIST is missing)",
    seed = "the seed of every random draw",
    threads = "CPU threads (0: one per core this process may use)",
    out = "the results folder (default results/introspect_<data>, _paper with --paper)",
    fresh = "retrain every stage instead of reusing the models cached in --out",
    cycles = "the classifier's cycles of its cyclic learning rate (early stopping may end it sooner)",
    ae_epochs = "the autoencoder's epochs",
    est_epochs = "the recording estimator's epochs (the 2-D estimator trains in cycles: --est-cycles, --est-period)",
    est_period = "the 2-D estimator's iterations a cycle",
    est_cycles = "the 2-D estimator's cycles at most (the best on the validation loss is kept)",
    mmd_weight = "the weight of the MMD term in the autoencoder's loss",
    bandwidths = "the MMD kernel's bandwidths, times the latent size",
    subset = "train on the first N training images only (0: all)",
    trajectory_samples = "training samples whose path over the cycles is recorded and drawn",
    data_dir = "the only folder searched for the data set (default: $LUMEN_DATA, ./data, ...)",
    noise_max = "train the classifier on inputs with Gaussian noise of sigma drawn in [0, S] a batch",
    record_to = "where recordings go: memory, file (streamed to --out) or auto (by the memory available)",
    device = "cpu or cuda",
    graph = "with --device cuda: training steps as replays of CUDA graphs",
    paper = "the paper's regime as written (docs/method.md)",
    paper_period = "with --paper: the classifier's iterations a cycle",
    paper_cycles = "with --paper: the classifier's cycles at most",
    paper_models_lr = "with --paper: the autoencoders' and estimator's peak learning rate",
  }
end

-- MNIST (o.data: 'mnist' or 'fashion'), Fashion-MNIST when MNIST is missing
-- (the second result: the kind loaded);
-- the images stay bytes (a quarter of float32's memory): loaders, recorders
-- and analyses turn each block into floats as they read it.
local function mnist_data(o)
  local dir = o.data_dir ~= "" and o.data_dir or nil
  local ok, data = pcall(lm.data.mnist, {kind = o.data, dir = dir, dtype = "uint8"})
  -- only a missing MNIST falls back: a damaged one is an error, not a silent change of data set
  if not ok and o.data == "mnist" and tostring(data):find("MNIST not found", 1, true) then
    local fok, fashion = pcall(lm.data.mnist, {kind = "fashion", dir = dir, dtype = "uint8"})
    if not fok then error(tostring(data) .. "\nNor its fallback: " .. tostring(fashion), 0) end
    say("notice: MNIST not found, using Fashion-MNIST instead")
    return fashion, "fashion"
  elseif not ok then
    error(data, 0)
  end
  return data, o.data
end

-- The trajectory snapshot of cycle k that train_net1 keeps beside the classifier's checkpoint in `out`.
local function snapshot_path(out, k)
  return string.format("%s/classifier_run/snapshot_cycle%d.safetensors", out, k)
end

-- Stage 1: Net1 trained with the cyclic schedule and early stopping (with
-- o.noise_max > 0: on inputs with Gaussian noise of a sigma drawn in [0,
-- noise_max] per minibatch, clipped to [0, 1]), recording a fixed seeded
-- subset of training samples at the end of every cycle; both cached in
-- o.out. Returns the snapshots, the subset's indices and whether it trained.
local function train_net1(o, net, recorder, d, train_set, val_set)
  local path, traj_path = o.out .. "/classifier.safetensors", o.out .. "/trajectories.safetensors"
  local snapshots = {}
  if agree(exists(path) and exists(traj_path)) then
    net:load(path)
    local t = lm.load(traj_path)
    for i = 1, math.huge do
      if not t["cycle" .. i] then break end
      snapshots[i] = t["cycle" .. i]
    end
    say(string.format("   loaded %s and %d trajectory snapshots", path, #snapshots))
    return snapshots, t.subset_index, false
  end
  local main = lm.dist.is_main()
  -- the map's models were made from the classifier trained before
  if main then study.remove_made_from(o.out, "classifier") end
  -- Each cycle's snapshot is saved beside the checkpoint as it is taken, so
  -- that a resumed run (interrupted, or finished with classifier.safetensors
  -- gone) has those of the cycles before; a checkpoint without them starts over.
  local run_dir = o.out .. "/classifier_run"
  local ckpt = run_dir .. "/checkpoint.safetensors"
  if agree(exists(ckpt)) then
    local _, meta = lm.load(ckpt)
    local ok, state = pcall(lm.json.decode, meta.state or "")
    for k = 1, ok and state and state.history and #state.history or 0 do
      if not agree(exists(snapshot_path(o.out, k))) then
        say(string.format("   notice: %s holds no trajectory snapshot of cycle %d: the classifier trains "
          .. "from the start", run_dir, k))
        if main then os.remove(ckpt) end
        lm.dist.barrier() -- before any rank looks for the checkpoint
        snapshots = {}
        break
      end
      snapshots[k] = lm.load(snapshot_path(o.out, k)).snapshot
    end
  end
  -- a fixed, seeded subset of training samples, recorded after every cycle
  local seed, offset = lm.rng_state()
  lm.manual_seed(o.seed + 100)
  local pick = lm.randperm(train_set.x:size(1)):narrow(1, 1, o.trajectory_samples)
  lm.set_rng_state(seed, offset)
  local subset_x = lm.data.to_float(train_set.x:index_select(pick))
  local opt = lm.optim.Adam(net:parameters())
  local steps = train_set.x:size(1) // 128
  -- under K processes each takes 128 / K rows of every batch of 128
  local ranks = lm.dist.size()
  if 128 % ranks ~= 0 then
    error(string.format("study.mnist: %d processes do not divide the batch of 128; use 1, 2, 4, 8, ... processes",
      ranks), 0)
  end
  local clr, cycles
  if o.paper then -- as printed in the paper: cycles of T = 3000 iterations over [0, 1e-5], N = 30
    clr, cycles = lm.optim.CyclicLR(opt, {min = 0, max = 1e-5, period = o.paper_period}), o.paper_cycles
  else
    clr, cycles = lm.optim.CyclicLR(opt, {min = 1e-5, max = 1e-3, period = 2 * steps}), o.cycles
  end
  local noise = o.noise_max > 0 and {sigma_max = o.noise_max} or nil
  lm.train{model = net, optimizer = opt, schedule = clr, cycles = cycles, train = train_set,
    noise = noise, clip = noise and {0, 1} or nil,
    val = val_set, loss = "mse", early_stopping = {patience = 5}, seed = o.seed,
    batch_size = 128 // ranks, distributed = ranks > 1,
    out = run_dir, resume = true, classes = d.classes, graph = o.graph,
    on_validate = function(_, run)
      local k = #run.history -- the cycle: after a resume, those before came from their files
      snapshots[k] = (recorder:record(subset_x))
      if main then lm.save(snapshot_path(o.out, k), {snapshot = snapshots[k]}) end
    end}
  if main then net:save(path) end
  local t = {subset_index = pick}
  for i, s in ipairs(snapshots) do t["cycle" .. i] = s end
  if main then lm.save(traj_path, t) end
  lm.dist.barrier() -- rank 0 has written them
  return snapshots, lm.load(traj_path).subset_index, true
end

-- The files of study.mnist's models in its --out, checkpoint included:
-- what its options.json speaks for.
local MODEL_FILES = {"classifier.safetensors", "trajectories.safetensors", "autoencoder.safetensors",
  "autoencoder_record.safetensors", "estimator.safetensors", "estimator_recording.safetensors",
  "classifier_run/checkpoint.safetensors"}

-- The options of study.mnist that define its models: a cached run is
-- reused only for the same (study.check_run_options).
local MODEL_OPTIONS = {"data", "seed", "subset", "noise_max", "cycles", "trajectory_samples", "mmd_weight",
  "bandwidths", "ae_epochs", "est_epochs", "est_period", "est_cycles", "paper", "paper_period", "paper_cycles",
  "paper_models_lr"}

--- The main experiment (experiments/introspect_mnist.lua; docs/introspection.md):
--- Net1 trained on MNIST with trajectory snapshots (stage 1, cached in
--- o.out), then study.run's stages 2-8. o: the fields of
--- study.mnist_defaults(), any left out taking their default; o.out defaults
--- to results/introspect_<data>, o.bandwidths is a list or a comma-separated
--- string, o.fresh removes the cached checkpoints and recordings first.
--- Returns the metrics.
function study.mnist(o)
  local defaults = study.mnist_defaults()
  for k, v in pairs(o or {}) do defaults[k] = v end
  o = defaults
  -- every option checked before the first stage (lumen.cli's messages)
  local cli = require 'lumen.cli'
  cli.check(o, {seed = "count0", threads = "count0", cycles = "count", ae_epochs = "count", est_epochs = "count",
    subset = "count0", trajectory_samples = "count", est_period = "count", est_cycles = "count",
    mmd_weight = "nonnegative", noise_max = "nonnegative", paper_period = "count", paper_cycles = "count",
    paper_models_lr = "positive", data = {"mnist", "fashion"}, record_to = {"auto", "memory", "file"},
    device = {"cpu", "cuda"}})
  if o.device == "cuda" and not lm.cuda.available() then
    error("study.mnist: --device cuda, but " .. lm.cuda.status(), 0)
  end
  if o.graph and (o.device ~= "cuda" or lm.dist.size() > 1) then
    error("study.mnist: --graph captures the training steps as CUDA graphs: it needs --device cuda "
      .. "and one process", 0)
  end
  -- before the classifier trains: the autoencoder would find them only after it
  if type(o.bandwidths) == "string" and o.bandwidths ~= "" then cli.numbers(o, "bandwidths", "positive") end
  -- a step is a batch of 128: fewer images make no cycle (CyclicLR's period is two epochs)
  if o.subset > 0 and o.subset < 128 then
    cli.usage_error("option --subset needs 0 (all the images) or at least 128 (one batch), got %d", o.subset)
  end
  if o.threads > 0 then lm.set_num_threads(o.threads) end
  if o.out == "" then o.out = "results/introspect_" .. o.data .. (o.paper and "_paper" or "") end
  lm.mkdir(o.out)
  if o.fresh then -- the checkpoints and recordings this run and study.run would reuse or rewrite
    local rank, ranks = lm.dist.rank(), lm.dist.size()
    if rank == 0 then
      os.remove(o.out .. "/options.json")
      os.remove(o.out .. "/metrics.json") -- the follow-up scripts read it
      for _, name in ipairs{"classifier", "trajectories", "autoencoder", "autoencoder_record", "estimator",
          "estimator_recording",
          "recording_train", "recording_test"} do
        os.remove(o.out .. "/" .. name .. ".safetensors")
      end
      -- and the classifier's run: resuming a finished one would train
      -- nothing, with its snapshots
      for _, name in ipairs{"checkpoint", "best"} do
        os.remove(o.out .. "/classifier_run/" .. name .. ".safetensors")
      end
      for k = 1, math.huge do
        if not os.remove(snapshot_path(o.out, k)) then break end
      end
      -- the figures and pages: a stage that draws nothing this time must not leave the last run's
      for _, name in ipairs{"map_train.png", "map_test.png", "map_error.png", "trajectories.png", "atlas.html",
          "index.html", "classifier_run/learning_curve.png"} do
        os.remove(o.out .. "/" .. name)
      end
    end
    if ranks > 1 then -- each rank's own recordings
      for _, name in ipairs{"recording_train", "recording_test"} do
        os.remove(string.format("%s/%s_rank%d.safetensors", o.out, name, rank))
      end
      lm.dist.barrier() -- nobody looks for a cached file before rank 0 removed it
    end
  end
  lm.manual_seed(o.seed)
  local timings = {}
  local stage = study.stage_timer(timings)
  local d, kind = stage("data", function() return mnist_data(o) end)
  -- the options in effect: --paper's settings only with --paper, which sets
  -- the schedules of the others (a plain rerun was refused over an unused
  -- --paper-period); the bandwidths as numbers (1000.0 is 1000)
  local recorded = {}
  for _, k in ipairs(MODEL_OPTIONS) do recorded[k] = o[k] end
  for _, k in ipairs(o.paper and {"cycles", "ae_epochs", "est_period", "est_cycles"}
      or {"paper_period", "paper_cycles", "paper_models_lr"}) do
    recorded[k] = nil
  end
  if type(o.bandwidths) == "string" and o.bandwidths ~= "" then
    recorded.bandwidths = cli.numbers(o, "bandwidths", "positive")
  end
  -- the data the models learned, not its name alone: what was loaded (the
  -- fallback's Fashion-MNIST), from where, and what the files held
  recorded.data, recorded.data_folder = kind, lm.real_path(d.folder) or d.folder
  recorded.data_files = study.files_fingerprint(d.files)
  study.check_run_options(o.out, recorded, "study.mnist", {models = MODEL_FILES,
    labels = {data_folder = "the data in", data_files = "data files of fingerprint"}})
  lm.dist.barrier() -- rank 0 has recorded them
  local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = o.seed})
  d.train = nil -- the split copied its rows: the whole set need not stay in memory beside them
  if o.subset > 0 then train_set = lm.data.head(train_set, o.subset) end
  o.trajectory_samples = math.min(o.trajectory_samples, train_set.x:size(1))
  say(string.format("   %s: %d training, %d validation, %d test images", d.name, train_set.x:size(1),
    val_set.x:size(1), d.test.x:size(1)))
  local net = lm.models.net1():to(o.device) -- the classifier, the recording and the map on that device
  local recorder = I.Recorder(net)
  local snapshots, traj_index, retrain = stage("classifier", function()
    return train_net1(o, net, recorder, d, train_set, val_set)
  end)
  local bw = o.bandwidths
  if bw == "" then
    bw = nil -- study.run's default
  elseif type(bw) == "string" then
    bw = cli.numbers(o, "bandwidths", "positive")
  end
  return study.run{
    name = "Net1", data = d, train = train_set, test = d.test, net = net, recorder = recorder,
    val = val_set, snapshots = snapshots, trajectory_index = traj_index, out = o.out, stage = stage, timings = timings,
    ae_epochs = o.ae_epochs, est_epochs = o.est_epochs, mmd_weight = o.mmd_weight, bw = bw,
    seed = o.seed, record_to = o.record_to, device = o.device, graph = o.graph, retrain = retrain,
    paper = o.paper and {lr_max = o.paper_models_lr, period = o.paper_period, cycles = o.paper_cycles, patience = 5}
      or nil,
    est_regime = {lr_max = 1e-3, period = o.est_period, cycles = o.est_cycles, patience = 5},
  }
end

return study
