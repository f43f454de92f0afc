-- Forward and backward of the layers and losses against PyTorch (Debian's
-- python3-torch) on the same random weights, to 1e-5 relative error
-- (max |lumen - torch| / max |torch|). Skips with a message without PyTorch.
local lm = require 'lumen'
local F = lm.nn.functional

local python = "/usr/bin/python3"
local function have_torch()
  local p = io.popen(python .. " -c 'import torch' 2>&1 && echo yes")
  local out = p:read("a")
  p:close()
  return out:find("yes") ~= nil
end

if not have_torch() then
  print("torch_spec: SKIPPED: /usr/bin/python3 with torch (Debian python3-torch) is not installed")
  return
end

lm.manual_seed(2024)
local function leaf(t) return t:requires_grad(true) end

-- case -> {inputs (name -> tensor), names needing gradients, forward}
local cases = {
  linear = {{x = lm.randn(8, 5), w = lm.randn(4, 5), b = lm.randn(4)}, {"x", "w", "b"},
    function(t) return F.linear(t.x, t.w, t.b) end},
  conv2d = {{x = lm.randn(2, 3, 7, 7), w = lm.randn(4, 3, 3, 3), b = lm.randn(4)}, {"x", "w", "b"},
    function(t) return F.conv2d(t.x, t.w, t.b, {stride = 2, padding = 1}) end},
  elu = {{x = lm.randn(10)}, {"x"}, function(t) return F.elu(t.x) end},
  sigmoid = {{x = lm.randn(10) * 3}, {"x"}, function(t) return F.sigmoid(t.x) end},
  softmax = {{x = lm.randn(4, 6) * 2}, {"x"}, function(t) return F.softmax(t.x, 2) end},
  dropout_eval = {{x = lm.randn(10)}, {"x"}, function(t) return F.dropout(t.x, 0.2, false) end},
  mse = {{y_hat = lm.randn(6, 3), y = lm.randn(6, 3)}, {"y_hat", "y"},
    function(t) return F.mse(t.y_hat, t.y) end},
  cross_entropy = {{logits = lm.randn(6, 4) * 2, labels = lm.tensor({1, 4, 2, 2, 3, 1}, 'int32')},
    {"logits"}, function(t) return F.cross_entropy(t.logits, t.labels) end},
  mmd = {{z = lm.randn(5, 2), p = lm.randn(7, 2)}, {"z", "p"}, function(t) return F.mmd(t.z, t.p) end},
}

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)
local saved, results = {}, {}
for name, case in pairs(cases) do
  local inputs, grads, fn = case[1], case[2], case[3]
  for _, g in ipairs(grads) do leaf(inputs[g]) end
  local out = fn(inputs)
  local r = lm.randn(out:shape())
  inputs.r = r
  ;(out * r):sum():backward()
  for k, v in pairs(inputs) do saved[name .. "." .. k] = v:detach() end
  results[name] = {out = out:detach()}
  for _, g in ipairs(grads) do results[name]["grad_" .. g] = inputs[g].grad end
end
lm.save(dir .. "/in.safetensors", saved)
local ok = os.execute(python .. " tests/torch/reference.py " .. dir .. "/in.safetensors " .. dir .. "/out.safetensors")
assert(ok, "tests/torch/reference.py failed")
local torch_results = lm.load(dir .. "/out.safetensors")
os.execute("rm -rf " .. dir)

local function rel_error(a, b)
  local scale = math.max(b:abs():max():item(), 1e-6)
  return (a:float() - b):abs():max():item() / scale
end

describe("against PyTorch", function()
  for name, res in pairs(results) do
    for what, mine in pairs(res) do
      it(name .. " " .. what, function()
        local theirs = torch_results[name .. "." .. what]
        truthy(theirs, "PyTorch produced " .. name .. "." .. what)
        eq(mine:shape_string(), theirs:shape_string())
        local err = rel_error(mine, theirs)
        truthy(err <= 1e-5, string.format("relative error %.3g", err))
      end)
    end
  end
end)
