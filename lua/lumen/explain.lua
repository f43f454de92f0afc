-- lm.explain: input attributions (why a sample lands where it does).
local explain = {}

return explain
