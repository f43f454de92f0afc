-- Image folders as data sets (lm.data.image_folder): one class per
-- subfolder, decoded by worker threads ahead of the training loop.
local lm = require 'lumen'
local transforms = require 'lumen.transforms'
local checks = require 'lumen.nn.checks'

local M = {}

local EXTENSIONS = {png = true, jpg = true, jpeg = true, bmp = true, tga = true, gif = true}

local function is_image_name(name)
  local ext = name:match("%.([^./]+)$")
  return ext ~= nil and EXTENSIONS[ext:lower()] == true
end

local function default_workers()
  return math.max(1, math.min(8, lm.get_num_threads and lm.get_num_threads() or 2))
end

--- An image folder: `root/<class>/<image>`, classes sorted by name and
--- numbered from 1. opts.size = {h, w} (default: the first image's size;
--- others are resized to it, antialiased), opts.channels (3: grey images
--- become RGB, alpha is dropped), opts.transform (applied to each batch by
--- the loader), opts.workers (decoding threads), opts.skip_bad (false: a
--- file that is not a readable image is an error naming it; true: skipped
--- with a warning on stderr). Returns a set {paths, y, classes, n, ...} that
--- lm.data.loader takes like an in-memory one; lm.data.load_all reads it
--- into {x, y}.
function M.image_folder(root, opts)
  local fname = "lm.data.image_folder"
  opts = checks.options(opts, fname)
  checks.opts(opts, fname, {"size", "channels", "transform", "workers", "skip_bad"})
  if type(root) ~= "string" then error("image_folder: root must be a folder path, got a " .. type(root), 2) end
  if opts.transform ~= nil then checks.callable(opts.transform, "transform", fname) end
  -- checked here, not where the workers first decode: a bad one fails before any work
  local size = opts.size
  if size ~= nil and not (type(size) == "table" and checks.is_whole(size[1]) and checks.is_whole(size[2])
      and size[1] >= 1 and size[2] >= 1 and size[1] <= 65535 and size[2] <= 65535) then
    error(fname .. ": size must be {h, w} (whole numbers of pixels, 1 to 65535), got " .. checks.shown(size)
      .. (type(size) == "table" and string.format(" {%s, %s}", tostring(size[1]), tostring(size[2])) or ""), 2)
  end
  if opts.channels ~= nil and not (checks.is_whole(opts.channels) and opts.channels >= 1 and opts.channels <= 4) then
    error(fname .. ": channels must be 1, 2, 3 or 4, got " .. checks.shown(opts.channels), 2)
  end
  if opts.workers ~= nil and not (checks.is_whole(opts.workers) and opts.workers >= 1) then
    error(fname .. ": workers must be a positive integer, got " .. checks.shown(opts.workers), 2)
  end
  if opts.skip_bad ~= nil and type(opts.skip_bad) ~= "boolean" then
    error(fname .. ": skip_bad must be true or false, got " .. checks.shown(opts.skip_bad), 2)
  end
  local ok, entries = pcall(lm.list_dir, root)
  if not ok then error("image_folder: " .. tostring(entries), 2) end
  local classes, paths, labels, skipped = {}, {}, {}, {}
  for _, e in ipairs(entries) do
    if e.dir and e.name:sub(1, 1) ~= "." then
      classes[#classes + 1] = e.name
      local folder = root .. "/" .. e.name
      for _, f in ipairs(lm.list_dir(folder)) do
        if not f.dir and is_image_name(f.name) then
          local path = folder .. "/" .. f.name
          local good, why = pcall(lm.image.info, path)
          if good then
            paths[#paths + 1], labels[#labels + 1] = path, #classes
          elseif opts.skip_bad then
            skipped[#skipped + 1] = path
            io.stderr:write("image_folder: skipping ", tostring(why), "\n")
          else
            error("image_folder: " .. tostring(why) .. " (skip such files with {skip_bad = true})", 2)
          end
        end
      end
    end
  end
  if #classes == 0 then error("image_folder: '" .. root .. "' has no class subfolders", 2) end
  if #paths == 0 then error("image_folder: no images (png, jpg, jpeg, bmp, tga, gif) under '" .. root .. "'", 2) end
  local h, w
  if opts.size then
    h, w = math.tointeger(opts.size[1]), math.tointeger(opts.size[2])
  else
    w, h = lm.image.info(paths[1])
  end
  return {
    kind = "image_folder", root = root, paths = paths, y = lm.tensor(labels, 'int32'), n = #paths,
    classes = classes, size = {h, w}, channels = math.tointeger(opts.channels or 3), transform = opts.transform,
    workers = math.tointeger(opts.workers or default_workers()), skip_bad = opts.skip_bad or false, skipped = skipped,
  }
end

-- loader:epoch_iter's first batch: nil or an integer >= 1 (both loaders check it)
function M.check_first(first)
  if first ~= nil and (type(first) ~= "number" or not math.tointeger(first) or first < 1) then
    error("loader:epoch_iter: first (the batch to start at) must be an integer >= 1, got " .. checks.shown(first), 3)
  end
end

--- The 1-based sample order of a loader's current epoch: a permutation
--- seeded by the loader's seed and epoch on its own stream (the global
--- stream, which noise and dropout draw from, is left as it was), or 1..n
--- when the loader does not shuffle. Both loaders use it.
function M.epoch_order(loader)
  if not loader.shuffle then return lm.arange(1, loader.n, 'int32') end
  local state, offset = lm.rng_state()
  lm.manual_seed(loader.seed * 1000003 + loader.epoch)
  local order = lm.randperm(loader.n)
  lm.set_rng_state(state, offset)
  return order
end

-- ---- the loader of an image folder --------------------------------------------------------------

local FolderLoader = {}
FolderLoader.__index = FolderLoader

--- The loader data.loader returns for an image folder (same options and
--- iteration as the in-memory loader; noise options are not supported).
function M.loader(set, opts)
  local self = setmetatable({
    set = set, n = set.n, y = set.y, batch_size = opts.batch_size or 128,
    shuffle = opts.shuffle ~= false, seed = opts.seed or 0, epoch = 0,
    transform = opts.transform or set.transform,
  }, FolderLoader)
  if opts.noise then error("lm.data.loader: noise options are not supported for image folders (use a transform)", 3) end
  if opts.drop_last == nil then self.drop_last = self.shuffle else self.drop_last = opts.drop_last end
  self.decoder = lm._image_loader(set.paths, set.channels, set.size[1], set.size[2], set.workers)
  return self
end

function FolderLoader:__len()
  if self.drop_last then return self.n // self.batch_size end
  return (self.n + self.batch_size - 1) // self.batch_size
end
function FolderLoader:batches_per_epoch() return self:__len() end

-- the 1-based samples of batch i of an epoch's order
local function batch_indices(self, order, i)
  local start = (i - 1) * self.batch_size
  local len = math.min(self.batch_size, self.n - start)
  return order:narrow(1, start + 1, len)
end

-- waits for the batch in flight; a failed file is an error or, with
-- skip_bad, a dropped row (warned about once): a batch whose every file
-- failed is nil, nil (the caller moves on to the next)
local function finish(self, idx)
  if not self.set.skip_bad then return self.decoder:finish(), idx end
  local x, failed = self.decoder:finish(true)
  if #failed == 0 then return x, idx end
  local keep, bad = {}, {}
  for _, f in ipairs(failed) do bad[f[1]] = f[2] end
  for p = 1, idx:size(1) do
    if bad[p] then
      io.stderr:write(string.format("loader: skipping '%s': %s\n", self.set.paths[idx[p]], bad[p]))
    else
      keep[#keep + 1] = p
    end
  end
  if #keep == 0 then return nil, nil end
  local k = lm.tensor(keep, 'int32')
  return x:index_select(k), idx:index_select(k)
end

--- Iterator over one epoch: for x, y, i in loader:epoch_iter() do ... end.
--- While the caller works on batch i, the workers decode batch i + 1.
function FolderLoader:epoch_iter(first)
  M.check_first(first)
  self.epoch = self.epoch + 1
  -- an epoch left early (a break, an error) left its next batch decoding:
  -- wait for it and drop it
  if self.in_flight then
    self.in_flight = false
    self.decoder:finish(true)
  end
  local order = M.epoch_order(self)
  local nb, i = #self, (first or 1) - 1
  local pending
  local function start(k)
    pending = batch_indices(self, order, k)
    self.decoder:start(pending)
    self.in_flight = true
  end
  if i + 1 <= nb then start(i + 1) end
  return function()
    local x, idx
    repeat -- (with skip_bad, past batches of which no file decoded)
      i = i + 1
      if i > nb then return nil end
      self.in_flight = false -- finish takes it, also when it raises
      x, idx = finish(self, pending)
      if i + 1 <= nb then start(i + 1) end
    until x
    local y = self.y:index_select(idx)
    if self.transform then
      x = transforms.apply_seeded(self.transform, x, transforms.batch_seed(self.seed, self.epoch, i))
    end
    return x, y, i
  end
end

--- Reads a whole image folder into memory: {x [N, C, h, w], y}, decoded in
--- batches of opts.batch_size (256) by the set's workers; no transform.
function M.load_all(set, opts)
  if type(set) ~= "table" or set.kind ~= "image_folder" then
    error("lm.data.load_all: set must be an image folder (lm.data.image_folder), got " .. checks.shown(set), 2)
  end
  local batch = checks.options(opts, "lm.data.load_all").batch_size or 256
  if math.type(batch) ~= "integer" or batch < 1 then
    error("lm.data.load_all: batch_size must be a positive integer, got " .. checks.shown(batch), 2)
  end
  local decoder = lm._image_loader(set.paths, set.channels, set.size[1], set.size[2], set.workers)
  local xs, ys = {}, {}
  for start = 1, set.n, batch do
    local idx = lm.arange(start, math.min(set.n, start + batch - 1), 'int32')
    decoder:start(idx)
    local self = {decoder = decoder, set = set}
    local x, kept = finish(self, idx)
    if x then xs[#xs + 1], ys[#ys + 1] = x, set.y:index_select(kept) end
  end
  decoder:close()
  if #xs == 0 then error("lm.data.load_all: no image of the folder could be decoded (each is named above)", 2) end
  local x, y = lm.cat(xs, 1), lm.cat(ys, 1)
  return {x = x, y = y, x, y}
end

return M
