-- The OpenBLAS kernel choice (core/lm_blas_kernel.h): where OpenBLAS settles
-- for generic kernels on a processor with AVX2 or AVX-512 and the user set
-- no OPENBLAS_CORETYPE, the host starts again with the matching set, checks
-- it against a plain loop and falls back when it disagrees; a variable the
-- user set is always respected. The generic detection is faked
-- (LUMEN_BLAS_FAKE_CORE), as is a wrong kernel (LUMEN_BLAS_FAKE_WRONG).
local build = os.getenv("LUMEN_BUILD_DIR") or "build"
local lumen = build .. "/lumen"

local function run(env, code)
  local p = io.popen(string.format("env -u OPENBLAS_CORETYPE -u LUMEN_BLAS_KERNEL -u LUMEN_BLAS_DETECTED "
    .. "%s %s -e '%s' 2>&1", env, lumen, code))
  local out = p:read("a")
  p:close()
  return out
end

local info = "local b = lm.blas_info(); print(b.kernel .. \"|\" .. b.choice .. \"|\" .. tostring(b.better))"

describe("OpenBLAS kernels", function()
  local features = run("", "local b = lm.blas_info(); print(b.avx512, b.avx2)")
  local avx512, avx2 = features:match("^(%a+)%s+(%a+)")
  local want = avx512 == "true" and "SkylakeX" or avx2 == "true" and "Haswell" or nil

  it("keeps what OpenBLAS detects when it is not generic", function()
    local out = run("", info)
    truthy(out:find("|detected by OpenBLAS|nil", 1, true), out)
  end)

  it("respects OPENBLAS_CORETYPE, even a generic one", function()
    local out = run("OPENBLAS_CORETYPE=Prescott", info)
    truthy(out:find("^Prescott|set by OPENBLAS_CORETYPE|"), out)
    eq(out:find("lumen: OpenBLAS runs", 1, true), nil, "no advice to a user who chose")
  end)

  it("starts again with the matching set when OpenBLAS settles for a generic one", function()
    if not want then skip("this processor has neither AVX2 nor AVX-512") end
    local out = run("LUMEN_BLAS_FAKE_CORE=Prescott", info)
    truthy(out:find(want .. "|chosen by Lumen (OpenBLAS detected Prescott)|nil", 1, true), out)
    local version = run("LUMEN_BLAS_FAKE_CORE=Prescott", "") .. io.popen(
      "env -u OPENBLAS_CORETYPE LUMEN_BLAS_FAKE_CORE=Prescott " .. lumen .. " -v"):read("a")
    truthy(version:find("OpenBLAS kernels: " .. want .. " (chosen by Lumen", 1, true), version)
  end)

  it("falls back to OpenBLAS's own choice when the chosen kernels get a product wrong", function()
    if not want then skip("this processor has neither AVX2 nor AVX-512") end
    local out = run("LUMEN_BLAS_FAKE_CORE=Prescott LUMEN_BLAS_FAKE_WRONG=1", info)
    truthy(out:find("kernels give wrong products on this processor", 1, true), out)
    truthy(out:find(want .. " failed its check: fell back", 1, true), out)
    eq(out:find("^" .. want .. "|"), nil, "the chosen set is not kept")
  end)

  it("leaves a child's own OPENBLAS_CORETYPE alone though it inherited Lumen's marker", function()
    -- a script started by a restarted lumen inherits LUMEN_BLAS_KERNEL; the variable the child's user set wins
    local out = run("LUMEN_BLAS_KERNEL=SkylakeX OPENBLAS_CORETYPE=Sandybridge", info)
    truthy(out:find("^Sandybridge|set by OPENBLAS_CORETYPE|"), out)
    out = run("LUMEN_BLAS_KERNEL=SkylakeX LUMEN_BLAS_FAKE_WRONG=1 OPENBLAS_CORETYPE=Sandybridge", info)
    truthy(out:find("^Sandybridge|set by OPENBLAS_CORETYPE|"), out)
    eq(out:find("wrong products", 1, true), nil, out)
  end)

  it("does not restart when started through the dynamic loader, and says so", function()
    if not want then skip("this processor has neither AVX2 nor AVX-512") end
    local loader = io.open("/lib64/ld-linux-x86-64.so.2") and "/lib64/ld-linux-x86-64.so.2"
    if not loader then skip("no /lib64/ld-linux-x86-64.so.2 here") end
    local p = io.popen("env -u OPENBLAS_CORETYPE -u LUMEN_BLAS_KERNEL LUMEN_BLAS_FAKE_CORE=Prescott " .. loader
      .. " " .. lumen .. " -e '" .. info .. "' 2>&1")
    local out = p:read("a")
    p:close()
    truthy(out:find("cannot restart under the dynamic loader", 1, true), out)
    truthy(out:find("|detected by OpenBLAS; Lumen could not restart with " .. want .. "|", 1, true), out)
  end)
end)
