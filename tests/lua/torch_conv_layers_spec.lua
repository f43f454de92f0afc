-- Convolutional-network layers and ResNet-18 against torch.nn and torchvision
-- (tests/torch/conv_layers_reference.py): every layer's forward, input
-- gradient and parameter gradients in training and evaluation mode, and its
-- running statistics after three training steps, at 1e-5 relative error
-- (max |a - b| / max |b|); a torchvision ResNet-18 trained in torch loads
-- strictly into lm.models.resnet18 and gives torch's outputs and gradients;
-- Lumen's file loads into torchvision's with strict=True.
-- LUMEN_SPEC_VERBOSE=1 prints the worst error of each comparison.
local lm = require 'lumen'
local nn = lm.nn

local py = dofile("tests/helpers/python.lua")
local function have_torch() return py.can_import("torch, torchvision") end

describe("conv layers without torch", function()
  it("Dropout2d zeroes whole channels with probability p, scales by 1/(1-p), only in training", function()
    lm.manual_seed(5)
    local d = nn.Dropout2d(0.3)
    local x = lm.ones(100, 40, 2, 3):requires_grad(true)
    local y = d(x)
    local per_channel = y:reshape(100, 40, 6)
    local lo, hi = per_channel:min(3), per_channel:max(3)
    eq((hi - lo):abs():max():item(), 0, "one value per channel")
    local dropped = y:eq(0):mean():item()
    truthy(math.abs(dropped - 0.3) < 0.03, "dropped fraction " .. dropped)
    truthy(math.abs(y:max():item() - 1 / 0.7) < 1e-6, "kept channels scaled by 1/(1-p)")
    y:sum():backward()
    eq((x.grad - y:detach()):abs():max():item(), 0, "the gradient is the mask")
    d:eval()
    eq(d(x), x, "evaluation: the input itself")
    eq(nn.Dropout2d(1)(lm.ones(2, 2, 1, 1)):abs():sum():item(), 0, "p = 1 drops everything")
  end)

  it("StochasticDepth drops whole samples ('row') or the whole batch ('batch') with probability p", function()
    lm.manual_seed(6)
    local d = nn.StochasticDepth(0.25, "row")
    local x = lm.ones(2000, 3, 2, 2):requires_grad(true)
    local y = d(x)
    local per_sample = y:reshape(2000, 12)
    eq((per_sample:max(2) - per_sample:min(2)):abs():max():item(), 0, "one value per sample")
    local dropped = y:eq(0):mean():item()
    truthy(math.abs(dropped - 0.25) < 0.03, "dropped fraction " .. dropped)
    truthy(math.abs(y:max():item() - 1 / 0.75) < 1e-6, "kept samples scaled by 1/(1-p)")
    y:sum():backward()
    eq((x.grad - y:detach()):abs():max():item(), 0, "the gradient is the mask")
    local kept = 0
    for _ = 1, 200 do
      local yb = lm.nn.functional.stochastic_depth(lm.ones(4, 5), 0.5, "batch", true)
      local s = yb:sum():item()
      truthy(s == 0 or s == 40, "the batch is kept or dropped as one: sum " .. s)
      if s > 0 then kept = kept + 1 end
    end
    truthy(kept > 70 and kept < 130, "batch mode keeps about half of 200 calls: " .. kept)
    d:eval()
    eq(d(x), x, "evaluation: the input itself")
    eq(nn.StochasticDepth(0, "row")(x), x, "p = 0: the input itself")
    eq(nn.StochasticDepth(1, "row")(lm.ones(3, 2)):abs():sum():item(), 0, "p = 1 drops everything")
    eq(#nn.StochasticDepth(0.1, "row"):named_parameters() + #nn.StochasticDepth(0.1, "row"):named_buffers(), 0,
      "nothing in the state dict")
  end)

  it("LayerNorm2d normalises each pixel's channels; Permute reorders dimensions; misuse named", function()
    lm.manual_seed(12)
    local ln = nn.LayerNorm2d(3, {eps = 1e-6})
    lm.no_grad(function()
      ln.weight:copy_(lm.rand(3) + 0.5)
      ln.bias:copy_(lm.randn(3))
    end)
    local x = lm.randn(2, 3, 4, 5) * 2 + 1
    local mean = x:mean(2, true)
    local var = ((x - mean) * (x - mean)):mean(2, true)
    local want = (x - mean) / (var + 1e-6):sqrt() * ln.weight:view(3, 1, 1) + ln.bias:view(3, 1, 1)
    truthy(rel_error(ln(x), want) < 1e-6, "per pixel over the channels, then weight and bias")
    eq(ln(x):shape_string(), "2x3x4x5")
    local small = lm.randn(2, 3, 2, 3):requires_grad(true)
    truthy(lm.autograd.gradcheck(function(a) return ln(a) end, {small}), "finite differences (input)")
    eq(#nn.LayerNorm2d(4, {elementwise_affine = false}):named_parameters(), 0, "no affine: no parameters")
    eq(nn.LayerNorm2d(4).eps, 1e-5, "torch's default eps")
    local ok, msg = pcall(ln, lm.randn(2, 4, 5, 5))
    truthy(not ok and msg:find("nn.LayerNorm2d: input must be [N, 3, H, W], got 2x4x5x5", 1, true), tostring(msg))
    ok, msg = pcall(nn.LayerNorm2d, 0)
    truthy(not ok and msg:find("nn.LayerNorm2d: num_channels must be a positive integer, got 0", 1, true),
      tostring(msg))
    ok, msg = pcall(nn.LayerNorm2d, 3, {epsilon = 1})
    truthy(not ok and msg:find("nn.LayerNorm2d: unknown option 'epsilon'", 1, true), tostring(msg))

    local p = nn.Permute{1, 3, 4, 2}
    eq(p(x):shape_string(), "2x4x5x3")
    eq(rel_error(p(x), x:permute(1, 3, 4, 2)), 0)
    ok, msg = pcall(nn.Permute, {1, 1, 2})
    truthy(not ok and msg:find("nn.Permute: dims must reorder 1..3 (each once), got {1, 1, 2}", 1, true), tostring(msg))
    ok, msg = pcall(p, lm.randn(2, 3))
    truthy(not ok and msg:find("nn.Permute: dims {1, 3, 4, 2} reorder a 4-D input, got 2x3", 1, true), tostring(msg))
  end)

  it("Embedding: 1-based indices, padding row zero and without gradient, misuse named", function()
    lm.manual_seed(2)
    local e = nn.Embedding(6, 3, {padding_idx = -1})
    eq(e.padding_idx, 6)
    eq(e.weight[6]:abs():sum():item(), 0, "padding row starts at zero")
    local idx = lm.tensor({{1, 6, 2}, {2, 2, 6}}, "int32")
    local y = e(idx)
    eq(y:shape_string(), "2x3x3")
    eq((y[1][1] - e.weight[1]):abs():max():item(), 0, "index 1 is the first row")
    y:sum():backward()
    same(e.weight.grad:sum(2):totable(), {3, 3 * 3, 0, 0, 0, 0}, 0, "grad row sums")
    truthy(not pcall(e, lm.tensor({{1.0}})), "float indices are refused")
    local ok, msg = pcall(e, lm.tensor({7}, "int32"))
    truthy(not ok and msg:find("out of range"), tostring(msg))
    truthy(not pcall(nn.Embedding, 4, 2, {padding_idx = 0}), "padding_idx 0 is refused")
  end)

  it("BatchNorm names its misuse; reset_running_stats; torch's buffers", function()
    local bn = nn.BatchNorm2d(3)
    local ok, msg = pcall(bn, lm.randn(2, 4, 3, 3))
    truthy(not ok and msg:find("3"), tostring(msg))
    ok, msg = pcall(nn.BatchNorm1d(3), lm.randn(1, 3))
    truthy(not ok and msg:find("more than 1 value per channel"), tostring(msg))
    truthy(not pcall(nn.BatchNorm1d(3), lm.randn(2, 3, 4, 4)), "BatchNorm1d refuses 4-D input")
    truthy(not pcall(nn.BatchNorm2d, 3, {momentun = 0.1}), "misspelt option")
    bn(lm.randn(2, 3, 3, 3))
    eq(bn.num_batches_tracked:item(), 1)
    eq(bn.num_batches_tracked:dim(), 0, "0-D, as torch's")
    bn:reset_running_stats()
    same(bn.running_var:totable(), {1, 1, 1})
    eq(bn.num_batches_tracked:item(), 0)
    local names = {}
    for name in pairs(nn.BatchNorm1d(2):state_dict()) do names[#names + 1] = name end
    table.sort(names)
    eq(table.concat(names, " "), "bias num_batches_tracked running_mean running_var weight")
  end)

  it("finite-difference gradients of F.embedding (hand-written backward) and the compositions", function()
    local F = nn.functional
    local gradcheck = lm.autograd.gradcheck
    lm.manual_seed(6)
    local w = lm.randn(5, 3):requires_grad(true)
    local idx = lm.tensor({{1, 4, 4}, {5, 2, 1}}, "int32")
    truthy(gradcheck(function(weight) return F.embedding(idx, weight) end, {w})) -- (a padding row has none by design)
    local x = lm.randn(3, 2, 2, 2):requires_grad(true)
    local g, b = (lm.rand(2) + 0.5):requires_grad(true), lm.randn(2):requires_grad(true)
    truthy(gradcheck(function(a, gw, gb) return F.batch_norm(a, nil, nil, gw, gb, true) end, {x, g, b}))
    truthy(gradcheck(function(a, gw, gb) return F.group_norm(a, 2, gw, gb) end, {x, g, b}))
    local small = lm.randn(1, 2, 3, 3):requires_grad(true)
    truthy(gradcheck(function(a) return F.adaptive_avg_pool2d(a, {1, 2}) end, {small}))
    truthy(gradcheck(function(a) return F.silu(a) end, {lm.randn(4, 3):requires_grad(true)}))
  end)

  it("resnet18 initialises as torchvision: Kaiming normal fan-out convolutions, BN 1 and 0", function()
    lm.manual_seed(1)
    local net = lm.models.resnet18{num_classes = 10, stem = "cifar"}
    -- layer3's first conv1, 128 -> 256: fan-out 256 x 9 (fan-in would be 128 x 9)
    local w = net.layer3[1].conv1.weight
    local want = math.sqrt(2 / (256 * 9))
    truthy(math.abs(w:std():item() / want - 1) < 0.02, "std " .. w:std():item() .. " want " .. want)
    eq(net.layer2[1].bn1.weight:min():item(), 1)
    eq(net.layer2[1].bn1.bias:abs():max():item(), 0)
    truthy(net.fc.weight:abs():max():item() <= 1 / math.sqrt(512), "fc: torch's default bound")
    eq(net.fc.weight:shape_string(), "10x512")
    truthy(not pcall(lm.models.resnet18, {stem = "tiny"}), "unknown stem refused")
  end)

  it("a narrow cifar resnet18 learns a toy task on the CPU", function()
    lm.manual_seed(4)
    local net = lm.models.resnet18{num_classes = 2, stem = "cifar", width = 4}
    local x = lm.randn(16, 3, 8, 8)
    local labels = lm.tensor({1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, "int32")
    lm.no_grad(function() x:add_(((labels:float() - 1.5) * 2):view(16, 1, 1, 1)) end) -- class 2 is brighter
    local opt = lm.optim.SGD(net:parameters(), {lr = 0.05, momentum = 0.9})
    local first, last
    for _ = 1, 15 do
      local loss = nn.functional.cross_entropy(net(x), labels)
      opt:zero_grad()
      loss:backward()
      opt:step()
      first = first or loss:item()
      last = loss:item()
    end
    truthy(last < first * 0.5, string.format("loss %.4f -> %.4f", first, last))
  end)
end)

if not have_torch() then
  skip("/usr/bin/python3 cannot import torch and torchvision: Debian's python3-torch and " ..
    "python3-torchvision are not installed", true)
end

local function run(args) return py.run("tests/torch/conv_layers_reference.py", args) end
local dir = py.write_reference("tests/torch/conv_layers_reference.py")

local verbose = os.getenv("LUMEN_SPEC_VERBOSE")

-- the Lumen twins of the reference's torch layers
local twins = {
  bn1d_2d = function() return nn.BatchNorm1d(5) end,
  bn1d_3d = function() return nn.BatchNorm1d(4) end,
  bn2d = function() return nn.BatchNorm2d(6) end,
  bn2d_no_affine = function() return nn.BatchNorm2d(3, {affine = false}) end,
  bn2d_no_stats = function() return nn.BatchNorm2d(3, {track_running_stats = false}) end,
  bn2d_cumulative = function() return nn.BatchNorm2d(3, {eps = 1e-3, momentum = false}) end,
  groupnorm = function() return nn.GroupNorm(3, 6) end,
  groupnorm_1d = function() return nn.GroupNorm(2, 4, {affine = false}) end,
  groupnorm_one = function() return nn.GroupNorm(1, 4, {eps = 1e-2}) end,
  silu = function() return nn.SiLU() end,
  adaptive_3x2 = function() return nn.AdaptiveAvgPool2d({3, 2}) end,
  adaptive_1 = function() return nn.AdaptiveAvgPool2d(1) end,
  adaptive_4 = function() return nn.AdaptiveAvgPool2d(4) end,
  adaptive_up = function() return nn.AdaptiveAvgPool2d({5, 3}) end,
  dropout2d_p0 = function() return nn.Dropout2d(0) end,
  embedding = function() return nn.Embedding(10, 4, {padding_idx = 3}) end,
  block = function() return nn.BasicBlock(4, 4) end,
  block_down = function() return nn.BasicBlock(4, 8, {stride = 2, downsample = true}) end,
  bottleneck_down = function()
    return nn.Bottleneck(8, 4, {stride = 2, groups = 2, base_width = 32, downsample = true})
  end,
  bottleneck_dilated = function() return nn.Bottleneck(16, 4, {dilation = 2}) end,
  layernorm2d = function() return nn.LayerNorm2d(6, {eps = 1e-6}) end,
  layernorm2d_default = function() return nn.LayerNorm2d(5) end,
  layernorm2d_no_affine = function() return nn.LayerNorm2d(4, {elementwise_affine = false}) end,
  cnblock = function() return lm.models.CNBlock(8, 1e-6, 0) end,
}
local order = {"bn1d_2d", "bn1d_3d", "bn2d", "bn2d_no_affine", "bn2d_no_stats", "bn2d_cumulative",
  "groupnorm", "groupnorm_1d", "groupnorm_one", "silu", "adaptive_3x2", "adaptive_1", "adaptive_4",
  "adaptive_up", "dropout2d_p0", "embedding", "block", "block_down", "bottleneck_down", "bottleneck_dilated",
  "layernorm2d", "layernorm2d_default", "layernorm2d_no_affine", "cnblock"}

local TOL = 1e-5

-- compares, and keeps the worst error of the kind ("output", "gradient", ...)
local function checker(label)
  local worst = {}
  local function close(a, b, what, kind)
    truthy(a ~= nil, what .. ": missing in Lumen")
    eq(a:shape_string(), b:shape_string(), what .. " shape")
    local err = rel_error(a, b)
    truthy(err <= TOL, string.format("%s: %s relative error %.3g", label, what, err))
    if not worst[kind] or err > worst[kind][1] then worst[kind] = {err, what} end
  end
  local function report()
    if not verbose then return end
    local parts = {}
    for kind, w in pairs(worst) do parts[#parts + 1] = string.format("%s %.2g (%s)", kind, w[1], w[2]) end
    table.sort(parts)
    io.stderr:write(string.format("    %-16s %s\n", label, table.concat(parts, ", ")))
  end
  return close, report
end

local function prefixed(file, prefix)
  local out = {}
  for k, v in pairs(file) do
    if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = v end
  end
  return out
end

-- one step: forward, backward of sum(y * gy), comparisons with torch's
local function step(m, f, prefix, close)
  m:zero_grad()
  local x = f[prefix .. "x"]
  if x:dtype() == "float32" then x = x:clone():requires_grad(true) end
  local y = m(x)
  close(y, f[prefix .. "y"], prefix .. "y", "output")
  local loss = (y * f[prefix .. "gy"]):sum()
  loss:backward()
  if f[prefix .. "gx"] then close(x.grad, f[prefix .. "gx"], prefix .. "gx", "gradient") end
  for _, pair in ipairs(m:named_parameters()) do
    local want = f[prefix .. "grad." .. pair[1]]
    truthy(want ~= nil, "torch has no parameter " .. pair[1])
    close(pair[2].grad, want, prefix .. "grad." .. pair[1], "gradient")
  end
end

describe("conv layers against torch.nn", function()
  for _, name in ipairs(order) do
    it(name .. ": forward and backward in training (3 steps, running statistics) and evaluation", function()
      local f = lm.load(string.format("%s/%s.safetensors", dir, name))
      local m = twins[name]()
      m:load_state_dict(prefixed(f, "state."), {strict = true})
      local close, report = checker(name)
      m:train()
      for k = 1, 3 do step(m, f, "train." .. k .. ".", close) end
      for bname, want in pairs(prefixed(f, "final.")) do
        close(m:state_dict()[bname], want, "final." .. bname, "buffers")
      end
      m:eval()
      step(m, f, "eval.", close)
      report()
    end)
  end
end)

local function key_list(net)
  local lines = {}
  for _, pairs_ in ipairs{net:named_parameters(), net:named_buffers()} do
    for _, pair in ipairs(pairs_) do lines[#lines + 1] = pair[1] .. " " .. pair[2]:shape_string() end
  end
  table.sort(lines)
  return lines
end

local function torch_keys(tag)
  local lines = {}
  for line in io.lines(string.format("%s/%s_keys.txt", dir, tag)) do lines[#lines + 1] = line end
  table.sort(lines)
  return lines
end

describe("lm.models.resnet18 against torchvision", function()
  for _, tag in ipairs{"resnet18", "resnet34"} do
    it(tag .. ": torchvision's state_dict names and shapes, buffers included", function()
      local net = lm.models[tag]()
      local ours, theirs = key_list(net), torch_keys(tag)
      eq(#ours, #theirs, "number of entries")
      for i = 1, #ours do eq(ours[i], theirs[i]) end
    end)
  end

  -- each stem under both CPU convolution algorithms: Winograd's transforms
  -- round more (measured on two 32x32 / 64x64 images: up to 3.3x torch's
  -- float32 error from float64 on the ImageNet stem's 2x2 layer4 planes,
  -- against 2.6x by im2col on two threads and 3.1x on one, where each weight
  -- gradient's sum over the batch runs in one piece; on the one 16x16 /
  -- 48x48 image of today's reference up to 3.2x with OpenBLAS's Haswell,
  -- SkylakeX and Cooperlake kernels), so the factor below is 5 where
  -- Winograd runs and 4 where it does not
  for _, case in ipairs{{"cifar", "auto", 5}, {"imagenet", "auto", 5}, {"cifar", "gemm", 4}, {"imagenet", "gemm", 4}} do
    local stem, algorithm, factor = case[1], case[2], case[3]
    it(stem .. " stem (convolutions " .. algorithm .. "): a trained torchvision model loads strictly and gives "
        .. "torch's outputs and gradients", function()
      local before = lm.get_conv_algorithm()
      lm.set_conv_algorithm(algorithm)
      local ok, err = pcall(function()
        local net = lm.models.resnet18{num_classes = 10, stem = stem}
        net:load(string.format("%s/resnet_%s.safetensors", dir, stem))
        local io_ = lm.load(string.format("%s/resnet_%s_io.safetensors", dir, stem))
        -- a ReLU input within rounding of 0 would let the two float32
        -- gradients differ by percents, both right: the reference keeps
        -- every one farther (conv_layers_reference.py, input_off_the_kinks)
        truthy(io_.relu_margin:item() > 1e-5, "the reference's ReLU inputs: " .. io_.relu_margin:item())
        local close, report = checker("resnet18 " .. stem)
        net:eval()
        close(net(io_.x), io_.y_eval, "eval output", "output")
        net:train()
        net:zero_grad()
        local y = net(io_.x)
        close(y, io_.y_train, "train output", "output")
        local loss = (y * io_.gy):sum()
        loss:backward()
        -- float32 rounding through 18 layers of training-mode batch norm moves
        -- torch's own gradients up to ~1.5e-5 from the float64 ones: a gradient
        -- passes within 1e-5 of torch's, or when it is about as close to the
        -- float64 gradient as torch's float32 one (within `factor`: Lumen
        -- rounds in another order, batch statistics in double, batched GEMMs,
        -- and lands between 1x and 2.6x torch's error by im2col, up to 3.3x
        -- with Winograd; a wrong rule is off by orders of magnitude)
        local worst32, worst_ratio = {0}, {0}
        for _, pair in ipairs(net:named_parameters()) do
          local name, g = pair[1], pair[2].grad
          local vs32 = rel_error(g, io_["grad." .. name])
          local vs64, torch_err = rel_error(g, io_["grad64." .. name]), io_["err32." .. name]:item()
          truthy(vs32 <= TOL or vs64 <= factor * torch_err, string.format(
            "grad.%s: relative error %.3g from torch's float32, %.3g from float64 (torch's float32: %.3g)",
            name, vs32, vs64, torch_err))
          if vs32 > worst32[1] then worst32 = {vs32, name} end
          if vs64 / torch_err > worst_ratio[1] then worst_ratio = {vs64 / torch_err, name} end
        end
        if verbose then
          io.stderr:write(string.format("    resnet18 %s gradients: worst %.2g from torch's float32 (%s); " ..
            "worst error from float64 / torch float32's: %.2f (%s)\n", stem, worst32[1], worst32[2],
            worst_ratio[1], worst_ratio[2]))
        end
        for _, pair in ipairs(net:named_buffers()) do
          close(pair[2], io_["after." .. pair[1]], pair[1], "buffers")
        end
        report()
      end)
      lm.set_conv_algorithm(before)
      if not ok then error(err, 0) end
    end)
  end

  it("Lumen's file loads into torchvision's with strict=True and gives Lumen's outputs", function()
    local net = lm.models.resnet18{num_classes = 10, stem = "cifar"}
    net:load(dir .. "/resnet_cifar.safetensors")
    lm.manual_seed(9) -- new running statistics and weights: torch must read Lumen's file
    net:train()
    lm.no_grad(function() net(lm.randn(4, 3, 32, 32)) end)
    for _, p in ipairs(net:parameters()) do lm.no_grad(function() p:add_(lm.randn(p:shape()) * 0.01) end) end
    net:save(dir .. "/resnet_lumen.safetensors")
    net:eval()
    local x = lm.randn(2, 3, 32, 32)
    lm.save(dir .. "/resnet_lumen_io.safetensors",
      {x = x, y = net(x), tracked = net.bn1.num_batches_tracked})
    local good, msg = run("check '" .. dir .. "'")
    truthy(good, "torch: " .. msg)
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
