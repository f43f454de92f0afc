-- Self-introspection of a network trained in PyTorch: load its state_dict
-- (safetensors, F32/F16/BF16, PyTorch's names), check its accuracy, record
-- the outputs of its blocks (conv maps averaged over space, a transformer's
-- class token), and map them with the study's stages (InfoVAE, estimator,
-- figures, report, atlas).
--   lumen experiments/introspect_pytorch.lua --weights FILE [--arch resnet18|...|mobilenet_v2|vit]
--        [--stem cifar|imagenet] [--num-classes 10] [--width 64] [--data cifar10|DIR]
--        [--size H] [--mean M1,M2,M3] [--std S1,S2,S3]
--        [--blocks NAME,NAME (ResNets: layer1,layer2,layer3,layer4)] [--subset N] [--val N] [--test-subset N]
--        [--out DIR] [--device cpu|cuda] [--ae-epochs N] [--est-epochs N] [--seed S]
--   --arch resnet18 (default), resnet34, resnet50, resnet101, resnet152,
--        resnext50_32x4d, resnext101_32x8d, resnext101_64x4d, wide_resnet50_2,
--        wide_resnet101_2: torchvision's ResNets, --stem cifar (the default)
--        a 3x3 stride-1 first convolution without max pooling
--   --arch vit: torchvision's VisionTransformer (its names or lm.models.vit's), of
--        --size images and [--patch-size 16] [--dim 768] [--depth 12] [--heads 12]
--        [--mlp-dim 3072] (vit_b_16's); --blocks defaults to every encoder layer
--        (layers.0, ...), each recorded at its class token
--   --arch mobilenet_v2: torchvision's MobileNetV2 of [--width-mult 1.0]; --blocks
--        defaults to its 17 inverted residual blocks and last convolution
--        (features.1, ..., features.18), --stem cifar (the default) is its
--        first convolution at stride 1
--   --arch efficientnet_b0 ... efficientnet_b7, efficientnet_v2_s/m/l: its
--        stages and last convolution (features.1, ...) with [--stem]
--   --arch vgg11, vgg13, vgg16, vgg19 (and _bn): each stage at its max pooling
--   --arch densenet121, densenet161, densenet169, densenet201: its dense
--        blocks (features.denseblock1, ...) with [--stem]
--   --arch convnext_tiny, _small, _base, _large: its four stages (features.1,
--        features.3, ...) with [--stem] (cifar: 2x2 stride-2 patches)
--   --arch regnet_y_400mf ... regnet_y_128gf, regnet_x_400mf ... regnet_x_32gf:
--        its four stages (trunk_output.block1, ...) with [--stem]
--   --stem cifar is the default. An EfficientNet's, MobileNet's or RegNet's
--        stems differ only in the stride, so weights trained with
--        torchvision's own stem load either way: give --stem imagenet for them
--        (a ResNet's, DenseNet's or ConvNeXt's stem differs in shape too)
--
-- The network is wrapped as normalise -> network -> softmax, so images stay
-- in [0, 1] for the figures and the per-sample error is 1/2 ||y - p||^2 of
-- the softmax probabilities (the paper's error on the outputs it reads).
-- --data DIR is an image folder (one subfolder per class) or a folder with
-- train/ and test/ image folders. --val N images are set apart from the
-- training images (default: CIFAR-10's last 5,000, the validation set of
-- experiments/pytorch/train_resnet18_cifar10.py; a tenth of a folder's
-- training images; 0 for none): the models choose their epochs on them and
-- the report gives every measure on them too, so that settings (--blocks,
-- epochs) are compared without reading the test images. The chunk returns
-- the metrics.
local lm = require 'lumen'
local cli = require 'lumen.cli'
local study = require 'lumen.introspect.study'
local nn = lm.nn

local opts, given = cli.parse(arg, {weights = "", arch = "resnet18", stem = "cifar", num_classes = 10, width = 64,
  width_mult = 1.0, data = "cifar10",
  size = 32, mean = "0.4914,0.4822,0.4465", std = "0.2470,0.2435,0.2616", blocks = "layer1,layer2,layer3,layer4",
  subset = 5000, val = 5000, test_subset = 0, out = "results/introspect_pytorch", device = "cpu", ae_epochs = 20,
  est_epochs = 20, patch_size = 16, dim = 768, depth = 12, heads = 12, mlp_dim = 3072, mmd_weight = 500,
  bandwidths = "0.1,1,10,100,1000", seed = 1, fresh = false},
  "Self-introspection of a PyTorch-trained network: lumen experiments/introspect_pytorch.lua --weights FILE [options]")

-- The torchvision families this maps: their constructors (lm.models' of the
-- same names) and the size options that apply (any other given is refused,
-- not ignored); unless --blocks says otherwise, each records the layers its
-- block_names() gives.
local FAMILIES = {
  {archs = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "resnext101_32x8d",
    "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"}, options = {"width", "stem"}},
  {archs = {"mobilenet_v2"}, options = {"width_mult", "stem"}},
  {archs = {"efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_s", "efficientnet_v2_m",
    "efficientnet_v2_l"}, options = {"stem"}},
  {archs = {"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"}, options = {}},
  {archs = {"densenet121", "densenet161", "densenet169", "densenet201"}, options = {"stem"}},
  {archs = {"convnext_tiny", "convnext_small", "convnext_base", "convnext_large"}, options = {"stem"}},
  {archs = {"regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf", "regnet_y_16gf",
    "regnet_y_32gf", "regnet_y_128gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf",
    "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf"}, options = {"stem"}},
  {archs = {"vit"}, options = {"patch_size", "dim", "depth", "heads", "mlp_dim"}},
}
local ARCHS, family = {}, nil
for _, f in ipairs(FAMILIES) do
  for _, a in ipairs(f.archs) do
    ARCHS[#ARCHS + 1] = a
    if a == opts.arch then family = f end
  end
end
cli.check(opts, {device = {"cpu", "cuda"},
  arch = ARCHS, stem = {"cifar", "imagenet"}, num_classes = "count",
  width = "count", width_mult = "positive", size = "count", subset = "count0", val = "count0",
  test_subset = "count0", ae_epochs = "count", est_epochs = "count", mmd_weight = "nonnegative", seed = "count0",
  patch_size = "count", dim = "count", depth = "count", heads = "count", mlp_dim = "count"})
-- the sizes of another kind of network would be ignored: refused instead
for _, key in ipairs{"width", "width_mult", "stem", "patch_size", "dim", "depth", "heads", "mlp_dim"} do
  local applies = false
  for _, k in ipairs(family.options) do applies = applies or k == key end
  if given[key] and not applies then
    cli.usage_error("--%s is not an option of --arch %s", (key:gsub("_", "-")), opts.arch)
  end
end
local channel_mean, channel_std = cli.numbers(opts, "mean"), cli.numbers(opts, "std")
local bandwidths = cli.numbers(opts, "bandwidths", "positive")
if #channel_mean ~= #channel_std then
  cli.usage_error("--mean and --std need one number a channel each, got %d and %d", #channel_mean, #channel_std)
end
if opts.weights == "" then cli.usage_error("--weights FILE (a safetensors state_dict) is required") end
if opts.device ~= "cpu" and not lm.cuda.available() then
  error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0)
end
local weights_file = io.open(opts.weights, "rb")
if not weights_file then
  error(string.format("introspect_pytorch: cannot read the weights %s (a safetensors state_dict; "
    .. "docs/import-pytorch.md says how to write one)", opts.weights), 0)
end
weights_file:close()
lm.manual_seed(opts.seed)
lm.mkdir(opts.out) -- once the prerequisites are there
if opts.fresh then
  for _, name in ipairs{"autoencoder", "estimator", "estimator_recording"} do
    os.remove(opts.out .. "/" .. name .. ".safetensors")
  end
  os.remove(opts.out .. "/options.json")
end

-- ---- data -----------------------------------------------------------------------------------------------
local d, train_set, test_set, test_name, test_note
if opts.data == "cifar10" then
  d = lm.data.cifar10()
  train_set = d.train
  test_set, test_name, test_note = d.test, "test set", d.test_note -- the note: which test images there are
else
  local function exists(p) local ok = pcall(lm.list_dir, p) return ok end
  local size = {opts.size, opts.size}
  if exists(opts.data .. "/train") and exists(opts.data .. "/test") then
    local tr = lm.data.image_folder(opts.data .. "/train", {size = size})
    local te = lm.data.image_folder(opts.data .. "/test", {size = size})
    train_set, test_set, test_name = lm.data.load_all(tr), lm.data.load_all(te), "test folder"
    d = {name = opts.data, classes = tr.classes}
  else
    local all = lm.data.image_folder(opts.data, {size = size})
    train_set, test_set = lm.data.split(lm.data.load_all(all), {fraction = 0.2, seed = opts.seed})
    test_name = "held-out 20 % of the folder"
    d = {name = opts.data, classes = all.classes}
  end
end
-- the network's outputs are the data's classes: a mismatch would run every
-- stage and fail at the atlas (or map labels the network cannot predict)
if #d.classes ~= opts.num_classes then
  cli.usage_error("%s has %d classes (%s) but the network has %d outputs (--num-classes %d): pass --num-classes "
    .. "with the number of classes the network was trained on, and data with one class (subfolder) for each",
    d.name, #d.classes, table.concat(d.classes, ", ", 1, math.min(#d.classes, 10))
      .. (#d.classes > 10 and ", ..." or ""), opts.num_classes, opts.num_classes)
end

-- the validation images, never among the mapped ones
local val_set
do
  local n = train_set.x:size(1)
  local n_val = opts.val
  if opts.data ~= "cifar10" and not given.val then n_val = n >= 20 and n // 10 or 0 end
  if n_val >= n then
    cli.usage_error("--val %d: the %d training images must leave some to map (--val 0 for no validation set)",
      n_val, n)
  end
  if n_val > 0 and opts.data == "cifar10" then -- the trainer's split: the last images of the training batches
    val_set, train_set = lm.data.tail(train_set, n_val), lm.data.head(train_set, n - n_val)
  elseif n_val > 0 then
    train_set, val_set = lm.data.split(train_set, {fraction = n_val / n, seed = opts.seed})
  end
end
if opts.subset > 0 then train_set = lm.data.head(train_set, opts.subset) end
if opts.test_subset > 0 then test_set = lm.data.head(test_set, opts.test_subset) end
print(string.format("%s: mapping %d training images, %d validation images and %d test images (%s)", d.name,
  train_set.x:size(1), val_set and val_set.x:size(1) or 0, test_set.x:size(1), test_note or test_name))

-- ---- the network ------------------------------------------------------------------------------------------
local Normalize = nn.Module:extend("Normalize")
function Normalize:init(mean, std)
  self:buffer("mean", lm.tensor(mean):view(1, #mean, 1, 1))
  self:buffer("std", lm.tensor(std):view(1, #std, 1, 1))
end
function Normalize:forward(x) return (x - self.mean) / self.std end

local body, pool
if opts.arch == "vit" then
  body = lm.models.vit{image_size = opts.size, patch_size = opts.patch_size, num_classes = opts.num_classes,
    dim = opts.dim, depth = opts.depth, heads = opts.heads, mlp_dim = opts.mlp_dim}
  -- strict: every missing, unexpected or mis-shaped name is reported
  body:load(opts.weights, {rename = lm.models.torchvision_vit_rename})
  pool = "cls" -- the token the head reads
else
  local options = {num_classes = opts.num_classes}
  for _, k in ipairs(family.options) do options[k] = opts[k] end
  body = lm.models[opts.arch](options)
  body:load(opts.weights)
  pool = "mean" -- over space
end
if not given.blocks then opts.blocks = table.concat(body:block_names(), ",") end
local net = nn.Sequential(Normalize(channel_mean, channel_std), body, nn.Softmax(2))
net:to(opts.device):eval()
local acc = lm.train.evaluate(net, test_set, {loss = "mse"}).accuracy
print(string.format("%s from %s: accuracy %.2f %% on the test images (%s)", opts.arch, opts.weights, 100 * acc,
  test_note or test_name))

-- the cached maps are reused only for the same network, data and options
study.check_run_options(opts.out, {weights = opts.weights, fingerprint = study.weights_fingerprint(body),
  arch = opts.arch, data = opts.data, size = opts.size, blocks = opts.blocks, subset = opts.subset,
  val = val_set and val_set.x:size(1) or 0, test_subset = opts.test_subset, seed = opts.seed, mean = opts.mean,
  std = opts.std, ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs, mmd_weight = opts.mmd_weight,
  bandwidths = bandwidths}, "introspect_pytorch") -- (as numbers: 1000.0 is 1000)
local blocks = {}
for name in opts.blocks:gmatch("[^,]+") do blocks[#blocks + 1] = "1." .. name end -- inside the wrapper
local recorder = lm.introspect.Recorder(net, {select = blocks, pool = pool})

local metrics = study.run{
  name = opts.arch, data = d, train = train_set, val = val_set, test = test_set, test_name = test_name, net = net,
  recorder = recorder, out = opts.out, ae_epochs = opts.ae_epochs, est_epochs = opts.est_epochs,
  mmd_weight = opts.mmd_weight, bw = bandwidths, seed = opts.seed, device = opts.device,
  image_range = {0, 1},
}
metrics.weights = opts.weights
metrics.images = {train = train_set.x:size(1), validation = val_set and val_set.x:size(1) or 0,
  test = test_set.x:size(1)}
metrics.classifier_accuracy_checked = acc
lm.json.write(opts.out .. "/metrics.json", metrics)
return metrics
