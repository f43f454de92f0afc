-- Printing tensors the way Torch and PyTorch users expect: values aligned in
-- columns, big tensors summarised with `...`, and a footer with dtype, shape
-- and device.
local M = {}

local SUMMARY_THRESHOLD = 1000 -- more elements than this: show edges only
local EDGE = 3                 -- elements kept at each edge when summarising

-- Indices of a dimension of size n to display ("..." marks a gap).
local function indices(n, summarise)
  local idx = {}
  if summarise and n > 2 * EDGE then
    for i = 1, EDGE do idx[#idx + 1] = i end
    idx[#idx + 1] = "..."
    for i = n - EDGE + 1, n do idx[#idx + 1] = i end
  else
    for i = 1, n do idx[#idx + 1] = i end
  end
  return idx
end

-- Collects the displayed values of a 1-D or 2-D tensor as a matrix of numbers
-- (or "..." strings).
local function matrix(t, summarise)
  local shape = t:shape()
  if #shape == 1 then t = t:view(1, shape[1]) end
  local rows, cols = t:size(1), t:size(2)
  local full = not summarise or (rows <= 2 * EDGE and cols <= 2 * EDGE)
  local values = full and t:totable() or nil
  local out = {}
  for _, i in ipairs(indices(rows, summarise)) do
    local row = {}
    if i == "..." then
      row.gap = true
    else
      for _, j in ipairs(indices(cols, summarise)) do
        if j == "..." then
          row[#row + 1] = "..."
        elseif values then
          row[#row + 1] = values[i][j]
        else
          row[#row + 1] = t:select(1, i):select(1, j):item()
        end
      end
    end
    out[#out + 1] = row
  end
  return out
end

-- One number format for all displayed values, chosen from their range.
local function number_format(mats, is_int)
  local maxabs, minabs, integral = 0, math.huge, true
  for _, m in ipairs(mats) do
    for _, row in ipairs(m) do
      for _, v in ipairs(row) do
        if type(v) == "number" then
          local a = math.abs(v)
          if a ~= a or a == math.huge then
            integral = false
          else
            if a > maxabs then maxabs = a end
            if a > 0 and a < minabs then minabs = a end
            if v ~= math.floor(v) then integral = false end
          end
        end
      end
    end
  end
  local form
  if is_int or (integral and maxabs < 1e9) then
    form = function(v) return string.format("%d", math.tointeger(v) or v) end
  elseif maxabs >= 1e5 or (minabs < 1e-4 and minabs ~= math.huge) then
    form = function(v) return string.format("%.4e", v) end
  else
    form = function(v) return string.format("%.4f", v) end
  end
  return function(v) return v ~= v and "nan" or form(v) end -- C prints a NaN's sign bit ("-nan")
end

local function render(m, fmt, width, lines)
  for _, row in ipairs(m) do
    if row.gap then
      lines[#lines + 1] = " ..."
    else
      local cells = {}
      for k, v in ipairs(row) do
        local s = type(v) == "number" and fmt(v) or v
        cells[k] = string.rep(" ", width - #s) .. s
      end
      lines[#lines + 1] = table.concat(cells, " ")
    end
  end
end

-- Every 2-D slice (with its leading 1-based index) of an N-D tensor.
local function slices(t, summarise, prefix, out)
  if t:dim() <= 2 then
    out[#out + 1] = {prefix = prefix, t = t}
    return out
  end
  for _, i in ipairs(indices(t:size(1), summarise)) do
    if i == "..." then
      out[#out + 1] = {gap = true}
    else
      local p = {table.unpack(prefix)}
      p[#p + 1] = i
      slices(t:select(1, i), summarise, p, out)
    end
  end
  return out
end

function M.format(t)
  local dtype, device = t:dtype(), t:device()
  local shape = t:shape()
  local footer = string.format("[%s tensor of shape %s on %s]", dtype,
    #shape == 0 and "[]" or table.concat(shape, "x"), device)
  if t:numel() == 0 then return "[empty " .. footer:sub(2) end
  if #shape == 0 then
    -- a 0-D tensor (a loss, a sum) prints as its value, like a Lua number
    local v = t:item()
    if dtype == "int32" then return string.format("%d", v) end
    return v ~= v and "nan" or string.format("%.7g", v)
  end
  local summarise = t:numel() > SUMMARY_THRESHOLD
  local parts = slices(t, summarise, {}, {})
  local mats = {}
  for _, p in ipairs(parts) do
    if not p.gap then p.m = matrix(p.t, summarise); mats[#mats + 1] = p.m end
  end
  local fmt = number_format(mats, dtype == "int32")
  local width = 1
  for _, m in ipairs(mats) do
    for _, row in ipairs(m) do
      for _, v in ipairs(row) do
        local s = type(v) == "number" and fmt(v) or v
        if #s > width then width = #s end
      end
    end
  end
  local lines = {}
  for _, p in ipairs(parts) do
    if p.gap then
      lines[#lines + 1] = "(...)"
    else
      if #p.prefix > 0 then
        lines[#lines + 1] = "(" .. table.concat(p.prefix, ",") .. ",.,.) ="
      end
      render(p.m, fmt, width, lines)
      if #p.prefix > 0 then lines[#lines + 1] = "" end
    end
  end
  lines[#lines + 1] = footer
  return table.concat(lines, "\n")
end

return M
