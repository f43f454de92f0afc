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
--                  color = 0xRRGGBBAA}, ...},    -- optional; z may be {{x, y}, ...}
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
-- With `budget` (characters of packed text), chunks stop once it is spent:
-- the second result is the number of rows packed.
local function chunks(t, rows, fmt, scale, budget)
  local out, n, used, stored = {}, t:size(1), 0, 0
  for start = 1, n, rows do
    if budget and used >= budget then break end
    local len = math.min(rows, n - start + 1)
    local part = t:narrow(1, start, len)
    part = scale and scale(part, start) or part:contiguous()
    out[#out + 1] = packed(part, fmt)
    used, stored = used + #out[#out], stored + len
    part:free() -- the chunk's copy, now packed, goes back before the next one is made
  end
  return out, stored, used
end

local function color_hex(c)
  return string.format("#%06x", c >> 8)
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
    local safe = s + s:eq(0):float()                                -- an all-zero row keeps scale 1
    out.maps[j] = {name = tostring(map.name or ("attribution " .. j)), scale = packed(safe, "float32"),
      chunks = chunks(v, o.chunk_rows, "uint8", function(part, start)
        return (part / safe:narrow(1, start, part:size(1)):view(-1, 1)):mul_(127):add_(128)
      end)}
  end
  for k, r in ipairs(spec.regions or {}) do
    local list = row_list(set, string.format("attributions.regions[%d].rows", k), r.rows or {}, n)
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
    out[f] = packed(t - 1, "uint8")
  end
  if set.log10_error then
    check_rows(set, "log10_error", set.log10_error, n)
    out.log10_error = packed(set.log10_error:to("cpu"):float():reshape(n), "float32")
  end
  if set.images then
    check_rows(set, "images", set.images, n)
    local shape = image_shape(set)
    local flat = set.images:to("cpu"):reshape(n, -1)
    if flat:size(2) ~= shape[1] * shape[2] * shape[3] then
      fail("set '%s': images have %d values a row, image_shape says %d", set.name, flat:size(2),
        shape[1] * shape[2] * shape[3])
    end
    local lo, hi = table.unpack(set.image_range or {0, 1})
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
    local lo = H:min(1)
    local range = (H:max(1) - lo):clamp(1e-12)
    out.activations = {chunks = chunks(H, rows, "uint8", function(part) return (part - lo):div_(range):mul_(255) end)}
  end
  return out, image_used
end

local function encode_network(net)
  if not net then return nil end
  if type(net.layer_sizes) ~= "table" or #net.layer_sizes == 0 then
    fail("network.layer_sizes must list the units of each recorded layer")
  end
  local units = 0
  for _, s in ipairs(net.layer_sizes) do units = units + s end
  local orders = net.orders
  if orders then
    if #orders ~= #net.layer_sizes then
      fail("network.orders has %d layers, layer_sizes %d", #orders, #net.layer_sizes)
    end
    for l, ord in ipairs(orders) do
      if #ord ~= net.layer_sizes[l] then
        fail("network.orders[%d] has %d units, the layer %d", l, #ord, net.layer_sizes[l])
      end
    end
  end
  return {layer_sizes = net.layer_sizes, units = units, orders = orders, unit_classes = net.unit_classes}
end

--- Writes the atlas page to `path` (atomically) and returns its size in bytes.
function atlas.write(path, spec)
  if type(path) ~= "string" then fail("path must be a string, got a %s", type(path)) end
  if type(spec) ~= "table" then fail("spec must be a table, got a %s", type(spec)) end
  if type(spec.classes) ~= "table" or #spec.classes == 0 then fail("spec.classes must list the class names") end
  if type(spec.sets) ~= "table" or #spec.sets == 0 then fail("spec.sets must hold at least one set of points") end
  local o = {classes = spec.classes, chunk_rows = spec.chunk_rows or 2000}
  local image_bytes = spec.image_bytes or atlas.IMAGE_BYTES
  if type(image_bytes) ~= "number" or image_bytes < 0 then
    fail("image_bytes must be a number of bytes >= 0, got %s", tostring(image_bytes))
  end
  local network = encode_network(spec.network)
  local colors = {}
  for k = 1, #spec.classes do colors[k] = color_hex((spec.colors or plot.CLASS_COLORS)[(k - 1) % 10 + 1]) end
  local data = {title = spec.title or "Activation atlas", classes = spec.classes, colors = colors,
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
  if spec.heat then
    local v = spec.heat.values
    if type(v) ~= "table" or type(v[1]) ~= "table" then fail("heat.values must be a grid (a table of rows)") end
    data.heat = {values = v, lim = spec.heat.lim or 4}
  end
  for i, ov in ipairs(spec.overlays or {}) do
    local z = ov.z
    if type(z) == "table" and not lm.is_tensor(z) then z = lm.tensor(z) end
    if not lm.is_tensor(z) or z:dim() ~= 2 or z:size(2) ~= 2 then
      fail("overlay %d ('%s'): z must be an [n, 2] tensor or a list of {x, y}", i, tostring(ov.name))
    end
    if ov.kind and ov.kind ~= "points" and ov.kind ~= "path" then
      fail("overlay %d ('%s'): kind must be 'points' or 'path', got '%s'", i, tostring(ov.name), tostring(ov.kind))
    end
    data.overlays[i] = {name = ov.name or ("overlay " .. i), kind = ov.kind or "points",
      color = color_hex(ov.color or 0x000000FF), z = z:to("cpu"):totable()}
  end
  local html, bytes = page.render(data.title, json.encode_parts(data)), 0
  for _, piece in ipairs(html) do bytes = bytes + #piece end
  lm.write_file(path, html)
  return bytes
end

return atlas
