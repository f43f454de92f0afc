-- A small CIFAR-10 binary folder for tests that must run without the real
-- data set: 5 training batches of n records and a test batch of n_test.
-- Each class is a flat grey level (a little variation per image), so a
-- working training loop learns it within a few steps. Writes
-- DIR/cifar10/{data_batch_1..5,test_batch}.bin.
local M = {}

--- Writes the folder into `dir` (created); returns dir.
function M.write(dir, n, n_test)
  os.execute("mkdir -p '" .. dir .. "/cifar10'")
  local function batch(name, count, seed)
    local out = {}
    for i = 1, count do
      local label = (i + seed) % 10
      out[i] = string.char(label) .. string.rep(string.char(label * 25 + i % 5), 3072)
    end
    local f = assert(io.open(dir .. "/cifar10/" .. name, "wb"))
    f:write(table.concat(out))
    f:close()
  end
  for b = 1, 5 do batch("data_batch_" .. b .. ".bin", n, b) end
  batch("test_batch.bin", n_test or 8, 0)
  return dir
end

return M
