-- experiments/explain_mnist.lua on generated data, over a map cached as the
-- main experiment caches it (a random Net1, an untrained InfoVAE and
-- estimator): the fixture two specs share.
--   local ok, summary, seen = dofile("tests/helpers/explain_mnist_run.lua")(inspect)
-- inspect(out_dir), if given, runs before the files are removed; its result
-- comes back as `seen`.
local lm = require 'lumen'
local I = lm.introspect

return function(inspect)
  local dir = os.tmpname()
  os.remove(dir)
  dofile("tests/helpers/fake_mnist.lua").write(dir, 100, 60)
  local from = dir .. "/from"
  lm.mkdir(from)
  lm.manual_seed(5)
  local net = lm.models.net1()
  net:save(from .. "/classifier.safetensors")
  local rec = I.Recorder(net)
  local vae = I.InfoVAE{inputs = 2400}
  vae:fit_standardization(rec:record(lm.data.mnist{dir = dir}.train.x))
  vae:save(from .. "/autoencoder.safetensors")
  I.Estimator():save(from .. "/estimator.safetensors")
  local chunk = assert(loadfile("experiments/explain_mnist.lua"))
  local saved_arg, print_ = _G.arg, _G.print
  _G.arg = {"--data-dir", dir, "--from", from, "--out", dir .. "/out", "--subset", "40", "--region-size", "3",
    "--error-zone", "4", "--steps", "8", "--per-class", "1"}
  _G.print = function() end
  local ok, summary = pcall(chunk)
  _G.arg, _G.print = saved_arg, print_
  local seen = ok and inspect and inspect(dir .. "/out") or nil
  os.execute("rm -rf '" .. dir .. "'")
  return ok, summary, seen
end
