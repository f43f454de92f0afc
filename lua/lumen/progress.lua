-- Progress reporting for long loops: a one-line bar redrawn in place on a
-- terminal (rate, ETA, running metrics), plain log lines every few seconds
-- otherwise (log files, CI).
local lm = require 'lumen'

local Progress = {}
Progress.__index = Progress

local function clock_string(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return string.format("%d:%02d", s // 60, s % 60)
end

--- A progress reporter over `total` steps labelled `title`.
--- opts.out (io.stderr), opts.tty (detected), opts.interval (seconds between
--- plain lines, 10).
function Progress.new(title, total, opts)
  opts = opts or {}
  if math.type(total) ~= "integer" or total < 0 then
    error("progress: total must be a non-negative integer (the number of steps), got " .. tostring(total), 2)
  end
  local out = opts.out or io.stderr
  local tty = opts.tty
  if tty == nil then -- a file or pipe of the caller's is never a terminal we can tell
    tty = (out == io.stdout or out == io.stderr) and lm._isatty(out == io.stdout and 1 or 2)
  end
  return setmetatable({title = title, total = total, done = 0, start = lm.clock(),
    last_print = lm.clock(), out = out, tty = tty, interval = opts.interval or 10, width = 24}, Progress)
end

function Progress:line(status)
  local elapsed = lm.clock() - self.start
  local rate = self.done / math.max(elapsed, 1e-9)
  local eta = self.done > 0 and math.max(self.total - self.done, 0) / rate or 0 / 0 -- "?" before a step
  local frac = self.total > 0 and math.min(self.done / self.total, 1) or 1
  local filled = math.floor(frac * self.width + 0.5)
  return string.format("%s [%s%s] %3d%% %d/%d %.1f it/s ETA %s %s", self.title,
    string.rep("#", filled), string.rep(".", self.width - filled), math.floor(frac * 100 + 0.5),
    self.done, self.total, rate, clock_string(eta), status or "")
end

--- Advances by n steps (default 1); status is a short string of metrics.
function Progress:update(n, status)
  self.done = self.done + (n or 1)
  local now = lm.clock()
  if self.tty then
    -- the last step is drawn at once; past the total (a loop longer than
    -- announced) the 0.1 s pace holds
    local last = self.done >= self.total and self.done - (n or 1) < self.total
    if now - self.last_print >= 0.1 or last then
      self.out:write("\r\27[K", self:line(status))
      self.out:flush()
      self.last_print = now
    end
  elseif now - self.last_print >= self.interval then
    self.out:write(self:line(status), "\n")
    self.out:flush()
    self.last_print = now
  end
end

--- Ends the bar: a newline on a terminal; in a log, the final line when the
--- work took a second or more (none with interval = math.huge, a silent
--- reporter). Returns the elapsed seconds.
function Progress:finish(status)
  if self.tty then
    self.out:write("\r\27[K", self:line(status), "\n")
    self.out:flush()
  elseif self.interval < math.huge and lm.clock() - self.start >= 1 then
    self.out:write(self:line(status), "\n")
    self.out:flush()
  end
  return lm.clock() - self.start
end

return Progress
