-- Wrong arguments to the data, training, plotting, model, optimiser and
-- JSON functions: each is a Lua error that names the function and what was
-- wrong, raised at the entry and pointing at the caller's line (this file),
-- never Lua's own "attempt to index ..." from inside Lumen.
local lm = require 'lumen'
local json = lm.json
local T = lm.data.transforms

local refused = dofile("tests/helpers/refused.lua")("arg_checks_data_spec.lua", raises, truthy)

local function set_of(n)
  return {x = lm.randn(n, 4), y = lm.tensor({1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, 'int32'):narrow(1, 1, n)}
end

local function sgd(net) return lm.optim.SGD(net:parameters(), {lr = 0.1}) end

describe("lm.data argument checks", function()
  local set = set_of(10)

  it("checks data sets and counts", function()
    refused(function() lm.data.head(3, 2) end, "lm.data.head: set must be a data set {x = tensor, y = tensor}, got 3")
    refused(function() lm.data.head({x = lm.zeros(2)}, 2) end, "lm.data.head: set must be a data set {x = tensor, "
      .. "y = tensor}, got a table without a tensor y")
    refused(function() lm.data.head(set, "2") end, 'lm.data.head: n must be an integer >= 0, got "2"')
    refused(function() lm.data.tail(true, 2) end,
      "lm.data.tail: set must be a data set {x = tensor, y = tensor}, got true")
    refused(function() lm.data.tail(set, -1) end, "lm.data.tail: n must be an integer >= 0, got -1")
    refused(function() lm.data.split(nil) end,
      "lm.data.split: set must be a data set {x = tensor, y = tensor}, got nil")
    refused(function() lm.data.split(set, 0.5) end, "lm.data.split: options must be a table, got 0.5")
    refused(function() lm.data.split(set, {fractoin = 0.25}) end,
      "lm.data.split: unknown option 'fractoin'; did you mean fraction? (known: fraction, seed)")
    refused(function() lm.data.split(set, {fraction = "half"}) end,
      'lm.data.split: fraction must be a number in (0, 1), got "half"')
    eq(lm.data.head(set, 3).x:size(1), 3)
    eq(lm.data.tail(set, 20).x:size(1), 10)
  end)

  it("checks tensors and options of the readers", function()
    refused(function() lm.data.to_float(3) end, "lm.data.to_float: x must be a tensor, got 3")
    refused(function() lm.data.one_hot(nil, 3) end, "lm.data.one_hot: labels must be a tensor, got nil")
    refused(function() lm.data.one_hot(lm.tensor({1, 2}, 'int32'), "3") end,
      'lm.data.one_hot: classes must be a positive integer, got "3"')
    refused(function() lm.data.mnist(true) end, "lm.data.mnist: options must be a table, got true")
    refused(function() lm.data.mnist{dir = 3} end, "lm.data.mnist: dir must be a folder path (a string), got 3")
    refused(function() lm.data.cifar10(7) end, "lm.data.cifar10: options must be a table, got 7")
    refused(function() lm.data.cifar10{dir = {}} end,
      "lm.data.cifar10: dir must be a folder path (a string), got a table")
    refused(function() lm.data.search_path(false) end,
      "lm.data.search_path: dir must be a folder path (a string), got false")
    refused(function() lm.data.image_folder(".", 3) end, "lm.data.image_folder: options must be a table, got 3")
    refused(function() lm.data.image_folder(".", {transform = 3}) end,
      "lm.data.image_folder: transform must be a function, got 3")
    refused(function() lm.data.load_all(3) end,
      "lm.data.load_all: set must be an image folder (lm.data.image_folder), got 3")
    refused(function() lm.data.load_all({kind = "image_folder"}, {batch_size = 0}) end,
      "lm.data.load_all: batch_size must be a positive integer, got 0")
  end)

  it("checks a loader's options and epoch_iter's first batch", function()
    refused(function() lm.data.loader(set, true) end, "lm.data.loader: options must be a table, got true")
    refused(function() lm.data.loader(set, {noise = 3}) end,
      "lm.data.loader: noise must be {sigma = s} or {sigma_max = m} (a number >= 0), got 3")
    refused(function() lm.data.loader(set, {noise = {}}) end, "lm.data.loader: noise must be {sigma = s}")
    refused(function() lm.data.loader(set, {clip = 1}) end, "lm.data.loader: clip must be {lo, hi} (numbers), got 1")
    refused(function() lm.data.loader(set, {transform = "flip"}) end,
      'lm.data.loader: transform must be a function, got "flip"')
    refused(function() lm.data.loader(set, {seed = 0.5}) end, "lm.data.loader: seed must be an integer, got 0.5")
    refused(function() lm.data.loader(set, {shard = 2}) end, "lm.data.loader: shard must be {index = 0..count-1")
    local loader = lm.data.loader(set, {batch_size = 4})
    refused(function() loader:epoch_iter("next") end,
      'loader:epoch_iter: first (the batch to start at) must be an integer >= 1, got "next"')
    refused(function() loader:epoch_iter(0) end, "loader:epoch_iter: first (the batch to start at) must be")
    local n = 0
    for _ in loader:epoch_iter() do n = n + 1 end
    eq(n, 2)
  end)

  it("checks the transforms' arguments when they are made", function()
    refused(function() T.random_crop(8, 4) end, "lm.data.transforms.random_crop: options must be a table, got 4")
    refused(function() T.random_crop(8, {padding = -1}) end,
      "lm.data.transforms.random_crop: padding must be an integer >= 0, got -1")
    refused(function() T.random_crop({8, 0}) end,
      "lm.data.transforms.random_crop: size must be positive integers, got 0")
    refused(function() T.horizontal_flip("half") end,
      'lm.data.transforms.horizontal_flip: p must be a probability in [0, 1], got "half"')
    refused(function() T.normalize("a", 1) end,
      'lm.data.transforms.normalize: mean must be a number or a list of numbers')
    refused(function() T.normalize({0.5}, {}) end,
      "lm.data.transforms.normalize: std must be a number or a list of numbers")
    refused(function() T.compose(nil) end, "lm.data.transforms.compose: list must be a table, got nil")
    refused(function() T.batch_seed(1, 0.5, 1) end, "lm.data.transforms.batch_seed: epoch must be an integer, got 0.5")
    refused(function() T.apply_seeded(3, lm.zeros(1, 1, 2, 2), 1) end,
      "lm.data.transforms.apply_seeded: transform must be a function, got 3")
    refused(function() T.apply_seeded(function(x) return x end, lm.zeros(1), "s") end,
      'lm.data.transforms.apply_seeded: seed must be an integer, got "s"')
    eq(T.batch_seed(1, 2.0, 3), T.batch_seed(1, 2, 3), "a whole float is its integer")
  end)
end)

describe("lm.dist argument checks (a world of one)", function()
  local net = lm.nn.Linear(3, 2)
  it("checks modules, ranks and options", function()
    refused(function() lm.dist.broadcast_buffers(true) end,
      "lm.dist.broadcast_buffers: net must be a module (an lm.nn layer or model), got true")
    refused(function() lm.dist.broadcast_parameters(net, 0, print) end,
      "lm.dist.broadcast_parameters: options must be a table, got a function")
    refused(function() lm.dist.broadcast_parameters({lm.zeros(2), 3}) end,
      "lm.dist.broadcast_parameters: entry 2 of the list is 3, expected a tensor")
    refused(function() lm.dist.broadcast_parameters(net, "0") end, "lm.dist.broadcast_parameters: root must be a rank")
    refused(function() lm.dist.broadcast_rng_state(1) end,
      "lm.dist.broadcast_rng_state: root must be a rank, an integer in [0, 1), got 1")
    refused(function() lm.dist.average_gradients(net, {bucket_bytes = -1}) end,
      "lm.dist.average_gradients: bucket_bytes must be a positive integer, got -1")
    lm.dist.broadcast_parameters(net, 0, {bucket_bytes = 1024})
    lm.dist.broadcast_buffers(net)
  end)

  it("checks counts, row lists and callbacks", function()
    refused(function() lm.dist.part({}) end, "lm.dist.part: n must be an integer >= 0, got a table")
    refused(function() lm.dist.part(10, 2, 2) end, "lm.dist.part: rank 2 of 2 ranks (ranks are 0-based)")
    refused(function() lm.dist.row_owners(print) end, "lm.dist.row_owners: rows must be a tensor, got a function")
    refused(function() lm.dist.row_owners(lm.zeros(2, 2):int()) end,
      "lm.dist.row_owners: rows must be a list of row numbers [n], got a tensor [2x2]")
    refused(function() lm.dist.global_batch_random(0, 4, "forward") end,
      'lm.dist.global_batch_random: fn must be a function, got "forward"')
    refused(function() lm.dist.global_batch_random(nil, 4, print) end,
      "lm.dist.global_batch_random: first must be an integer >= 0, got nil")
    refused(function() lm.dist.all_gather_rows(3) end, "lm.dist.all_gather_rows: t must be a tensor, got 3")
    local lo, hi = lm.dist.part(10)
    eq(lo, 0); eq(hi, 10)
    eq(lm.dist.global_batch_random(0, 4, function() return 7 end, 4), 7)
  end)
end)

describe("lm.train argument checks", function()
  local net = lm.nn.Linear(4, 2)
  local set = set_of(10)

  it("checks lm.evaluate's model, set and options", function()
    refused(function() lm.evaluate(net, nil) end,
      "lm.evaluate: set must be a data set {x = tensor, y = tensor}, got nil")
    refused(function() lm.train.evaluate(3, set) end,
      "lm.evaluate: model must be a module (an lm.nn layer or model), got 3")
    refused(function() lm.evaluate(net, set, print) end, "lm.evaluate: options must be a table, got a function")
    refused(function() lm.evaluate(net, set, {batch_size = 0}) end,
      "lm.evaluate: batch_size must be a positive integer, got 0")
    refused(function() lm.evaluate(net, {x = lm.zeros(3, 4), y = lm.zeros(2):int()}) end,
      "lm.evaluate: set has inputs 3x4 and labels 2: a data set holds one label a sample")
    eq(lm.evaluate(net, set).n, 10)
  end)

  it("checks lm.train's options before it starts", function()
    refused(function() lm.train.run(nil) end,
      "lm.train: options must be a table {model = ..., optimizer = ..., train = ...}, got nil")
    refused(function() lm.train(3) end, "lm.train: options must be a table")
    refused(function() lm.train{model = net} end, "train: needs model, optimizer and train")
    refused(function() lm.train{model = 3, optimizer = sgd(net), train = set} end,
      "lm.train: model must be a module (an lm.nn layer or model), got 3")
    refused(function() lm.train{model = net, optimizer = {}, train = set} end,
      "lm.train: optimizer must be an optimiser (lm.optim.SGD, Adam, ...), got a table")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = "train.csv"} end,
      'lm.train: train must be a data set {x = tensor, y = tensor}, got "train.csv"')
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, val = 1} end,
      "lm.train: val must be a data set {x = tensor, y = tensor}, got 1")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, epochs = "2"} end,
      'lm.train: epochs must be an integer >= 0, got "2"')
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, on_validate = 1} end,
      "lm.train: on_validate must be a function, got 1")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, out = true} end,
      "lm.train: out must be a folder path (a string), got true")
    -- the options lm.train hands to its loader are refused as lm.train's, at the caller's line
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, noise = "x"} end,
      'lm.train: noise must be {sigma = s} or {sigma_max = m} (a number >= 0), got "x"')
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, clip = 1} end,
      "lm.train: clip must be {lo, hi} (numbers), got 1")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, transform = 3} end,
      "lm.train: transform must be a function, got 3")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, schedule = 0.1} end,
      "lm.train: schedule must be a schedule (lm.optim.CyclicLR, StepLR, CosineAnnealingLR, ...), got 0.1")
    refused(function() lm.train{model = net, optimizer = sgd(net), train = set, cycles = 2} end,
      "train: cycles needs a schedule (lm.optim.CyclicLR)")
    -- cycles are CyclicLR's: torch's schedules count epochs
    local opt = sgd(net)
    refused(function()
      lm.train{model = net, optimizer = opt, train = set, schedule = lm.optim.StepLR(opt, {step_size = 4}), cycles = 2}
    end, "lm.train: cycles counts the cycles of a CyclicLR schedule; the StepLR schedule has none (give epochs "
      .. "instead)")
  end)

  it("checks device_of and write_metrics", function()
    refused(function() lm.train.device_of(3) end,
      "lm.train.device_of: model must be a module (an lm.nn layer or model), got 3")
    eq(lm.train.device_of(net), "cpu")
    eq(lm.train.device_of({parameters = function() return {} end}), "cpu", "any table with parameters()")
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    refused(function() lm.train.write_metrics({}, {}) end, "lm.train.write_metrics: out must be a string, got a table")
    refused(function() lm.train.write_metrics(dir, 3) end, "lm.train.write_metrics: history must be a table, got 3")
    refused(function() lm.train.write_metrics(dir, {}, 3) end, "lm.train.write_metrics: options must be a table, got 3")
    refused(function() lm.train.write_metrics(dir, {{iteration = 1}}) end,
      "lm.train.write_metrics: history[1] must be a record of lm.train's history")
    local classes = {"a"}
    classes[2] = classes
    raises(function() lm.train.write_metrics(dir, {}, {classes = classes}) end,
      "json: the table at value.classes contains itself (at value.classes[2])")
    lm.train.write_metrics(dir, {}, {classes = {"a", "b"}})
    local f = assert(io.open(dir .. "/metrics.json"))
    eq(json.decode(f:read("a")).classes[2], "b")
    f:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)

describe("lm.models and lm.optim argument checks", function()
  it("checks models' arguments", function()
    refused(function() lm.models.count_parameters(print) end,
      "lm.models.count_parameters: model must be a module (an lm.nn layer or model), got a function")
    refused(function() lm.models.torchvision_vit_rename(3) end,
      "lm.models.torchvision_vit_rename: name must be a string, got 3")
    eq(lm.models.count_parameters(lm.nn.Linear(3, 2)), 8)
  end)

  it("checks schedules, early stopping and optimiser states", function()
    local net = lm.nn.Linear(3, 2)
    local opt = sgd(net)
    refused(function() lm.optim.CyclicLR(3, {max = 1, period = 4}) end,
      "lm.optim.CyclicLR: optimizer must be an optimiser (lm.optim.SGD, Adam, ...), got 3")
    refused(function() lm.optim.CyclicLR(opt, 4) end, "lm.optim.CyclicLR: options must be a table, got 4")
    refused(function() lm.optim.CyclicLR(opt, {max = 1, period = 4, min = "0"}) end,
      'lm.optim.CyclicLR: min must be a number, got "0"')
    local schedule = lm.optim.CyclicLR(opt, {max = 0.1, period = 4})
    refused(function() schedule:lr_at() end, "schedule:lr_at: iteration must be an integer >= 0, got nil")
    refused(function() schedule:lr_at(-1) end, "schedule:lr_at: iteration must be an integer >= 0, got -1")
    near(schedule:lr_at(2), 0.1)
    refused(function() lm.optim.EarlyStopping(5) end, "lm.optim.EarlyStopping: options must be a table, got 5")
    local stopper = lm.optim.EarlyStopping{patience = 2}
    refused(function() stopper:step(1.0, 3) end,
      "stopper:step: model must be a module (an lm.nn layer or model), got 3")
    refused(function() stopper:restore("best") end, 'stopper:restore: model must be a module')
    eq(stopper:step(1.0, net), false)
    local sd = opt:state_dict()
    refused(function() opt:load_state_dict({settings = sd.settings, tensors = {["state.1.1"] = 3}}) end,
      "load_state_dict: unexpected state 'state.1.1'")
    local momentum = lm.optim.SGD(net:parameters(), {lr = 0.1, momentum = 0.9})
    local msd = momentum:state_dict()
    refused(function() momentum:load_state_dict({settings = msd.settings, tensors = {["state.1.1"] = 3,
      ["state.2.1"] = lm.zeros(2)}}) end, "load_state_dict: state 'state.1.1' must be a tensor, got 3")
    local settings = {}
    for k, v in pairs(msd.settings) do settings[k] = v end
    settings.step = "7"
    refused(function() momentum:load_state_dict({settings = settings, tensors = msd.tensors}) end,
      'load_state_dict: settings.step must be an integer (the count of steps), got "7"')
    momentum:load_state_dict(msd)
  end)

  -- torch's closed-form schedules: the whole message, at the caller's line
  local function exactly(fn, msg)
    local err = refused(fn, msg)
    eq((err:gsub("^[^\n]-:%d+: ", "")), msg)
  end

  it("checks the options of torch's schedules, naming the function and the option", function()
    local net = lm.nn.Linear(3, 2)
    local opt = sgd(net)
    local O = lm.optim
    for _, name in ipairs{"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "LambdaLR"} do
      exactly(function() O[name](3, {}) end,
        "lm.optim." .. name .. ": optimizer must be an optimiser (lm.optim.SGD, Adam, ...), got 3")
      exactly(function() O[name](opt, 5) end, "lm.optim." .. name .. ": options must be a table, got 5")
    end
    exactly(function() O.StepLR(opt, {step = 3}) end,
      "lm.optim.StepLR: unknown option 'step'; did you mean step_size? (known: gamma, step_size)")
    exactly(function() O.StepLR(opt) end, "lm.optim.StepLR: step_size must be a positive integer, got nil")
    exactly(function() O.StepLR(opt, {step_size = 0}) end,
      "lm.optim.StepLR: step_size must be a positive integer, got 0")
    exactly(function() O.StepLR(opt, {step_size = 2.5}) end,
      "lm.optim.StepLR: step_size must be a positive integer, got 2.5")
    exactly(function() O.StepLR(opt, {step_size = 3, gamma = 0 / 0}) end,
      "lm.optim.StepLR: gamma must be a finite number >= 0, got nan")
    exactly(function() O.StepLR(opt, {step_size = 3, gamma = -0.5}) end,
      "lm.optim.StepLR: gamma must be a finite number >= 0, got -0.5")
    exactly(function() O.MultiStepLR(opt, {milestone = {3}}) end,
      "lm.optim.MultiStepLR: unknown option 'milestone'; did you mean milestones? (known: gamma, milestones)")
    exactly(function() O.MultiStepLR(opt, {milestones = {}}) end, "lm.optim.MultiStepLR: milestones must be "
      .. "a non-empty list of increasing positive integers (iterations), got a table")
    exactly(function() O.MultiStepLR(opt, {milestones = {10, 5}}) end, "lm.optim.MultiStepLR: milestones must "
      .. "be a non-empty list of increasing positive integers (iterations), got milestones[2] = 5 after 10")
    exactly(function() O.MultiStepLR(opt, {milestones = {10, 10}}) end, "lm.optim.MultiStepLR: milestones must "
      .. "be a non-empty list of increasing positive integers (iterations), got milestones[2] = 10 after 10")
    exactly(function() O.MultiStepLR(opt, {milestones = {0, 3}}) end, "lm.optim.MultiStepLR: milestones must "
      .. "be a non-empty list of increasing positive integers (iterations), got milestones[1] = 0")
    exactly(function() O.MultiStepLR(opt, {milestones = {2, "5"}}) end, "lm.optim.MultiStepLR: milestones must "
      .. 'be a non-empty list of increasing positive integers (iterations), got milestones[2] = "5"')
    exactly(function() O.ExponentialLR(opt) end, "lm.optim.ExponentialLR: gamma must be a finite number >= 0, got nil")
    exactly(function() O.ExponentialLR(opt, {gamma = math.huge}) end,
      "lm.optim.ExponentialLR: gamma must be a finite number >= 0, got inf")
    exactly(function() O.CosineAnnealingLR(opt, {T_max = 10, eta = 0}) end,
      "lm.optim.CosineAnnealingLR: unknown option 'eta'; did you mean eta_min? (known: T_max, eta_min)")
    exactly(function() O.CosineAnnealingLR(opt, {T_max = -1}) end,
      "lm.optim.CosineAnnealingLR: T_max must be a positive integer, got -1")
    exactly(function() O.CosineAnnealingLR(opt, {T_max = 10, eta_min = "0"}) end,
      'lm.optim.CosineAnnealingLR: eta_min must be a finite number >= 0, got "0"')
    exactly(function() O.LinearLR(opt, {start_factor = 0}) end,
      "lm.optim.LinearLR: start_factor must be a number in (0, 1], got 0")
    exactly(function() O.LinearLR(opt, {end_factor = 1.5}) end,
      "lm.optim.LinearLR: end_factor must be a number in [0, 1], got 1.5")
    exactly(function() O.LinearLR(opt, {total_iters = 0}) end,
      "lm.optim.LinearLR: total_iters must be a positive integer, got 0")
    exactly(function() O.LambdaLR(opt) end, "lm.optim.LambdaLR: lr_lambda must be a function of the iteration, got nil")
    exactly(function() O.LambdaLR(opt, {lr_lambda = 0.5}) end,
      "lm.optim.LambdaLR: lr_lambda must be a function of the iteration, got 0.5")
    eq(opt:lr(), 0.1, "a refused schedule leaves the optimiser's rate")
    -- a whole float counts as its integer (30 * #loader / 2)
    eq(O.StepLR(opt, {step_size = 4.0}).step_size, 4)
  end)

  it("reports a bad rate of LambdaLR at the iteration that gives it, and a bad iteration", function()
    local opt = sgd(lm.nn.Linear(3, 2))
    exactly(function() lm.optim.LambdaLR(opt, {lr_lambda = function() return "1" end}) end,
      'lm.optim.LambdaLR: lr_lambda(0) must return a finite number (the factor of the base rate at iteration 0), '
      .. 'got "1"')
    local s = lm.optim.LambdaLR(opt, {lr_lambda = function(t) return t < 3 and 1 / (t + 1) or 0 / 0 end})
    s:step()
    s:step()
    near(opt:lr(), 0.1 / 3)
    exactly(function() s:step() end, "lm.optim.LambdaLR: lr_lambda(3) must return a finite number (the factor "
      .. "of the base rate at iteration 3), got nan")
    eq(s.iteration, 2, "a refused step does not advance")
    near(opt:lr(), 0.1 / 3)
    exactly(function() s:lr_at(7) end, "lm.optim.LambdaLR: lr_lambda(7) must return a finite number (the factor "
      .. "of the base rate at iteration 7), got nan")
    -- the base rate is the optimiser's when the schedule is made: 0.1 / 3 here
    local neg = lm.optim.LambdaLR(opt, {lr_lambda = function(t) return 1 - t end})
    exactly(function() neg:lr_at(2) end, "lm.optim.LambdaLR: the learning rate at iteration 2 would be "
      .. "-0.033333333333333 (a rate must be a finite number >= 0)")
    exactly(function() s:lr_at(-1) end, "schedule:lr_at: iteration must be an integer >= 0, got -1")
    exactly(function() s:lr_at(1.5) end, "schedule:lr_at: iteration must be an integer >= 0, got 1.5")
    local e = lm.optim.ExponentialLR(opt, {gamma = 1e10})
    exactly(function() e:lr_at(40) end, "lm.optim.ExponentialLR: the learning rate at iteration 40 would be inf "
      .. "(a rate must be a finite number >= 0)")
  end)

  it("refuses a schedule's step inside a CUDA graph capture", function()
    local opt = sgd(lm.nn.Linear(3, 2))
    local s = lm.optim.StepLR(opt, {step_size = 2})
    local clr = lm.optim.CyclicLR(opt, {max = 0.1, period = 4})
    local capturing = lm.cuda.capturing
    lm.cuda.capturing = function() return true end -- as inside lm.cuda.graph's captured function
    local ok, err = pcall(function()
      exactly(function() s:step() end, "lm.optim.StepLR: step the schedule outside the function a CUDA graph "
        .. "captures (before each replay, as lm.train does): a replay does not run it")
      exactly(function() clr:step() end, "CyclicLR: step the schedule outside the function a CUDA graph "
        .. "captures (before each replay, as lm.train does): a replay does not run it")
    end)
    lm.cuda.capturing = capturing
    if not ok then error(err, 0) end
    eq(s.iteration, 0)
    s:step()
    eq(s.iteration, 1)
  end)
end)

describe("lm.plot argument checks", function()
  it("checks colours, ticks and figures", function()
    refused(function() lm.plot.rgba("red", 0, 0) end, 'lm.plot.rgba: r must be a number, got "red"')
    refused(function() lm.plot.with_alpha(0.5, 1) end,
      "lm.plot.with_alpha: color must be a colour 0xRRGGBBAA (an integer, lm.plot.rgba), got 0.5")
    refused(function() lm.plot.viridis(print) end, "lm.plot.viridis: t must be a number, got a function")
    refused(function() lm.plot.ticks(nil, 1) end, "lm.plot.ticks: lo must be a finite number, got nil")
    refused(function() lm.plot.ticks(0, 1 / 0) end, "lm.plot.ticks: hi must be a finite number, got inf")
    refused(function() lm.plot.ticks(0, 1, 0) end,
      "lm.plot.ticks: n must be a number >= 1 (about how many ticks), got 0")
    refused(function() lm.plot.tick_label(1, 0) end, "lm.plot.tick_label: step must be a finite number > 0, got 0")
    refused(function() lm.plot.figure(3) end, "lm.plot.figure: options must be a table, got 3")
    refused(function() lm.plot.figure{width = 0} end,
      "lm.plot.figure: width must be a positive integer (pixels), got 0")
    refused(function() lm.plot.learning_curve(print, "x.png") end,
      "lm.plot.learning_curve: history must be a table, got a function")
    refused(function() lm.plot.learning_curve({3}, "x.png") end,
      "lm.plot.learning_curve: history[1] must be a record of lm.train's history")
    same(lm.plot.ticks(0, 1, 5), {0, 0.2, 0.4, 0.6, 0.8, 1}, 1e-12)
  end)

  it("checks a figure's methods", function()
    local fig = lm.plot.figure{width = 64, height = 48}
    refused(function() fig:axes(true) end, "fig:axes: options must be a table, got true")
    refused(function() fig:axes{xlim = {2, 1}} end,
      "fig:axes: xlim must be {lo, hi} (finite numbers, lo <= hi), got a table")
    refused(function() fig:axes{rect = 3} end, "fig:axes: rect must be {x, y, w, h} (numbers, pixels), got 3")
    refused(function() fig:axes{xlabel = {}} end, "fig:axes: xlabel must be a string, got a table")
    refused(function() fig:grid(0, 2) end, "fig:grid: rows must be a positive integer, got 0")
    refused(function() fig:image(0, 0, "cat.png") end, 'fig:image: the image must be a tensor, got "cat.png"')
    refused(function() fig:image_grid(0, 0, lm.zeros(4)) end,
      "fig:image_grid: images must be [N, H, W] or [N, 3, H, W]")
    refused(function() fig:text(0, 0, {}) end, "fig:text: the text must be a string, got a table")
    refused(function() fig:text(0, 0, "a", 12) end, "fig:text: options must be a table, got 12")
    refused(function() fig:save(3) end, "fig:save: path must be a string, got 3")
    refused(function() fig:save("a\0b.png") end, "fig:save: the path contains a NUL byte")
    refused(function() lm.plot.figure{widht = 100} end, "lm.plot.figure: unknown option 'widht'; did you mean width?")
    -- a path that cannot be written: the caller's error, at its line, and the folder is left as it was
    local dir = os.tmpname()
    os.remove(dir)
    lm.mkdir(dir)
    refused(function() fig:save(dir) end, "fig:save: cannot move the new file into '" .. dir .. "'")
    eq(#lm.list_dir(dir), 0)
    os.remove(dir)
  end)

  it("checks an axes' methods", function()
    local fig = lm.plot.figure{width = 64, height = 48}
    local ax = fig:axes{}
    refused(function() ax:line(3, {1}) end, "ax:line: xs must be a list of numbers or a tensor, got 3")
    refused(function() ax:line({1, 2}, {1}) end, "ax:line: 2 xs but only 1 ys (one y for each x)")
    refused(function() ax:line({1}, {1}, {color = "red"}) end,
      'ax:line: color must be a colour 0xRRGGBBAA (an integer, lm.plot.rgba), got "red"')
    refused(function() ax:scatter({1}, {"a"}) end, 'ax:scatter: ys[1] must be a number, got "a"')
    refused(function() ax:scatter({1}, {1}, {colors = {true}}) end, "ax:scatter: colors[1] must be a colour")
    refused(function() ax:arrow(0, nil, 1, 1) end, "ax:arrow: y0 must be a number, got nil")
    refused(function() ax:heatmap(3) end,
      "ax:heatmap: values must be a matrix: rows of numbers, or a 2-d tensor, got 3")
    refused(function() ax:heatmap({{1, 2}, {3}}) end, "ax:heatmap: row 2 of values has 1 values, row 1 has 2")
    refused(function() ax:heatmap({{1, "a"}}) end, 'ax:heatmap: values must be numbers, got "a" in column 2')
    refused(function() ax:heatmap({{1}}, {cmap = 1}) end, "ax:heatmap: cmap must be a function, got 1")
    refused(function() ax:violin("left", {1, 2}) end, 'ax:violin: position must be a number, got "left"')
    refused(function() ax:violin(1, 3) end, "ax:violin: values must be a list of numbers or a tensor, got 3")
    refused(function() ax:text(0, 0, nil) end, "ax:text: the text must be a string, got nil")
    refused(function() ax:legend(3) end, "ax:legend: entries must be a list of {label, colour} entries, got 3")
    refused(function() ax:legend(nil, "middle") end, "ax:legend: where must be 'upper right', 'upper left'")
    refused(function() ax:categories(3) end, "ax:categories: names must be a table, got 3")
    refused(function() ax:to_pixel("a", 1) end, 'ax:to_pixel: x must be a number, got "a"')
    refused(function() ax:render(io.stdout) end, "ax:render: canvas must be a canvas")
    -- the checks let right calls through
    ax:line(lm.tensor{1, 2, 3}, {1, 4, 9}, {label = "sq", color = lm.plot.rgba(1, 0, 0)})
    refused(function() ax:heatmap({{1}}, {colorbar = true}) end, "ax:heatmap: colorbar must be a string, got true")
    ax:heatmap(lm.zeros(2, 3), {xlim = {0, 1}, ylim = {0, 1}, colorbar = "v", vmax = lm.tensor(2):max()})
    eq(ax.colorbar.vmax, 2, "a one-element tensor as vmax is its value")
    ax:legend({{"extra", 0x000000FF}}, "lower left")
  end)
end)

describe("json argument checks", function()
  it("refuses a table that contains itself, at any depth and with an indent", function()
    local t = {1, 2}
    t[3] = t
    refused(function() json.encode(t) end, "json: the table at value contains itself (at value[3])")
    local doc = {history = {{loss = 1}}}
    doc.history[1].back = doc.history
    refused(function() json.encode(doc, {indent = "  "}) end,
      "json: the table at value.history contains itself (at value.history[1].back)")
    refused(function() json.encode_parts(doc) end, "contains itself")
    local path = os.tmpname()
    refused(function() json.write(path, doc) end, "contains itself")
    local shared = {1}
    eq(json.encode({a = shared, b = shared}), '{"a":[1],"b":[1]}', "a table met twice, not inside itself, is fine")
  end)

  it("checks options and text", function()
    refused(function() json.encode({}, 3) end, "lm.json.encode: options must be a table, got 3")
    refused(function() json.encode({}, {indent = 2}) end,
      'lm.json.encode: indent must be a string (such as "  "), got 2')
    refused(function() json.encode_parts({}, true) end, "lm.json.encode_parts: options must be a table, got true")
    refused(function() json.encode({f = print}) end, "json: cannot encode a function")
    refused(function() json.decode(3) end, "lm.json.decode: text must be a string, got 3")
    refused(function() json.write(3, {}) end, "lm.json.write: path must be a string, got 3")
  end)
end)

describe("values that used to work keep working", function()
  it("takes whole floats as counts and a NaN history read back from JSON", function()
    local net = lm.nn.Sequential(lm.nn.Linear(4, 2))
    local set = set_of(8)
    -- batch sizes and epochs from a division are floats with an integer's value
    eq(lm.evaluate(net, set, {batch_size = 4.0}).accuracy >= 0, true)
    local history = lm.train{model = net, optimizer = sgd(net), train = set, epochs = 1.0, batch_size = 4,
      quiet = true}
    eq(#history >= 1, true)
    eq(lm.nn.functional.group_norm(lm.randn(2, 4, 3), 2.0):shape_string(), "2x4x3")
    -- a diverged run's NaN loss is null in metrics.json and nil when read back
    local back = json.decode(json.encode{history = {{iteration = 1, train_loss = 0 / 0, train_accuracy = 0.1}}})
    local out = os.tmpname()
    os.remove(out)
    lm.mkdir(out)
    lm.train.write_metrics(out, back.history)
    truthy(io.open(out .. "/metrics.json") ~= nil, "metrics.json written")
    os.execute("rm -rf '" .. out .. "'")
  end)
end)
