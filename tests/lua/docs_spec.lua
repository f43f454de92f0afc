-- The API reference (docs/api.md) has an entry for every public name, and
-- help() finds it: lm's functions and tables, F.*, the library modules and
-- the methods of every class users hold.
local lm = require 'lumen'
local help = require 'lumen.help'

describe("docs/api.md", function()
  it("has an entry for every public name", function()
    local missing, n = {}, 0
    for _, e in ipairs(help.names()) do
      n = n + 1
      if not help.entry(e[1]) then missing[#missing + 1] = e[1] end
    end
    truthy(n > 300, "names found: " .. n)
    eq(#missing, 0, "undocumented: " .. table.concat(missing, ", "))
  end)
  it("gives a name's own entry where a bullet starts with it, not an earlier mention", function()
    -- lm.train is named inside lm.autocast's entry first; its own bullet comes later
    local entry, heading = help.entry("lm.train")
    truthy(entry:find("^%- `lm%.train{"), entry)
    eq(heading, "### Training (`lm.train`)")
    local api_text = require 'lumen.docs.api'
    local with_bullet, wrong = 0, {}
    for _, e in ipairs(help.names()) do
      local name = e[1]
      if api_text:find("\n%- `" .. name:gsub("%p", "%%%0") .. "[%({`%s%[%.]") then
        with_bullet = with_bullet + 1
        if help.entry(name):sub(1, #name + 3) ~= "- `" .. name then wrong[#wrong + 1] = name end
      end
    end
    truthy(with_bullet > 200, "names with a bullet of their own: " .. with_bullet)
    eq(#wrong, 0, "entries that are not the name's own: " .. table.concat(wrong, ", "))
  end)
  it("covers tensors, modules, optimisers, figures, loaders, recorders and library modules", function()
    local kinds = {}
    for _, e in ipairs(help.names()) do kinds[e[1]:match("^[%a_]+[.:]")] = true end
    for _, k in ipairs{"lm.", "F.", "x:", "net:", "opt:", "clr:", "es:", "fig:", "ax:", "loader:", "rec:", "vae:",
      "analyses.", "study.", "atlas."} do
      truthy(kinds[k], k .. " names are checked")
    end
  end)
end)

describe("help", function()
  local function captured(fn) -- fn calls lm.help(x): what help would print for that x
    local x_of
    local saved = lm.help
    lm.help = function(x) x_of = {x} end
    fn()
    lm.help = saved
    return help.text(x_of[1])
  end
  it("finds the entries of library tables, their functions and lm.nn.functional's", function()
    local t = help.text(lm.data.transforms)
    truthy(t:find("- `lm.data.transforms`: batch transforms", 1, true), t)
    truthy(t:find("lm.data.transforms.normalize", 1, true), "and lists its functions: " .. t)
    t = help.text(lm.data.transforms.normalize)
    truthy(t:find("`normalize(mean, std)`", 1, true), t)
    t = help.text(lm.nn.functional)
    truthy(t:find("F.relu", 1, true) and not t:find("nothing is named", 1, true), t)
    t = help.text("lm.nn.functional.relu")
    truthy(t:find("F.relu", 1, true) and not t:find("has no entry", 1, true), t)
    t = help.text(lm.data.MNIST_CLASSES)
    truthy(t:find("`lm.data.MNIST_CLASSES`", 1, true), t)
    t = help.text(lm.optim)
    truthy(t:find("lm.optim.Adam", 1, true) and not t:find("- `lm.optim.SGD", 1, true), "a listing: " .. t)
  end)

  it("finds a function's entry by value and by name", function()
    local out = captured(function() lm.help(lm.nn.Linear) end)
    truthy(out:find("### Neural networks", 1, true), out)
    truthy(out:find("- `lm.nn.Linear(in, out", 1, true), out)
    eq(captured(function() lm.help("lm.nn.Linear") end), out)
    eq(help.name_of(lm.matmul), "lm.matmul")
    eq(help.name_of(lm.nn.functional.elu), "F.elu")
  end)
  it("finds methods, with their receivers", function()
    eq(help.name_of(lm.Tensor.reshape), "x:reshape")
    truthy(captured(function() lm.help("x:reshape") end):find("`x:reshape(", 1, true))
    local fig = lm.plot.figure{}
    local ax = fig:axes{rect = {0, 0, 10, 10}}
    eq(help.name_of(ax.scatter), "ax:scatter")
    truthy(captured(function() lm.help(ax.scatter) end):find("ax:scatter(xs, ys", 1, true))
    eq(help.name_of(lm.nn.Linear(2, 2).parameters), "net:parameters")
  end)
  it("lists a module's names and says when nothing matches", function()
    local out = captured(function() lm.help(lm.optim) end)
    truthy(out:find("lm.optim.Adam", 1, true) and out:find("lm.optim.SGD", 1, true), out)
    truthy(captured(function() lm.help("x:") end):find("x:view", 1, true))
    truthy(captured(function() lm.help("lm.nope") end):find("lm.nope has no entry in docs/api.md", 1, true))
    truthy(captured(function() lm.help(function() end) end):find("no reference entry for this function", 1, true))
    truthy(captured(function() lm.help() end):find("help(lm.nn.Linear)", 1, true))
    truthy(captured(function() lm.help(lm.ones(2)) end):find("[float32 tensor of shape 2 on cpu]", 1, true))
  end)
end)
