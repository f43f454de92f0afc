-- lm.train: a training loop that scripts can use as it is or copy and change.
--
--   local history = lm.train{
--     model = net, optimizer = opt, train = train_set, val = val_set,
--     epochs = 20,                  -- or cycles = 30 with a CyclicLR schedule
--     schedule = clr,               -- stepped every iteration (any lm.optim schedule: StepLR's
--                                   -- step_size, milestones, T_max count iterations, #loader an epoch)
--     loss = 'mse' | 'cross_entropy' | function(output, y) ... end,
--     batch_size = 128, seed = 1, noise = {sigma_max = 1}, clip = {0, 1},
--     drop_last = true,             -- false: an epoch ends with the partial batch
--     early_stopping = {patience = 5},   -- on the validation loss
--     out = 'results/net1',         -- checkpoint.safetensors, best.safetensors, metrics.json, learning_curve.png
--     resume = true,                -- continue from out/checkpoint.safetensors when present
--     classes = {...}, quiet = false,
--     on_validate = function(record, run) end,   -- after each validation (recorders hook in here)
--     distributed = true,           -- data parallel over lm.dist (mpirun -n K): batch_size per process
--     read_every = 32,              -- steps between reads of the loss from a GPU (default: 1 on the CPU, 32 on a GPU)
--     graph = false,                -- GPU: each step a replay of one captured CUDA graph (lm.cuda.graph)
--   }
--
-- Validation runs at the end of every epoch, or of every schedule cycle when
-- `cycles` is given. Each validation appends a record to history (loss and
-- accuracy on both sets, per-class accuracy, confusion matrix, learning
-- rate, seconds) and writes a checkpoint holding model, optimiser, random
-- stream, loader and schedule positions, so a run can resume bit for bit.
-- Ctrl-C stops after the current step and writes the checkpoint first.
--
-- With distributed = true (docs/distributed.md) every process of `mpirun -n K`
-- runs this loop on its shard of each batch (the loader's shard option):
-- rank 0's parameters go to every rank first, gradients are averaged after
-- each backward, so K processes with batch_size b take the steps of one with
-- K * b. Only rank 0 prints, writes checkpoints, metrics and figures; the
-- reported training loss and accuracy are over all ranks; validation runs on
-- every rank (the same numbers) and on_validate is called on every rank.
-- Dropout masks and input noise are drawn as one process draws them for the
-- global batch, so the run takes that process's steps (up to the order of
-- floating-point sums).
--
-- With graph = true (one process, the model on a GPU) the first step runs
-- as usual and the second is captured as a CUDA graph (forward, loss,
-- backward, optimiser step); every later step of the same batch shape copies
-- its batch into the graph's inputs and replays it, one launch instead of
-- one per kernel, with the numbers of the uncaptured steps (dropout, the
-- schedule's rate and Adam's bias corrections go on as they would).
local lm = require 'lumen'
local json = require 'lumen.json'
local Progress = require 'lumen.progress'
local F = require 'lumen.nn.functional'
local checks = require 'lumen.nn.checks'

local number_or_nil = checks.is_optional_number

local train = {}

-- ---- evaluation ------------------------------------------------------------------------------------

local function loss_fn(spec)
  if type(spec) == "function" then return spec end
  if spec == nil or spec == "mse" then
    -- the paper's error against one-hot targets
    return function(out, y) return F.mse(out, lm.data.one_hot(y, out:size(2)):float()) end
  end
  if spec == "cross_entropy" then return F.cross_entropy end
  error("train: unknown loss '" .. tostring(spec) .. "'", 3)
end

--- The device of a model's parameters ('cpu' for a model without any):
--- batches go there before the forward pass.
function train.device_of(model)
  if type(model) ~= "table" or type(model.parameters) ~= "function" then -- any table with parameters()
    error("lm.train.device_of: model must be a module (an lm.nn layer or model), got " .. checks.shown(model), 2)
  end
  local p = model:parameters()[1]
  return p and p:device() or "cpu"
end

--- The precision an autocast option asks for ('bfloat16' or nil for
--- float32; nil or absent: the state's mode, lm.get_autocast()), or nil and
--- the error message of a bad one.
local function autocast_option(value)
  if value == nil then return lm.get_autocast() end
  local ok, mode = pcall(lm.autocast, value, lm.get_autocast)
  if not ok then return nil, (tostring(mode):gsub("^.-autocast:", "autocast:")) end
  return mode
end

--- Loss, accuracy, per-class accuracy and confusion matrix of a classifier
--- on {x, y}; runs in evaluation mode without recording. opts.loss,
--- opts.batch_size (1000), opts.autocast (the model's products in that
--- precision, lm.autocast; by default the state's mode).
function train.evaluate(model, set, opts)
  checks.module(model, "model", "lm.evaluate")
  checks.set(set, "set", "lm.evaluate")
  opts = checks.options(opts, "lm.evaluate")
  local loss = loss_fn(opts.loss)
  if set.x:size(1) == 0 then error("evaluate: the set is empty", 2) end
  if opts.batch_size ~= nil and not (checks.is_whole(opts.batch_size) and opts.batch_size >= 1) then
    error("lm.evaluate: batch_size must be a positive integer, got " .. checks.shown(opts.batch_size), 2)
  end
  local autocast, bad = autocast_option(opts.autocast)
  if bad then error("evaluate: " .. bad, 2) end
  local n, bs = set.x:size(1), opts.batch_size or 1000
  local total_loss, correct = 0, 0
  local classes
  local confusion
  local device = train.device_of(model)
  -- in evaluation mode, each module's own mode put back after (a frozen
  -- batch norm stays in evaluation mode), also when the model fails
  lm.nn.evaluating(model, function() lm.no_grad(function()
    for start = 1, n, bs do
      local len = math.min(bs, n - start + 1)
      local x, y = lm.data.to_float(set.x:narrow(1, start, len)), set.y:narrow(1, start, len)
      if device ~= "cpu" then x, y = x:to(device), y:to(device) end
      local out = lm.autocast(autocast or false, model, x)
      total_loss = total_loss + loss(out, y):item() * len
      local pred = out:argmax(2)
      classes = classes or out:size(2)
      if not confusion then
        confusion = {}
        for i = 1, classes do confusion[i] = {} for j = 1, classes do confusion[i][j] = 0 end end
      end
      local p, t = pred:totable(), y:totable()
      for i = 1, len do
        if t[i] < 1 or t[i] > classes then -- (the built-in losses say so too; a custom one need not)
          error(string.format("lm.evaluate: label %d (sample %d) out of range for the model's %d classes",
            t[i], start + i - 1, classes), 0)
        end
        confusion[t[i]][p[i]] = confusion[t[i]][p[i]] + 1
        if p[i] == t[i] then correct = correct + 1 end
      end
    end
  end) end)
  local per_class = {}
  for i = 1, classes do
    local row = 0
    for j = 1, classes do row = row + confusion[i][j] end
    per_class[i] = row > 0 and confusion[i][i] / row or 0
  end
  return {loss = total_loss / n, accuracy = correct / n, per_class = per_class, confusion = confusion, n = n}
end

-- ---- checkpoints ---------------------------------------------------------------------------------------

local function save_checkpoint(path, run)
  local tensors = {}
  for name, t in pairs(run.model:state_dict()) do tensors["model." .. name] = t end
  local osd = run.optimizer:state_dict()
  for name, t in pairs(osd.tensors) do tensors["optim." .. name] = t end
  local seed, offset = lm.rng_state()
  local meta = {
    iteration = run.iteration, epoch = run.epoch, batch = run.batch,
    global_batch = run.global_batch, -- batch_size x processes: what `batch` and `iteration` count in
    rng_seed = seed, rng_offset = offset,
    schedule_iteration = run.schedule and run.schedule.iteration or 0,
    optimizer = osd.settings, history = run.history,
    early_stopping = run.stopper and {best = run.stopper.best, bad = run.stopper.bad} or nil,
    running = run.running, -- a stretch cut short by Ctrl-C: its sums so far
    autocast = run.autocast or "float32",
    data = run.data, -- the loader's seed, samples and drop_last: what decides each batch
  }
  -- version 2: the model's names are PyTorch's (version 1: Lumen's first names)
  lm.save(path, tensors, {format = "lumen.train", version = "2", state = json.encode(meta)})
end

local function load_checkpoint(path, run)
  local tensors, meta = lm.load(path)
  if meta.format ~= "lumen.train" then error("resume: '" .. path .. "' is not a lumen.train checkpoint", 3) end
  local state = json.decode(meta.state)
  -- its step counts are in global batches: another global batch would skip or repeat samples
  if state.global_batch and state.global_batch ~= run.global_batch then
    error(string.format("resume: '%s' was written with global batches of %d samples (batch_size x processes), "
      .. "this run's are %d: resume with the same product, or start over (--fresh)", path, state.global_batch,
      run.global_batch), 3)
  end
  -- products in another precision would continue a different run
  local was, now = state.autocast or "float32", run.autocast or "float32"
  if was ~= now then
    error(string.format("resume: '%s' was trained with %s products, this run asks for %s (autocast): resume "
      .. "with the same setting, or start over (--fresh)", path, was, now), 3)
  end
  -- another seed, data set size or last-batch rule draws other batches: the resumed run would not be this one
  local was_data, now_data = state.data, run.data
  if was_data and now_data then
    local said = {seed = "the loader's seed", samples = "the training set's samples", drop_last = "drop_last"}
    for _, k in ipairs{"seed", "samples", "drop_last"} do
      if was_data[k] ~= now_data[k] then
        error(string.format("resume: '%s' was trained with %s %s, this run has %s: resume with the same "
          .. "training set and options, or start over (--fresh)", path, said[k], tostring(was_data[k]),
          tostring(now_data[k])), 3)
      end
    end
  end
  local model_state, optim_tensors = {}, {}
  for name, t in pairs(tensors) do
    local m = name:match("^model%.(.+)$")
    if m then model_state[m] = t end
    local o = name:match("^optim%.(.+)$")
    if o then optim_tensors[o] = t end
  end
  if meta.version == "1" then model_state = lm.nn.Module._from_legacy_names(model_state) end
  -- everything is checked before anything changes: the optimiser's state
  -- first, then the model's (its load checks all before it copies any), and
  -- a refusal is resume's, naming the checkpoint, at the caller's line
  local optim_state = {settings = state.optimizer, tensors = optim_tensors}
  local ok, err = pcall(run.optimizer._check_state_dict, run.optimizer, optim_state)
  if not ok then
    error(string.format("resume: the optimiser's state in '%s' does not fit this optimiser: %s", path,
      (checks.message(err):gsub("^load_state_dict: ", ""))), 3)
  end
  ok, err = pcall(run.model.load_state_dict, run.model, model_state, "'" .. path .. "'")
  if not ok then error("resume: " .. checks.message(err):gsub("^load_state_dict: ", ""), 3) end
  run.optimizer:load_state_dict(optim_state)
  lm.set_rng_state(state.rng_seed, state.rng_offset)
  run.iteration, run.epoch, run.batch = state.iteration, state.epoch, state.batch
  if run.schedule then
    run.schedule.iteration = state.schedule_iteration
    run.optimizer:set_lr(run.schedule:lr_at(run.schedule.iteration))
  end
  run.history = state.history or {}
  run.running = state.running
  if run.stopper and state.early_stopping then
    run.stopper.best, run.stopper.bad = state.early_stopping.best, state.early_stopping.bad
  end
end

-- ---- the loop ---------------------------------------------------------------------------------------------

local function fmt_pct(v) return string.format("%.2f%%", 100 * v) end

-- The options of lm.train whose kinds are checked before the run starts
-- (the loader checks its own: noise, clip, transform).
local RUN_OPTIONS = {"model", "optimizer", "train", "val", "epochs", "cycles", "schedule", "loss", "batch_size",
  "seed", "noise", "clip", "transform", "drop_last", "early_stopping", "out", "resume", "classes", "quiet", "tty",
  "log", "on_validate", "distributed", "read_every", "graph", "autocast"}

local function check_run_options(opts)
  local function fail(what, wanted, v)
    error(string.format("lm.train: %s must be %s, got %s", what, wanted, checks.shown(v)), 4)
  end
  -- a misspelt option (epoch = 3) would otherwise train with the default silently
  checks.opts(opts, "lm.train", RUN_OPTIONS, nil, 4)
  if not (opts.model and opts.optimizer and opts.train) then
    error("train: needs model, optimizer and train", 3)
  end
  checks.module(opts.model, "model", "lm.train", 4)
  local o = opts.optimizer
  if type(o) ~= "table" or type(o.step) ~= "function" or type(o.zero_grad) ~= "function" then
    fail("optimizer", "an optimiser (lm.optim.SGD, Adam, ...)", o)
  end
  local t = opts.train
  if not (type(t) == "table" and t.kind == "image_folder") then checks.set(t, "train", "lm.train", 4) end
  if opts.val ~= nil then
    checks.set(opts.val, "val", "lm.train", 4)
    if opts.val.x:dim() == 0 or opts.val.x:size(1) == 0 then
      error("lm.train: val has no samples (validate on a non-empty set, or leave val out)", 3)
    end
  end
  local s = opts.schedule
  if s ~= nil and (type(s) ~= "table" or type(s.step) ~= "function" or type(s.lr_at) ~= "function") then
    fail("schedule", "a schedule (lm.optim.CyclicLR, StepLR, CosineAnnealingLR, ...)", s)
  end
  for _, k in ipairs{"epochs", "cycles"} do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not math.tointeger(v) or v < 0) then fail(k, "an integer >= 0", v) end
  end
  if opts.cycles then
    if not s then error("train: cycles needs a schedule (lm.optim.CyclicLR)", 3) end
    -- torch's schedules (StepLR, ...) have no cycles: validation counts epochs there
    if math.type(s.period) ~= "integer" then
      error(string.format("lm.train: cycles counts the cycles of a CyclicLR schedule; %s has none (give epochs "
        .. "instead)", s.kind and "the " .. s.kind .. " schedule" or "this schedule"), 3)
    end
  end
  local bs = opts.batch_size
  if bs ~= nil and (math.type(bs) ~= "integer" or bs < 1) then fail("batch_size", "a positive integer", bs) end
  if opts.seed ~= nil and (type(opts.seed) ~= "number" or not math.tointeger(opts.seed)) then
    fail("seed", "an integer", opts.seed)
  end
  if opts.out ~= nil and type(opts.out) ~= "string" then fail("out", "a folder path (a string)", opts.out) end
  for _, k in ipairs{"on_validate", "log"} do
    if opts[k] ~= nil then checks.callable(opts[k], k, "lm.train", 4) end
  end
  local es = opts.early_stopping
  if es ~= nil and type(es) ~= "boolean" and type(es) ~= "table" then
    fail("early_stopping", "true or the options of lm.optim.EarlyStopping (a table)", es)
  end
  if es and opts.val == nil then
    error("lm.train: early_stopping watches the validation loss: it needs val (a data set)", 3)
  end
  if opts.classes ~= nil and type(opts.classes) ~= "table" then
    fail("classes", "a list of class names", opts.classes)
  end
end

function train.run(opts)
  if type(opts) ~= "table" then
    error("lm.train: options must be a table {model = ..., optimizer = ..., train = ...}, got "
      .. checks.shown(opts), 2)
  end
  check_run_options(opts)
  local model, optimizer = opts.model, opts.optimizer
  local loss = loss_fn(opts.loss)
  local schedule = opts.schedule
  local dist = opts.distributed and lm.dist or nil
  local rank, world = dist and dist.rank() or 0, dist and dist.size() or 1
  local main = rank == 0 -- the process that prints and writes files
  local log = (opts.quiet or not main) and function() end or opts.log or print
  local progress_opts = main and {tty = opts.tty} or {tty = false, interval = math.huge}
  -- 'bfloat16' or nil, recorded in the checkpoint; a bad one fails here, at the caller's line
  local autocast, bad = autocast_option(opts.autocast)
  if bad then error("train: " .. bad, 2) end
  -- the loader checks noise, clip and transform; its refusal is reported as lm.train's, at the caller's line
  local made, loader = pcall(lm.data.loader, opts.train, {batch_size = opts.batch_size or 128,
    seed = opts.seed or 0, noise = opts.noise, clip = opts.clip, transform = opts.transform, drop_last = opts.drop_last,
    shard = dist and {index = rank, count = world} or nil})
  if not made then
    local why = checks.message(loader):gsub("^lm%.data%.loader: ", "")
    error("lm.train: " .. why, 2)
  end
  local per_epoch = #loader
  -- how many iterations between validations, and how many in total
  local period, total
  if opts.cycles then
    period, total = schedule.period, schedule.period * math.tointeger(opts.cycles)
  else
    -- a whole float (10.0, from a division) counts as its integer: the
    -- progress bar and the loop's bounds take integers
    period, total = per_epoch, per_epoch * math.tointeger(opts.epochs or 10)
  end
  local run = {model = model, optimizer = optimizer, schedule = schedule, iteration = 0, epoch = 0,
    batch = 0, history = {}, global_batch = (opts.batch_size or 128) * world, autocast = autocast,
    data = {seed = opts.seed or 0, samples = loader.n, drop_last = loader.drop_last}}
  if opts.early_stopping then
    run.stopper = lm.optim.EarlyStopping(opts.early_stopping == true and {} or opts.early_stopping)
  end
  local out = opts.out
  if out and main then lm.mkdir(out) end
  local ckpt = out and (out .. "/checkpoint.safetensors")
  if ckpt and opts.resume then
    local f = io.open(ckpt, "rb")
    if f then f:close() end
    if dist and world > 1 then -- every rank resumes, or none: out must be on a shared file system
      local found = dist.allreduce_(lm.tensor({f and 1 or 0}, 'int32'), 'sum')[1]
      if found ~= 0 and found ~= world then
        error(string.format("train: %s is visible on %d of %d ranks; resuming needs `out` on a file "
          .. "system every rank sees", ckpt, found, world), 2)
      end
    end
    if f then
      load_checkpoint(ckpt, run)
      log(string.format("resumed from %s at iteration %d (epoch %d)", ckpt, run.iteration, run.epoch))
      if run.stopper and run.stopper.best and out then
        -- the best weights so far are in best.safetensors
        local bf = io.open(out .. "/best.safetensors", "rb")
        if bf then
          bf:close()
          local saved = {} -- copies: state_dict() shares the parameters' storage
          for name, t in pairs(model:state_dict()) do saved[name] = t:clone() end
          model:load(out .. "/best.safetensors")
          run.stopper.best_state = {}
          for name, t in pairs(model:state_dict()) do run.stopper.best_state[name] = t:clone() end
          model:load_state_dict(saved)
        end
      end
    end
  end

  if run.stopper and opts.val and run.stopper.bad >= run.stopper.patience then
    total = run.iteration -- resumed after early stopping: nothing left to train
  end

  if dist and world > 1 then
    dist.broadcast_parameters(model, 0) -- every rank starts from rank 0's weights
    -- and rank 0's random stream (a resumed run's, from the checkpoint), so
    -- that the ranks draw as one process would whatever each was seeded with
    dist.broadcast_rng_state(0)
  end

  -- the progress bar names the stretch of training before each validation
  local stretches = math.ceil(total / period)
  local function stretch_label(k)
    return string.format("%s %d/%d", opts.cycles and "cycle" or "epoch", k, stretches)
  end
  model:train()
  local device = train.device_of(model)
  local read_every = opts.read_every or (device == "cpu" and 1 or 32)
  if math.type(read_every) ~= "integer" or read_every < 1 then
    error("train: read_every must be a positive integer (steps between reads of the loss), got "
      .. tostring(opts.read_every), 2)
  end
  if opts.graph ~= nil and type(opts.graph) ~= "boolean" then
    error("train: graph must be true or false, got " .. tostring(opts.graph), 2)
  end
  if opts.graph and device ~= "cuda" then
    error("train: graph = true captures CUDA graphs: it needs the model on a GPU, not on " .. device, 2)
  end
  if opts.graph and opts.drop_last == false then
    error("train: graph = true replays one batch shape: it needs drop_last (a short last batch has another)", 2)
  end
  if opts.graph and dist and world > 1 then
    error("train: graph = true is for one process (the gradients' averaging over ranks is not captured)", 2)
  end
  local read_pending -- (defined in the loop's scope, beside the running sums)
  local release_graph -- graph = true: frees the graph now, not at a collection during someone's capture
  lm._catch_interrupt(true)
  local ok, err = pcall(function()
    local running_loss, running_correct, running_n, carried_seconds, carried_steps = 0, 0, 0, 0, 0
    if run.running then -- a stretch resumed after Ctrl-C goes on from its sums (rank 0 holds them all)
      if main then
        running_loss, running_correct, running_n = run.running.loss, run.running.correct, run.running.n
      end
      carried_seconds, carried_steps, run.running = run.running.seconds or 0, run.running.steps or 0, nil
    end
    -- Steps whose loss and correct count are still on the device: reading a
    -- number back waits for the device, so a GPU run reads every
    -- read_every steps (the host queues the next steps meanwhile) and the
    -- CPU every step. A NaN or infinite loss is reported at its own
    -- iteration either way, and always before a checkpoint could hold it.
    local pending = {}
    -- applied: whether the last pending step's update is in the model already
    -- (a read after its step, or after a replay), or not yet (a read before it)
    read_pending = function(applied)
      if #pending == 0 then return end
      local losses, hits = {}, {}
      for i, step in ipairs(pending) do losses[i], hits[i] = step.loss, step.hits end
      if #pending == 1 then
        losses, hits = {losses[1]:item()}, {hits[1]:item()}
      else -- two reads for the lot (a loss of one element may have any shape)
        losses, hits = lm.stack(losses):reshape(-1):totable(), lm.stack(hits):reshape(-1):totable()
      end
      for i, step in ipairs(pending) do
        local lv = losses[i]
        if not checks.is_finite(lv) then
          -- the updates the model took from this step on (read_every > 1)
          local after = pending[#pending].iteration - step.iteration + (applied and 1 or 0)
          pending = {}
          error(string.format("train: the loss became %s at iteration %d; stopping (the last checkpoint is kept%s)",
            lv ~= lv and "nan" or tostring(lv), step.iteration,
            after > 0 and string.format("; the model in memory took %d more step%s", after, after > 1 and "s" or "")
              or ""), 0)
        end
        running_loss = running_loss + lv * step.n
        running_n = running_n + step.n
        running_correct = running_correct + hits[i]
      end
      pending = {}
    end
    -- graph = true: the step as a replay of a CUDA graph captured at the
    -- second step (the first ran uncaptured, for the optimiser's state and
    -- cuDNN's plans); true when it took the step
    local graph_step
    if opts.graph then
      local g, gx, gy, gloss, ghits, warm
      release_graph = function() if g then g:free() end end
      graph_step = function(x, y)
        if not warm then warm = true return false end
        if not g then
          gx, gy = x:to(device), y:to(device)
          g, gloss, ghits = lm.cuda.graph(function()
            optimizer:zero_grad()
            local output = lm.autocast(autocast or false, model, gx)
            local l = loss(output, gy)
            local hits = lm.no_grad(function() return output:argmax(2):eq(gy):sum() end)
            l:backward()
            optimizer:step()
            return l:detach(), hits
          end)
        else -- (every batch has the first's shape: the shuffled loader drops a short last one)
          gx:copy_(x)
          gy:copy_(y)
        end
        g:replay()
        -- copies: the next replay overwrites the graph's own
        pending[#pending + 1] = {loss = gloss:clone(), hits = ghits:clone(), n = x:size(1),
          iteration = run.iteration + 1}
        if #pending >= read_every then read_pending(true) end
        return true
      end
    end
    local progress = Progress.new(stretch_label(#run.history + 1), period, progress_opts)
    local t_phase = lm.clock()
    local epoch_iter = nil
    while run.iteration < total do
      if not epoch_iter or run.batch >= per_epoch then
        if run.epoch == 0 or run.batch >= per_epoch then
          run.epoch, run.batch = run.epoch + 1, 0
        end
        loader.epoch = run.epoch - 1 -- epoch_iter counts it up: the shuffle seed of epoch run.epoch
        epoch_iter = loader:epoch_iter(run.batch + 1) -- resumes mid-epoch without redrawing
      end
      local x, y = epoch_iter()
      run.batch = run.batch + 1
      -- in the recorded precision whatever the state's mode is now
      local forward = function(input) return lm.autocast(autocast or false, model, input) end
      if not (graph_step and graph_step(x, y)) then -- the ordinary step
        if device ~= "cpu" then x, y = x:to(device), y:to(device) end
        optimizer:zero_grad()
        local output
        if dist and world > 1 then -- dropout masks as one process draws them for the global batch
          output = dist.global_batch_random(loader.batch_first, loader.batch_total, function() return forward(x) end,
            x:size(1))
        else
          output = forward(x)
        end
        local l = loss(output, y)
        pending[#pending + 1] = {loss = l:detach(), n = x:size(1), iteration = run.iteration + 1,
          hits = lm.no_grad(function() return output:argmax(2):eq(y):sum() end)}
        if #pending >= read_every then read_pending() end -- every step on the CPU: before the step applies it
        l:backward()
        if dist then dist.average_gradients(model) end
        optimizer:step()
      end
      run.iteration = run.iteration + 1
      if schedule then schedule:step() end
      collectgarbage("step") -- hand this step's temporaries back to the allocator
      progress:update(1, running_n > 0 and string.format("loss %.4g acc %s lr %.2e", running_loss / running_n,
        fmt_pct(running_correct / running_n), optimizer:lr()) or nil)
      local interrupted = lm._interrupted()
      if dist and world > 1 then -- Ctrl-C reaches the ranks at different steps: stop together
        interrupted = dist.allreduce_(lm.tensor({interrupted and 1 or 0}, 'int32'), 'max')[1] > 0
      end
      local stretch_done = run.iteration % period == 0 or run.iteration == total
      if interrupted or stretch_done then read_pending(true) end -- the sums below are whole
      if interrupted and not stretch_done then
        -- a stretch cut short is no validation: the resumed run finishes it,
        -- from these sums, and records it as an uninterrupted run would
        progress:finish()
        local sums = {running_loss, running_correct, running_n}
        if dist and world > 1 then sums = dist.allreduce_(lm.tensor(sums), 'sum'):totable() end
        run.running = {loss = sums[1], correct = sums[2], n = sums[3], seconds = carried_seconds + lm.clock() - t_phase,
          steps = carried_steps + progress.done}
        if ckpt and main then save_checkpoint(ckpt, run) end
        log(string.format("interrupted at iteration %d: checkpoint written to %s", run.iteration, tostring(ckpt)))
        run.interrupted = true
        return
      end
      if stretch_done then
        local seconds = progress:finish()
        if dist and world > 1 then -- the running numbers of every rank's shard
          local sums = dist.allreduce_(lm.tensor{running_loss, running_correct, running_n}, 'sum'):totable()
          running_loss, running_correct, running_n = sums[1], sums[2], sums[3]
        end
        local record = {iteration = run.iteration, epoch = run.epoch, lr = optimizer:lr(),
          train_loss = running_loss / running_n, train_accuracy = running_correct / running_n,
          seconds = carried_seconds + lm.clock() - t_phase, steps = carried_steps + progress.done}
        carried_seconds, carried_steps = 0, 0
        -- each rank's running statistics moved with its own shard: rank 0's
        -- go everywhere (as torch's DDP broadcasts buffers), so validation,
        -- early stopping and checkpoints see one model
        if dist and world > 1 then dist.broadcast_buffers(model, 0) end
        if opts.val then
          local v = train.evaluate(model, opts.val, {loss = opts.loss, autocast = autocast or false})
          record.val_loss, record.val_accuracy, record.val_per_class, record.val_confusion =
            v.loss, v.accuracy, v.per_class, v.confusion
          -- finite training losses can come with non-finite weights (a NaN gradient):
          -- the checkpoint below must not take them
          local vl = v.loss
          if not checks.is_finite(vl) then
            local broken = 0 -- parameters holding a NaN or an infinity
            for _, p in ipairs(model:parameters()) do
              if not checks.is_finite(p:abs():max():item()) then broken = broken + 1 end
            end
            error(string.format("train: the validation loss became %s at iteration %d; stopping (the last "
              .. "checkpoint is kept%s)", vl ~= vl and "nan" or tostring(vl), run.iteration,
              broken > 0 and string.format("; %d parameter tensor%s of the model in memory hold NaN or "
                .. "infinite values: a gradient was not finite", broken, broken > 1 and "s" or "") or ""), 0)
          end
        end
        run.history[#run.history + 1] = record
        if opts.on_validate then opts.on_validate(record, run) end
        log(string.format("[%d] epoch %d iter %d: train loss %.5f acc %s%s  (%.1f s, %.1f ms/step)",
          #run.history, run.epoch, run.iteration, record.train_loss, fmt_pct(record.train_accuracy),
          opts.val and string.format(" | val loss %.5f acc %s", record.val_loss, fmt_pct(record.val_accuracy)) or "",
          seconds, 1000 * seconds / math.max(progress.done, 1)))
        local stop = false
        if run.stopper and opts.val then
          local before = run.stopper.best
          stop = run.stopper:step(record.val_loss, model)
          if out and main and run.stopper.best ~= before then model:save(out .. "/best.safetensors") end
          if dist and world > 1 then -- one decision: a rank that stopped alone would leave the others waiting
            stop = dist.allreduce_(lm.tensor({stop and 1 or 0}, 'int32'), 'max')[1] > 0
          end
        end
        if ckpt and main then save_checkpoint(ckpt, run) end
        if out and main then train.write_metrics(out, run.history, opts) end
        if interrupted then
          log("interrupted: checkpoint written to " .. tostring(ckpt))
          run.interrupted = true
          return
        end
        if stop then
          log(string.format("early stopping: no better validation loss in %d checks", run.stopper.patience))
          break
        end
        running_loss, running_correct, running_n = 0, 0, 0
        progress = Progress.new(stretch_label(#run.history + 1),
          math.min(period, total - run.iteration), progress_opts)
        t_phase = lm.clock()
      end
    end
  end)
  lm._catch_interrupt(false)
  if release_graph then release_graph() end
  if not ok then error(err, 0) end
  if run.stopper and run.stopper.best_state then
    run.stopper:restore(model)
    log(string.format("restored the best weights (validation loss %.5f)", run.stopper.best))
  end
  model:evaluate()
  return run.history, run
end

--- metrics.json (and learning_curve.png when plotting is available).
function train.write_metrics(out, history, opts)
  checks.string(out, "out", "lm.train.write_metrics")
  checks.table(history, "history", "lm.train.write_metrics")
  opts = checks.options(opts, "lm.train.write_metrics")
  for i, h in ipairs(history) do
    -- a NaN loss comes back from metrics.json (or a checkpoint's history) as nil
    if type(h) ~= "table" or type(h.iteration) ~= "number" or not number_or_nil(h.train_loss)
        or type(h.train_accuracy) ~= "number" then
      error(string.format("lm.train.write_metrics: history[%d] must be a record of lm.train's history "
        .. "{iteration = n, train_loss = x, train_accuracy = a, ...}, got %s", i, checks.shown(h)), 2)
    end
  end
  json.write(out .. "/metrics.json", {history = history, classes = opts.classes})
  local ok, plot = pcall(require, 'lumen.plot')
  if ok and plot.learning_curve then plot.learning_curve(history, out .. "/learning_curve.png") end
end

return setmetatable(train, {__call = function(_, opts) return train.run(opts) end})
