-- curl.loop.cqueues: curl.loop on a cqueues controller. One driver coroutine
-- in the controller waits for libcurl's sockets and timer; Await uses a
-- cqueues condition, so it works inside cqueues-managed coroutines.
--   local loop = require("curl.loop.cqueues").new(cq[, multi])
-- Drive it with loop:Run() (steps the controller until idle) or with your own
-- cq:loop(); with your own loop, set loop.on_error to receive callback errors.
--
-- libcurl's descriptors are polled in a private controller nested in `cq`
-- (`cq` polls only that controller's descriptor). A controller that polled
-- a descriptor which was then closed without cqueues.cancel fails every
-- later poll of every coroutine ("unable to update event disposition: Bad
-- file descriptor"), and libcurl does close sockets before telling
-- (CURL_POLL_REMOVE after the close, now and then; a multi:Close closes
-- them without telling). When that happens to the private controller, the
-- driver resets it; `cq` and its other coroutines never see it.
local curl = require "curl"
local Loop = require "curl.loop"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local B = {}
B.__index = B

-- A pollable for cqueues.poll: descriptor and "r"/"w"/"rw".
local Pollable = {}
Pollable.__index = Pollable
function Pollable:pollfd() return self.fd end
function Pollable:events() return self.ev end

local EVENTS = { [curl.CURL_POLL_IN] = "r", [curl.CURL_POLL_OUT] = "w", [curl.CURL_POLL_INOUT] = "rw" }

function B:watch(fd, what)
  local p = self.sockets[fd]
  if not p then
    p = setmetatable({ fd = fd }, Pollable)
    self.sockets[fd] = p
  end
  p.ev = EVENTS[what] or "rw"
  self.rewatch:signal()
end

function B:unwatch(fd)
  if self.sockets[fd] then
    self.sockets[fd] = nil
    self.inner:cancel(fd) -- forget pending polls on a descriptor about to close
    self.rewatch:signal()
  end
end

function B:timer(ms)
  self.deadline = ms >= 0 and (cqueues.monotime() + ms / 1000) or nil
  self.changed:signal()
end

-- Run's check: libcurl wants its timer in `ms` (multi:Timeout()) but none
-- is armed for then (the timer function was replaced behind the loop's
-- back): arm it.
function B:resync(ms)
  if not self.deadline or self.deadline > cqueues.monotime() + (ms + 1) / 1000 then self:timer(ms) end
end

function B:now() return cqueues.monotime() * 1000 end

-- cqueues.poll takes the pollables and a timeout as arguments.
local unpack = table.unpack or unpack

-- The watcher, the one coroutine of the private controller: polls
-- libcurl's descriptors and collects the ready ones in self.ready; polls
-- again when self.rewatch is signalled (watch/unwatch).
local function watcher(self)
  local rewatch = self.rewatch
  while true do
    local list = { rewatch }
    for _, p in pairs(self.sockets) do list[#list + 1] = p end
    local ready = { cqueues.poll(unpack(list)) }
    local out = self.ready
    for i = 1, #ready do
      local r = ready[i]
      if r ~= rewatch then out[#out + 1] = r end
    end
  end
end

-- Runs the watcher once (no waiting; cqueues' step of a nested controller
-- yields to the outer one first, so this is never called under a pcall:
-- Lua 5.1 cannot yield across one). When the private controller failed on
-- a descriptor closed without cqueues.cancel, that descriptor is forgotten
-- (libcurl no longer has it) and the controller reset.
function B:collect()
  local ok, _, _, _, _, fd = self.inner:step(0)
  if ok or self.closed then return end
  if fd and self.sockets[fd] then self.sockets[fd] = nil end
  local done = pcall(self.inner.reset, self.inner)
     and pcall(self.inner.wrap, self.inner, function() watcher(self) end)
  if not done then self.loop:_error(Loop.usage_error("loop:Run", "cannot restart the cqueues watcher")) end
end

-- Hands the ready sockets to libcurl, then the timer; does not yield.
local function dispatch(self)
  local loop = self.loop
  local ready = self.ready
  if ready[1] then
    self.ready = {}
    for i = 1, #ready do
      if self.closed then return end
      local r = ready[i]
      if self.sockets[r.fd] == r then
        -- cqueues tells which object is ready, not in which direction: let
        -- libcurl find out (mask 0)
        loop:_socket(r.fd, 0)
      end
    end
  end
  if not self.closed and self.deadline and cqueues.monotime() >= self.deadline then
    self.deadline = nil
    loop:_timeout()
  end
end

-- dispatch(self) under a C call (string.gsub's replacement function), so
-- that a yield from an on_done fails there, an ordinary callback error as
-- on the other backends (and on Lua 5.1), instead of suspending the driver:
-- cqueues would take the yielded values for a poll, or pass them on to the
-- caller of cq:step.
local function dispatch_unyielding(self)
  local ok, err
  string.gsub(" ", " ", function() ok, err = pcall(dispatch, self) end)
  return ok, err
end

local function drive(self)
  while not self.closed do
    self:collect()
    if self.closed then return end
    local ok, err = dispatch_unyielding(self)
    if not ok then self.loop:_error(err) end
    if self.closed then return end
    local timeout
    if self.deadline then timeout = math.max(0, self.deadline - cqueues.monotime()) end
    -- the private controller is pollable: ready when a socket is, or when
    -- the watcher has to poll again
    cqueues.poll(self.inner, self.changed, timeout)
  end
end

function B:step(ms)
  local ok, err = self.cq:step(ms and ms / 1000 or nil)
  if not ok then error(err, 0) end
end

-- Tasks of the controller besides our driver.
function B:pending() return self.cq:count() > 1 end

-- cq:step from inside cq is refused by cqueues ("cannot step live cqueue").
function B:nested()
  if cqueues.running() == self.cq then
    return "called from inside a coroutine of the cqueues controller it steps"
  end
end

-- The multi was closed behind the loop's back: its sockets are closed
-- (without CURL_POLL_REMOVE), forget them.
function B:forget()
  self.sockets = {}
  self.ready = {}
  self.deadline = nil
  self.inner:reset()
  self.rewatch:signal()
  self.changed:signal()
end

function B:await(loop, easy, opts)
  local co, main = coroutine.running()
  if co == nil or main then
    error(Loop.usage_error("loop:Await", "must be called from inside a coroutine of the cqueues controller"), 3)
  end
  local done = condition.new()
  local result, err
  local o = {}
  for k, v in pairs(type(opts) == "function" and { on_done = opts } or opts or {}) do o[k] = v end
  local user_done = o.on_done
  o.on_done = function(e, code, er)
    if user_done then
      local ok, e2 = pcall(user_done, e, code, er)
      if not ok then loop:_error(e2) end
    end
    result, err = code, er
    done:signal()
  end
  loop:Add(easy, o)
  while result == nil do done:wait() end
  if result == curl.CURLE_OK then return true, easy end
  return false, err
end

-- (The driver closes the private controller when it ends: it may be
-- suspended inside that controller's step now.)
function B:close()
  self.closed = true
  self.sockets = {}
  self.changed:signal()
end

local M = {}

function M.new(cq, multi)
  cq = cq or cqueues.new()
  local b = setmetatable({ cq = cq, sockets = {}, ready = {}, inner = cqueues.new(),
                           changed = condition.new(), rewatch = condition.new() }, B)
  local loop = Loop.new(b, multi)
  b.loop = loop
  b.inner:wrap(function() watcher(b) end)
  cq:wrap(function()
    drive(b)
    pcall(b.inner.close, b.inner)
  end)
  return loop
end

return M
