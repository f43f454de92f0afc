-- Images: decoding against an independent encoder (a BMP written byte by
-- byte here), round trips through every format, antialiased resizing, image
-- folders with their labels, corrupt files, the worker-thread loader and the
-- seeded transforms.
local lm = require 'lumen'

local dir = os.tmpname()
os.remove(dir)
lm.mkdir(dir)

-- A 24-bit BMP of pixels px[y][x] = {r, g, b} (0-255), written by hand:
-- bottom-up rows of B, G, R padded to 4 bytes.
local function write_bmp(path, px)
  local h, w = #px, #px[1]
  local row_bytes = (3 * w + 3) // 4 * 4
  local rows = {}
  for y = h, 1, -1 do
    local row = {}
    for x = 1, w do
      local p = px[y][x]
      row[#row + 1] = string.char(p[3], p[2], p[1])
    end
    row[#row + 1] = string.rep("\0", row_bytes - 3 * w)
    rows[#rows + 1] = table.concat(row)
  end
  local pixels = table.concat(rows)
  local header = "BM" .. string.pack("<I4I2I2I4", 54 + #pixels, 0, 0, 54)
    .. string.pack("<I4i4i4I2I2I4I4i4i4I4I4", 40, w, h, 1, 24, 0, #pixels, 2835, 2835, 0, 0)
  lm.write_file(path, header .. pixels)
end

local function max_abs(a, b) return (a - b):abs():max():item() end

describe("lm.image", function()
  it("decodes a hand-written BMP to the exact pixel values, as [C, H, W] in [0, 1]", function()
    local px = {}
    for y = 1, 5 do
      px[y] = {}
      for x = 1, 7 do px[y][x] = {(10 * x + y) % 256, (7 * y) % 256, (x * y * 13) % 256} end
    end
    local path = dir .. "/hand.bmp"
    write_bmp(path, px)
    local t = lm.image.load(path)
    same(t:shape(), {3, 5, 7})
    for y = 1, 5 do
      for x = 1, 7 do
        for c = 1, 3 do near(t[c][y][x], px[y][x][c] / 255, 1e-7, "pixel") end
      end
    end
    local w, h, c = lm.image.info(path)
    same({w, h, c}, {7, 5, 3})
    local grey = lm.image.load(path, {channels = 1})
    same(grey:shape(), {1, 5, 7})
    local rgba = lm.image.load(path, {channels = 4})
    near(rgba[4]:min():item(), 1, 0, "an added alpha is opaque")
  end)

  it("round-trips PNG, BMP and TGA exactly at 8 bits and JPEG closely", function()
    lm.manual_seed(1)
    local img = lm.rand(3, 16, 24)
    for _, ext in ipairs{"png", "bmp", "tga"} do
      local path = dir .. "/rt." .. ext
      lm.image.save(path, img)
      local err = max_abs(lm.image.load(path), img)
      truthy(err <= 0.5 / 255 + 1e-6, ext .. " round trip within half a level: " .. err)
      -- and stable: saving what was loaded gives the same 8-bit values
      local back = lm.image.load(path)
      lm.image.save(path, back)
      eq(max_abs(lm.image.load(path), back), 0, ext .. " second round trip")
    end
    local smooth = lm.arange(1, 16 * 24):view(1, 16, 24):expand(3, 16, 24):contiguous() / (16 * 24)
    lm.image.save(dir .. "/rt.jpg", smooth)
    local back = lm.image.load(dir .. "/rt.jpg")
    truthy((back - smooth):abs():mean():item() < 0.01, "jpeg within 1 %")
    lm.image.save(dir .. "/grey.png", lm.rand(9, 4))
    same(lm.image.load(dir .. "/grey.png"):shape(), {1, 9, 4})
    lm.image.save(dir .. "/clamped.png", lm.tensor{{-1, 0.5, 2}})
    same(lm.image.load(dir .. "/clamped.png"):view(-1):totable(), {0, 128 / 255, 1}, 1e-6)
  end)

  it("says what is wrong with a bad image or a bad call", function()
    lm.write_file(dir .. "/junk.png", "this is not a png")
    raises(function() lm.image.load(dir .. "/junk.png") end,
      "cannot decode the image '" .. dir .. "/junk.png': Image not of any known type, or corrupt")
    -- a PNG cut short anywhere past its signature says so (stb alone named a cut-off chunk: "IDA")
    lm.image.save(dir .. "/whole.png", lm.rand(3, 16, 16))
    local f = assert(io.open(dir .. "/whole.png", "rb"))
    local bytes = f:read("a")
    f:close()
    for _, n in ipairs{12, 40, #bytes // 2, #bytes - 12} do
      lm.write_file(dir .. "/cut.png", bytes:sub(1, n))
      raises(function() lm.image.load(dir .. "/cut.png") end,
        "cannot decode the image '" .. dir .. "/cut.png': Corrupt PNG (damaged or cut short)")
    end
    -- stb decodes the bytes a BMP, TGA (plain or run-length) or GIF lacks as zeros: cut short is refused
    local function cut(path, fraction)
      local g = assert(io.open(path, "rb"))
      local whole = g:read("a")
      g:close()
      lm.write_file(path, whole:sub(1, math.floor(#whole * fraction)))
    end
    for _, ext in ipairs{"bmp", "tga"} do
      lm.image.save(dir .. "/cut." .. ext, lm.rand(3, 16, 16))
      same(lm.image.load(dir .. "/cut." .. ext):shape(), {3, 16, 16})
      cut(dir .. "/cut." .. ext, 0.6)
      raises(function() lm.image.load(dir .. "/cut." .. ext) end, "cannot decode the image '" .. dir .. "/cut."
        .. ext .. "': the file is cut short (it ends before the image its header declares)")
    end
    -- an 8 x 8 GIF (PIL wrote it), whole and cut short within its pixel data
    local gif_hex = "4749463837610800080083000000000033000000333333333333666666666699666699669966999999999999cc99cccc"
      .. "cc0000000000000000000000002c000000000800080000082a0001081c282000800108132a5c38a040430205224a9c18"
      .. "11810104071268dcc871e382040b142c581010003b"
    local gif = gif_hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    lm.write_file(dir .. "/g.gif", gif)
    same(lm.image.load(dir .. "/g.gif"):shape(), {4, 8, 8})
    lm.write_file(dir .. "/g.gif", gif:sub(1, #gif - 12))
    raises(function() lm.image.load(dir .. "/g.gif") end, "the file is cut short")
    -- a flipped bit in a PNG's pixel data (stb does not check the chunks' checksums)
    local at = bytes:find("IDAT", 1, true) + 10
    lm.write_file(dir .. "/flip.png", bytes:sub(1, at - 1) .. string.char(bytes:byte(at) ~ 1) .. bytes:sub(at + 1))
    raises(function() lm.image.load(dir .. "/flip.png") end,
      "Corrupt PNG (damaged: the checksum of its 'IDAT' chunk does not match)")
    raises(function() lm.image.load(dir .. "/missing.png") end, "cannot open the image")
    raises(function() lm.image.save(dir .. "/x.gifx", lm.rand(3, 2, 2)) end, "has no image extension")
    raises(function() lm.image.save(dir .. "/x.png", lm.rand(5, 2, 2)) end,
      "expected a float32 image [C, H, W] with C in 1-4")
    raises(function() lm.image.load(dir .. "/rt.png", {channels = 7}) end, "channels must be 0 (as stored) or 1-4")
    raises(function() lm.image.resize(lm.rand(2, 2), 3, 3) end, "expected a float32 CPU image")
    -- the functions name themselves (Lua's own message said "bad argument #2 to '?'")
    raises(function() lm.image.resize(lm.rand(3, 4, 4), 2.5, 6) end,
      "lm.image.resize: h must be a whole number in 1..65535, got 2.5")
    raises(function() lm.image.load(dir .. "/rt.png", {channels = 3.5}) end,
      "lm.image.load: channels must be 0 (as stored) or 1-4, got 3.5")
    raises(function() lm.image.load(dir .. "/rt.png", {channels = 4294967299}) end, "got 4294967299")
    raises(function() lm.image.load(dir .. "/rt.png\0.jpg") end, "lm.image.load: the path contains a NUL byte")
    raises(function() lm.image.info(3) end, "lm.image.info: the path must be a string, got a number")
  end)

  it("refuses an image whose header claims more pixels than the limit, before allocating", function()
    -- a 40-byte GIF claiming 65535 x 65535 pixels (4.3 G): stb would allocate
    -- 17 GB for its frame before reading a pixel
    local gif = "GIF89a" .. string.pack("<I2<I2BBB", 65535, 65535, 0x80, 0, 0) .. "\0\0\0\255\255\255"
      .. "\44" .. string.pack("<I2<I2<I2<I2B", 0, 0, 65535, 65535, 0) .. "\2\2\68\1\0\59"
    lm.write_file(dir .. "/bomb.gif", gif)
    eq(lm.image.max_pixels(), 178956970)
    local why = "its header declares 65535 x 65535 pixels, more than the limit of 178956970 "
      .. "(lm.image.set_max_pixels raises it)"
    raises(function() lm.image.load(dir .. "/bomb.gif") end,
      "cannot decode the image '" .. dir .. "/bomb.gif': " .. why)
    raises(function() lm.image.decode(gif) end, why)
    -- the limit is the user's: lowered, a 16 x 16 image is refused; back, it loads
    lm.image.save(dir .. "/small.png", lm.rand(3, 16, 16))
    eq(lm.image.set_max_pixels(255), 178956970)
    raises(function() lm.image.load(dir .. "/small.png") end, "declares 16 x 16 pixels, more than the limit of 255")
    eq(lm.image.set_max_pixels(256), 255)
    eq(lm.image.load(dir .. "/small.png"):shape_string(), "3x16x16")
    -- a top-down BMP stores its height negative: the limit counts its size all the same
    local rows = {}
    for y = 1, 16 do
      rows[y] = {}
      for x = 1, 16 do rows[y][x] = {x * 15, y * 15, 0} end
    end
    write_bmp(dir .. "/up.bmp", rows)
    local f = assert(io.open(dir .. "/up.bmp", "rb"))
    local up = f:read("a")
    f:close()
    local down = up:sub(1, 22) .. string.pack("<i4", -16) .. up:sub(27)
    lm.write_file(dir .. "/down.bmp", down)
    eq(select(2, lm.image.info(dir .. "/down.bmp")), 16, "lm.image.info reports the height, not its sign")
    lm.image.set_max_pixels(255)
    raises(function() lm.image.load(dir .. "/down.bmp") end, "declares 16 x 16 pixels, more than the limit of 255")
    -- a later header error is reported as itself, not as the refusal before it
    lm.write_file(dir .. "/text.png", "plain text")
    local ok, err = pcall(lm.image.info, dir .. "/text.png")
    truthy(not ok and not err:find("declares", 1, true), err)
    lm.image.set_max_pixels(178956970)
    eq(lm.image.load(dir .. "/down.bmp"):shape_string(), "3x16x16")
    raises(function() lm.image.set_max_pixels(0) end, "the limit must be a positive number of pixels")
  end)

  it("reads a 16-bit PNG at 16 bits (stb's 8-bit path keeps the high byte)", function()
    -- a 4 x 3 grey PNG of 16-bit values 123 + 5000 k (written by PIL, mode I;16)
    local hex = "89504e470d0a1a0a0000000d4948445200000004000000031000000000c10f2d590000001b49444154"
      .. "789c6360a8166156efb61666f153105110561051803300377e03ad98df008f0000000049454e44ae426082"
    local path = os.tmpname() .. ".png"
    lm.write_file(path, (hex:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end)))
    local t = lm.image.load(path)
    os.remove(path)
    eq(t:shape_string(), "1x3x4")
    local want = {}
    for k = 0, 11 do want[k + 1] = (123 + 5000 * k) / 65535 end
    same(t:view(-1):totable(), want, 1e-7)
  end)

  it("resizes as PIL's bilinear and torchvision's antialiased resize, borders included", function()
    -- 1 0 0 0 to two pixels: the first's taps outside the row are dropped and the
    -- rest renormalised, 3/7 (clamped edges, repeating the 1, gave 1/2)
    same(lm.image.resize(lm.tensor{1, 0, 0, 0}:view(1, 1, 4), 1, 2):view(-1):totable(), {3 / 7, 0}, 1e-6)
  end)

  it("resizes with antialiasing: constants stay, a fine checkerboard averages out", function()
    local const = lm.full({2, 30, 40}, 0.25)
    truthy(max_abs(lm.image.resize(const, 7, 9), lm.full({2, 7, 9}, 0.25)) < 1e-6, "constant")
    local rows = {}
    for y = 1, 64 do
      rows[y] = {}
      for x = 1, 64 do rows[y][x] = (x + y) % 2 end
    end
    local board = lm.tensor{rows}
    local small = lm.image.resize(board, 8, 8)
    truthy((small - 0.5):abs():max():item() < 0.02, "checkerboard -> grey (aliasing would give 0 or 1)")
    local batch = lm.image.resize(lm.rand(2, 3, 10, 10), 20, 5)
    same(batch:shape(), {2, 3, 20, 5})
    truthy(max_abs(lm.image.resize(board, 64, 64), board) < 1e-6, "same size is the identity")
  end)
end)

describe("transforms", function()
  local T = lm.data.transforms
  local x = lm.arange(1, 2 * 1 * 4 * 5):view(2, 1, 4, 5):float()

  it("flips every image with p = 1 and none with p = 0", function()
    local flipped = T.horizontal_flip(1)(x)
    for i = 1, 2 do
      for r = 1, 4 do
        for c = 1, 5 do eq(flipped[i][1][r][c], x[i][1][r][6 - c]) end
      end
    end
    truthy(max_abs(T.horizontal_flip(0)(x), x) == 0, "p = 0 keeps")
  end)

  it("crops windows of the zero-padded image", function()
    lm.manual_seed(5)
    local crop = T.random_crop({4, 5}, {padding = 2})(x)
    same(crop:shape(), {2, 1, 4, 5})
    -- every output is the input shifted by some (dy, dx) in [-2, 2], zeros outside
    for i = 1, 2 do
      local found = false
      for dy = -2, 2 do
        for dx = -2, 2 do
          local ok = true
          for r = 1, 4 do
            for c = 1, 5 do
              local y, xx = r + dy, c + dx
              local want = (y >= 1 and y <= 4 and xx >= 1 and xx <= 5) and x[i][1][y][xx] or 0
              if crop[i][1][r][c] ~= want then ok = false end
            end
          end
          found = found or ok
        end
      end
      truthy(found, "sample " .. i .. " is a shifted window")
    end
    same(T.random_crop(4, {padding = 0})(lm.rand(3, 2, 4, 4)):shape(), {3, 2, 4, 4})
    raises(function() T.random_crop(9)(x) end, "does not fit")
  end)

  it("normalizes per channel and composes in order", function()
    local y = T.compose{T.normalize({1, 2}, {2, 4})}(lm.ones(1, 2, 1, 1))
    same(y:view(-1):totable(), {0, -0.25}, 1e-7)
    raises(function() T.normalize({1, 2, 3}, {1, 1, 1})(lm.ones(1, 2, 1, 1)) end,
      "3 channel means for images with 2 channels")
    raises(function() T.compose{T.normalize(0, 1), 3} end, "entry 2 is a number")
  end)

  it("gives the same augmented epoch on every run, different epochs differ", function()
    local set = {x = lm.rand(20, 3, 8, 8), y = lm.arange(1, 20, 'int32')}
    local aug = T.compose{T.random_crop(8, {padding = 2}), T.horizontal_flip()}
    local function epoch(loader)
      local out = {}
      for xb in loader:epoch_iter() do out[#out + 1] = xb:clone() end
      return out
    end
    local a = lm.data.loader(set, {batch_size = 5, seed = 3, transform = aug})
    local b = lm.data.loader(set, {batch_size = 5, seed = 3, transform = aug})
    local e1a, e1b = epoch(a), epoch(b)
    lm.rand(100) -- other draws in between change nothing
    local e2a, e2b = epoch(a), epoch(b)
    for i = 1, 4 do
      eq(max_abs(e1a[i], e1b[i]), 0, "epoch 1 batch " .. i)
      eq(max_abs(e2a[i], e2b[i]), 0, "epoch 2 batch " .. i)
    end
    truthy(max_abs(e1a[1], e2a[1]) > 0, "epochs differ")
  end)
end)

describe("image folders", function()
  -- class k's images are filled with colour k, so a label can be read back
  -- from its image; PNGs and JPEGs of two sizes
  local root = dir .. "/folder"
  local colours = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
  local names = {"cat", "ant", "bee"} -- sorted: ant = 1, bee = 2, cat = 3
  local counts = {5, 4, 3}
  for k, name in ipairs(names) do
    lm.mkdir(root .. "/" .. name)
    for i = 1, counts[k] do
      local c = colours[k]
      local img = lm.tensor(c):view(3, 1, 1):expand(3, 12 + i % 2 * 4, 10):contiguous()
      lm.image.save(string.format("%s/%s/%02d.%s", root, name, i, i % 2 == 0 and "jpg" or "png"), img)
    end
  end
  lm.write_file(root .. "/cat/notes.txt", "not an image, ignored")
  local label_of_colour = {[1] = 3, [2] = 1, [3] = 2} -- cat red, ant green, bee blue

  it("numbers classes by sorted name and labels each file by its folder", function()
    local set = lm.data.image_folder(root, {size = {8, 8}})
    same(set.classes, {"ant", "bee", "cat"})
    eq(set.n, 12)
    local all = lm.data.load_all(set)
    same(all.x:shape(), {12, 3, 8, 8})
    for i = 1, 12 do
      local mean = all.x[i]:view(3, -1):mean(2)
      local _, c = mean:max(1)
      eq(label_of_colour[c:item()], all.y[i], "sample " .. i)
    end
    -- options the folder loader cannot honour are refused, not ignored
    raises(function() lm.data.loader(set, {normalize = {0.5, 0.25}}) end,
      "loader: normalize is not supported for image folders (use a transform: lm.data.transforms)")
    raises(function() lm.data.loader(set, {clip = {0, 1}}) end, "loader: clip is not supported for image folders")
    raises(function() lm.data.loader(set, {batch_size = 16}) end,
      "loader: 12 images make no whole batch of 16, and a shuffling loader drops the partial one")
    eq(#lm.data.loader(set, {batch_size = 16, drop_last = false}), 1)
  end)

  it("feeds a shuffled epoch one batch ahead, each sample once, labels matching images", function()
    local set = lm.data.image_folder(root, {size = {6, 6}, workers = 3})
    local loader = lm.data.loader(set, {batch_size = 5, drop_last = false, seed = 1})
    eq(#loader, 3)
    local seen = 0
    for x, y in loader:epoch_iter() do
      for i = 1, x:size(1) do
        local _, c = x[i]:view(3, -1):mean(2):max(1)
        eq(label_of_colour[c:item()], y[i])
        seen = seen + 1
      end
    end
    eq(seen, 12)
  end)

  it("starts a new epoch after one left early (its next batch was decoding)", function()
    local set = lm.data.image_folder(root, {size = {6, 6}, workers = 2})
    local loader = lm.data.loader(set, {batch_size = 5, shuffle = false})
    for _ in loader:epoch_iter() do break end -- luacheck: ignore 512 (left early on purpose)
    local seen = 0
    for x in loader:epoch_iter() do seen = seen + x:size(1) end
    eq(seen, 12)
  end)

  it("names a corrupt file, or skips it with a warning when asked", function()
    local bad = dir .. "/bad"
    lm.mkdir(bad .. "/a")
    lm.image.save(bad .. "/a/good.png", lm.rand(3, 4, 4))
    lm.write_file(bad .. "/a/broken.png", "\137PNG garbage")
    raises(function() lm.data.image_folder(bad) end, "broken.png' is not an image Lumen can read")
    local set = lm.data.image_folder(bad, {skip_bad = true})
    eq(set.n, 1)
    os.remove(bad .. "/a/broken.png")
    -- a header that reads but pixels that do not: found by the workers
    local f = io.open(bad .. "/a/good.png", "rb")
    local bytes = f:read("a")
    f:close()
    lm.write_file(bad .. "/a/truncated.png", bytes:sub(1, 60))
    local set2 = lm.data.image_folder(bad, {size = {4, 4}})
    eq(set2.n, 2)
    raises(function() lm.data.load_all(set2) end, "truncated.png")
    set2.skip_bad = true
    local all = lm.data.load_all(set2)
    eq(all.x:size(1), 1)
    -- a batch of which no file decodes is passed over, by load_all and by a loader
    eq(lm.data.load_all(set2, {batch_size = 1}).x:size(1), 1)
    local seen = 0
    for x in lm.data.loader(set2, {batch_size = 1, shuffle = false}):epoch_iter() do seen = seen + x:size(1) end
    eq(seen, 1)
    os.remove(bad .. "/a/good.png")
    raises(function() lm.data.load_all(lm.data.image_folder(bad, {size = {4, 4}, skip_bad = true})) end,
      "lm.data.load_all: no image of the folder could be decoded")
    raises(function() lm.data.image_folder(dir .. "/nowhere") end, "cannot list the folder")
  end)

  it("refuses options it would fail on later, before reading a file", function()
    local good = dir .. "/opts"
    lm.mkdir(good .. "/a")
    lm.image.save(good .. "/a/x.png", lm.rand(3, 4, 4))
    raises(function() lm.data.image_folder(good, {size = {0, 5}}) end,
      "lm.data.image_folder: size must be {h, w} (whole numbers of pixels, 1 to 65535), got a table {0, 5}")
    raises(function() lm.data.image_folder(good, {size = {7.5, 5}}) end, "size must be {h, w}")
    raises(function() lm.data.image_folder(good, {channels = 5}) end,
      "lm.data.image_folder: channels must be 1, 2, 3 or 4, got 5")
    raises(function() lm.data.image_folder(good, {channels = "rgb"}) end, "channels must be 1, 2, 3 or 4")
    raises(function() lm.data.image_folder(good, {workers = 0}) end, "workers must be a positive integer, got 0")
    raises(function() lm.data.image_folder(good, {skip_bad = "yes"}) end, 'skip_bad must be true or false, got "yes"')
    raises(function() lm.data.image_folder(good, {chanels = 1}) end,
      "lm.data.image_folder: unknown option 'chanels'; did you mean channels?")
    eq(lm.data.load_all(lm.data.image_folder(good, {size = {2.0, 3}, channels = 1.0})).x:shape_string(), "1x1x2x3")
  end)
end)

os.execute("rm -rf '" .. dir .. "'")
