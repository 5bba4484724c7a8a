-- curl.loop.luv: curl.loop on luv (libuv, or Neovim's vim.loop). The
-- multi's socket and timer function is a curl.Poller, so libcurl's socket
-- and timer callbacks run in Rust; luv watches one descriptor for the whole
-- multi (the Poller's epoll descriptor, readable while any transfer's
-- socket has events) with one uv poll handle, plus one uv timer for
-- libcurl's timeouts. When either fires, poller:Dispatch(multi, 0) makes the
-- SocketAction calls in Rust. Both handles are stopped while no transfer
-- runs, so the application's uv.run() returns when the transfers are done.
--   local loop = require("curl.loop.luv").new(uv[, multi][, opts])
-- Drive it with loop:Run() (until idle) or with your own uv.run(); with your
-- own uv.run, set loop.on_error to receive callback errors.
local curl = require "curl"
curl._no_jit() -- LuaJIT #1000 (see curl.lua)
local Loop = require "curl.loop"

local B = {}
B.__index = B

-- Unused: the Poller is the multi's socket and timer function.
function B:watch() end
function B:unwatch() end
function B:timer() end

-- After a libcurl call: the uv timer follows libcurl's (`ms`, -1: none),
-- the poll handle runs while transfers do. With no transfer both stop (a
-- timer left from a replaced timer function would keep uv.run going).
function B:sync(running, ms)
  if self.closed or self.lost_handles then return end
  -- (a script that closes every uv handle, uv.walk's shutdown idiom, closes
  -- ours too: libuv asserts on a start or stop of a closing poll handle)
  if self.poll_h:is_closing() then
    self.lost_handles = true
    return
  end
  if ms < 0 or running <= 0 then
    if self.armed then
      self.timer_h:stop()
      self.armed = false
    end
  else
    self.timer_h:start(ms, 0, self.on_timer)
    self.armed = true
  end
  if running > 0 then
    if not self.polling then
      self.poll_h:start("r", self.on_ready)
      self.polling = true
    end
  elseif self.polling then
    self.poll_h:stop()
    self.polling = false
  end
end

-- After loop:Add (AddHandle set libcurl's timer): from an on_done inside
-- a turn, the turn syncs when it ends.
function B:added()
  self.dirty = true
  if not self.acting then self:sync(1, self.poller:Timeout()) end
end

-- Run's check (multi:Timeout() says libcurl wants its timer in `ms`): the
-- Poller is the timer function, so they agree unless the timer function
-- was replaced behind the loop's back.
function B:resync(ms)
  if self.poller:Timeout() < 0 then self.poller:SetTimer(ms) end
  self:sync(self.loop.active, self.poller:Timeout())
end

function B:now() return self.uv.hrtime() / 1e6 end

-- loop:After: a uv timer of its own (it keeps uv.run going until it fires).
-- A timer that fired or was cancelled is stopped and kept for the next
-- After, not closed: luv (1.44) crashes at exit on a handle closed with
-- no uv.run after it, so handles are closed only by loop:Close, which
-- runs the loop once more.
function B:after(ms, fire)
  -- (at least 1 ms: libuv runs a 0 ms timer started from a timer callback
  -- in the same pass, so a chain of After(0) never let uv.run return)
  if ms < 1 then ms = 1 end
  local spare = self.spare
  local t = spare[#spare]
  if t then
    spare[#spare] = nil
  else
    t = self.uv.new_timer()
    self.timers[t] = true
  end
  local live = true
  local function done()
    if not live then return false end
    live = false
    if not self.closed then
      t:stop()
      spare[#spare + 1] = t
    end
    return true
  end
  -- (`ms` from now: libuv counts from the loop's cached time, which is as
  -- old as the last uv.run, seconds ago after blocking work)
  if self.uv.update_time then self.uv.update_time() end
  t:start(ms, 0, function()
    if done() then pcall(fire) end -- never raises; the pcall keeps luv safe all the same
  end)
  return function() done() end
end

-- uv.run inside a uv callback is not supported by libuv.
function B:nested()
  if self.uv.loop_mode and self.uv.loop_mode() then
    return "called while the uv loop runs (from a uv callback)"
  end
end

local function wake() end

function B:step(ms)
  -- at most `ms`: with nothing to wait for (say a paused transfer) uv.run
  -- returns at once, and with only the Poller's descriptor to watch (libcurl
  -- has no timer: a server that never answers) it would wait for that alone,
  -- past Run's deadline
  local guard = not self.closed and ms > 0
  if guard then self.guard_h:start(ms, 0, wake) end
  self.uv.run("once")
  if guard and not self.closed then self.guard_h:stop() end
  -- closed from a uv callback of that run: let the handles finish closing
  -- now (luv crashes at exit on handles closed and never run to the end)
  if self.close_pending then
    self.close_pending = false
    self.uv.run("nowait")
    self.uv.run("nowait")
  end
end

-- The multi was closed behind the loop's back: nothing is left to watch.
function B:forget()
  self.poller:SetTimer(-1)
  self:sync(0, -1)
end

local function close_poller(p) p:Close() end

local function close_handle(h)
  if not h:is_closing() then h:close() end
end

function B:close()
  if self.closed then return end
  self:sync(0, -1)
  self.closed = true
  -- (each only if not closing already: see sync)
  close_handle(self.poll_h)
  close_handle(self.timer_h)
  close_handle(self.guard_h)
  -- the After timers: spare ones, and those still armed (their handles
  -- are all the loop made)
  for t in pairs(self.timers) do close_handle(t) end
  -- (the Poller may be gone: its __gc called by hand; what is left of the
  -- close must run all the same)
  pcall(curl._poller_hold, self.poller, false)
  pcall(close_poller, self.poller)
  -- let the closed handles finish closing (from a uv callback uv.run does
  -- not nest: the running loop does it, or `step` when loop:Run runs it).
  -- Twice: a uv.stop() made outside uv.run stays pending, and ends the
  -- first run before it does anything (luv crashes at exit on handles
  -- left closing).
  if self.uv.loop_mode and self.uv.loop_mode() then
    self.close_pending = true
  else
    self.uv.run("nowait")
    self.uv.run("nowait")
  end
end

local M = {}

function M.new(uv, multi, opts)
  uv = uv or require "luv"
  local poller = curl.Poller()
  curl._poller_hold(poller, true) -- (closed behind luv's back, libuv aborts)
  local b = setmetatable({
    uv = uv, poller = poller, armed = false, polling = false,
    closed = false, dirty = false, acting = false, spare = {}, timers = {},
    poll_h = uv.new_poll(poller:Fd()), timer_h = uv.new_timer(), guard_h = uv.new_timer(),
  }, B)
  local loop = Loop.new(b, multi, opts)
  b.loop = loop
  local m = loop.multi
  m:SetOpt_SocketFunction(poller)
  m:SetOpt_TimerFunction(poller)
  local dispatch = poller.Dispatch
  local running, ms
  local function turn(p)
    running, ms = dispatch(p, m, 0)
  end
  -- Both uv callbacks. Errors never reach luv (it would end the process):
  -- _act gives them to Run or loop.on_error, the pcall catches the rest.
  local after_act
  local function act()
    running, ms, b.dirty, b.acting = nil, nil, false, true
    local ok, e = pcall(loop._act, loop, turn, poller)
    b.acting = false
    if not ok then pcall(loop._error, loop, e) end
    if loop.lost or loop.closed then return end
    -- (nothing here raises; an error must not reach luv all the same: it
    -- would end the process)
    ok, e = pcall(after_act)
    if not ok then pcall(loop._error, loop, e) end
  end
  after_act = function()
    -- Dispatch raised (a callback error), or an on_done added a transfer
    -- (which moved libcurl's timer): ask the poller
    if running == nil or b.dirty then ms = poller:Timeout() end
    running = (running or 0) + loop.active
    if running > 0 and ms < 0 then
      -- transfers run but the Poller has no timer: libcurl's timer function
      -- was replaced behind the loop's back; ask libcurl (as Run does), or
      -- uv.run could wait forever on a silent socket
      local ok, t = pcall(m.Timeout, m)
      if ok and t >= 0 then
        poller:SetTimer(t)
        ms = t
      end
    end
    b:sync(running, ms)
  end
  b.on_ready = act
  b.on_timer = function()
    b.armed = false
    act()
  end
  return loop
end

return M
