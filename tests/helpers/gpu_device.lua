-- The device a GPU spec (tests/gpu) runs on, shared by their first lines:
--   local DEV, DRY = dofile("tests/helpers/gpu_device.lua")("ops_spec", skip)
-- 'cuda', or with LUMEN_GPU_DRY_RUN=1 'cpu' standing in: a smoke run whose
-- comparisons are CPU against CPU, which checks that the spec's code runs,
-- not the GPU (ctest's gpu_specs_smoke). Skips the rest of the file,
-- saying why, when no GPU answers.
return function(name, skip) -- (skip: the spec runner gives it to each spec file)
  local lm = require 'lumen'
  local dry = os.getenv("LUMEN_GPU_DRY_RUN") == "1"
  if dry then
    print("gpu " .. name .. ": smoke run, the CPU stands in for the GPU (checks the spec's code, not the GPU)")
  elseif not lm.cuda.available() then
    skip("no GPU: " .. lm.cuda.status())
  end
  return dry and 'cpu' or 'cuda', dry
end
