-- The determinism guarantee (docs/reliability.md): the same seed, thread
-- count and device give the same results bit for bit on the CPU, also across
-- separate processes.

describe("determinism", function()
  it("two processes with one seed print the same losses to the last bit", function()
    local lumen = (os.getenv("LUMEN_BUILD_DIR") or "build") .. "/lumen"
    local script = [[
      lm.set_num_threads(%d)
      lm.manual_seed(42)
      local net = lm.models.net1{layers = 3, hidden = 64}
      local opt = lm.optim.Adam(net:parameters(), {lr = 1e-3})
      local labels = {}
      for i = 1, 256 do labels[i] = i * 7 %% 10 + 1 end
      local x, y = lm.rand(256, 784), lm.tensor(labels, "int32")
      local out = {}
      for step = 1, 15 do
        opt:zero_grad()
        local l = lm.nn.functional.mse(net(x), lm.data.one_hot(y, 10):float())
        l:backward()
        opt:step()
        out[#out + 1] = string.format("%%a", l:item())
      end
      print(table.concat(out, " "))
    ]]
    local function run(threads)
      local p = io.popen(string.format("%s -e '%s' 2>&1", lumen, script:format(threads)))
      local s = p:read("a")
      p:close()
      return s
    end
    for _, threads in ipairs{1, 2} do
      local a, b = run(threads), run(threads)
      truthy(a:find("0x", 1, true), "the child printed losses: " .. a)
      eq(a, b, threads .. " thread(s)")
    end
  end)
end)
