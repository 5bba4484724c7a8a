-- curl.loop.luv: curl.loop on luv (libuv). One uv poll handle per socket, one
-- uv timer; libcurl is only called from uv callbacks, never from inside its
-- own timer callback (a 0 ms timeout runs on the next loop turn).
--   local loop = require("curl.loop.luv").new(uv[, multi])
-- Drive it with loop:Run() (until idle) or with your own uv.run(); with your
-- own uv.run, set loop.on_error to receive callback errors.
local curl = require "curl"
local Loop = require "curl.loop"

local B = {}
B.__index = B

local EVENTS = { [curl.CURL_POLL_IN] = "r", [curl.CURL_POLL_OUT] = "w", [curl.CURL_POLL_INOUT] = "rw" }

-- Poll handles are kept per descriptor number after CURL_POLL_REMOVE
-- (stopped, not closed) and started again when libcurl watches that number
-- again: kept-alive connections are un-watched between transfers, and
-- making and closing a uv handle each time costs more than the transfer.
function B:watch(fd, what)
  local p = self.polls[fd]
  if not p then
    local loop = self.loop
    p = { handle = self.uv.new_socket_poll(fd) }
    p.cb = function(err, events)
      local mask = err and curl.CURL_CSELECT_ERR or 0
      if events then
        if events:find("r", 1, true) then mask = mask + curl.CURL_CSELECT_IN end
        if events:find("w", 1, true) then mask = mask + curl.CURL_CSELECT_OUT end
      end
      -- never let an error escape into luv (it would end the process)
      local ok, e = pcall(loop._socket, loop, fd, mask)
      if not ok then pcall(loop._error, loop, e) end
    end
    self.polls[fd] = p
  end
  p.active = true
  p.handle:start(EVENTS[what] or "rw", p.cb)
end

function B:unwatch(fd)
  local p = self.polls[fd]
  if p and p.active then
    p.active = false
    p.handle:stop() -- at once: the socket may be closed right after
  end
end

function B:timer(ms)
  self.timer_h:stop()
  self.due = nil
  if ms >= 0 then
    self.due = self:now() + ms
    self.timer_h:start(ms, 0, self.on_timer)
  end
end

-- Run's check: libcurl wants its timer in `ms` (multi:Timeout()) but none
-- is armed for then (the timer function was replaced behind the loop's
-- back): arm it.
function B:resync(ms)
  if not self.due or self.due > self:now() + ms + 1 then self:timer(ms) end
end

function B:now() return self.uv.hrtime() / 1e6 end

-- uv.run inside a uv callback is not supported by libuv.
function B:nested()
  if self.uv.loop_mode and self.uv.loop_mode() then
    return "called while the uv loop runs (from a uv callback)"
  end
end

function B:step(ms)
  -- nothing to wait for (say a paused transfer): wait `ms` rather than
  -- spin, uv.run returns at once without active handles
  local guard = not self.closed and ms > 0 and not self.uv.loop_alive()
  if guard then self.guard_h:start(ms, 0, function() end) end
  self.uv.run("once")
  if guard and not self.closed then self.guard_h:stop() end
end

-- The multi was closed behind the loop's back: its sockets are closed
-- (without CURL_POLL_REMOVE), stop watching them.
function B:forget()
  for _, p in pairs(self.polls) do
    if p.active then
      p.active = false
      p.handle:stop()
    end
  end
  self.timer_h:stop()
  self.due = nil
end

function B:close()
  for fd, p in pairs(self.polls) do
    self.polls[fd] = nil
    p.handle:stop()
    p.handle:close()
  end
  self.timer_h:stop()
  self.timer_h:close()
  self.guard_h:close()
  self.closed = true
  -- let the closed handles finish closing (the running loop does that when
  -- this is called from a uv callback: uv.run does not nest)
  if not (self.uv.loop_mode and self.uv.loop_mode()) then self.uv.run("nowait") end
end

local M = {}

function M.new(uv, multi)
  uv = uv or require "luv"
  local b = setmetatable({ uv = uv, polls = {}, timer_h = uv.new_timer(), guard_h = uv.new_timer() }, B)
  local loop = Loop.new(b, multi)
  b.loop = loop
  b.on_timer = function()
    b.due = nil
    local ok, e = pcall(loop._timeout, loop) -- never into luv, as above
    if not ok then pcall(loop._error, loop, e) end
  end
  return loop
end

return M
