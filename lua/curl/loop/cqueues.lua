-- curl.loop.cqueues: curl.loop on a cqueues controller. The multi's socket
-- and timer function is a curl.Poller, which is a cqueues pollable (its
-- epoll descriptor, readable while any transfer's socket has events, and
-- libcurl's timer as its timeout): one driver coroutine in the controller
-- waits on it and calls poller:Dispatch(multi, 0), which makes the
-- SocketAction calls in Rust. Await uses a cqueues condition, so it works
-- inside cqueues-managed coroutines.
--   local loop = require("curl.loop.cqueues").new(cq[, multi][, opts])
-- Drive it with loop:Run() (steps the controller until idle) or with your own
-- cq:loop(); with your own loop, set loop.on_error to receive callback errors.
--
-- The controller polls only the Poller's descriptor, never libcurl's
-- sockets: libcurl closes sockets before telling now and then (and
-- multi:Close closes them without telling), which the kernel's epoll set
-- absorbs, where a cqueues controller would fail every later poll.
local curl = require "curl"
curl._no_jit() -- LuaJIT #1000 (see curl.lua)
local Loop = require "curl.loop"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local B = {}
B.__index = B

-- Unused: the Poller is the multi's socket and timer function.
function B:watch() end
function B:unwatch() end
function B:timer() end

-- After loop:Add (AddHandle set libcurl's timer): the driver polls again.
function B:added() self.changed:signal() end

-- Run's check (multi:Timeout() says libcurl wants its timer in `ms`): the
-- Poller is the timer function, so they agree unless the timer function
-- was replaced behind the loop's back.
function B:resync(ms)
  if self.poller:Timeout() < 0 then
    self.poller:SetTimer(ms)
    self.changed:signal()
  end
end

function B:now() return cqueues.monotime() * 1000 end

-- One turn in Rust: the ready sockets, then libcurl's timer if due; does
-- not yield.
local function dispatch(self)
  self.loop:_act(self.poller.Dispatch, self.poller, self.loop.multi, 0)
end

-- dispatch(self) under curl._enter: mlua has this coroutine as its current
-- thread for the turn, so the module's C paths serve it (the loop's drain,
-- an on_done's AddHandle) and the callbacks still run here. It is also a C
-- call, so that a yield from an on_done fails there, an ordinary callback
-- error as on the other backends (and on Lua 5.1), instead of suspending
-- the driver: cqueues would take the yielded values for a poll, or pass
-- them on to the caller of cq:step.
local function dispatch_unyielding(self)
  local ok, err
  curl._enter(function() ok, err = pcall(dispatch, self) end)
  return ok, err
end

local function drive(self)
  local poller = self.poller
  while not self.closed do
    -- libcurl's sockets or timer (the Poller's timeout), or an Add
    cqueues.poll(poller, self.changed)
    if self.closed then return end
    local ok, err = dispatch_unyielding(self)
    if not ok then self.loop:_error(err) end
  end
end

-- cqueues raises "cannot step live cqueue" when the controller is in the
-- middle of a step (a finalizer or hook that runs then and calls Run):
-- that is Run nesting, and gets its usage error. (The pcall keeps
-- cqueues' yields: loop:Run runs this under pcall already.)
function B:step(ms)
  local cq = self.cq
  local called, ok, err = pcall(cq.step, cq, ms and ms / 1000 or nil)
  if not called then
    if type(ok) == "string" and ok:find("cannot step live cqueue", 1, true) then
      error(Loop.usage_error("loop:Run", "called while its cqueues controller steps (from a " ..
        "finalizer or a hook); Run cannot nest: return to the loop instead"), 0)
    end
    error(ok, 0)
  end
  if not ok then error(err, 0) end
end

-- The loops' drivers per controller (several loops may share one).
local drivers = setmetatable({}, { __mode = "k" })

-- Tasks of the controller besides the loops' drivers.
function B:pending() return self.cq:count() > (drivers[self.cq] or 0) end

-- cq:step from inside cq is refused by cqueues ("cannot step live cqueue").
function B:nested()
  if cqueues.running() == self.cq then
    return "called from inside a coroutine of the cqueues controller it steps"
  end
end

-- The multi was closed behind the loop's back: no timer is left.
function B:forget()
  self.poller:SetTimer(-1)
  self.changed:signal()
end

-- loop:After: a task of the controller that sleeps, or wakes early to
-- end when cancelled.
function B:after(ms, fire)
  local cancelled, wake = false, condition.new()
  self.cq:wrap(function()
    cqueues.poll(wake, ms / 1000)
    -- (fire runs the script's function as loop callbacks run: no error
    -- or yield gets out of it; the pcall keeps the driver safe all the same)
    if not cancelled then pcall(fire) end
  end)
  return function()
    cancelled = true
    wake:signal()
  end
end

-- loop:Sleep in a coroutine of the controller: cqueues' own sleep.
function B:sleep(ms)
  local co, main = coroutine.running()
  if co == nil or main or cqueues.running() ~= self.cq then
    error(Loop.usage_error("loop:Sleep", "must be called from inside a coroutine of the cqueues controller"), 3)
  end
  cqueues.sleep(ms / 1000)
end

-- A cqueues condition for waiting coroutines (loop:WebSocket).
function B:condition() return condition.new() end

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

-- (The driver closes the Poller when it ends: it may be waiting on it now.)
function B:close()
  self.closed = true
  self.changed:signal()
end

local M = {}

function M.new(cq, multi, opts)
  cq = cq or cqueues.new()
  local poller = curl.Poller()
  curl._poller_hold(poller, true) -- (cqueues polls its descriptor: see below)
  local b = setmetatable({ cq = cq, poller = poller, changed = condition.new() }, B)
  local loop = Loop.new(b, multi, opts)
  b.loop = loop
  loop.multi:SetOpt_SocketFunction(poller)
  loop.multi:SetOpt_TimerFunction(poller)
  drivers[cq] = (drivers[cq] or 0) + 1
  cq:wrap(function()
    drive(b)
    drivers[cq] = drivers[cq] - 1
    -- cqueues still holds the descriptor from the last poll: a controller
    -- that updates a closed descriptor fails every later step (of every
    -- loop it hosts), so it forgets it first
    local ok, fd = pcall(poller.Fd, poller)
    if ok then pcall(cqueues.cancel, fd) end
    curl._poller_hold(poller, false)
    pcall(poller.Close, poller)
  end)
  return loop
end

return M
