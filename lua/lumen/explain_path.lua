-- Attributions along a path of inputs (lm.explain.path): the iterates of an
-- adversarial attack or a sequence of noisy copies, so one sees which pixels
-- carried a sample across the map. Added to lm.explain by explain.lua.
local lm = require 'lumen'
local checks = require 'lumen.nn.checks'

return function(explain)
  -- `count` step numbers spread evenly over 1..n, first and last included
  local function spread(n, count)
    local picked = {}
    if math.type(count) ~= "integer" or count < 1 then
      error("path: count must be an integer >= 1, got " .. tostring(count), 3)
    end
    if count == 1 then return {n} end -- the step the path ends at
    if count >= n then
      for i = 1, n do picked[i] = i end
      return picked
    end
    for k = 0, count - 1 do picked[k + 1] = 1 + math.floor(k * (n - 1) / (count - 1) + 0.5) end
    return picked
  end

  local CLASS_METHODS = {saliency = true, input_x_gradient = true, smoothgrad = true, integrated_gradients = true}

  --- Attributions at the iterates of a path xs [T, ...]: opts.at (1-based
  --- step numbers; default opts.count = 8 spread evenly, first and last
  --- included), opts.method ('integrated_gradients', 'saliency',
  --- 'input_x_gradient' or 'smoothgrad', with its options such as steps),
  --- opts.target (default: the prediction at the last step, the class the
  --- path ends in). With opts.recorder, opts.vae and opts.est also the
  --- attributions of log10 e_hat; with opts.figure = path the figure of the
  --- steps (inputs, class and error attributions; opts.shape for flat
  --- inputs). Returns {at, inputs, class, error, target}.
  function explain.path(model, xs, opts)
    checks.module(model, "model", "lm.explain.path")
    opts = checks.options(opts, "lm.explain.path")
    if getmetatable(xs) ~= lm._tensor_metatable or xs:dim() < 2 then
      error("path: xs must be a tensor of inputs [T, ...]", 2)
    end
    local T = xs:size(1)
    if opts.at ~= nil then checks.table(opts.at, "opts.at", "lm.explain.path") end
    local at = opts.at or spread(T, opts.count or 8)
    for _, s in ipairs(at) do
      if math.type(s) ~= "integer" or s < 1 or s > T then
        error(string.format("path: step %s is not one of the path's %d steps", tostring(s), T), 2)
      end
    end
    local method = opts.method or "integrated_gradients"
    if not CLASS_METHODS[method] then
      error("path: method must be 'integrated_gradients', 'saliency', 'input_x_gradient' or 'smoothgrad', got "
        .. tostring(method), 2)
    end
    local target = opts.target
    if target == nil then
      target = lm.nn.evaluating(model, function()
        return lm.no_grad(function() return model(xs:narrow(1, T, 1)):argmax(2):item() end)
      end)
    end
    local inputs = xs:index_select(lm.tensor(at, 'int32'))
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.target, o.at, o.count, o.figure, o.recorder, o.vae, o.est = target, nil, nil, nil, nil, nil, nil
    o.method, o.shape, o.title = nil, nil, nil -- path's own: the method is called by name, the rest is the figure's
    local class = explain[method](model, inputs, o)
    local err
    if opts.recorder and opts.vae and opts.est then
      -- the class attributions' settings (baseline, rule, steps, seed, sigma,
      -- samples, batch size), with the map method of the same name
      local eo = {}
      for k, v in pairs(o) do eo[k] = v end
      eo.target, eo.method = nil, method == "saliency" and "gradient" or method
      err = explain.log_error(opts.recorder, opts.vae, opts.est, inputs, eo)
    end
    if opts.figure then
      -- the class row's label: one class, or the classes of the steps
      local shown, list = target, lm.is_tensor(target) and target:view(-1):totable() or target
      if type(list) == "table" then
        shown = table.concat(list, ", ", 1, math.min(#list, 6)) .. (#list > 6 and ", ..." or "")
      end
      local titles = {}
      for i, s in ipairs(at) do titles[i] = "step " .. s end
      explain.figure(opts.figure, inputs, err and {class, err} or {class}, {titles = titles, shape = opts.shape,
        labels = err and {"class " .. shown, "log10 e_hat"} or {"class " .. shown},
        title = opts.title or "Attributions along the path"})
    end
    return {at = at, inputs = inputs, class = class, error = err, target = target}
  end
end
