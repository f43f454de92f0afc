-- Figures checked by pixels, not only by eye.
local lm = require 'lumen'
local plot = lm.plot

local function rgb(canvas, x, y)
  local r, g, b = canvas:pixel(math.floor(x), math.floor(y))
  return {r, g, b}
end

local function unpack_color(c) return {c >> 24, (c >> 16) & 255, (c >> 8) & 255} end

describe("plot", function()
  it("puts a scatter point at the right pixel", function()
    local fig = plot.figure{width = 300, height = 300}
    local ax = fig:axes{rect = {50, 50, 200, 200}, xlim = {0, 10}, ylim = {0, 10}, grid = false}
    ax:scatter({2.5}, {7.5}, {color = 0xFF0000FF, radius = 4})
    local canvas = fig:render()
    local px, py = ax:to_pixel(2.5, 7.5)
    eq(px, 100)
    eq(py, 100)
    same(rgb(canvas, px, py), {255, 0, 0})
    same(rgb(canvas, px + 8, py), {255, 255, 255}) -- outside the disc
  end)

  it("draws a colour bar with viridis' end colours", function()
    local fig = plot.figure{width = 400, height = 300}
    local ax = fig:axes{rect = {50, 40, 220, 200}}
    ax:heatmap({{0, 1}, {2, 3}}, {xlim = {0, 1}, ylim = {0, 1}, colorbar = "value"})
    local canvas = fig:render()
    local x = 50 + 220 + 14 + 7 -- the middle of the bar
    same(rgb(canvas, x, 40 + 199), unpack_color(plot.viridis(0)))
    same(rgb(canvas, x, 40 + 1), unpack_color(plot.viridis(1)), 4) -- one pixel below the top end
    -- heat map cells: value 0 at the bottom left, 3 at the top right
    same(rgb(canvas, 60, 230), unpack_color(plot.viridis(0)))
    same(rgb(canvas, 260, 50), unpack_color(plot.viridis(1)))
  end)

  it("renders text and writes a PNG", function()
    local fig = plot.figure{width = 200, height = 80}
    fig:text(10, 50, "Lumen", {size = 30})
    local canvas = fig:render()
    local dark = 0
    for y = 20, 60 do
      for x = 10, 120 do
        local r = canvas:pixel(x, y)
        if r < 100 then dark = dark + 1 end
      end
    end
    truthy(dark > 100, "text pixels drawn: " .. dark)
    local path = os.tmpname() .. ".png"
    fig:save(path)
    local bytes = io.open(path, "rb"):read("a")
    os.remove(path)
    eq(bytes:sub(1, 8), "\137PNG\r\n\26\n")
  end)

  it("chooses nice ticks", function()
    same((plot.ticks(0, 1, 5)), {0, 0.2, 0.4, 0.6, 0.8, 1}, 1e-12)
    same((plot.ticks(-3.7, 4.2, 4)), {-2, 0, 2, 4}, 1e-12)
  end)

  it("draws violins with their median and names category positions", function()
    local fig = plot.figure{width = 300, height = 300}
    local ax = fig:axes{rect = {50, 50, 200, 200}, xlim = {0.5, 2.5}, ylim = {-3, 3}, grid = false}
    local values = {}
    for i = 1, 201 do values[i] = (i - 101) / 100 end -- median 0, range [-1, 1]
    ax:violin(1, values, {color = 0x0000FFFF})
    ax:categories{"first", "second"}
    local canvas = fig:render()
    local mx, my = ax:to_pixel(1, 0)
    same(rgb(canvas, mx, my), {34, 34, 34}) -- the median line
    local r, _, b = canvas:pixel(math.floor(mx), math.floor(select(2, ax:to_pixel(1, 0.5))))
    truthy(b > 150 and r < 150, "inside the violin: blue")
    same(rgb(canvas, select(1, ax:to_pixel(2, 0)), my), {255, 255, 255}) -- nothing at x = 2
    -- the shape ends at the data (cut 0) or reaches past it by cut bandwidths
    local function blue_at(y, o)
      local f = plot.figure{width = 300, height = 300}
      local a = f:axes{rect = {50, 50, 200, 200}, xlim = {0.5, 2.5}, ylim = {-3, 3}, grid = false}
      a:violin(1, values, o)
      local px, py = a:to_pixel(1, y)
      local red, _, blue = f:render():pixel(math.floor(px), math.floor(py))
      return blue > 150 and red < 150
    end
    truthy(blue_at(0.97, {color = 0x0000FFFF}), "inside the data's range")
    eq(blue_at(1.15, {color = 0x0000FFFF}), false, "nothing past the largest value")
    eq(blue_at(1.15, {color = 0x0000FFFF, cut = 2}), true, "two bandwidths past it with cut = 2")
  end)

  it("places an image grid pixel for pixel", function()
    local fig = plot.figure{width = 100, height = 60}
    local imgs = lm.zeros(3, 4, 4)
    imgs[2]:fill_(1)
    fig:image_grid(10, 10, imgs, {cols = 3, scale = 2, gap = 2})
    local canvas = fig:render()
    same(rgb(canvas, 10, 10), {0, 0, 0})            -- image 1, black
    same(rgb(canvas, 10 + 8 + 2, 10), {255, 255, 255}) -- image 2 starts after 8 px and a 2 px gap
    same(rgb(canvas, 10 + 2 * 10, 17), {0, 0, 0})   -- image 3
  end)
end)

describe("the raster canvas", function()
  it("clips shapes with huge or NaN coordinates from data instead of writing outside", function()
    local c = lm._canvas(10, 10)
    local inf, nan = 1e300, 0 / 0
    c:polygon({inf, 0, inf, 10, inf, 5}, 0xff0000ff) -- every crossing right of the canvas
    c:polygon({-inf, 0, -inf, 10, -inf, 5}, 0xff0000ff)
    c:polygon({nan, 0, 5, 10, -inf, 5}, 0xff0000ff)
    c:disc(inf, 5, 2, 0xff0000ff)
    c:line(-inf, -inf, -inf, 5, 2, 0xff0000ff)
    -- (the NaN polygon may cover part of the canvas); off-canvas shapes cover nothing
    local d = lm._canvas(10, 10)
    d:polygon({inf, 0, inf, 10, inf, 5}, 0xff0000ff)
    d:disc(inf, 5, 2, 0xff0000ff)
    d:line(-inf, -inf, -inf, 5, 2, 0xff0000ff)
    same({d:pixel(9, 5)}, {255, 255, 255, 255})
    same({d:pixel(0, 0)}, {255, 255, 255, 255})
    -- a rectangle far larger than the canvas fills it, in one pass over its pixels
    local e = lm._canvas(10, 10)
    e:fill_rect(-1e9, -1e9, 1e9, 1e9, 0x0000ffff)
    same({e:pixel(0, 0)}, {0, 0, 255, 255})
    same({e:pixel(9, 9)}, {0, 0, 255, 255})
  end)
end)

describe("plot edge cases", function()
  it("labels ticks with the digits their step tells apart", function()
    local labels = {}
    for i, v in ipairs{0, 50000, 100000, 150000, 200000} do labels[i] = plot.tick_label(v, 50000) end
    same(labels, {"0", "50000", "1.0e+05", "1.5e+05", "2.0e+05"})
    eq(plot.tick_label(7.5e-4, 2.5e-4), "7.5e-04")
    eq(plot.tick_label(0.75, 0.25), "0.75")
    eq(plot.tick_label(3, 1), "3")
  end)

  it("ends the ticks where the step is below the doubles' spacing at the data", function()
    local ticks = plot.ticks(1e17, 1e17 + 16, 5)
    truthy(#ticks >= 1 and #ticks <= 1001, "ticks: " .. #ticks)
    same(plot.ticks(0, 1, 4), {0, 0.25, 0.5, 0.75, 1})
  end)

  it("colours a heat map by its finite values: infinities at the ends, NaN left blank", function()
    local fig = plot.figure{width = 300, height = 300}
    local ax = fig:axes{rect = {50, 50, 200, 200}, grid = false}
    ax:heatmap({{0, 1 / 0}, {0 / 0, 1}}, {xlim = {0, 2}, ylim = {0, 2}})
    local canvas = fig:render()
    local function cell(i, j) -- row i from the bottom, column j
      local px, py = ax:to_pixel(j - 0.5, i - 0.5)
      return rgb(canvas, px, py)
    end
    same(cell(1, 1), unpack_color(plot.viridis(0)), 0, "the minimum")
    same(cell(2, 2), unpack_color(plot.viridis(1)), 0, "the maximum")
    same(cell(1, 2), unpack_color(plot.viridis(1)), 0, "+inf at the top end")
    same(cell(2, 1), {255, 255, 255}, 0, "NaN blank")
    local fig2 = plot.figure{width = 100, height = 100}
    fig2:axes{}:heatmap({{0 / 0}})
    fig2:render() -- no finite value: renders
  end)

  it("refuses text it cannot draw: other angles, sizes past 200", function()
    local fig = plot.figure{width = 100, height = 100}
    raises(function() fig:text(10, 10, "W", {angle = 45}) end, "fig:text: angle must be 0 or 90 (degrees), got 45")
    raises(function() fig:text(10, 10, "W", {size = 400}) end, "fig:text: size must be a number in (0, 200], got 400")
    fig:text(0 / 0, 1e12, "W") -- far outside: nothing drawn, no error
    fig:render()
    -- the axes' text is checked when it is added, as the figure's (it failed only at save)
    raises(function() fig:axes{}:text(1, 1, "W", {size = 400}) end, "ax:text: size must be a number in (0, 200]")
  end)

  it("draws degenerate and huge ranges: one value, all-equal maps, limits upside down, all of float64", function()
    local cases = {
      function(ax) ax:heatmap({{2, 2}, {2, 2}}, {colorbar = "v"}) end,
      function(ax) ax:heatmap({{1, 2}, {3, 4}}, {colorbar = "v", vmin = 5, vmax = 1}) end,
      function(ax) ax:scatter({1e16}, {1}) end,
      function(ax) ax:violin(1, {1e17, 1e17}) end,
      function(ax) ax:line({-1e308, 1e308}, {0, 1}) end,
    }
    for i, draw in ipairs(cases) do
      local fig = plot.figure{width = 320, height = 240}
      draw(fig:axes{})
      local ok, err = pcall(fig.render, fig)
      truthy(ok, "case " .. i .. ": " .. tostring(err))
    end
    local ticks, step = plot.ticks(1e16, 1e16, 5)
    same(ticks, {1e16})
    eq(step, 1e16)
    -- a training run whose first loss is huge still gets its learning curve
    local path = os.tmpname() .. ".png"
    plot.learning_curve({{iteration = 10, train_loss = 3e16, train_accuracy = 0.1}}, path)
    truthy(lm.image.info(path) > 0)
    -- validation on some records only, one without its accuracy: drawn where it was measured
    plot.learning_curve({{iteration = 10, train_loss = 1, train_accuracy = 0.5},
      {iteration = 20, train_loss = 0.8, train_accuracy = 0.6, val_loss = 0.9, val_accuracy = 0.55},
      {iteration = 30, train_loss = 0.7, train_accuracy = 0.7, val_loss = 0.85}}, path)
    local img = lm.image.load(path)
    local c = unpack_color(plot.CLASS_COLORS[2])
    local near_validation = (img:select(1, 1) - c[1] / 255):abs():lt(0.02)
      * (img:select(1, 2) - c[2] / 255):abs():lt(0.02) * (img:select(1, 3) - c[3] / 255):abs():lt(0.02)
    truthy(near_validation:sum():item() > 20, "the validation line is drawn")
    os.remove(path)
  end)

  it("draws a violin of the finite values when some are NaN or infinite", function()
    local function drawn(values)
      local fig = plot.figure{width = 200, height = 200}
      local ax = fig:axes{rect = {20, 20, 160, 160}, xlim = {0, 2}, ylim = {0, 4}, grid = false}
      ax:violin(1, values, {color = 0xFF0000FF})
      local canvas, row = fig:render(), {}
      for y = 20, 179, 4 do for x = 20, 179, 4 do row[#row + 1] = rgb(canvas, x, y)[1] end end
      return row
    end
    local clean = drawn({1, 2, 3})
    local ink = 0
    for _, v in ipairs(clean) do if v < 255 then ink = ink + 1 end end
    truthy(ink > 20, "the clean violin is drawn")
    same(drawn({1, 2, 0 / 0, 3, math.huge, -math.huge}), clean, 0, "the same violin: the finite values'")
  end)

  it("dashes a dashed line along its length, and keeps category labels inside their axes", function()
    local fig = plot.figure{width = 220, height = 120}
    local ax = fig:axes{rect = {10, 10, 200, 100}, xlim = {0, 2}, ylim = {0, 2}, grid = false}
    ax:line({0, 1, 2}, {1, 1, 1}, {dashed = true, color = 0xFF0000FF, width = 2})
    local canvas = fig:render()
    local _, py = ax:to_pixel(0, 1)
    local drawn = {0, 0} -- red pixels on each half of the line (one segment each)
    for x = 11, 209 do
      local c = rgb(canvas, x, py)
      if c[1] > 200 and c[2] < 80 then drawn[x < 110 and 1 or 2] = drawn[x < 110 and 1 or 2] + 1 end
    end
    truthy(drawn[1] > 40 and drawn[1] < 80 and drawn[2] > 40 and drawn[2] < 80,
      "about 6 of every 10 pixels on both halves: " .. drawn[1] .. ", " .. drawn[2])
    -- five category names for axes showing positions 1 and 2: the other three are not drawn beside them
    local fig2 = plot.figure{width = 400, height = 150}
    local left = fig2:axes{rect = {30, 10, 150, 100}}
    left:violin(1, {1, 2, 3})
    left:violin(2, {1, 2, 3})
    left:categories{"one", "two", "three", "four", "five"}
    local canvas2 = fig2:render()
    local ink = 0
    for x = 190, 399 do for y = 111, 140 do if rgb(canvas2, x, y)[1] < 128 then ink = ink + 1 end end end
    eq(ink, 0, "nothing drawn right of the axes")
  end)

  it("draws the violins of twelve classes (the eleventh and twelfth had no colour)", function()
    local Fig = require 'lumen.introspect.figures'
    local n, names = 240, {}
    for k = 1, 12 do names[k] = "class " .. k end
    local labels, preds = {}, {}
    for i = 1, n do labels[i] = (i - 1) % 12 + 1; preds[i] = i % 5 == 0 and labels[i] % 12 + 1 or labels[i] end
    local path = os.tmpname() .. ".png"
    Fig.violins(path, {log_e_hat = lm.randn(n), labels = lm.tensor(labels, "int32"),
      predictions = lm.tensor(preds, "int32"), classes = names})
    truthy(lm.image.info(path) == 1100)
    os.remove(path)
  end)

  it("repeats the ten class colours past the tenth class, and takes whole pixels for images", function()
    eq(plot.class_color(1), plot.CLASS_COLORS[1])
    eq(plot.class_color(12), plot.CLASS_COLORS[2])
    raises(function() plot.class_color(0) end, "lm.plot.class_color: k must be a class number >= 1, got 0")
    local fig = plot.figure{width = 100, height = 100}
    fig:image(10.4, 3, lm.rand(4, 4)) -- rounded to pixels
    local img = lm.ones(2, 2)
    img[1][1] = 0 / 0 -- a NaN pixel is drawn black (its conversion to a byte was undefined)
    fig:image(50, 50, img)
    local canvas = fig:render()
    same(rgb(canvas, 50, 50), {0, 0, 0})
    same(rgb(canvas, 51, 50), {255, 255, 255})
    raises(function() fig:image(0, 0, lm.rand(4, 4), 2.5) end, "fig:image: scale must be a whole number in 1..64")
    raises(function() fig:image_grid(0, 0, lm.rand(2, 4, 4), {scale = 100}) end,
      "fig:image_grid: scale must be a whole number in 1..64")
    -- captions for the first of three images only: no "nil" under the others
    local before = #fig.texts
    fig:image_grid(0, 0, lm.rand(3, 4, 4), {labels = {"a"}})
    eq(#fig.texts - before, 1)
  end)
end)
