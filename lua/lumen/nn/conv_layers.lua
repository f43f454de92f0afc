-- lm.nn: normalisation, pooling and residual layers of modern convolutional networks.
-- Called by lua/lumen/nn/init.lua with the nn table, to which it adds its classes.
return function(nn) -- luacheck: no unused args
end
