-- curl.loop.poller: curl.loop on the built-in epoll curl.Poller, for scripts
-- that have no event loop of their own.
--   local loop = require("curl.loop.poller").new([multi])
local curl = require "curl"
local Loop = require "curl.loop"

local B = {}
B.__index = B

function B:watch(fd, what) self.poller:Watch(fd, what) end
function B:unwatch(fd) self.poller:Unwatch(fd) end
function B:timer(ms) self.poller:SetTimer(ms) end -- fires from step(), never here
function B:now() return self.poller:Now() end

-- One turn: wait up to `ms` for sockets or libcurl's timer, then act.
function B:step(ms)
  local loop = self.loop
  for fd, mask in self.poller:Wait(ms) do
    if fd == curl.CURL_SOCKET_TIMEOUT then loop:_timeout() else loop:_socket(fd, mask) end
  end
end

function B:close() self.poller:Close() end

local M = {}

function M.new(multi)
  local b = setmetatable({ poller = curl.Poller() }, B)
  local loop = Loop.new(b, multi)
  b.loop = loop
  return loop
end

return M
