-- Targeted FGSM paths on Net2's map of CIFAR-10 (the paper's Fig. 6 for its
-- second network): from one validation image to every other class, over
-- the estimated error. Needs a trained Net2 (experiments/net2_cifar10.lua)
-- and its map (experiments/introspect_cifar10.lua, same --out as --from).
--   lumen experiments/fgsm_cifar10.lua [--model PATH] [--from DIR] [--out DIR]
--        [--sample I] [--steps N] [--eps E] [--data-dir DIR] [--device cpu|cuda]
-- --sample defaults to the first validation image the network classifies right.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect
local A = require 'lumen.introspect.analyses'
local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {model = "results/net2_cifar10/model.safetensors",
  from = "results/introspect_cifar10",
  out = "results/fgsm_cifar10", sample = 0, steps = 100, eps = 0.01, data_dir = "", device = "cpu", seed = 1,
  width = 1.0},
  "Targeted FGSM on Net2's map: lumen experiments/fgsm_cifar10.lua [options]")
cli.check(opts, {device = {"cpu", "cuda"},
  sample = "count0", steps = "count", eps = "positive", seed = "count0", width = "positive"})
local check_network
opts.width, check_network = study.mapped_network(opts.from, "fgsm_cifar10", opts.width, given.width)
if opts.device ~= "cpu" and not lm.cuda.available() then
  error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0)
end
local missing = study.missing{opts.model, opts.from .. "/autoencoder.safetensors",
  opts.from .. "/estimator.safetensors"}
if missing then
  error(string.format("fgsm_cifar10: %s is missing; train Net2 (experiments/net2_cifar10.lua) and map it\n" ..
    "(experiments/introspect_cifar10.lua --out %s) first", missing, opts.from), 0)
end
lm.mkdir(opts.out)
lm.manual_seed(opts.seed)
local d = lm.data.cifar10{dir = opts.data_dir ~= "" and opts.data_dir or nil, dtype = "uint8"}
-- the run's split (its seed, from its metrics.json): validation images the maps never saw
local _, val_set = lm.data.split(d.train, {fraction = 0.1, seed = study.run_seed(opts.from, "fgsm_cifar10", d.name)})
if opts.sample > val_set.x:size(1) then
  error(string.format("fgsm_cifar10: --sample %d is not a validation image (1..%d)", opts.sample, val_set.x:size(1)), 0)
end
local net = lm.models.net2{width = opts.width}
net:load(opts.model)
check_network(net)
net:to(opts.device)
local recorder = I.Recorder(net, {select = I.elus_after(net, "nn.Linear")}) -- the dense layers
if opts.sample < 1 then -- the first validation image the network gets right
  local pred = lm.no_grad(function()
    net:evaluate()
    return net(lm.data.to_float(val_set.x:narrow(1, 1, math.min(100, val_set.x:size(1)))):to(opts.device))
      :argmax(2):to('cpu')
  end):totable()
  for i, p in ipairs(pred) do
    if p == val_set.y[i] then opts.sample = i break end
  end
  if opts.sample < 1 then
    error(string.format("fgsm_cifar10: none of the first %d validation images is classified right; give --sample I",
      #pred), 0)
  end
end
local x = lm.data.to_float(val_set.x:narrow(1, opts.sample, 1))
local vae, est = study.load_map(opts.from, recorder, x)
local label = val_set.y[opts.sample]
local t = lm.clock()
local result = A.fgsm_figure(opts.out .. "/fgsm_paths.png", {net = net, recorder = recorder, vae = vae, est = est,
  x = x, label = label, classes = d.classes, steps = opts.steps, eps = opts.eps,
  title = string.format("Net2, targeted FGSM from validation image %d (a %s): %d steps of %.3g", opts.sample,
    d.classes[label], opts.steps, opts.eps)})
result.sample, result.seconds = opts.sample, lm.clock() - t
lm.json.write(opts.out .. "/fgsm.json", result)
print(string.format("FGSM from validation image %d (a %s): %.0f %% of the targets reached (%.1f s); %s/fgsm_paths.png",
  opts.sample, d.classes[label], 100 * result.success_rate, result.seconds, opts.out))
return result
