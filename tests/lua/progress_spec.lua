-- lumen.progress: the bar on a terminal, plain lines in a log.
local Progress = require 'lumen.progress'

-- a stand-in for a file: collects what is written
local function sink()
  local s = {text = ""}
  function s:write(...) for _, v in ipairs({...}) do self.text = self.text .. v end return self end
  function s:flush() end
  return s
end

describe("Progress", function()
  it("writes plain lines, never terminal codes, to an output of the caller's", function()
    local out = sink()
    local p = Progress.new("work", 4, {out = out, interval = 0})
    p:update(1, "a")
    p:update(1, "b")
    eq(out.text:find("\27", 1, true), nil, "no escape codes")
    eq(out.text:find("\r", 1, true), nil, "no carriage returns")
    truthy(out.text:find("work %[######..................%]  25%% 1/4"), out.text)
  end)

  it("shows an unknown ETA before the first step and never more than 100 %", function()
    local out = sink()
    local p = Progress.new("work", 2, {out = out, tty = true})
    truthy(p:line():find("ETA %?"), p:line())
    p:update(5)
    truthy(p:line():find("%[########################%] 100%% 5/2"), p:line())
  end)

  it("on a terminal draws the last step at once, then keeps its pace past the total", function()
    local out = sink()
    local p = Progress.new("work", 2, {out = out, tty = true})
    p.last_print = math.huge -- as if it had just drawn: only the last step may draw now
    p:update(1)
    eq(out.text, "")
    p:update(1)
    truthy(out.text:find("2/2"), "the last step is drawn")
    local before = #out.text
    p:update(1)
    eq(#out.text, before, "past the total, no redraw within 0.1 s")
  end)

  it("ends a log with a final line when the work took a second or more", function()
    local out = sink()
    local p = Progress.new("work", 3, {out = out, interval = 10})
    p:update(2)
    eq(out.text, "")
    p.start = p.start - 2
    p:finish("done")
    truthy(out.text:find("2/3.*done\n$"), out.text)
    local quiet = sink()
    local q = Progress.new("work", 3, {out = quiet, interval = math.huge})
    q.start = q.start - 2
    q:finish()
    eq(quiet.text, "", "a silent reporter stays silent")
  end)

  it("refuses a total that is not a count", function()
    raises(function() Progress.new("work", nil) end, "progress: total must be a non-negative integer")
    raises(function() Progress.new("work", 2.5) end, "progress: total must be a non-negative integer")
  end)
end)
