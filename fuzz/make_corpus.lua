-- Seed corpora for the fuzz harnesses: small valid files of each format,
-- generated (nothing is committed). lumen fuzz/make_corpus.lua DIR
local dir = arg[1] or "build-fuzz/corpus"
for _, sub in ipairs{"idx", "cifar", "safetensors", "tensor_table", "font", "image"} do
  os.execute("mkdir -p " .. dir .. "/" .. sub)
end
local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
-- IDX: images 2 x 3 x 3 and labels
write(dir .. "/idx/images", "\0\0\8\3" .. string.pack(">I4>I4>I4", 2, 3, 3) .. string.rep("\7", 18))
write(dir .. "/idx/labels", "\0\0\8\1" .. string.pack(">I4", 4) .. "\1\2\3\9")
-- CIFAR: two records
write(dir .. "/cifar/batch", "\3" .. string.rep("\200", 3072) .. "\9" .. string.rep("\1", 3072))
-- safetensors from Lumen itself, with metadata-free and int32 entries
lm.save(dir .. "/safetensors/a", {w = lm.ones(2, 3), b = lm.tensor({1, 2}, 'int32')})
lm.save(dir .. "/safetensors/b", {s = lm.tensor(3)})
-- table descriptions: kind bytes as fuzz_tensor_table.c reads them
write(dir .. "/tensor_table/flat", "\0\6\3\1\2\3")
write(dir .. "/tensor_table/nested", "\1\6\2\6\2\1\2\6\2\3\4")

-- fonts: two small TrueType fonts built here, so that most mutations land in
-- the tables lm_font_check reads (glyph 1 a square, 2 a triangle with an
-- off-curve point, 3 a composite of both, one of them scaled), and DejaVu Sans
-- when installed (Debian: fonts-dejavu-core)
local pack = string.pack
local function ttf(tables) -- tag -> bytes: a table directory, then the tables, 4-byte aligned
  local tags = {}
  for tag in pairs(tables) do tags[#tags + 1] = tag end
  table.sort(tags)
  local entries, body = {pack(">I4HHHH", 0x10000, #tags, 0, 0, 0)}, {}
  local at = 12 + 16 * #tags
  for _, tag in ipairs(tags) do
    local t = tables[tag]
    entries[#entries + 1] = pack(">c4I4I4I4", tag, 0, at, #t)
    t = t .. string.rep("\0", -#t % 4)
    body[#body + 1], at = t, at + #t
  end
  return table.concat(entries) .. table.concat(body)
end
local glyphs = { -- contours, bounding box, then the outline
  "", -- .notdef: empty
  -- 4 on-curve points, 16-bit deltas (one flag, repeated 3 times)
  pack(">hhhhhHHBB", 1, 100, 0, 500, 400, 3, 0, 0x09, 3) .. pack(">hhhhhhhh", 100, 400, 0, -400, 0, 0, 400, 0),
  -- on, off, on: 8-bit deltas, positive and negative
  pack(">hhhhhHHBBBBBBBBB", 1, 10, 10, 250, 250, 2, 0, 0x37, 0x36, 0x17, 10, 200, 40, 10, 240, 240),
  -- glyph 1 at (0, 0) by 16-bit offsets; glyph 2 at (50, 0) by 8-bit ones, scaled by 0.5
  pack(">hhhhhHHhhHHbbH", -1, 0, 0, 500, 400, 0x23, 1, 0, 0, 0x0A, 2, 50, 0, 0x2000),
}
local glyf, loca = {}, {}
for i, g in ipairs(glyphs) do
  loca[i], glyf[i] = #table.concat(glyf) // 2, g .. string.rep("\0", #g % 2)
end
loca[#glyphs + 1] = #table.concat(glyf) // 2
local function font(extra)
  local t = {
    head = pack(">I4I4I4I4HHi8i8hhhhHHhhh", 0x10000, 0x10000, 0, 0x5F0F3CF5, 0, 1000, 0, 0, 0, 0, 500, 400,
      0, 8, 2, 0, 0), -- indexToLocFormat 0: loca in 16 bits
    hhea = pack(">I4hhhHhhhhhhhhhhhH", 0x10000, 800, -200, 0, 500, 0, 0, 500, 1, 0, 0, 0, 0, 0, 0, 0, 2),
    maxp = pack(">I4H", 0x5000, #glyphs),
    hmtx = pack(">HhHhhh", 0, 0, 600, 100, 10, 0), -- two long metrics, then left side bearings
    glyf = table.concat(glyf),
    loca = pack(">" .. string.rep("H", #loca), table.unpack(loca)),
  }
  for tag, bytes in pairs(extra) do t[tag] = bytes end
  return ttf(t)
end
local function cmap(sub) return pack(">HHHHI4", 0, 1, 3, 1, 12) .. sub end
-- cmap format 4: A-C by delta, a-b through the glyph array, and the final 0xFFFF segment
local format4 = pack(">HHHHHHH", 4, 44, 0, 6, 4, 1, 2) .. pack(">HHH", 0x43, 0x62, 0xFFFF) .. "\0\0"
  .. pack(">HHH", 0x41, 0x61, 0xFFFF) .. pack(">hhh", 1 - 0x41, 0, 1) .. pack(">HHH", 0, 4, 0) .. pack(">HH", 3, 1)
-- cmap format 12: A-C, and one group above the BMP
local format12 = pack(">HHI4I4I4", 12, 0, 40, 0, 2) .. pack(">I4I4I4I4I4I4", 0x41, 0x43, 1, 0x1F600, 0x1F600, 3)
-- GPOS: a pair-set lookup (glyph 1 then 2) and a class-pair lookup (glyphs 2-3 then 1)
local pair_sets = pack(">HHHHHH", 1, 12, 4, 0, 1, 18)
  .. pack(">HHH", 1, 1, 1) -- coverage: glyph 1
  .. pack(">HHh", 1, 2, -50) -- its pair set: glyph 2
local class_pairs = pack(">HHHHHHHH", 2, 24, 4, 0, 34, 44, 2, 2) .. pack(">hhhh", 0, 0, 0, -80)
  .. pack(">HHHHH", 2, 1, 2, 3, 0) -- coverage: a range
  .. pack(">HHHHH", 1, 2, 2, 1, 1) -- class definition 1: glyphs 2-3 in class 1
  .. pack(">HHHHH", 2, 1, 1, 1, 1) -- class definition 2: glyph 1 in class 1
local lookup1 = pack(">HHHH", 2, 0, 1, 8) .. pair_sets
local lookup2 = pack(">HHHH", 2, 0, 1, 8) .. class_pairs
local gpos = pack(">I4HHHHHH", 0x10000, 0, 0, 10, 2, 6, 6 + #lookup1) .. lookup1 .. lookup2
local kern = pack(">HHHHHHHHHHHh", 0, 1, 0, 20, 1, 1, 6, 0, 0, 1, 3, -30) -- glyph 1 then 3
write(dir .. "/font/small4.ttf", font{cmap = cmap(format4), GPOS = gpos})
write(dir .. "/font/small12.ttf", font{cmap = cmap(format12), kern = kern})
local dejavu = io.open("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "rb")
if dejavu then write(dir .. "/font/DejaVuSans.ttf", dejavu:read("a")); dejavu:close() end
print("corpora in " .. dir)

-- images: small files of each format Lumen writes (grey, RGB and RGBA PNG,
-- JPEG, BMP, TGA), a 16-bit grey PNG and a GIF written here by hand (one
-- 2 x 2 frame, LZW codes of 2-bit colours)
local gradient = lm.arange(0, 47, 'float32'):view(3, 4, 4) / 47
lm.image.save(dir .. "/image/rgb.png", gradient)
lm.image.save(dir .. "/image/grey.png", gradient:narrow(1, 1, 1))
lm.image.save(dir .. "/image/rgba.png", lm.cat({gradient, lm.ones(1, 4, 4)}, 1))
lm.image.save(dir .. "/image/rgb.jpg", gradient)
-- an 8 x 8 progressive JPEG (PIL wrote it, quality 50, optimised Huffman
-- tables): 10 scans, DC and AC, first passes and refinements
local progressive = "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616"
  .. "183123251d283a333d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffdb00430111"
  .. "12121815182f1a1a2f6342384263636363636363636363636363636363636363636363636363636363636363636363636363"
  .. "63636363636363636363636363ffc20011080008000803012200021101031101ffc400150001010000000000000000000000"
  .. "0000000002ffc40014010100000000000000000000000000000000ffda000c03010002100310000001907fffc40016100101"
  .. "0100000000000000000000000000020111ffda0008010100010502c85fffc400151101010000000000000000000000000000"
  .. "0001ffda0008010301013f01afffc40014110100000000000000000000000000000000ffda0008010201013f017fffc40018"
  .. "10000203000000000000000000000000000001112171ffda0008010100063f02a4a30fffc400191001000203000000000000"
  .. "0000000000000100b1112131ffda0008010100013f213a11b301a1b9ffda000c030100020003000000100bffc40015110101"
  .. "00000000000000000000000000000031ffda0008010301013f10a7ffc4001511010100000000000000000000000000000001"
  .. "ffda0008010201013f108fffc4001a100002020300000000000000000000000001110021316181ffda0008010100013f104b"
  .. "3ab050d61f5a7fffd9"
write(dir .. "/image/progressive.jpg", (progressive:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)))
lm.image.save(dir .. "/image/rgb.bmp", gradient)
lm.image.save(dir .. "/image/rgb.tga", gradient)
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = c ~ s:byte(i)
    for _ = 1, 8 do c = (c & 1 == 1) and ((c >> 1) ~ 0xEDB88320) or (c >> 1) end
  end
  return c ~ 0xFFFFFFFF
end
local function chunk(kind, data) return pack(">I4", #data) .. kind .. data .. pack(">I4", crc32(kind .. data)) end
-- 2 x 2, 16-bit grey; the pixel rows (filter byte 0 each) in one stored deflate block
local rows = "\0\0\0\255\255" .. "\0\128\0\64\0"
local function adler32(s)
  local a, b = 1, 0
  for i = 1, #s do a = (a + s:byte(i)) % 65521; b = (b + a) % 65521 end
  return (b << 16) | a
end
local zlib = "\120\1" .. "\1" .. pack("<I2<I2", #rows, ~#rows & 0xFFFF) .. rows .. pack(">I4", adler32(rows))
write(dir .. "/image/grey16.png", "\137PNG\r\n\26\n" .. chunk("IHDR", pack(">I4>I4BBBBB", 2, 2, 16, 0, 0, 0, 0))
  .. chunk("IDAT", zlib) .. chunk("IEND", ""))
write(dir .. "/image/tiny.gif", "GIF89a" .. pack("<I2<I2BBB", 2, 2, 0x81, 0, 0)
  .. "\0\0\0\255\0\0\0\255\0\0\0\255" .. "\44" .. pack("<I2<I2<I2<I2B", 0, 0, 2, 2, 0)
  .. "\2\3\132\17\5\0" .. "\59")
