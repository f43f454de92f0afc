-- lm.nn: the layers of transformers (LayerNorm, GELU, attention, encoder layers).
-- Called by lua/lumen/nn/init.lua with the nn table, to which it adds its classes.
return function(nn) -- luacheck: no unused args
end
