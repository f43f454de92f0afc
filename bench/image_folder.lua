-- Decoding an image folder into training batches: images per second of one
-- epoch of lm.data.loader over lm.data.image_folder (decode, resize to 32x32,
-- batch 128), for 1 and 2 worker threads. The peer is
-- bench/image_folder_torch.py (PIL + torchvision's ImageFolder) on the same
-- files.
--   lumen bench/image_folder.lua DIR [workers...]
-- DIR is made (2,000 images, half PNG, half JPEG, 64x64, 10 classes) when
-- it does not exist.
local lm = require 'lumen'
-- which OpenBLAS kernels ran (every benchmark says)
print(string.format("# OpenBLAS kernels: %s (%s)", lm.blas_info().kernel or "?", lm.blas_info().choice or "?"))

local dir = arg[1] or "/tmp/lumen-bench-images"
local workers = {}
for i = 2, #arg do workers[#workers + 1] = tonumber(arg[i]) end
if #workers == 0 then workers = {1, 2} end

if not pcall(lm.list_dir, dir) then
  lm.manual_seed(1)
  for k = 1, 10 do
    local folder = string.format("%s/class%02d", dir, k)
    lm.mkdir(folder)
    for i = 1, 200 do
      local img = lm.rand(3, 64, 64)
      lm.image.save(string.format("%s/%03d.%s", folder, i, i % 2 == 0 and "png" or "jpg"), img)
    end
  end
end

for _, w in ipairs(workers) do
  local set = lm.data.image_folder(dir, {size = {32, 32}, workers = w})
  local loader = lm.data.loader(set, {batch_size = 128, drop_last = false, seed = 1})
  local best = math.huge
  for _ = 1, 3 do
    local t0 = lm.clock()
    for x in loader:epoch_iter() do local _ = x end
    best = math.min(best, lm.clock() - t0)
  end
  print(string.format("lumen image_folder, %d worker thread(s): %d images in %.3f s: %.0f images/s",
    w, set.n, best, set.n / best))
end
