-- Seed corpora for the fuzz harnesses: small valid files of each format,
-- generated (nothing is committed). lumen fuzz/make_corpus.lua DIR
local dir = arg[1] or "build-fuzz/corpus"
for _, sub in ipairs{"idx", "cifar", "safetensors", "tensor_table"} do os.execute("mkdir -p " .. dir .. "/" .. sub) end
local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
-- IDX: images 2 x 3 x 3 and labels
write(dir .. "/idx/images", "\0\0\8\3" .. string.pack(">I4>I4>I4", 2, 3, 3) .. string.rep("\7", 18))
write(dir .. "/idx/labels", "\0\0\8\1" .. string.pack(">I4", 4) .. "\1\2\3\9")
-- CIFAR: two records
write(dir .. "/cifar/batch", "\3" .. string.rep("\200", 3072) .. "\9" .. string.rep("\1", 3072))
-- safetensors from Lumen itself, with metadata-free and int32 entries
lm.save(dir .. "/safetensors/a", {w = lm.ones(2, 3), b = lm.tensor({1, 2}, 'int32')})
lm.save(dir .. "/safetensors/b", {s = lm.tensor(3)})
-- table descriptions: kind bytes as fuzz_tensor_table.c reads them
write(dir .. "/tensor_table/flat", "\0\6\3\1\2\3")
write(dir .. "/tensor_table/nested", "\1\6\2\6\2\1\2\6\2\3\4")
print("corpora in " .. dir)
