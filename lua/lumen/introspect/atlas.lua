-- The interactive activation atlas: one self-contained HTML page (no network,
-- every byte inlined) showing an activation map on a canvas. Pan and zoom,
-- colour by class / correctness / log10(e_hat), hover a point for its input
-- image, labels and e_hat, click it for its activation pattern in the
-- reordered network, toggle overlays (noise constellations, FGSM paths).
--
--   atlas.write("results/run/atlas.html", {
--     title = "Net1 on MNIST", classes = {"0", ..., "9"},
--     sets = {                                   -- drawn in this order
--       {name = "train", z = Z [N, 2], labels = y [N], predicted = p [N],
--        log10_error = e [N], images = X [N, ...]},
--       {name = "test", ..., activations = H [N, Nh]},   -- optional
--     },
--     network = {layer_sizes = {200, ...}, orders = {{...}, ...},
--                unit_classes = {...}},         -- optional, for activations
--     heat = {values = {{...}, ...}, lim = 4},   -- optional log10 e_hat grid
--     overlays = {{name = "...", z = [n, 2], kind = "path" | "points",
--                  color = 0xRRGGBBAA}, ...},    -- optional; z may be {{x, y}, ...};
--                                                -- points not finite are left out
--     image_bytes = 64 MiB,                      -- optional: atlas.IMAGE_BYTES
--   })
--
-- A set with images may carry input attributions (lm.explain) for some of
-- its points, shown beside the clicked point's image on a diverging map over
-- the grey input, and averaged over a region of the map:
--   attributions = {rows = {i, ...} | int32 [m],     -- 1-based rows of the set
--                                                     -- (default: all N)
--     maps = {{name = "IG: predicted class", values = A [m, ...]},
--             {name = "IG: log10 e_hat", values = B [m, ...]}},
--     regions = {{name = "arm 0", rows = {...}}, ...},  -- optional, rows of the set
--     invert = true}             -- ink on paper (default: grey images)
--
-- Bulk data (latents, labels, images, activations) travels as zlib streams in
-- base64, in chunks of `chunk_rows` rows that the page inflates on first use
-- (DecompressionStream), so 70,000 points with their images open in seconds.
-- Activations are stored per unit scaled to 0..255 over the set (min to max):
-- a pattern shows how strongly each unit fires relative to its own range.
-- Attributions are stored per pixel (channels summed, as lm.explain.colorize
-- draws them), per row as uint8 128 + round(127 a / s) with the row's scale
-- s = max |a| in float32: the page decodes a to within s / 254.
local lm = require 'lumen'
local json = require 'lumen.json'
local plot = require 'lumen.plot'
local page = require 'lumen.introspect.atlas_page'

local atlas = {}

--- The packed image bytes a page holds at most (spec.image_bytes): MNIST's
--- 70,000 images take 30 MB; CIFAR-10's 46,000 would take 170 MB, which a
--- browser opens slowly, so a set past its share keeps its first rows'
--- images (the page says so on hover).
atlas.IMAGE_BYTES = 64 * 1024 * 1024

local function fail(msg, ...) error("atlas.write: " .. string.format(msg, ...), 3) end

local function packed(t, fmt, level)
  return lm.base64(lm.deflate(lm.encode(t, fmt), level or 6))
end

-- Rows of a 2-D (or more) tensor in chunks, each packed on its own; `scale`
-- (a function of a chunk and its first row) maps the chunk's values first,
-- so that a whole set (a recording, 54,000 images) is never copied at once.
-- With `budget` (characters of packed text), chunks stop before the one
-- that would pass it (a ceiling: the last chunk packed is dropped when it
-- does not fit): the second result is the number of rows packed.
local function chunks(t, rows, fmt, scale, budget)
  local out, n, used, stored = {}, t:size(1), 0, 0
  for start = 1, n, rows do
    local len = math.min(rows, n - start + 1)
    local part = t:narrow(1, start, len)
    part = scale and scale(part, start) or part:contiguous()
    local text = packed(part, fmt)
    part:free() -- the chunk's copy, now packed, goes back before the next one is made
    if budget and used + #text > budget then break end
    out[#out + 1] = text
    used, stored = used + #text, stored + len
  end
  return out, stored, used
end

-- 0xRRGGBBAA as CSS: opaque colours as #rrggbb, others with their alpha
local function color_hex(c)
  if math.type(c) ~= "integer" or c < 0 or c > 0xFFFFFFFF then
    fail("a colour must be an integer 0xRRGGBBAA, got %s", tostring(c))
  end
  return (c & 0xFF) == 0xFF and string.format("#%06x", c >> 8) or string.format("#%08x", c)
end

local function check_rows(set, field, t, n, dims)
  if not lm.is_tensor(t) then fail("set '%s': %s must be a tensor, got a %s", set.name, field, type(t)) end
  if t:size(1) ~= n then fail("set '%s': %s has %d rows, z has %d", set.name, field, t:size(1), n) end
  if dims and t:dim() ~= dims then
    fail("set '%s': %s must have %d dimensions, got %d", set.name, field, dims, t:dim())
  end
end

-- The image layout {channels, height, width} of rows of `images`.
local function image_shape(set)
  local x = set.images
  if set.image_shape then return set.image_shape end
  if x:dim() == 4 then return {x:size(2), x:size(3), x:size(4)} end
  if x:dim() == 3 then return {1, x:size(2), x:size(3)} end
  local side = math.floor(math.sqrt(x:size(2)) + 0.5)
  if x:dim() == 2 and side * side == x:size(2) then return {1, side, side} end
  fail("set '%s': give image_shape = {channels, height, width} for images of shape %s", set.name,
    table.concat(x:shape(), "x"))
end

-- 1-based row indices (a list or a tensor) as a Lua list, checked to lie in
-- 1..n (and with `unique`, to be distinct).
local function row_list(set, what, rows, n, unique)
  if lm.is_tensor(rows) then
    rows = rows:to("cpu"):reshape(-1):totable()
  elseif type(rows) == "table" then
    rows = table.move(rows, 1, #rows, 1, {})
  else
    fail("set '%s': %s must be a list or a tensor of rows", set.name, what)
  end
  local seen = {}
  for k, r in ipairs(rows) do
    if type(r) ~= "number" or r ~= math.floor(r) or r < 1 or r > n then
      fail("set '%s': %s[%d] = %s is not a row in 1..%d", set.name, what, k, tostring(r), n)
    end
    rows[k] = math.tointeger(r)
    if unique and seen[rows[k]] then fail("set '%s': %s lists row %d twice", set.name, what, rows[k]) end
    seen[rows[k]] = true
  end
  return rows
end

local function encode_attributions(set, spec, n, shape, o)
  if not set.images then fail("set '%s': attributions need the set's images", set.name) end
  if type(spec) ~= "table" or type(spec.maps) ~= "table" or #spec.maps == 0 then
    fail("set '%s': attributions.maps must list {name = ..., values = tensor}", set.name)
  end
  local rows
  if spec.rows then
    rows = row_list(set, "attributions.rows", spec.rows, n, true)
    if #rows == 0 then fail("set '%s': attributions.rows is empty", set.name) end
  else
    rows = {}
    for i = 1, n do rows[i] = i end
  end
  local m, hw, c = #rows, shape[2] * shape[3], shape[1]
  local out = {m = m, rows = packed(lm.tensor(rows, "int32") - 1, "int32"), maps = {}, regions = {}}
  local invert = spec.invert
  if invert == nil then invert = c == 1 end
  out.invert = invert and true or false
  for j, map in ipairs(spec.maps) do
    local what = string.format("attributions.maps[%d]", j)
    if type(map) ~= "table" or not lm.is_tensor(map.values) then
      fail("set '%s': %s must be {name = ..., values = tensor}", set.name, what)
    end
    local v = map.values:to("cpu"):float()
    if v:size(1) ~= m then fail("set '%s': %s has %d rows, attributions.rows %d", set.name, what, v:size(1), m) end
    local per = v:numel() // m
    if per == c * hw and c > 1 then
      v = v:reshape(m, c, hw):sum(2):view(m, hw)
    elseif per == hw then
      v = v:reshape(m, hw)
    else
      fail("set '%s': %s has %d values a row, the images %dx%dx%d", set.name, what, per, c, shape[2], shape[3])
    end
    local s = v:abs():max(2):view(m)
    for i, x in ipairs(s:totable()) do
      if x ~= x or x == math.huge then
        fail("set '%s': %s row %d holds a NaN or an infinity", set.name, what, i)
      end
    end
    local safe = s + s:eq(0):float()                                -- an all-zero row keeps scale 1
    out.maps[j] = {name = tostring(map.name or ("attribution " .. j)), scale = packed(safe, "float32"),
      chunks = chunks(v, o.chunk_rows, "uint8", function(part, start)
        return (part / safe:narrow(1, start, part:size(1)):view(-1, 1)):mul_(127):add_(128)
      end)}
  end
  for k, r in ipairs(spec.regions or {}) do
    local list = row_list(set, string.format("attributions.regions[%d].rows", k), r.rows or {}, n, true)
    out.regions[k] = {name = tostring(r.name or ("region " .. k)), rows = list}
  end
  return out
end

-- Also returns the packed size of its images (0 without): `image_budget` caps it.
local function encode_set(set, o, network, image_budget)
  local image_used = 0
  if type(set) ~= "table" then fail("each set must be a table, got a %s", type(set)) end
  if type(set.name) ~= "string" then fail("each set needs a name") end
  local z = set.z
  if not lm.is_tensor(z) or z:dim() ~= 2 or z:size(2) ~= 2 then
    fail("set '%s': z must be an [N, 2] tensor", set.name)
  end
  z = z:to("cpu"):float()
  local n = z:size(1)
  local rows = o.chunk_rows
  local out = {name = set.name, n = n, z = packed(z, "float32")}
  for _, f in ipairs{"labels", "predicted"} do
    local t = set[f]
    check_rows(set, f, t, n, 1)
    t = t:to("cpu")
    if n > 0 and (t:min():item() < 1 or t:max():item() > #o.classes) then
      fail("set '%s': %s must lie in 1..%d (the classes)", set.name, f, #o.classes)
    end
    if n > 0 and t:dtype() == "float32" and t:ne(t:int():float()):sum():item() > 0 then
      fail("set '%s': %s must be whole class numbers", set.name, f)
    end
    out[f] = packed(t - 1, "uint8")
  end
  if set.log10_error then
    check_rows(set, "log10_error", set.log10_error, n)
    if set.log10_error:numel() ~= n then
      fail("set '%s': log10_error must hold one value a row, got shape %s", set.name,
        table.concat(set.log10_error:shape(), "x"))
    end
    out.log10_error = packed(set.log10_error:to("cpu"):float():reshape(n), "float32")
  end
  if set.images then
    check_rows(set, "images", set.images, n)
    local shape = image_shape(set)
    local flat = set.images:to("cpu"):reshape(n, n > 0 and -1 or shape[1] * shape[2] * shape[3])
    if flat:size(2) ~= shape[1] * shape[2] * shape[3] then
      fail("set '%s': images have %d values a row, image_shape says %d", set.name, flat:size(2),
        shape[1] * shape[2] * shape[3])
    end
    local lo, hi = table.unpack(set.image_range or {0, 1})
    if type(lo) ~= "number" or type(hi) ~= "number" or hi <= lo or lo ~= lo or hi ~= hi then
      fail("set '%s': image_range must be {lo, hi} with lo < hi", set.name)
    end
    -- a set with attributions keeps every image (its maps are drawn over them)
    local budget = not set.attributions and image_budget or nil
    local packed_chunks, stored, used = chunks(flat, rows, "uint8", function(part)
      return (lm.data.to_float(part) - lo):mul_(255 / (hi - lo))
    end, budget)
    out.image = {channels = shape[1], height = shape[2], width = shape[3], rows = stored, chunks = packed_chunks}
    image_used = used
    if set.attributions then out.attributions = encode_attributions(set, set.attributions, n, shape, o) end
  elseif set.attributions then
    fail("set '%s': attributions need the set's images", set.name)
  end
  if set.activations then
    if not network then fail("set '%s' has activations but the atlas has no network", set.name) end
    local H = set.activations:to("cpu"):float()
    check_rows(set, "activations", H, n, 2)
    if H:size(2) ~= network.units then
      fail("set '%s': activations have %d units, the network's layers %d", set.name, H:size(2), network.units)
    end
    -- (an empty set has no minimum: its range is any, its chunks none)
    local lo = n > 0 and H:min(1) or lm.zeros(H:size(2))
    local range = (n > 0 and H:max(1) - lo or lm.ones(H:size(2))):clamp(1e-12)
    out.activations = {chunks = chunks(H, rows, "uint8", function(part) return (part - lo):div_(range):mul_(255) end)}
  end
  return out, image_used
end

local function is_count(v) return math.type(v) == "integer" or (type(v) == "number" and v == math.floor(v)) end

local function encode_network(net, classes)
  if not net then return nil end
  if type(net.layer_sizes) ~= "table" or #net.layer_sizes == 0 then
    fail("network.layer_sizes must list the units of each recorded layer")
  end
  local units = 0
  for l, size in ipairs(net.layer_sizes) do
    if not is_count(size) or size < 1 then fail("network.layer_sizes[%d] must be a count of units >= 1", l) end
    units = units + size
  end
  local orders = net.orders
  if orders then
    if #orders ~= #net.layer_sizes then
      fail("network.orders has %d layers, layer_sizes %d", #orders, #net.layer_sizes)
    end
    -- each layer's order lists its own units (1-based indices into the whole vector), each once
    local base = 0
    for l, ord in ipairs(orders) do
      local size = net.layer_sizes[l]
      if type(ord) ~= "table" or #ord ~= size then
        fail("network.orders[%d] has %d units, the layer %d", l, type(ord) == "table" and #ord or 0, size)
      end
      local seen = {}
      for k, u in ipairs(ord) do
        if not is_count(u) or u <= base or u > base + size or seen[u] then
          fail("network.orders[%d][%d] = %s: each of the layer's units %d..%d must appear once", l, k,
            tostring(u), base + 1, base + size)
        end
        seen[u] = true
      end
      base = base + size
    end
  end
  local unit_classes = net.unit_classes
  if unit_classes then
    if type(unit_classes) ~= "table" or #unit_classes ~= units then
      fail("network.unit_classes must list a class for each of the %d units", units)
    end
    for u, k in ipairs(unit_classes) do
      if not is_count(k) or k < 1 or k > #classes then
        fail("network.unit_classes[%d] = %s is not a class in 1..%d", u, tostring(k), #classes)
      end
    end
  end
  return {layer_sizes = net.layer_sizes, units = units, orders = orders, unit_classes = unit_classes}
end

-- The heat grid's rows of numbers, all of one length; a value that is not
-- finite (e_hat underflowing to 0: -inf) is written as null, a blank cell.
local function check_heat(heat)
  local v = type(heat) == "table" and heat.values
  if type(v) ~= "table" or type(v[1]) ~= "table" then fail("heat.values must be a grid (a table of rows)") end
  for i, row in ipairs(v) do
    if type(row) ~= "table" or #row ~= #v[1] or #row == 0 then
      fail("heat.values row %d has %s values, row 1 %d: the grid must be rectangular", i,
        type(row) == "table" and tostring(#row) or "no", #v[1])
    end
    for j, x in ipairs(row) do
      if type(x) ~= "number" then fail("heat.values[%d][%d] must be a number, got a %s", i, j, type(x)) end
    end
  end
  local lim = heat.lim or 4
  if type(lim) ~= "number" or not (lim > 0 and lim < math.huge) then fail("heat.lim must be a number > 0") end
  return {values = v, lim = lim}
end

--- Writes the atlas page to `path` (atomically) and returns its size in bytes.
function atlas.write(path, spec)
  if type(path) ~= "string" then fail("path must be a string, got a %s", type(path)) end
  if type(spec) ~= "table" then fail("spec must be a table, got a %s", type(spec)) end
  if type(spec.classes) ~= "table" or #spec.classes == 0 then fail("spec.classes must list the class names") end
  -- labels travel as bytes
  if #spec.classes > 256 then fail("an atlas shows at most 256 classes, got %d", #spec.classes) end
  local classes = {}
  for k, name in ipairs(spec.classes) do
    if type(name) ~= "string" and type(name) ~= "number" then fail("spec.classes[%d] must be a name", k) end
    classes[k] = tostring(name)
  end
  if type(spec.sets) ~= "table" or #spec.sets == 0 then fail("spec.sets must hold at least one set of points") end
  local names = {}
  for _, set in ipairs(spec.sets) do
    local name = type(set) == "table" and set.name
    if name ~= nil and names[name] then fail("two sets are named '%s'", tostring(name)) end
    if name ~= nil then names[name] = true end
  end
  local chunk_rows = spec.chunk_rows or 2000
  if math.type(chunk_rows) ~= "integer" or chunk_rows < 1 then
    fail("chunk_rows must be an integer >= 1, got %s", tostring(chunk_rows))
  end
  local title = spec.title or "Activation atlas"
  if type(title) ~= "string" and type(title) ~= "number" then fail("title must be a string, got a %s", type(title)) end
  local o = {classes = classes, chunk_rows = chunk_rows}
  local image_bytes = spec.image_bytes or atlas.IMAGE_BYTES
  if type(image_bytes) ~= "number" or image_bytes < 0 then
    fail("image_bytes must be a number of bytes >= 0, got %s", tostring(image_bytes))
  end
  local network = encode_network(spec.network, classes)
  local colors = {}
  if spec.colors ~= nil then
    if type(spec.colors) ~= "table" or #spec.colors < #classes then
      fail("colors must list a colour 0xRRGGBBAA for each of the %d classes", #classes)
    end
    for k = 1, #classes do colors[k] = color_hex(spec.colors[k]) end
  else
    for k = 1, #classes do colors[k] = color_hex(plot.class_color(k)) end
  end
  local data = {title = tostring(title), classes = classes, colors = colors,
    chunk_rows = o.chunk_rows, sets = {}, network = network, overlays = {}}
  -- the page's image budget, shared: the smaller sets first, each taking
  -- at most its share of what is left, so a large training set cannot
  -- crowd out the test set's images
  local order = {}
  for i = 1, #spec.sets do order[i] = i end
  local function rows_of(i) local z = spec.sets[i].z; return lm.is_tensor(z) and z:size(1) or 0 end
  table.sort(order, function(a, b) return rows_of(a) < rows_of(b) end)
  local left, image_sets = image_bytes, 0
  for _, set in ipairs(spec.sets) do if set.images then image_sets = image_sets + 1 end end
  for _, i in ipairs(order) do
    local set = spec.sets[i]
    local used
    data.sets[i], used = encode_set(set, o, network, set.images and left / math.max(image_sets, 1) or nil)
    if set.images then left, image_sets = math.max(left - used, 0), image_sets - 1 end
  end
  if spec.heat then data.heat = check_heat(spec.heat) end
  for i, ov in ipairs(spec.overlays or {}) do
    local z = ov.z
    if type(z) == "table" and not lm.is_tensor(z) then z = lm.tensor(z) end
    if not lm.is_tensor(z) or z:dim() ~= 2 or z:size(2) ~= 2 then
      fail("overlay %d ('%s'): z must be an [n, 2] tensor or a list of {x, y}", i, tostring(ov.name))
    end
    if ov.kind and ov.kind ~= "points" and ov.kind ~= "path" then
      fail("overlay %d ('%s'): kind must be 'points' or 'path', got '%s'", i, tostring(ov.name), tostring(ov.kind))
    end
    local points = {}
    for _, p in ipairs(z:to("cpu"):totable()) do
      if p[1] - p[1] == 0 and p[2] - p[2] == 0 then points[#points + 1] = p end -- finite only
    end
    data.overlays[i] = {name = tostring(ov.name or ("overlay " .. i)), kind = ov.kind or "points",
      color = color_hex(ov.color or 0x000000FF), z = points}
  end
  local html, bytes = page.render(data.title, json.encode_parts(data)), 0
  for _, piece in ipairs(html) do bytes = bytes + #piece end
  lm.write_file(path, html)
  return bytes
end

return atlas
