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
      loop:_socket(fd, mask)
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
  if ms >= 0 then
    local loop = self.loop
    self.timer_h:start(ms, 0, function() loop:_timeout() end)
  end
end

function B:now() return self.uv.hrtime() / 1e6 end

function B:step(_)
  self.uv.run("once")
end

function B:close()
  for fd, p in pairs(self.polls) do
    self.polls[fd] = nil
    p.handle:stop()
    p.handle:close()
  end
  self.timer_h:stop()
  self.timer_h:close()
  self.uv.run("nowait") -- let the closed handles finish closing
end

local M = {}

function M.new(uv, multi)
  uv = uv or require "luv"
  local b = setmetatable({ uv = uv, polls = {}, timer_h = uv.new_timer() }, B)
  local loop = Loop.new(b, multi)
  b.loop = loop
  return loop
end

return M
