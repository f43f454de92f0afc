--- lm.cuda.graph(fn, ...): the GPU work of fn(...) captured once as a CUDA
--- graph, to be replayed with one launch (docs/gpu.md, "CUDA graphs").
---
---   local x, y = lm.zeros(128, 784, 'cuda'), lm.zeros(128, 10, 'cuda') -- static inputs
---   local function step()
---     opt:zero_grad()
---     local loss = F.mse(net(x), y)
---     loss:backward()
---     opt:step()
---     return loss
---   end
---   step()                                -- once first: state, plans
---   local g, loss = lm.cuda.graph(step)   -- records; nothing runs
---   for _, b in ipairs(batches) do
---     x:copy_(b.x); y:copy_(b.y)          -- new values, same memory
---     g:replay()                          -- loss holds this batch's loss
---   end
---
--- Capture runs nothing: it records the kernels fn queues with their
--- arguments and returns the graph and fn's results, whose memory each
--- replay writes. Every replay reads the same tensors, so inputs change by
--- copy_ into them, and the tensors fn reads must live as long as the
--- graph. What changes from replay to replay goes on as in uncaptured runs:
--- random numbers (dropout) continue the stream, and the optimisers stepped
--- in fn step again before each replay on the host (their rate, a schedule's
--- included, and Adam's bias corrections reach the graph), while capture
--- itself leaves their step counts as they were. Refused while capturing,
--- with an error that says so: reading a GPU tensor from the host (item,
--- totable, to('cpu')), sending host data to the GPU, reseeding, a
--- convolution shape not run before (cuDNN times its algorithms).
local lm = require 'lumen'

local Graph = {}
Graph.__index = Graph

-- the optimiser steps of the capture under way, in order, and each
-- optimiser's step counts before it (capture runs nothing: they go back)
local capture

--- Called by Optimizer:step while a graph is captured.
local function captured_step(opt)
  local seen = capture.before[opt]
  if not seen then
    local s = opt.settings
    capture.before[opt] = {step = s.step, param_steps = table.move(s.param_steps, 1, #opt.params, 1, {})}
  end
  capture.steps[#capture.steps + 1] = opt
end

local function restore_counts()
  for opt, before in pairs(capture.before) do
    opt.settings.step = before.step
    opt.settings.param_steps = before.param_steps
  end
end

local function graph(fn, ...)
  if type(fn) ~= "function" then
    error("cuda.graph: expected the function to capture, got " .. type(fn), 2)
  end
  if not lm.cuda.available() then error("cuda.graph: CUDA is not available: " .. lm.cuda.status(), 2) end
  lm.cuda._graph_begin()
  capture = {steps = {}, before = {}}
  local results = table.pack(pcall(fn, ...))
  restore_counts()
  local steps = capture.steps
  capture = nil
  if not results[1] then
    lm.cuda._graph_end(true)
    error("cuda.graph: the function failed while captured (nothing was kept): " .. tostring(results[2]), 2)
  end
  local g = setmetatable({handle = lm.cuda._graph_end(false), steps = steps}, Graph)
  return g, table.unpack(results, 2, results.n)
end

--- Runs the captured work again (after the captured optimisers' host steps).
function Graph:replay()
  if #self.steps > 0 then
    -- a failed preparation leaves the step counts as they were
    local before = {}
    for _, opt in ipairs(self.steps) do
      local s = opt.settings
      before[opt] = before[opt] or {step = s.step, param_steps = table.move(s.param_steps, 1, #opt.params, 1, {})}
    end
    lm.cuda._graph_refresh_begin(self.handle)
    local ok, err = pcall(function() for _, opt in ipairs(self.steps) do opt:step() end end)
    local ended, end_err = pcall(lm.cuda._graph_refresh_end)
    if not (ok and ended) then
      for opt, b in pairs(before) do
        opt.settings.step, opt.settings.param_steps = b.step, b.param_steps
      end
      error(ok and end_err or err, 2)
    end
  end
  self.handle:replay()
end

--- Gives the graph's device memory back now (the collector does it too).
function Graph:free() self.handle:free() end

function Graph:__tostring()
  return string.format("[CUDA graph: %d optimiser step%s]", #self.steps, #self.steps == 1 and "" or "s")
end

return {graph = graph, captured_step = function(opt) if capture then captured_step(opt) end end}
