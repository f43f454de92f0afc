-- lm.models: a small vision transformer.
-- Called by lua/lumen/models.lua with the models table, to which it adds its constructors.
return function(models) -- luacheck: no unused args
end
