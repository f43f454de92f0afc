-- Self-introspection of the paper's Net2 on CIFAR-10: the same stages as
-- experiments/introspect_mnist.lua (lumen.introspect.study) over a Net2
-- trained by experiments/net2_cifar10.lua (a GPU's work: pass its
-- model.safetensors with --model).
--   lumen experiments/introspect_cifar10.lua [--model PATH] [--device cpu|cuda]
--        [--subset N] [--data-dir DIR] [--out DIR] [--fresh] [--seed S]
--        [--threads T] [--ae-epochs N] [--est-epochs N] [--mmd-weight W]
--        [--bandwidths B1,B2,..]
--
-- Recorded: the outputs of Net2's dense layers (docs/design.md), the ELUs after
-- its three Linear(512): 1,536 values a sample. The map is learned on the
-- training split (the first --subset images of it when given: recording
-- all 45,000 through the convolutions is minutes of CPU time) and drawn for
-- the seeded 10 % validation split, which the classifier never trained on;
-- the 1,000 available test images give the classifier's test accuracy.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local I = lm.introspect

local opts = cli.parse(arg, {model = "results/net2_cifar10/model.safetensors", device = "cpu", subset = 0,
  data_dir = "", out = "results/introspect_cifar10", fresh = false, seed = 1, threads = 0, ae_epochs = 20,
  est_epochs = 20, mmd_weight = 500, bandwidths = "0.1,1,10,100,1000", width = 1.0},
  "Self-introspection of Net2: lumen experiments/introspect_cifar10.lua [options]")
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
lm.mkdir(opts.out)
if opts.fresh then -- the checkpoints and recordings study.run would reuse or rewrite
  for _, name in ipairs{"autoencoder", "estimator", "recording_train", "recording_test"} do
    os.remove(opts.out .. "/" .. name .. ".safetensors")
  end
end
lm.manual_seed(opts.seed)
if opts.device ~= "cpu" and not lm.cuda.available() then
  error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0)
end
local f = io.open(opts.model, "rb")
if not f then
  error(string.format("introspect_cifar10: no trained Net2 at %s; train one first with\n" ..
    "  lumen experiments/net2_cifar10.lua --device cuda\n(or pass --model PATH)", opts.model), 0)
end
f:close()

local d = lm.data.cifar10{dir = opts.data_dir ~= "" and opts.data_dir or nil}
-- the split net2_cifar10.lua trained on (same seed), so validation images are unseen
local train_set, val_set = lm.data.split(d.train, {fraction = 0.1, seed = opts.seed})
if opts.subset > 0 then train_set = lm.data.head(train_set, opts.subset) end
print(string.format("CIFAR-10 from %s: recording %d training and %d validation images", d.folder,
  train_set.x:size(1), val_set.x:size(1)))

local net = lm.models.net2{width = opts.width}
net:load(opts.model)
net:to(opts.device)
local modules = net:modules()
local recorder = I.Recorder(net, {select = function(m, i)
  return m.__name == "nn.ELU" and modules[i - 1].__name == "nn.Linear" -- the dense layers
end})
local test_accuracy = d.test and lm.evaluate(net, d.test).accuracy
print(string.format("Net2 from %s: %s accuracy %.2f %%", opts.model, d.test_note or "test",
  100 * (test_accuracy or 0)))

local bw = {}
for v in opts.bandwidths:gmatch("[^,]+") do bw[#bw + 1] = tonumber(v) end
local metrics = require('lumen.introspect.study').run{
  name = "Net2", data = d, train = train_set, test = val_set, test_name = "validation set",
  net = net, recorder = recorder, out = opts.out, ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs,
  mmd_weight = opts.mmd_weight, bw = bw, seed = opts.seed, device = opts.device,
}
metrics.classifier_test_accuracy_first1000 = test_accuracy
metrics.note = "classifier_test_accuracy and the map metrics are on the validation split; " ..
  (d.test_note or "no test images")
lm.json.write(opts.out .. "/metrics.json", metrics)
return metrics
