-- The small bundled experiments run and reach their goal.
describe("experiments", function()
  it("custom_layer.lua trains a Lua-defined layer and a custom backward", function()
    RESULT = nil
    local print_ = print
    print = function() end -- keep the spec output short
    local ok, err = pcall(dofile, "experiments/custom_layer.lua")
    print = print_
    truthy(ok, err)
    truthy(RESULT and RESULT < 1e-3, "final loss " .. tostring(RESULT))
  end)
end)
