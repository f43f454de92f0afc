-- Small MNIST-format IDX files for tests that must run without the real data
-- set: in each 28 x 28 image the columns k with k % 10 == class are bright,
-- so a network can learn the classes. Writes DIR/mnist/{train,t10k}-*.
local M = {}

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- Writes `n_train` training and `n_test` test images into dir/mnist.
function M.write(dir, n_train, n_test)
  os.execute("mkdir -p '" .. dir .. "/mnist'")
  local function idx_files(prefix, n, seed)
    local imgs, labs = {}, {}
    for i = 1, n do
      local c = (i * 7 + seed) % 10
      labs[i] = string.char(c)
      local px = {}
      for k = 1, 784 do px[k] = string.char(((k % 10 == c) and 200 or 10) + (i + k) % 30) end
      imgs[i] = table.concat(px)
    end
    write(dir .. "/mnist/" .. prefix .. "-images-idx3-ubyte", "\0\0\8\3" .. string.pack(">I4>I4>I4", n, 28, 28) ..
      table.concat(imgs))
    write(dir .. "/mnist/" .. prefix .. "-labels-idx1-ubyte", "\0\0\8\1" .. string.pack(">I4", n) .. table.concat(labs))
  end
  idx_files("train", n_train or 600, 1)
  idx_files("t10k", n_test or 200, 2)
  return dir
end

return M
