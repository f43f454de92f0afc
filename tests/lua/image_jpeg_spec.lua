-- JPEG reading through libjpeg-turbo: damaged and cut-short files refused
-- with their reason (stb_image's decoder asserted on, or read past, some
-- damaged Huffman streams the image fuzzer found), then the pixels against
-- PIL's, which decodes through the same library: exactly equal 8-bit values
-- for baseline 4:2:0, 4:2:2 and 4:4:4, progressive, optimised, grey and
-- CMYK files, as stored and converted to 1, 3 and 4 channels
-- (tests/torch/jpeg_reference.py writes them).
local lm = require 'lumen'

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p '" .. dir .. "'")

local function max_abs(a, b) return (a - b):abs():max():item() end

local read = dofile("tests/helpers/files.lua").read

-- where the first scan's entropy-coded data begin (after the SOS header)
local function scan_data_start(bytes)
  local sos = assert(bytes:find("\xFF\xDA", 3, true), "a scan")
  return sos + 2 + (bytes:byte(sos + 2) << 8 | bytes:byte(sos + 3))
end

describe("damaged JPEG files", function()
  lm.manual_seed(3)
  local path = dir .. "/whole.jpg"
  lm.image.save(path, lm.rand(3, 48, 40))
  local whole = read(path)
  local data = scan_data_start(whole)

  it("decodes the whole file, and its header alone", function()
    same(lm.image.load(path):shape(), {3, 48, 40})
    same({lm.image.info(path)}, {40, 48, 3})
    same(lm.image.decode(whole, {channels = 1}):shape(), {1, 48, 40})
  end)

  it("refuses a file cut short within its pixels, and names it so", function()
    for _, n in ipairs{data + 10, (data + #whole) // 2, #whole - 40} do
      lm.write_file(dir .. "/cut.jpg", whole:sub(1, n))
      raises(function() lm.image.load(dir .. "/cut.jpg") end, "cannot decode the image '" .. dir
        .. "/cut.jpg': the file is cut short (it ends before the image its header declares)")
    end
    -- every pixel present, the end-of-image marker missing: nothing is lost, so it loads
    lm.write_file(dir .. "/no_eoi.jpg", whole:sub(1, #whole - 2))
    eq(max_abs(lm.image.load(dir .. "/no_eoi.jpg"), lm.image.load(path)), 0, "same pixels without EOI")
  end)

  it("loads a baseline file whose scan header holds zeros (libjpeg's warning, PIL's image)", function()
    local sos = assert(whole:find("\xFF\xDA", 3, true))
    local ns = whole:byte(sos + 4)
    local se = sos + 5 + 2 * ns + 1 -- Ss, Se, Ah/Al follow the components
    eq(whole:byte(se), 63, "a sequential scan ends at coefficient 63")
    local zeros = whole:sub(1, se - 1) .. "\0" .. whole:sub(se + 1)
    eq(max_abs(lm.image.decode(zeros), lm.image.load(path)), 0, "the same pixels")
  end)

  it("refuses a file whose pixel data hold a marker (libjpeg would fill the rest grey)", function()
    local at = data + 40
    local bad = whole:sub(1, at - 1) .. "\xFF\xD5" .. whole:sub(at + 2)
    raises(function() lm.image.decode(bad, {name = "bad"}) end, "cannot decode the image 'bad': "
      .. "Corrupt JPEG (damaged) (libjpeg: Corrupt JPEG data: premature end of data segment)")
  end)

  it("refuses broken headers with libjpeg's reason, without a crash", function()
    raises(function() lm.image.decode("\xFF\xD8", {name = "soi"}) end,
      "cannot decode the image 'soi': the file is cut short")
    local no_frame = whole:sub(1, 2) .. whole:sub(data - 14)
    raises(function() lm.image.decode(no_frame) end, "Corrupt or unsupported JPEG (libjpeg: ")
    lm.write_file(dir .. "/header.jpg", whole:sub(1, 20))
    raises(function() lm.image.info(dir .. "/header.jpg") end, "is not an image Lumen can read: ")
    -- every prefix and a byte flipped at every tenth place: an error or an image, never a crash
    for n = 0, #whole, 7 do
      pcall(lm.image.decode, whole:sub(1, n))
    end
    for at = 3, #whole, 10 do
      local b = whole:sub(1, at - 1) .. string.char(whole:byte(at) ~ 0x5A) .. whole:sub(at + 1)
      for _, c in ipairs{0, 1, 4} do pcall(lm.image.decode, b, {channels = c}) end
    end
  end)

  it("holds a header's size to the pixel limit before decoding", function()
    local old = lm.image.set_max_pixels(40 * 48 - 1)
    local ok, err = pcall(lm.image.load, path)
    lm.image.set_max_pixels(old)
    truthy(not ok, "refused")
    truthy(err:find("its header declares 40 x 48 pixels, more than the limit of 1919", 1, true), err)
  end)
end)

local py = dofile("tests/helpers/python.lua")
if not py.can_import("PIL, numpy, torch") then
  skip("/usr/bin/python3 cannot import PIL, numpy and torch (python3-pil, python3-torch)", true)
end
local ref_dir = py.write_reference("tests/torch/jpeg_reference.py")
local ref = require('lumen.json').decode(read(ref_dir .. "/cases.json"))

describe("JPEG pixels against PIL " .. ref.pil .. " (the same libjpeg-turbo)", function()
  for _, case in ipairs(ref.cases) do
    it(case.name .. ": the same 8-bit values as stored and at 1, 3 and 4 channels", function()
      local path = string.format("%s/%s.jpg", ref_dir, case.name)
      local want = lm.load(string.format("%s/%s.safetensors", ref_dir, case.name))
      local w, h = case.size[1], case.size[2]
      same({lm.image.info(path)}, {w, h, case.stored})
      local bytes = read(path)
      for _, c in ipairs{0, 1, 3, 4} do
        local expect = want["c" .. (c == 0 and case.stored or c)]
        for _, got in ipairs{lm.image.load(path, {channels = c}), lm.image.decode(bytes, {channels = c})} do
          same(got:shape(), expect:shape(), 0, case.name .. " channels " .. c)
          eq(max_abs((got * 255):round(), expect), 0, case.name .. " channels " .. c)
        end
      end
    end)
  end

  it("refuses a progressive file cut between two scans, and loads one without its end marker", function()
    local bytes = read(ref_dir .. "/rgb_progressive.jpg")
    local last_scan = 1
    for at in bytes:gmatch("()\xFF\xDA") do last_scan = at end
    truthy(last_scan > 1, "scans found")
    -- all scans but the last: every row decodes, but not to its last bit
    raises(function() lm.image.decode(bytes:sub(1, last_scan - 1)) end, "the file is cut short")
    eq(max_abs(lm.image.decode(bytes:sub(1, #bytes - 2)), lm.image.decode(bytes)), 0, "without EOI")
  end)

  it("refuses a progressive file of more scans than any encoder writes", function()
    local path = ref_dir .. "/many_scans.jpg"
    same({lm.image.info(path)}, {19, 40, 1})
    raises(function() lm.image.load(path) end, "Corrupt JPEG (it holds more than 500 progressive scans)")
  end)
end)
