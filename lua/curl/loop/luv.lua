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

function B:watch(fd, what)
  local p = self.polls[fd]
  if not p then
    p = self.uv.new_socket_poll(fd)
    self.polls[fd] = p
  end
  local loop = self.loop
  p:start(EVENTS[what] or "rw", function(err, events)
    local mask = err and curl.CURL_CSELECT_ERR or 0
    if events then
      if events:find("r", 1, true) then mask = mask + curl.CURL_CSELECT_IN end
      if events:find("w", 1, true) then mask = mask + curl.CURL_CSELECT_OUT end
    end
    loop:_socket(fd, mask)
  end)
end

function B:unwatch(fd)
  local p = self.polls[fd]
  if p then
    self.polls[fd] = nil
    p:stop() -- stop at once: the socket may be closed right after
    p:close()
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
  for fd in pairs(self.polls) do self:unwatch(fd) end
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
