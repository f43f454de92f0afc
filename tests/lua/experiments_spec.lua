-- The small bundled experiments run and reach their goal.
describe("experiments", function()
  it("custom_layer.lua trains a Lua-defined layer and a custom backward", function()
    RESULT = nil
    local print_ = print
    print = function() end -- keep the spec output short
    local ok, err = pcall(dofile, "experiments/custom_layer.lua")
    print = print_
    truthy(ok, err)
    truthy(RESULT and RESULT < 1e-3, "final loss " .. tostring(RESULT))
  end)

  it("net2_cifar10.lua runs training steps of the paper's Net2 on the CPU", function()
    -- a generated CIFAR-10 folder: 5 training batches of 16 records, a test batch
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir .. "/cifar10")
    local function batch(name, n, seed)
      local out = {}
      for i = 1, n do
        local label = (i + seed) % 10
        out[i] = string.char(label) .. string.rep(string.char((label * 25 + i) % 256), 3072)
      end
      local f = assert(io.open(dir .. "/cifar10/" .. name, "wb"))
      f:write(table.concat(out))
      f:close()
    end
    for b = 1, 5 do batch("data_batch_" .. b .. ".bin", 16, b) end
    batch("test_batch.bin", 8, 0)
    RESULT = nil
    local saved_arg = _G.arg
    _G.arg = {"--data-dir", dir, "--steps", "2", "--batch", "8", "--width", "0.1", "--out", dir .. "/out"}
    local print_ = print
    print = function() end
    local ok, err = pcall(dofile, "experiments/net2_cifar10.lua")
    print = print_
    _G.arg = saved_arg
    os.execute("rm -rf " .. dir)
    truthy(ok, err)
    truthy(RESULT and RESULT.last_loss == RESULT.last_loss and RESULT.last_loss < 5, "a finite loss")
  end)
end)

