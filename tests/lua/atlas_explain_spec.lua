-- Attributions in the activation atlas: what the page stores decodes back to
-- lm.explain's values, and the page draws them as lm.explain.colorize does
-- (headless Chromium: tests/browser/atlas_attributions.py).
local lm = require 'lumen'
local atlas = require 'lumen.introspect.atlas'
local json = require 'lumen.json'
local nn = lm.nn
local I = lm.introspect
local E = lm.explain

local OUT = os.getenv("LUMEN_TEST_OUT") or "/tmp"

-- A tiny classifier of 8x8 images, its recording, an (untrained) map and
-- estimator, and integrated gradients of the predicted class and of
-- log10 e_hat for every other point.
local function tiny_atlas(n)
  lm.manual_seed(11)
  local net = nn.Sequential(nn.Linear(64, 12), nn.ELU(), nn.Linear(12, 12), nn.ELU(), nn.Linear(12, 3), nn.Sigmoid())
  net:evaluate()
  local rec = I.Recorder(net)
  local x = lm.rand(n, 64)
  local labels = {}
  for i = 1, n do labels[i] = (i - 1) % 3 + 1 end
  local H, Y = rec:record_set(x, {progress = false})
  local vae = I.InfoVAE{inputs = H:size(2), hidden = 8, depth = 1}
  vae:fit_standardization(H)
  local est = I.Estimator{hidden = 8, depth = 1}
  local Z = vae:encode_all(H)
  local rows = {}
  for i = 1, n, 2 do rows[#rows + 1] = i end
  local idx = lm.tensor(rows, "int32")
  local xs = x:index_select(idx)
  local pred = Y:argmax(2)
  local class = E.integrated_gradients(net, xs, {steps = 8, target = pred:index_select(idx)})
  local err = E.log_error(rec, vae, est, xs, {method = "integrated_gradients", steps = 8})
  local spec = {title = "tiny", classes = {"alpha", "beta", "gamma"},
    sets = {{name = "test", z = Z, labels = lm.tensor(labels, "int32"), predicted = pred,
      log10_error = I.estimate(est, Z):to("cpu"), images = x,
      attributions = {rows = rows, maps = {{name = "IG: predicted class", values = class},
        {name = "IG: log10 e_hat", values = err}},
        regions = {{name = "class alpha", rows = lm.tensor({1, 4, 7, 10, 13, 16, 19}, "int32")},
          {name = "first five", rows = {1, 2, 3, 4, 5}}}}}},
    chunk_rows = 16}
  return spec, {class = class, err = err, rows = rows}
end

local function page_data(path)
  local f = assert(io.open(path)); local html = f:read("a"); f:close()
  local text = html:match('<script id="atlas%-data" type="application/json">(.-)</script>')
  return json.decode((text:gsub("<\\/", "</"))), html
end

-- The page's attributions decoded by Python's zlib and base64 (not Lumen's):
-- {rows (1-based), maps = {{name, values = {{...}, ...}}}} of the first set.
local DECODE = [[
import base64, json, struct, sys, zlib
html = open(sys.argv[1]).read()
text = html.split('<script id="atlas-data" type="application/json">')[1].split("</script>")[0]
a = json.loads(text)["sets"][0]["attributions"]
raw = lambda s: zlib.decompress(base64.b64decode(s))
m, rows = a["m"], [r + 1 for r in struct.unpack("<%di" % a["m"], raw(a["rows"]))]
maps = []
for mp in a["maps"]:
    scale = struct.unpack("<%df" % m, raw(mp["scale"]))
    q = b"".join(raw(c) for c in mp["chunks"])
    hw = len(q) // m
    maps.append({"name": mp["name"], "scale": scale,
                 "values": [[(q[j * hw + p] - 128) / 127 * scale[j] for p in range(hw)] for j in range(m)]})
print(json.dumps({"rows": rows, "maps": maps, "invert": a["invert"], "regions": a["regions"]}))
]]

local function decode(path)
  local script = OUT .. "/lumen_atlas_decode.py"
  local f = assert(io.open(script, "w")); f:write(DECODE); f:close()
  local p = io.popen("/usr/bin/python3 '" .. script .. "' '" .. path .. "' 2>&1")
  local out = p:read("a")
  local ok = p:close()
  truthy(ok, out)
  return json.decode(out)
end

describe("attributions in the atlas", function()
  it("store every attributed point's maps, decoding to the library's values within scale / 254", function()
    local spec, lib = tiny_atlas(60)
    local path = OUT .. "/lumen_atlas_attr.html"
    local bytes = atlas.write(path, spec)
    local d, html = page_data(path)
    eq(#html, bytes)
    local a = d.sets[1].attributions
    eq(a.m, 30)
    eq(a.invert, true, "grey images: ink on paper")
    eq(#a.maps[1].chunks, 2, "30 rows in chunks of 16")
    local got = decode(path)
    same(got.rows, lib.rows)
    eq(got.maps[1].name, "IG: predicted class")
    eq(got.maps[2].name, "IG: log10 e_hat")
    for k, t in ipairs{lib.class, lib.err} do
      local want = t:totable()
      for j = 1, #want do
        local s = 0
        for _, v in ipairs(want[j]) do s = math.max(s, math.abs(v)) end
        near(got.maps[k].scale[j], s, 1e-6 * s + 1e-30, "the row's scale is its largest |value|")
        local worst = 0
        for p, v in ipairs(want[j]) do worst = math.max(worst, math.abs(got.maps[k].values[j][p] - v)) end
        truthy(worst <= s / 254 * (1 + 1e-5) + 1e-30, string.format("map %d row %d: off by %g of %g", k, j, worst, s))
      end
    end
    same(got.regions[1].rows, {1, 4, 7, 10, 13, 16, 19})
    eq(got.regions[2].name, "first five")
  end)

  it("sum colour images' channels per pixel, as lm.explain.colorize draws them", function()
    lm.manual_seed(4)
    local n = 6
    local y = lm.tensor({1, 2, 1, 2, 1, 2}, "int32")
    local attr = lm.randn(n, 3, 4, 4)
    local path = OUT .. "/lumen_atlas_attr_rgb.html"
    atlas.write(path, {classes = {"a", "b"}, sets = {{name = "s", z = lm.randn(n, 2), labels = y, predicted = y,
      images = lm.rand(n, 3, 4, 4), attributions = {maps = {{name = "rgb", values = attr}}}}}})
    local got = decode(path)
    eq(got.invert, false, "colour images: over the image")
    local want = attr:sum(2):view(n, 16):totable()
    for j = 1, n do
      local s = 0
      for _, v in ipairs(want[j]) do s = math.max(s, math.abs(v)) end
      same(got.maps[1].values[j], want[j], s / 254 * (1 + 1e-5))
    end
  end)

  it("leave a page without them as before", function()
    local spec = tiny_atlas(30)
    spec.sets[1].attributions = nil
    atlas.write(OUT .. "/lumen_atlas_plain.html", spec)
    local d = page_data(OUT .. "/lumen_atlas_plain.html")
    eq(d.sets[1].attributions, nil)
    local keys = {}
    for k in pairs(d.sets[1]) do keys[#keys + 1] = k end
    table.sort(keys)
    same(keys, {"image", "labels", "log10_error", "n", "name", "predicted", "z"})
  end)

  it("say what is wrong with them", function()
    local function bad(mutate, needle)
      local spec = tiny_atlas(20)
      mutate(spec.sets[1].attributions, spec.sets[1])
      raises(function() atlas.write(OUT .. "/lumen_atlas_bad.html", spec) end, needle)
    end
    bad(function(a) a.maps = {} end, "attributions.maps must list {name = ..., values = tensor}")
    bad(function(a) a.rows[2] = 21 end, "set 'test': attributions.rows[2] = 21 is not a row in 1..20")
    bad(function(a) a.rows[2] = 1 end, "attributions.rows lists row 1 twice")
    bad(function(a) a.rows = {} end, "attributions.rows is empty")
    bad(function(a) a.maps[2].values = lm.zeros(10, 63) end,
      "attributions.maps[2] has 63 values a row, the images 1x8x8")
    bad(function(a) a.maps[1].values = lm.zeros(9, 64) end, "attributions.maps[1] has 9 rows, attributions.rows 10")
    bad(function(a) a.regions[1].rows = {0} end, "attributions.regions[1].rows[1] = 0 is not a row in 1..20")
    bad(function(_, s) s.images = nil end, "set 'test': attributions need the set's images")
  end)
end)

-- Runs tests/browser/atlas_attributions.py: its output, and whether it
-- passed; skipped when Chromium is missing (exit 77), as in atlas_spec.
local function browser(path, expect)
  local epath = OUT .. "/lumen_atlas_attr_expect.json"
  lm.json.write(epath, expect)
  local dir = OUT .. "/lumen_atlas_shots"
  os.execute("mkdir -p '" .. dir .. "'")
  local p = io.popen("/usr/bin/python3 tests/browser/atlas_attributions.py '" .. path .. "' '" .. epath .. "' '"
    .. dir .. "' 2>&1")
  local output = p:read("a")
  local ok, _, code = p:close()
  if code == 77 then skip((output:gsub("\n$", "")), true) end
  return output, ok
end

-- What the page must draw for attributions `a` [m, 64] averaged over `rows`
-- (indices into a) with the images x [m, 64]: the mean values and
-- lm.explain.colorize's RGB (0..255) of every pixel, over the mean image.
local function drawn(name, a, x, rows)
  local idx = lm.tensor(rows, "int32")
  local mean = a:index_select(idx):mean(1):view(8, 8)
  local img = x:index_select(idx):mean(1):view(8, 8)
  local rgb = (E.colorize(mean, img, {invert = true}) * 255):permute(2, 3, 1):contiguous():view(-1)
  return {name = name, values = mean:view(-1):totable(), rgb = rgb:totable()}
end

describe("the atlas's attributions in a browser", function()
  it("draws a clicked point's maps, a region's and a rectangle's means as lm.explain.colorize does", function()
    local spec, lib = tiny_atlas(90)
    local path = OUT .. "/lumen_atlas_attr_browser.html"
    atlas.write(path, spec)
    local set = spec.sets[1]
    local xs = set.images:index_select(lm.tensor(lib.rows, "int32"))
    local at = {}                          -- set row -> attribution row
    for j, r in ipairs(lib.rows) do at[r] = j end
    local function maps(prefix, rows)
      return {drawn(prefix .. "IG: predicted class", lib.class, xs, rows),
        drawn(prefix .. "IG: log10 e_hat", lib.err, xs, rows)}
    end
    local scale = math.max(lib.class:abs():max():item(), lib.err:abs():max():item())
    -- point 7 (attribution row 4), a named region and a rectangle around the lower left of the points
    local function attributed(rows)
      local out = {}
      for _, r in ipairs(rows) do if at[r] then out[#out + 1] = at[r] end end
      return out
    end
    local region_rows = attributed{1, 2, 3, 4, 5}
    local z = set.z:totable()
    local xsorted, ysorted = {}, {}
    for _, r in ipairs(lib.rows) do xsorted[#xsorted + 1] = z[r][1]; ysorted[#ysorted + 1] = z[r][2] end
    table.sort(xsorted); table.sort(ysorted)
    local x0 = xsorted[1] - 0.02 * (xsorted[#xsorted] - xsorted[1])
    local y0 = ysorted[1] - 0.02 * (ysorted[#ysorted] - ysorted[1])
    -- the upper edges halfway across the widest gap between points' coordinates past the middle, so that no
    -- point lies within a pixel of an edge
    local function edge(v)
      local best, at_ = -1, nil
      for k = #v // 2, #v * 3 // 4 do
        if v[k + 1] - v[k] > best then best, at_ = v[k + 1] - v[k], (v[k] + v[k + 1]) / 2 end
      end
      return at_, best
    end
    local x1, gx = edge(xsorted)
    local y1, gy = edge(ysorted)
    local inside = {}
    for i = 1, #z do
      if at[i] and z[i][1] >= x0 and z[i][1] <= x1 and z[i][2] >= y0 and z[i][2] <= y1 then inside[#inside + 1] = i end
    end
    truthy(#inside >= 2, "the rectangle holds points")
    local span = math.max(xsorted[#xsorted] - xsorted[1], ysorted[#ysorted] - ysorted[1])
    truthy(math.min(gx, gy) > span / 200, "the rectangle's edges are more than two pixels from every point")
    local expect = {set = "test", index = 7, unattributed = 8,
      maps = maps("", {at[7]}),
      region = {k = 2, names = {"class alpha", "first five"}, name = "first five", n = #region_rows,
        maps = maps("mean ", region_rows)},
      brush = {z0 = {x0, y0}, z1 = {x1, y1}, n = #inside, maps = maps("mean ", attributed(inside))},
      -- one 8-bit step of quantised values moves a channel by at most 1; the page rounds, colorize does not
      pixel_tolerance = 2, value_tolerance = scale / 254 * (1 + 1e-5),
      -- a mean's colours are scaled by the mean's own largest |value|, smaller than the samples'
      mean_pixel_tolerance = 4}
    local output, ok = browser(path, expect)
    truthy(ok, "browser check failed:\n" .. output)
    truthy(output:find("attributions ok", 1, true), output)
    local plain = OUT .. "/lumen_atlas_attr_plain.html"
    set.attributions = nil
    atlas.write(plain, spec)
    output, ok = browser(plain, {none = true, set = "test"})
    truthy(ok, "browser check of a page without attributions failed:\n" .. output)
  end)
end)

describe("experiments/explain_mnist.lua", function()
  it("writes the atlas with the picks' attributions and regions (a random mapped Net1, generated data)", function()
    local ok, summary, pages = dofile("tests/helpers/explain_mnist_run.lua")(function(out)
      return {decoded = decode(out .. "/atlas.html"), page = page_data(out .. "/atlas.html")}
    end)
    truthy(ok, summary)
    local decoded, page = pages.decoded, pages.page
    local listed = {}
    for _, f in ipairs(summary.files) do listed[f] = true end
    truthy(listed["atlas.html"], "atlas.html among the files")
    eq(#page.sets, 1, "the test set only")
    eq(page.sets[1].n, 40)
    local picked, seen = {}, {}
    for _, s in ipairs(summary.samples) do
      if not seen[s.index] then seen[s.index] = true; picked[#picked + 1] = s end
    end
    same(decoded.rows, (function()
      local r = {}
      for k, s in ipairs(picked) do r[k] = s.index end
      return r
    end)())
    eq(#decoded.regions, #summary.regions)
    eq(decoded.regions[#decoded.regions].name, "error zone")
    -- each picked image's maps add up to what the summary says its attributions sum to
    for k, s in ipairs(picked) do
      for m, key in ipairs{"class_attribution_sum", "log_error_attribution_sum"} do
        local sum = 0
        for _, v in ipairs(decoded.maps[m].values[k]) do sum = sum + v end
        near(sum, s[key], 784 * decoded.maps[m].scale[k] / 254 + 1e-6, key .. " of test image " .. s.index)
      end
    end
  end)
end)
