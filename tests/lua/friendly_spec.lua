-- Friendly at the edges (issue 18): a misspelt name says so with the closest
-- names, help(nil) says the value is nil, and an error inside a layer points
-- at the line that called it.
local lm = require 'lumen'
local help = require 'lumen.help'
local nn = lm.nn

-- The message of fn's error.
local function message(fn)
  local ok, err = pcall(fn)
  truthy(not ok, "expected an error")
  return tostring(err)
end

-- This file's name as error positions show it, and the line of the caller.
local here = debug.getinfo(1, "S").short_src
local function line() return debug.getinfo(2, "l").currentline end

describe("misspelt names", function()
  it("on a module: net:evalute says did you mean evaluate", function()
    local net = nn.Sequential(nn.Linear(2, 2), nn.ELU())
    local l = line() + 1
    local msg = message(function() net:evalute() end)
    truthy(msg:find("a module has no 'evalute'; did you mean eval or evaluate?", 1, true), msg)
    truthy(msg:find(here .. ":" .. l .. ":", 1, true), "points at the caller: " .. msg)
    truthy(message(function() local _ = nn.Linear(2, 2):forwrd() end):find("did you mean forward?", 1, true))
    truthy(message(function() local _ = net:paramters() end):match("did you mean .*parameters%?"))
  end)
  it("on a module: optional fields stay nil", function()
    local lin = nn.Linear(2, 3, {bias = false})
    eq(lin.bias, nil)
    eq(lin.anything_else, nil)
    eq(lin(lm.ones(1, 2)):shape_string(), "1x3")
    local Custom = nn.Module:extend("Custom")
    function Custom:forward(x) return self.scale and x * self.scale or x end
    eq(Custom()(lm.ones(2)):sum():item(), 2)
  end)
  it("on lm.nn, lm.optim and lm", function()
    local msg = message(function() local _ = nn.BatchNorm(3) end)
    truthy(msg:find("lm.nn has no 'BatchNorm'; did you mean BatchNorm1d or BatchNorm2d?", 1, true), msg)
    msg = message(function() local _ = nn.Frobnicator(3) end)
    truthy(msg:find("lm.nn has no 'Frobnicator'", 1, true), msg)
    truthy(msg:find('help("lm.nn.") lists its names', 1, true), "points at the list: " .. msg)
    truthy(message(function() local _ = nn.Lineer(2, 2) end):find("did you mean Linear?", 1, true))
    truthy(message(function() local _ = lm.optim.Adma end):find("lm.optim has no 'Adma'; did you mean Adam?", 1, true))
    truthy(message(function() local _ = lm.matmull end):find("lm has no 'matmull'; did you mean matmul?", 1, true))
    truthy(message(function() local _ = lm.zeroes(2) end):find("did you mean zeros?", 1, true))
    eq(lm._not_there, nil) -- private names stay nil
  end)
  it("on a tensor", function()
    local x = lm.ones(2, 3)
    local l = line() + 1
    local msg = message(function() local _ = x:reshpe(3, 2) end)
    truthy(msg:find("a tensor has no 'reshpe'; did you mean reshape?", 1, true), msg)
    truthy(msg:find(here .. ":" .. l .. ":", 1, true), "points at the caller: " .. msg)
    truthy(message(function() local _ = x:qwertz() end):find('help("x:") lists the methods', 1, true))
    eq(x._private, nil)
    truthy(x.grad == nil)
  end)
  it("help.closest: prefixes and near names, nearest first", function()
    same(help.closest("eval", {"evaluate", "train", "parameters"}), {"evaluate"})
    same(help.closest("lenght", {"length", "height", "left"}), {"length"})
    same(help.closest("zzz", {"evaluate", "train"}), {})
  end)
end)

describe("help(nil)", function()
  it("says that the value is nil", function()
    local out = help.text(nil)
    truthy(out:find("help: the value is nil", 1, true), out)
    local general = help.text()
    truthy(not general:find("the value is nil", 1, true), general)
    truthy(general:find("help(lm.nn.Linear)", 1, true), general)
  end)
end)

describe("errors inside layers", function()
  it("point at the line that called the layer", function()
    local net = nn.Sequential(nn.Linear(3, 2), nn.ELU())
    local l = line() + 1
    local msg = message(function() local _ = net(lm.ones(4, 5)) end)
    truthy(msg:find(here .. ":" .. l .. ": linear: input has 5 features", 1, true), msg)
    truthy(not msg:find("lua/lumen/", 1, true), msg)
    l = line() + 1
    msg = message(function() local _ = nn.Conv2d(3, 2, 3)(lm.ones(4, 5)) end)
    truthy(msg:find(here .. ":" .. l .. ": conv2d:", 1, true), msg)
    l = line() + 1
    msg = message(function() local _ = nn.Linear(0, 2) end)
    truthy(msg:find(here .. ":" .. l .. ": nn.Linear: inputs must be a positive integer", 1, true), msg)
  end)
  it("keep a custom layer's own positions", function()
    local Bad = nn.Module:extend("Bad")
    local l = line() + 1
    function Bad:forward() error("bad layer") end
    local msg = message(function() local _ = Bad()(lm.ones(1)) end)
    truthy(msg:find(here .. ":" .. l .. ": bad layer", 1, true), msg)
  end)
end)
