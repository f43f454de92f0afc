-- A modern classifier trained on CIFAR-10 with the usual augmentation
-- (random 32x32 crops of the image padded by 4, left-right flips), cross-
-- entropy and one triangular learning-rate cycle over the whole run (from
-- --lr-min up to --lr at the middle and back). No per-channel input
-- normalisation: the pixels stay in [0, 1].
--   --arch resnet18 (default): torchvision's ResNet-18 with the CIFAR stem
--     (a 3x3 stride-1 first convolution, no max pool), --width channels in
--     its first stage; SGD with Nesterov momentum 0.9, weight decay 5e-4,
--     --lr 0.1.
--   --arch vit: lm.models.vit (pre-norm transformer encoder layers, GELU)
--     on 4x4 patches, --dim 192, --depth 6, --heads 3, --mlp-dim 384,
--     dropout 0.1; AdamW, weight decay 0.05, --lr 1e-3.
--
--   lumen experiments/train_cifar10.lua [--arch resnet18|vit] [--epochs N]
--        [--device cpu|cuda] [--autocast bfloat16] [--width W | --dim D
--        --depth L --heads H --mlp-dim M] [--subset N] [--batch B] [--lr R]
--        [--lr-min R] [--weight-decay W] [--seed S] [--threads T] [--out DIR]
--        [--data-dir DIR] [--steps N] [--fresh]
--
-- --autocast bfloat16: every product and convolution with bfloat16 operands
-- and float32 sums (lm.autocast), training and evaluation; parameters stay
-- float32. Output in results/<arch>_cifar10 (..._bf16 with --autocast):
-- model.safetensors, metrics.json, learning_curve.png and test_metrics.json
-- (validation and test accuracy, seconds per epoch).
--
-- Full training is work for a GPU (ResNet-18: 0.56 G multiply-adds, 1.1
-- GFLOP, per image forward at width 64; 30 epochs are about 5 PFLOP). On the CPU use
-- --width (16: 1/16 of the work) or a smaller ViT, and --subset; --steps N
-- stops after N steps (the test suite runs a few). Evaluation: a seeded
-- 10 % validation split of the 50,000 training images, and the test images
-- that are available (the shared copy has the first 1,000 of the 10,000:
-- reported as such).
local lm = require 'lumen'
local cli = require 'lumen.cli'

local study = require 'lumen.introspect.study'

local opts, given = cli.parse(arg, {arch = "resnet18", epochs = 30, batch = 128, lr = 0.1, lr_min = 1e-3,
  momentum = 0.9, weight_decay = 5e-4, width = 64, dim = 192, depth = 6, heads = 3, mlp_dim = 384, subset = 0,
  device = "cpu", autocast = "float32", seed = 1, threads = 0, out = "", data_dir = "", steps = 0, fresh = false},
  "Train a classifier on CIFAR-10: lumen experiments/train_cifar10.lua [options]\n" ..
  "(the defaults shown are ResNet-18's; --arch vit: --lr 1e-3, --lr-min 1e-5, --weight-decay 0.05)")
cli.check(opts, {device = {"cpu", "cuda"},
  arch = {"resnet18", "vit"}, epochs = "count", batch = "count", lr = "positive",
  lr_min = "nonnegative", momentum = "nonnegative", weight_decay = "nonnegative", width = "count", dim = "count",
  depth = "count", heads = "count", mlp_dim = "count", subset = "count0", seed = "count0", threads = "count0",
  steps = "count0", autocast = {"float32", "bfloat16"}})
if opts.arch == "vit" then -- the transformer's usual optimiser settings, where not given
  if not given.lr then opts.lr = 1e-3 end
  if not given.lr_min then opts.lr_min = 1e-5 end
  if not given.weight_decay then opts.weight_decay = 0.05 end
  if opts.dim % opts.heads ~= 0 then
    cli.usage_error("--dim (%d) must be a multiple of --heads (%d)", opts.dim, opts.heads)
  end
end
local autocast = opts.autocast ~= "float32" and opts.autocast or nil
if opts.out == "" then opts.out = "results/" .. opts.arch .. "_cifar10" .. (autocast and "_bf16" or "") end
if opts.lr_min > opts.lr then cli.usage_error("--lr-min (%g) must not exceed --lr (%g)", opts.lr_min, opts.lr) end
if opts.threads > 0 then lm.set_num_threads(opts.threads) end
if opts.fresh then
  os.remove(opts.out .. "/checkpoint.safetensors")
  os.remove(opts.out .. "/options.json")
end
if opts.steps == 0 then -- a rerun resumes the checkpoint only for the options that wrote it
  lm.mkdir(opts.out)
  study.check_run_options(opts.out, {arch = opts.arch, epochs = opts.epochs, batch = opts.batch, lr = opts.lr,
    lr_min = opts.lr_min, momentum = opts.momentum, weight_decay = opts.weight_decay, width = opts.width,
    dim = opts.dim, depth = opts.depth, heads = opts.heads, mlp_dim = opts.mlp_dim, subset = opts.subset,
    autocast = opts.autocast, seed = opts.seed}, "train_cifar10")
end
lm.manual_seed(opts.seed)

local d, train_set, val_set = study.cifar10_training_sets(opts)

local net, opt, described
if opts.arch == "resnet18" then
  net = lm.models.resnet18{num_classes = 10, stem = "cifar", width = opts.width}
  described = string.format("ResNet-18 (CIFAR stem, width %d)", opts.width)
else
  net = lm.models.vit{image_size = 32, patch_size = 4, num_classes = 10, dim = opts.dim, depth = opts.depth,
    heads = opts.heads, mlp_dim = opts.mlp_dim, dropout = 0.1}
  described = string.format("ViT (4x4 patches, dim %d, depth %d, %d heads, MLP %d)", opts.dim, opts.depth,
    opts.heads, opts.mlp_dim)
end
if opts.device ~= "cpu" then
  if not lm.cuda.available() then error("--device " .. opts.device .. ": " .. lm.cuda.status(), 0) end
  net:to(opts.device)
end
local T = lm.data.transforms
local augment = T.compose{T.random_crop(32, {padding = 4}), T.horizontal_flip()}
if opts.arch == "resnet18" then
  opt = lm.optim.SGD(net:parameters(), {lr = opts.lr_min, momentum = opts.momentum, nesterov = opts.momentum > 0,
    weight_decay = opts.weight_decay})
else
  opt = lm.optim.AdamW(net:parameters(), {lr = opts.lr_min, weight_decay = opts.weight_decay})
end
local steps_per_epoch = math.max(1, train_set.x:size(1) // opts.batch)
local total = math.max(2, opts.epochs * steps_per_epoch)
-- one cycle over the whole run: up to --lr at the middle, back to --lr-min
local schedule = lm.optim.CyclicLR(opt, {min = opts.lr_min, max = opts.lr, period = total})
print(string.format("%s: %d parameters, %s, %d threads, %d epochs of %d steps%s", described,
  lm.models.count_parameters(net), opts.device, lm.get_num_threads(), opts.epochs, steps_per_epoch,
  autocast and (", products in " .. autocast) or ""))

if opts.steps > 0 then -- a fixed number of steps (smoke runs and timing)
  local first, last = study.fixed_steps{model = net, optimizer = opt, schedule = schedule, set = train_set,
    batch = opts.batch, seed = opts.seed, transform = augment, device = opts.device, steps = opts.steps,
    forward = function(x) return lm.autocast(autocast or false, net, x) end,
    loss = lm.nn.functional.cross_entropy}
  return {first_loss = first, last_loss = last, lr = opt:lr(), period = schedule.period, out = opts.out,
    parameters = lm.models.count_parameters(net)}
end

local history = lm.train{
  model = net, optimizer = opt, schedule = schedule, epochs = opts.epochs, train = train_set, val = val_set,
  batch_size = opts.batch, seed = opts.seed, loss = "cross_entropy", transform = augment, autocast = autocast,
  out = opts.out, resume = true, classes = d.classes,
}
local seconds = {}
for i, record in ipairs(history) do seconds[i] = record.seconds end
table.sort(seconds)
local result = {validation = lm.evaluate(net, val_set, {autocast = autocast}).accuracy, epochs_run = #history,
  autocast = autocast or "float32", arch = opts.arch, median_epoch_seconds = seconds[(#seconds + 1) // 2],
  device = opts.device}
if d.test then
  result.test = lm.evaluate(net, d.test, {autocast = autocast}).accuracy
  result.test_note = d.test_note
end
net:save(opts.out .. "/model.safetensors")
lm.json.write(opts.out .. "/test_metrics.json", result)
print(string.format("validation accuracy %.2f %%; %s accuracy %.2f %%; median epoch %.1f s", 100 * result.validation,
  d.test_note or "test", 100 * (result.test or 0), result.median_epoch_seconds or 0))
return result
