-- Containers beside nn.Sequential, twins of torch.nn's: nn.ModuleList.
--
-- A ModuleList registers its modules as numbered children, as Sequential
-- does, so Module's walks name them from 0 ("layers.0.weight", as torch
-- does) while Lua indexes them from 1 (list[1]), and parameters(), to,
-- train and evaluate reach them. It has no forward: the module holding it
-- decides how its modules run.
local checks = require 'lumen.nn.checks'

return function(nn)
  local Module = nn.Module

  --- A list of modules registered as children (torch.nn.ModuleList):
  --- nn.ModuleList({m1, m2}) or nn.ModuleList(); list[i] (1-based),
  --- #list, list:size(), ipairs(list), list:append(m), list:extend(ms).
  --- Not callable: torch's ModuleList has no forward.
  nn.ModuleList = Module:extend("nn.ModuleList")

  local assign_field = nn.ModuleList.__newindex

  -- the modules of `modules` (a list of modules or another ModuleList) as a
  -- list, each checked before any is added; errors at the caller of the
  -- public function
  local function module_list(modules, fname)
    if modules == nil then return {} end
    if type(modules) ~= "table" or (getmetatable(modules) ~= nn.ModuleList and modules.forward ~= nil) then
      local got = type(modules) == "table" and "a single module (put it in a list: {m})" or checks.shown(modules)
      error(string.format("%s: modules must be a list of modules, got %s", fname, got), 3)
    end
    local out = {}
    for i, m in ipairs(modules) do
      checks.module(m, "modules[" .. i .. "]", fname, 4)
      out[i] = m
    end
    if next(modules) ~= nil and #out == 0 and getmetatable(modules) ~= nn.ModuleList then
      error(fname .. ": modules must be a list of modules, got a table that is not a list", 3)
    end
    return out
  end

  function nn.ModuleList:init(modules)
    for _, m in ipairs(module_list(modules, "nn.ModuleList")) do self:child(#self._child_names + 1, m) end
  end

  --- Adds module m at the end; returns the list.
  function nn.ModuleList:append(m)
    checks.module(m, "the module", "nn.ModuleList:append")
    self:child(#self._child_names + 1, m)
    return self
  end

  --- Adds the modules of `modules` (a list of modules or a ModuleList) at
  --- the end, in order; returns the list.
  function nn.ModuleList:extend(modules)
    for _, m in ipairs(module_list(modules, "nn.ModuleList:extend")) do self:child(#self._child_names + 1, m) end
    return self
  end

  --- The number of modules (also #list).
  function nn.ModuleList:size() return #self._child_names end
  nn.ModuleList.__len = nn.ModuleList.size

  function nn.ModuleList:forward()
    error("nn.ModuleList is not callable (as torch's ModuleList, it has no forward): call its modules, "
      .. "e.g. for _, m in ipairs(self.layers) do x = m(x) end", 2)
  end

  -- list[i] = m for i in 1..#list replaces a module in place (the slot is
  -- the child's own); a new number is out of range, as in torch (append
  -- adds one); other keys are fields as in every module.
  nn.ModuleList.__newindex = function(self, k, v)
    if math.type(k) == "integer" then
      error(string.format("nn.ModuleList: index %d is out of range 1..%d (append adds a module)", k,
        #self._child_names), 2)
    end
    assign_field(self, k, v)
  end
end
