-- lm.cuda.graph: a captured step replayed gives the uncaptured steps'
-- numbers (the same kernels on the same memory in the same order, with the
-- random stream and the optimisers' settings going on as they would), and
-- what a capture cannot hold is refused with an error naming it. Needs a
-- GPU or the CUDA emulator (cmake -DLUMEN_CUDA=EMULATED); the CPU cannot
-- stand in (LUMEN_GPU_DRY_RUN=1 skips it).
local lm = require 'lumen'
local F = lm.nn.functional
local I = lm.introspect

if os.getenv("LUMEN_GPU_DRY_RUN") == "1" then skip("CUDA graphs need a GPU or the CUDA emulator") end
if not lm.cuda.available() then skip("no GPU: " .. lm.cuda.status()) end

-- six steps of a Net1 with dropout and Adam under a changing rate, the
-- first uncaptured; with `captured`, steps 2-6 are replays of one graph
local function train(captured)
  lm.manual_seed(3)
  local net = lm.models.net1{inputs = 20, hidden = 16, layers = 2, classes = 3}:to('cuda')
  net:train()
  local opt = lm.optim.Adam(net:parameters(), {lr = 1e-2})
  local x, y = lm.zeros(8, 20, 'cuda'), lm.zeros(8, 3, 'cuda')
  local function step()
    opt:zero_grad()
    local l = F.mse(net(x), y)
    l:backward()
    opt:step()
    return l
  end
  local losses, g, graph_loss = {}, nil, nil
  for i = 1, 6 do
    x:copy_(lm.randn(8, 20))
    y:copy_(lm.data.one_hot(lm.tensor({1, 2, 3, 1, 2, 3, 1, i % 3 + 1}, 'int32'), 3):float())
    opt:set_lr(1e-2 / i)
    if captured and i > 1 then
      if not g then g, graph_loss = lm.cuda.graph(step) end
      g:replay()
      losses[i] = graph_loss:item()
    else
      losses[i] = step():item()
    end
  end
  return losses, net, opt
end

-- a replayed number or tensor against its uncaptured twin, to 1e-5
-- relative (the same kernels in the same order: bit for bit on the
-- emulator, while a GPU's cuBLAS may choose another algorithm in a capture)
local function near(got, want, what)
  truthy(math.abs(got - want) <= 1e-5 * math.abs(want),
    string.format("%s: %.7g replayed, %.7g uncaptured", what, got, want))
end
local function near_tensor(got, want, what)
  local ref = want:to('cpu')
  local e = (got:to('cpu') - ref):abs():max():item()
  truthy(e <= 1e-5 * ref:abs():max():item(), string.format("%s: differs by %.3g", what, e))
end

describe("lm.cuda.graph", function()
  it("replays training steps as they run uncaptured: dropout, Adam, a changing rate", function()
    local eager, eager_net, eager_opt = train(false)
    local replayed, net, opt = train(true)
    for i = 1, 6 do near(replayed[i], eager[i], "step " .. i .. "'s loss") end
    truthy(replayed[6] ~= replayed[5], "each replay computes anew")
    for k, p in ipairs(net:parameters()) do
      near_tensor(p, eager_net:parameters()[k], "parameter " .. k .. " after six steps")
    end
    eq(opt.settings.param_steps[1], eager_opt.settings.param_steps[1], "step counts (capture runs nothing)")
    local _, offset = lm.rng_state()
    train(false)
    eq(offset, select(2, lm.rng_state()), "the random stream goes on as uncaptured")
  end)

  it("draws new random numbers at every replay, the stream's next", function()
    local x = lm.ones(64, 'cuda')
    lm.manual_seed(9)
    local first = F.dropout(x, 0.5, true):to('cpu')
    local second = F.dropout(x, 0.5, true):to('cpu')
    lm.manual_seed(9)
    local g, y = lm.cuda.graph(function() return F.dropout(x, 0.5, true) end)
    g:replay()
    eq((y:to('cpu') - first):abs():max():item(), 0, "first replay: the first uncaptured draw")
    g:replay()
    eq((y:to('cpu') - second):abs():max():item(), 0, "second replay: the second draw")
    truthy((first - second):abs():max():item() > 0, "the draws differ")
  end)

  it("keeps its memory apart from what runs after the capture", function()
    local x = lm.randn(32, 16):to('cuda')
    local g, y = lm.cuda.graph(function() return (x * 2 + 1):exp() end)
    collectgarbage()
    local others = {}
    for i = 1, 20 do others[i] = lm.full({32, 16}, i, 'float32', 'cuda') end
    g:replay()
    local ref = (x:to('cpu') * 2 + 1):exp()
    truthy((y:to('cpu') - ref):abs():max():item() <= 1e-6 * ref:abs():max():item(), "the graph's output")
    for i = 1, 20 do eq(others[i]:to('cpu'):min():item(), i, "tensor " .. i .. " untouched by the replay") end
    g:free()
    eq(tostring(g.handle), "[CUDA graph, freed]")
    raises(function() g:replay() end, "this CUDA graph was freed")
  end)

  it("refuses host reads, uploads and reseeding while capturing, and leaves no capture behind", function()
    local x = lm.randn(4):to('cuda')
    raises(function() lm.cuda.graph(function() return (x * 2):sum():item() end) end,
      "read by the host inside a CUDA graph capture")
    eq(lm.cuda.capturing(), false)
    raises(function() lm.cuda.graph(function() return x + lm.tensor({1, 2, 3, 4}):to('cuda') end) end,
      "host data sent to the GPU inside a CUDA graph capture")
    raises(function() lm.cuda.graph(function() lm.manual_seed(1) return F.dropout(x, 0.5, true) end) end,
      "reseeded during it")
    raises(function() lm.cuda.graph(function() error("mine") end) end, "mine")
    raises(function() lm.cuda.graph(42) end, "expected the function to capture, got number")
    -- a schedule stepped inside would stay at its first rate in every replay
    local w = lm.randn(4):to('cuda'):requires_grad(true)
    local opt = lm.optim.SGD({w}, {lr = 0.1})
    local clr = lm.optim.CyclicLR(opt, {min = 0, max = 0.1, period = 4})
    raises(function() lm.cuda.graph(function() (w * x):sum():backward() opt:step() clr:step() end) end,
      "CyclicLR: step the schedule outside the function a CUDA graph captures")
    eq(lm.cuda.capturing(), false)
    eq((x * 2):to('cpu'):totable()[1], x:to('cpu'):totable()[1] * 2, "eager work goes on")
  end)

  it("lm.train{graph = true} trains as without: a schedule, validation between epochs", function()
    local function run(graph)
      lm.manual_seed(3)
      local x = lm.rand(300, 20)
      local y = (x:narrow(2, 1, 1):gt(0.5):int() + 1):view(300)
      local net = lm.models.net1{inputs = 20, hidden = 16, layers = 2, classes = 2}:to('cuda')
      local opt = lm.optim.Adam(net:parameters(), {lr = 1e-2})
      local clr = lm.optim.CyclicLR(opt, {min = 1e-3, max = 1e-2, period = 10})
      local history = lm.train{model = net, optimizer = opt, schedule = clr, train = {x = x, y = y},
        val = {x = x, y = y}, epochs = 3, batch_size = 32, quiet = true, graph = graph, read_every = 4}
      return history, net
    end
    local plain, plain_net = run(false)
    local replayed, net = run(true)
    for i = 1, 3 do
      for _, k in ipairs{"train_loss", "val_loss", "train_accuracy", "val_accuracy"} do
        near(replayed[i][k], plain[i][k], string.format("epoch %d %s", i, k))
      end
    end
    near_tensor(net[1].weight, plain_net[1].weight, "the first layer's weights")
  end)

  it("the map's fits with graph = true: the autoencoder (prior draws) and the cyclic estimator as without", function()
    local function run(graph)
      lm.manual_seed(3)
      local H = lm.randn(300, 24)
      local vae = I.InfoVAE{inputs = 24, hidden = 16, depth = 2, latent = 2, mmd_weight = 10}:to('cuda')
      local ae = I.fit_autoencoder(vae, H, {epochs = 3, batch_size = 32, seed = 1, graph = graph})
      local Z, T = vae:encode_all(H:to('cuda')), lm.randn(300)
      local est = I.Estimator{hidden = 16, depth = 2}:to('cuda')
      local fit = I.fit_estimator(est, Z, T, {batch_size = 32, seed = 1, graph = graph,
        cyclic = {max = 1e-2, period = 5, cycles = 3, validate = function()
          return F.mse(I.estimate(est, Z):view(-1, 1), T:view(-1, 1):to('cuda')):item()
        end}})
      return ae, fit, est[1].weight:to('cpu')
    end
    local ae, fit, w = run(false)
    local g_ae, g_fit, g_w = run(true)
    for i = 1, 3 do near(g_ae[i].loss, ae[i].loss, "autoencoder epoch " .. i) end
    eq(#g_fit.cycles, #fit.cycles, "estimator cycles")
    for i = 1, #fit.cycles do near(g_fit.cycles[i].val_loss, fit.cycles[i].val_loss, "estimator cycle " .. i) end
    near_tensor(g_w, w, "the estimator's first layer")
  end)

  it("lm.train{graph = true} stops at a NaN naming its iteration, counting the step it applied", function()
    local function run(graph)
      lm.manual_seed(5)
      local x = lm.rand(320, 20)
      x[200][3] = 0 / 0 -- one bad sample: the batch that holds it gives a NaN loss
      local y = (x:narrow(2, 1, 1):gt(0.5):int() + 1):view(320)
      local net = lm.models.net1{inputs = 20, hidden = 16, layers = 2, classes = 2}:to('cuda')
      local ok, err = pcall(lm.train, {model = net, optimizer = lm.optim.Adam(net:parameters(), {lr = 1e-2}),
        train = {x = x, y = y}, epochs = 2, batch_size = 32, quiet = true, graph = graph, read_every = 4})
      eq(ok, false, "stopped")
      local at, more = tostring(err):match("the loss became nan at iteration (%d+).-took (%d+) more step")
      truthy(at, "the error names the iteration: " .. tostring(err))
      return tonumber(at), tonumber(more)
    end
    local at, more = run(false)
    local g_at, g_more = run(true)
    eq(g_at, at, "the same iteration")
    eq(g_more, more + 1, "a replay applies the step whose loss it read afterwards")
  end)

  it("keeps a live graph's blocks when they are freed during another's capture", function()
    local x = lm.randn(64, 16):to('cuda')
    -- a's output, dropped: its block goes back while b is captured, and a's
    -- replays still write it
    local a = lm.cuda.graph(function() return x * 3 end)
    local spare = lm.cuda.graph(function() return x - 1 end)
    local b = lm.cuda.graph(function()
      collectgarbage()
      collectgarbage()
      spare:free() -- destroyed after the capture: cudaFree would break it
      return x + 1
    end)
    eq(tostring(spare.handle), "[CUDA graph, freed]")
    b:free()
    collectgarbage() -- b's output too: b's blocks all go back to the cache
    local others = {}
    for i = 1, 8 do others[i] = lm.full({64, 16}, i, 'float32', 'cuda') end
    a:replay()
    for i = 1, 8 do eq(others[i]:to('cpu'):min():item(), i, "tensor " .. i .. " untouched by a's replay") end
    a:free()
    -- emptying the cache leaves a live graph's free blocks, and their count
    local c = lm.cuda.graph(function() return ((x * 2 + 1) * 3):exp() end) -- temporaries: free in its pool
    collectgarbage()
    lm.cuda.empty_cache()
    c:free()
    local again = {}
    for i = 1, 6 do again[i] = x * i end
    eq(#again, 6)
    truthy(lm.cuda.memory_stats().cached_bytes >= 0,
      "cached bytes after the graph's blocks were reused: " .. lm.cuda.memory_stats().cached_bytes)
  end)

  it("refuses a capture inside a capture without moving the random stream", function()
    local x = lm.ones(16, 'cuda')
    lm.manual_seed(2)
    local _, before = lm.rng_state()
    local inner
    local g, y = lm.cuda.graph(function()
      local drawn = F.dropout(x, 0.5, true)
      inner = select(2, pcall(lm.cuda.graph, function() end)) -- after a draw: the stream has moved
      return drawn
    end)
    truthy(tostring(inner):find("already being captured", 1, true), "the inner capture refused: " .. tostring(inner))
    eq(select(2, lm.rng_state()), before, "capture draws nothing")
    g:replay()
    lm.manual_seed(2)
    eq((y:to('cpu') - F.dropout(x, 0.5, true):to('cpu')):abs():max():item(), 0, "the replay drew the stream's first")
  end)

  -- a Linear layer's training step under an optimiser, run once uncaptured
  local function linear_step(make_optimizer)
    lm.manual_seed(4)
    local lin = lm.nn.Linear(4, 2):to('cuda')
    local opt = make_optimizer(lin:parameters())
    local x = lm.randn(3, 4):to('cuda')
    local function step()
      opt:zero_grad()
      lin(x):sum():backward()
      opt:step()
    end
    step()
    return opt, step
  end

  it("an optimiser's loaded state reaches a live graph", function()
    local opt, step = linear_step(function(p) return lm.optim.Adam(p, {lr = 0.1}) end)
    local saved = opt:state_dict()
    for k, t in pairs(saved.tensors) do saved.tensors[k] = t:clone() end -- (state_dict gives the live tensors)
    local g = lm.cuda.graph(step)
    g:replay()
    g:replay()
    local moment = opt.state[1][1]
    truthy((moment:to('cpu') - saved.tensors["state.1.1"]:to('cpu')):abs():max():item() > 0, "the replays moved it")
    opt:load_state_dict(saved)
    eq(opt.state[1][1], moment, "the same state tensor, its values replaced")
    eq((moment:to('cpu') - saved.tensors["state.1.1"]:to('cpu')):abs():max():item(), 0, "the loaded values")
  end)

  it("captures torch's pooling modes (count_include_pad = false, ceil_mode): no host data per call", function()
    local x = lm.zeros(2, 3, 9, 10, 'cuda'):requires_grad(true)
    local function step()
      x.grad = nil
      local a = F.avg_pool2d(x, 3, {stride = 1, padding = 1, count_include_pad = false})
      local b = F.avg_pool2d(x, {3, 2}, {stride = 2, padding = 1, ceil_mode = true, count_include_pad = false})
      local c = F.max_pool2d(x, 3, {stride = 2, ceil_mode = true})
      local l = (a * a):sum() + (b * b):sum() + (c * c):sum()
      l:backward()
      return l
    end
    lm.no_grad(function() x:copy_(lm.randn(2, 3, 9, 10)) end)
    step() -- the warm-up run the graph docs ask for
    local g, loss = lm.cuda.graph(step)
    local captured_grad = x.grad
    for i = 1, 2 do
      lm.manual_seed(i)
      local fresh = lm.randn(2, 3, 9, 10)
      lm.no_grad(function() x:copy_(fresh) end)
      g:replay()
      local want = step()
      near(loss:item(), want:item(), "replay " .. i .. "'s loss")
      near_tensor(captured_grad, x.grad, "replay " .. i .. "'s input gradient")
    end
  end)

  it("keeps the index tables a captured interpolation reads while the cache drops the others", function()
    local before = F._resample_cache_limit(4096) -- a few tables' worth: the flood below overflows it
    local ok, err = pcall(function()
      local x = lm.zeros(2, 3, 7, 6, 'cuda'):requires_grad(true)
      local function step()
        x.grad = nil
        local y = F.interpolate(x, {size = {13, 11}, mode = 'bilinear'})
        local z = F.pad(x, {2, 1, 1, 3}, {mode = 'reflect'})
        local l = (y * y):sum() + (z * z):sum()
        l:backward()
        return l
      end
      lm.no_grad(function() x:copy_(lm.randn(2, 3, 7, 6)) end)
      step() -- the warm-up run builds the tables
      local g, loss = lm.cuda.graph(step)
      local captured_grad = x.grad
      -- tables of other sizes, more than the budget: the cache drops what it may, the
      -- collector frees it, and later tables would take its memory
      for round = 1, 2 do
        for n = 4, 40 do
          F.interpolate(lm.zeros(1, 1, n, n, 'cuda'), {size = {n + round, n + 3}, mode = 'bilinear'})
          F.pad(lm.zeros(1, 1, n, n, 'cuda'), {n - 1, 1, 2, n - 2}, {mode = 'reflect'})
        end
        collectgarbage()
        collectgarbage()
      end
      for i = 1, 2 do
        lm.manual_seed(i)
        lm.no_grad(function() x:copy_(lm.randn(2, 3, 7, 6)) end)
        g:replay()
        local want = step()
        near(loss:item(), want:item(), "replay " .. i .. "'s loss")
        near_tensor(captured_grad, x.grad, "replay " .. i .. "'s input gradient")
      end
    end)
    F._resample_cache_limit(before)
    if not ok then error(err, 0) end
  end)

  it("says so when a replay's optimiser steps differ from the captured ones", function()
    local opt, step = linear_step(function(p) return lm.optim.SGD(p, {lr = 0.1}) end)
    local g = lm.cuda.graph(step)
    g:replay()
    opt:zero_grad() -- no gradients now: the host's step would skip every parameter
    raises(function() g:replay() end, "captured with 1 optimiser launches and its replay gave 0")
  end)
end)
