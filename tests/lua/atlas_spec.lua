-- The activation atlas: byte encodings, the page's data, its errors, and the
-- page itself in headless Chromium (tests/browser/atlas_check.py).
local lm = require 'lumen'
local atlas = require 'lumen.introspect.atlas'
local json = require 'lumen.json'

local OUT = os.getenv("LUMEN_TEST_OUT") or "/tmp"

describe("byte encodings", function()
  it("base64 matches RFC 4648's test vectors", function()
    local want = {[""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==", fooba = "Zm9vYmE=",
      foobar = "Zm9vYmFy"}
    for s, b in pairs(want) do eq(lm.base64(s), b, s) end
    eq(lm.base64("\0\255\128"), "AP+A")
  end)
  it("encodes values as uint8 (rounded, clamped, NaN as 0), float32 and int32", function()
    eq(lm.encode(lm.tensor{-3, 0.4, 0.6, 254.7, 1000, 0 / 0}, "uint8"), "\0\0\1\255\255\0")
    local f = lm.encode(lm.tensor{{1.5, -2}, {3, 4}}:t(), "float32")     -- a transposed view
    same({string.unpack("<ffff", f)}, {1.5, 3, -2, 4, 17})
    same({string.unpack("<i4i4", lm.encode(lm.tensor{7.9, -7.9}, "int32"))}, {7, -7, 9})
    same({string.unpack("<f", lm.encode(lm.tensor({5}, "int32"), "float32"))}, {5, 5})
    raises(function() lm.encode(lm.tensor{3e9}, "int32") end, "does not fit in int32")
    raises(function() lm.encode(lm.tensor{1}, "int8") end, "invalid option 'int8'")
  end)
  it("deflates to a zlib stream that zlib reads back", function()
    local s = string.rep("lumen ", 2000) .. "end"
    local z = lm.deflate(s, 9)
    truthy(#z < #s / 20, "compressed")
    eq(z:byte(1), 0x78, "zlib header")
    local path = OUT .. "/lumen_deflate.bin"
    local f = assert(io.open(path, "wb")); f:write(z); f:close()
    local p = io.popen("/usr/bin/python3 -c 'import sys, zlib; "
      .. "sys.stdout.write(zlib.decompress(open(sys.argv[1], \"rb\").read()).decode())' " .. path)
    local back = p:read("a"); p:close()
    eq(back, s)
    raises(function() lm.deflate("x", 10) end, "level must be -1..9")
  end)
end)

-- A small atlas with three classes, 8x8 images and two 10-unit layers.
local function small_spec(n)
  lm.manual_seed(3)
  local labels, pred = {}, {}
  for i = 1, n do
    labels[i] = (i - 1) % 3 + 1
    pred[i] = i % 7 == 0 and labels[i] % 3 + 1 or labels[i]
  end
  local y = lm.tensor(labels, 'int32')
  local z = lm.tensor{{-2, 0}, {2, 0}, {0, 2.5}}:index_select(y) + lm.randn(n, 2) * 0.5
  return {title = "three blobs", classes = {"alpha", "beta", "gamma"},
    sets = {{name = "test", z = z, labels = y, predicted = lm.tensor(pred, 'int32'),
      log10_error = lm.randn(n) - 2, images = lm.rand(n, 64), activations = lm.randn(n, 20)}},
    network = {layer_sizes = {10, 10},
      orders = {{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, {11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
      unit_classes = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2}},
    heat = {values = {{-3, -2}, {-1, 0}}, lim = 4},
    overlays = {{name = "a path", kind = "path", z = lm.tensor{{0, 0}, {1, 1}, {2, 0}}, color = 0xFF0000FF}},
    chunk_rows = 64}
end

local function page_data(path)
  local f = assert(io.open(path)); local html = f:read("a"); f:close()
  local text = html:match('<script id="atlas%-data" type="application/json">(.-)</script>')
  return json.decode((text:gsub("<\\/", "</"))), html
end

describe("atlas.write", function()
  it("writes one self-contained page with every set in chunks", function()
    local path = OUT .. "/lumen_atlas_unit.html"
    local bytes = atlas.write(path, small_spec(150))
    local d, html = page_data(path)
    eq(#html, bytes)
    eq(html:find("https?://"), nil, "no network address in the page")
    eq(d.title, "three blobs")
    eq(#d.sets, 1)
    eq(d.sets[1].n, 150)
    eq(#d.sets[1].image.chunks, 3, "150 rows in chunks of 64")
    eq(#d.sets[1].activations.chunks, 3)
    same({d.sets[1].image.channels, d.sets[1].image.height, d.sets[1].image.width}, {1, 8, 8})
    eq(d.network.units, 20)
    eq(d.colors[1], "#1f77b4")
    eq(d.overlays[1].kind, "path")
    same(d.overlays[1].z, {{0, 0}, {1, 1}, {2, 0}}, 1e-6)
    eq(lm.base64(lm.deflate(lm.encode(lm.tensor{1, 2, 3}, "uint8"))), lm.base64(lm.deflate("\1\2\3")))
  end)
  it("packs each chunk of images and activations as the whole set's scaling would", function()
    local path = OUT .. "/lumen_atlas_chunks.html"
    local spec = small_spec(150)
    local set = spec.sets[1]
    set.image_range = {-1, 3}
    set.images = lm.rand(150, 64) * 4 - 1
    atlas.write(path, spec)
    local d = page_data(path)
    -- the chunks' bytes against the scaled whole set cut afterwards
    local H = set.activations
    local lo = H:min(1)
    local scaled = {images = (set.images + 1) * (255 / 4), activations = (H - lo) / (H:max(1) - lo):clamp(1e-12) * 255}
    for _, field in ipairs{"image", "activations"} do
      local whole = scaled[field == "image" and "images" or field]
      local chunks = d.sets[1][field].chunks
      eq(#chunks, 3, field .. ": 150 rows in chunks of 64")
      for k, chunk in ipairs(chunks) do
        local first = (k - 1) * 64 + 1
        local part = whole:narrow(1, first, math.min(64, 150 - first + 1)):contiguous()
        eq(chunk, lm.base64(lm.deflate(lm.encode(part, "uint8"), 6)), field .. " chunk " .. k)
      end
    end
    -- the caller's tensors are left as they were
    eq(set.images:min():item() < 0, true, "images not scaled in place")
  end)
  it("escapes '</' in the page's data, wherever a string holds it", function()
    local path = OUT .. "/lumen_atlas_escape.html"
    local spec = small_spec(20)
    spec.classes = {"a</script>", "b", "c"}
    spec.title = "x</script><b>"
    atlas.write(path, spec)
    local d, html = page_data(path)
    same(d.classes, {"a</script>", "b", "c"})
    eq(d.title, "x</script><b>")
    eq(select(2, html:gsub("</script>", "")), 2, "only the two script elements close")
  end)
  it("says what is wrong with a spec", function()
    local function bad(mutate, needle)
      local s = small_spec(20)
      mutate(s)
      raises(function() atlas.write(OUT .. "/lumen_atlas_bad.html", s) end, needle)
    end
    bad(function(s) s.sets = {} end, "spec.sets must hold at least one set")
    bad(function(s) s.classes = nil end, "spec.classes must list the class names")
    bad(function(s) s.sets[1].z = lm.zeros(20, 3) end, "set 'test': z must be an [N, 2] tensor")
    bad(function(s) s.sets[1].labels = lm.ones(19) end, "set 'test': labels has 19 rows, z has 20")
    bad(function(s) s.sets[1].predicted = lm.full({20}, 4, 'int32') end, "predicted must lie in 1..3")
    bad(function(s) s.sets[1].images = lm.zeros(20, 10) end, "give image_shape")
    bad(function(s) s.sets[1].activations = lm.zeros(20, 7) end, "activations have 7 units, the network's layers 20")
    bad(function(s) s.network = nil end, "has activations but the atlas has no network")
    bad(function(s) s.network.orders[2] = {11, 12} end, "network.orders[2] has 2 units")
    bad(function(s) s.overlays[1].z = lm.zeros(3) end,
      "overlay 1 ('a path'): z must be an [n, 2] tensor or a list of {x, y}")
    raises(function() atlas.write(OUT .. "/x.html") end, "spec must be a table")
    bad(function(s) s.network.orders[2] = {11, 12, 13, 14, 15, 16, 17, 18, 19, 40} end,
      "network.orders[2][10] = 40: each of the layer's units 11..20 must appear once")
    bad(function(s) s.network.orders[1] = {1, 1, 2, 3, 4, 5, 6, 7, 8, 9} end,
      "network.orders[1][2] = 1: each of the layer's units 1..10 must appear once")
    bad(function(s) s.network.unit_classes = {1, 2, 9} end,
      "network.unit_classes must list a class for each of the 20 units")
    bad(function(s) s.network.unit_classes[5] = 4 end, "network.unit_classes[5] = 4 is not a class in 1..3")
    bad(function(s) s.sets[1].labels = s.sets[1].labels:float() * 0.5 + 1 end,
      "set 'test': labels must be whole class numbers")
    bad(function(s) s.sets[1].log10_error = lm.zeros(20, 2) end,
      "set 'test': log10_error must hold one value a row, got shape 20x2")
    bad(function(s) s.sets[1].image_range = {0, 0} end, "set 'test': image_range must be {lo, hi} with lo < hi")
    bad(function(s) s.sets[2] = s.sets[1] end, "two sets are named 'test'")
    bad(function(s) s.chunk_rows = 0 end, "chunk_rows must be an integer >= 1, got 0")
    bad(function(s) s.chunk_rows = 2.5 end, "chunk_rows must be an integer >= 1, got 2.5")
    bad(function(s) s.title = {} end, "title must be a string, got a table")
    bad(function(s) s.colors = {0xFF0000FF} end, "colors must list a colour 0xRRGGBBAA for each of the 3 classes")
    bad(function(s) s.overlays[1].color = "red" end, "a colour must be an integer 0xRRGGBBAA, got red")
    bad(function(s) s.heat.values = {{1, 2}, {3}} end,
      "heat.values row 2 has 1 values, row 1 2: the grid must be rectangular")
    bad(function(s)
      local names = {}
      for k = 1, 257 do names[k] = "c" .. k end
      s.classes = names
    end, "an atlas shows at most 256 classes, got 257")
    bad(function(s)
      local set = s.sets[1]
      set.network, s.network, set.activations = nil, nil, nil
      local a = lm.zeros(20, 64)
      a[3][5] = 0 / 0
      set.attributions = {maps = {{name = "ig", values = a}}}
    end, "set 'test': attributions.maps[1] row 3 holds a NaN or an infinity")
  end)

  it("keeps colours past the tenth class, and an overlay's alpha", function()
    local path = OUT .. "/lumen_atlas_colours.html"
    local spec = small_spec(20)
    spec.colors = {0x112233FF, 0x445566FF, 0x778899FF}
    spec.overlays[1].color = 0xFF000080
    atlas.write(path, spec)
    local d = page_data(path)
    same(d.colors, {"#112233", "#445566", "#778899"})
    eq(d.overlays[1].color, "#ff000080")
    -- an empty set, with images, writes
    local empty = small_spec(20)
    empty.sets[2] = {name = "none", z = lm.zeros(0, 2), labels = lm.zeros(0):int(), predicted = lm.zeros(0):int(),
      images = lm.zeros(0, 64)}
    atlas.write(path, empty)
    eq(page_data(path).sets[2].n, 0)
    -- and with activations (their per-unit range took the minimum of no rows)
    empty.sets[2].activations = lm.zeros(0, 20)
    atlas.write(path, empty)
    eq(page_data(path).sets[2].n, 0)
  end)
end)

-- Runs a tests/browser script with its arguments: its output, and whether it
-- passed. When Chromium is missing (the script exits 77) the test is skipped,
-- and under CI, which installs Chromium, that skip is a failure.
local function browser_script(script, ...)
  local args = {}
  for i, a in ipairs({...}) do args[i] = "'" .. a:gsub("'", "'\\''") .. "'" end -- one shell word each
  local p = io.popen("/usr/bin/python3 tests/browser/" .. script .. " " .. table.concat(args, " ") .. " 2>&1")
  local output = p:read("a")
  local ok, _, code = p:close()
  if code == 77 then skip((output:gsub("\n$", "")), true) end
  return output, ok
end

-- The page's own account after steps (atlas_probe.py): ready, status, errors, values.
local function probe(path, ...)
  local output, ok = browser_script("atlas_probe.py", path, ...)
  truthy(ok, output)
  return json.decode(output:match("{.*}"))
end

describe("the atlas in a browser", function()
  it("shows names as text, never as markup, and loads whatever a name holds", function()
    local spec = small_spec(30)
    spec.classes = {'<img src=x onerror="window.pwned=1">', "<!--<script>", "b<i>c</i>"}
    spec.sets[1].name = '<img src=y onerror="window.pwned=2">'
    spec.sets[1].attributions = {maps = {{name = "ig", values = lm.randn(30, 64)}}}
    local path = OUT .. "/lumen_atlas_names.html"
    atlas.write(path, spec)
    local set = spec.sets[1].name
    local r = probe(path, "hover:" .. set .. ":1", "click:" .. set .. ":2",
      "window.pwned === undefined",
      "document.querySelectorAll('img, #legend i').length",
      "document.getElementById('legend').textContent",
      "document.getElementById('sel-info').textContent.includes('<img src=y')")
    truthy(r.ready, r.status)
    same(r.errors, {})
    eq(r.values[3], true, "no name ran as script")
    eq(r.values[4], 0, "no element made from a name")
    truthy(r.values[5]:find("<!--<script>", 1, true) and r.values[5]:find("b<i>c</i>", 1, true), r.values[5])
    eq(r.values[6], true, "the set's name shown as text")
  end)

  it("draws what is finite and frames it, whatever else the data hold", function()
    local function page(name, edit)
      local spec = small_spec(40)
      spec.sets[1].activations, spec.network = nil, nil
      edit(spec, spec.sets[1])
      local path = OUT .. "/lumen_atlas_" .. name .. ".html"
      atlas.write(path, spec)
      return path
    end
    -- a latent at infinity: the others are framed and drawn, it is not
    local r = probe(page("inf", function(_, set) set.z[1][1] = math.huge; set.z[2][2] = 0 / 0 end),
      "window.atlas.view().scale > 0")
    truthy(r.ready, r.status); same(r.errors, {})
    truthy(r.status:find("^38 points drawn"), r.status)
    eq(r.values[1], true)
    -- one point far from the origin, and points on a horizontal line: framed around them
    r = probe(page("single", function(_, set)
      set.z = lm.tensor{{10, 10}}; set.labels = lm.tensor({1}, 'int32'); set.predicted = set.labels
      set.log10_error = lm.zeros(1); set.images = lm.rand(1, 64)
    end), "window.atlas.view()")
    truthy(r.status:find("^1 points drawn"), r.status)
    near(r.values[1].cx, 10, 1e-9); near(r.values[1].cy, 10, 1e-9)
    r = probe(page("line", function(_, set) set.z:select(2, 2):fill_(25) end), "window.atlas.view().cy")
    truthy(r.status:find("^40 points drawn"), r.status)
    near(r.values[1], 25, 1e-9)
    -- e_hat of 0 (log10 -inf), a NaN, a heat grid with a blank cell and an empty overlay
    r = probe(page("nonfinite", function(spec, set)
      set.log10_error[1] = -math.huge; set.log10_error[2] = 0 / 0; set.log10_error[3] = math.huge
      spec.heat.values = {{-3, -math.huge}, {-1, 0 / 0}}
      spec.overlays[2] = {name = "nothing", kind = "path", z = lm.zeros(0, 2)}
      spec.overlays[3] = {name = "one lost", kind = "points", z = {{0, 0}, {0 / 0, 1}}}
    end), "window.atlas.setMode('error')", "document.getElementById('legend').textContent")
    truthy(r.ready, r.status); same(r.errors, {})
    truthy(r.status:find("^40 points drawn"), r.status)
    local legend = r.values[2]
    truthy(legend:find("from %-3%.0 %(dark%) to %-1%.0") and not legend:find("Infinity") and not legend:find("-8.00"),
      legend)
  end)

  it("hovers, clicks, zooms and recolours a known point (headless Chromium)", function()
    local spec = small_spec(150)
    local path, dir = OUT .. "/lumen_atlas_browser.html", OUT .. "/lumen_atlas_shots"
    os.execute("mkdir -p '" .. dir .. "'")
    atlas.write(path, spec)
    -- what the page must show for test point 14 (misclassified: 14 % 7 == 0)
    local set, i = spec.sets[1], 14
    local image = {}
    for k, v in ipairs(set.images[i]:totable()) do image[k] = math.max(0, math.min(255, math.floor(v * 255 + 0.5))) end
    local H = set.activations
    local lo, hi = H:min(1), H:max(1)
    local acts = {}
    for u, v in ipairs(H[i]:totable()) do
      local l, h = lo:view(-1)[u], hi:view(-1)[u]
      acts[u] = math.floor((v - l) / (h - l) * 255 + 0.5)
    end
    local classes = spec.classes
    local expect = {sets = {"test"}, set = "test", index = i, ["true"] = classes[set.labels[i]],
      predicted = classes[set.predicted[i]], e_hat = 10 ^ set.log10_error[i], image = image, activations = acts}
    truthy(expect["true"] ~= expect.predicted, "the chosen point is misclassified")
    lm.json.write(OUT .. "/lumen_atlas_expect.json", expect)
    local output, ok = browser_script("atlas_check.py", path, OUT .. "/lumen_atlas_expect.json", dir)
    truthy(ok, "browser check failed:\n" .. output)
    truthy(output:find("modes, zoom and screenshots ok", 1, true), output)
  end)

  it("keeps a large set's first images within the page's image budget, and says so on hover", function()
    lm.manual_seed(5)
    local function set(name, n)
      local y = lm.ones(n):int()
      return {name = name, z = lm.randn(n, 2) * 3, labels = y, predicted = y, images = lm.rand(n, 3, 16, 16)}
    end
    local path = OUT .. "/lumen_atlas_budget.html"
    -- 768 random bytes an image hardly compress: 1,024 characters a row packed
    atlas.write(path, {classes = {"one"}, sets = {set("train", 400), set("test", 40)}, chunk_rows = 20,
      image_bytes = 96 * 1024})
    local d = page_data(path)
    eq(d.sets[2].image.rows, 40, "the small set first: all its images")
    local train = d.sets[1].image
    truthy(train.rows < 400 and train.rows >= 20, "the large set keeps its first rows: " .. train.rows)
    eq(#train.chunks, train.rows // 20)
    local packed = 0
    for _, set_ in ipairs(d.sets) do for _, c in ipairs(set_.image.chunks) do packed = packed + #c end end
    truthy(packed <= 96 * 1024, "within the budget (a ceiling): " .. packed)
    local output, ok = browser_script("atlas_pixels.py", path, "train", "1", "400")
    truthy(ok, output)
    local got = json.decode(output:match("%[.*%]"))
    truthy(got[1].pixel ~= json.null and got[1].pixel ~= nil, "a stored image shows")
    truthy(got[2].text:find("image not stored: the page keeps the first " .. train.rows .. " of this set's 400 images",
      1, true), got[2].text)
  end)

  it("shows colour images (channels first) in their colours", function()
    local n = 30
    local labels = {}
    for i = 1, n do labels[i] = (i - 1) % 3 + 1 end
    local y = lm.tensor(labels, 'int32')
    local images = lm.zeros(n, 3, 8, 8)
    for i = 1, n do images[i][(i - 1) % 3 + 1]:fill_(1) end     -- pure red, green or blue
    lm.manual_seed(2)
    local path = OUT .. "/lumen_atlas_rgb.html"
    atlas.write(path, {classes = {"red", "green", "blue"},
      sets = {{name = "s", z = lm.randn(n, 2) * 3, labels = y, predicted = y, images = images}}})
    local output, ok = browser_script("atlas_pixels.py", path, "s", "1", "2", "3")
    truthy(ok, output)
    local got = json.decode(output:match("%[.*%]"))
    same(got[1].pixel, {255, 0, 0, 255})
    same(got[2].pixel, {0, 255, 0, 255})
    same(got[3].pixel, {0, 0, 255, 255})
    eq(got[2].title, "s #2")
  end)
end)
