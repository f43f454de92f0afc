-- The whole map (study.run: recording, autoencoder, estimator, scores,
-- figures) on the GPU against the same study on the CPU: one seed, the same
-- data and network, so the numbers it reports must agree. The map's models
-- train for a few epochs with different summation orders on the two
-- devices (reductions, cuBLAS), so the latents part by float rounding only
-- (measured on the CUDA emulator: metrics equal to 1e-3); kNN accuracy and
-- AUROC move in steps of one sample, so they are held to two samples'
-- worth, and a mislaid label, a wrong device copy or a map left on the CPU
-- moves them by far more. Skips without a GPU (LUMEN_GPU_DRY_RUN=1: a
-- smoke run with 'cpu' standing in).
local lm = require 'lumen'
local I = lm.introspect

local DEV = dofile("tests/helpers/gpu_device.lua")("study_spec", skip)

describe("gpu study", function()
  it("maps a network on the device as on the CPU", function()
    local study = require 'lumen.introspect.study'
    local n = 240
    local function run(device)
      lm.manual_seed(5)
      -- three classes apart in input space, so the map has something to show
      local labels, centres = {}, lm.randn(3, 16)
      for i = 1, n do labels[i] = (i - 1) % 3 + 1 end
      local y = lm.tensor(labels, 'int32')
      local x = centres:index_select(y) + lm.randn(n, 16) * 2
      local set = {x = x, y = y}
      local net = lm.models.net1{inputs = 16, hidden = 8, layers = 2, classes = 3}
      local opt = lm.optim.Adam(net:parameters(), {lr = 1e-2})
      for _ = 1, 15 do -- a classifier that is right often, not always (AUROC needs both)
        opt:zero_grad()
        lm.nn.functional.cross_entropy(net(x), y):backward()
        opt:step()
      end
      net:evaluate()
      net:to(device)
      local out = os.tmpname()
      os.remove(out)
      local saved = _G.print
      _G.print = function() end -- the stages' progress lines
      local ok, metrics = pcall(study.run, {name = "tiny", data = {name = "blobs", classes = {"a", "b", "c"}},
        train = set, test = lm.data.head(set, 80), net = net, recorder = I.Recorder(net), out = out,
        ae_epochs = 2, est_epochs = 2, seed = 1, record_to = "memory", device = device})
      _G.print = saved
      os.execute("rm -rf '" .. out .. "'")
      assert(ok, metrics)
      return metrics
    end
    local cpu, gpu = run("cpu"), run(DEV)
    eq(gpu.device, DEV, "the map was trained on the device")
    local stepped = {"classifier_test_accuracy", "latent_knn10_accuracy", "auroc_correct", "auroc_correct_baseline"}
    for _, k in ipairs(stepped) do
      truthy(type(cpu[k]) == "number" and type(gpu[k]) == "number", k .. " reported")
      truthy(math.abs(gpu[k] - cpu[k]) <= 2 / 80 + 1e-9,
        string.format("%s: %.4f on the device, %.4f on the CPU", k, gpu[k], cpu[k]))
    end
    truthy(math.abs(gpu.estimator_mse_log10 - cpu.estimator_mse_log10) <= 0.05,
      string.format("estimator_mse_log10: %.4f on the device, %.4f on the CPU", gpu.estimator_mse_log10,
        cpu.estimator_mse_log10))
    truthy(cpu.latent_knn10_accuracy > 0.45,
      "the map separates the classes better than chance (kNN-10 " .. cpu.latent_knn10_accuracy .. ")")
  end)
end)
