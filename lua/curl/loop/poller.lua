-- curl.loop.poller: curl.loop on the built-in epoll curl.Poller, for scripts
-- that have no event loop of their own.
--   local loop = require("curl.loop.poller").new([multi][, opts])
local curl = require "curl"
curl._no_jit() -- LuaJIT #1000 (see curl.lua)
local Loop = require "curl.loop"

local B = {}
B.__index = B

function B:watch(fd, what) self.poller:Watch(fd, what) end
function B:unwatch(fd) self.poller:Unwatch(fd) end
function B:timer(ms) self.poller:SetTimer(ms) end -- fires from step(), never here
function B:now() return self.poller:Now() end

-- One turn: wait up to `ms` for sockets or libcurl's timer, then act; the
-- SocketAction calls run in Rust (poller:Dispatch), and the Poller is the
-- multi's socket and timer function, so no Lua runs for them.
function B:step(ms)
  local loop = self.loop
  loop:_act(self.poller.Dispatch, self.poller, loop.multi, ms)
end

-- The multi was closed behind the loop's back: its descriptors are closed
-- (stale Poller entries do no harm), the timer is of no use.
function B:forget() self.poller:SetTimer(-1) end

function B:close() self.poller:Close() end

local M = {}

function M.new(multi, opts)
  local b = setmetatable({ poller = curl.Poller() }, B)
  local loop = Loop.new(b, multi, opts)
  b.loop = loop
  loop.multi:SetOpt_SocketFunction(b.poller)
  loop.multi:SetOpt_TimerFunction(b.poller)
  return loop
end

return M
