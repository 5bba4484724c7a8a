-- curl.loop: drive a curl.Multi from an event loop, with a completion
-- callback per transfer, coroutines that wait for their transfer, per-transfer
-- timeouts, cancellation and a run-until-idle.
--
--   local loop = require("curl.loop.poller").new()     -- built-in epoll Poller
--   local loop = require("curl.loop.luv").new(uv)      -- luv
--   local loop = require("curl.loop.cqueues").new(cq)  -- cqueues
--
--   loop:Add(easy, function(easy, result, err) ... end)
--   loop:Add(easy, { on_done = fn, timeout_ms = 5000 })
--   local ok, easy_or_err = loop:Await(easy[, opts])   -- inside a coroutine
--   loop:Cancel(easy)
--   loop:Run([{ seconds = n }])                         -- until idle
--   loop:After(ms, fn); loop:Sleep(ms)                  -- timers
--   loop.max_active = n / loop:SetMaxActive(n)          -- a queue beyond n
--   local ws = loop:WebSocket(url[, opts])              -- inside a coroutine
--   local response = loop:Fetch(url[, opts])            -- inside a coroutine
--   loop:Fetch(url, opts, function(response, err) ... end)
--
-- This file is the loop-independent part; a backend (curl/loop/*.lua)
-- provides watch/unwatch/timer/step and calls loop:_socket(fd, mask) and
-- loop:_timeout() (or loop:_act) from the event loop, never from inside a
-- libcurl call. Those entry points never raise: errors go to loop:_error,
-- so nothing escapes into the event loop's own machinery (luv, cqueues).
--
-- Optional backend hooks: backend:nested() -> message when Run may not
-- drive the event loop from here; backend:resync(ms) re-arms the timer
-- from multi:Timeout() when it is not armed; backend:forget() drops every
-- watch and the timer (the multi was closed behind the loop's back).
local curl = require "curl"
curl._no_jit() -- LuaJIT #1000 (see curl.lua)

local Loop = {}
Loop.__index = Loop

local unpack = table.unpack or unpack

-- A curl.Error for a CURLcode, named from the module's own code table.
local function easy_error(code, message, method)
  return curl.EasyError(code, message, method)
end
Loop.easy_error = easy_error

local function usage_error(method, message)
  return setmetatable({ kind = "usage", code = -1, name = "USAGE", message = message, method = method },
                      curl.Error)
end
Loop.usage_error = usage_error

local function bad_argument(method, n, name, expected, got)
  return usage_error(method, ("bad argument #%d '%s' (expected %s, got %s)"):format(n, name, expected, type(got)))
end

-- The curl.Error of a transfer that ended with `code`: as Perform's (name,
-- libcurl's text, the error buffer's detail), from the easy itself.
local function transfer_error(easy, code)
  local ok, e = pcall(easy.TransferError, easy, code, "transfer")
  if ok then return e end
  return easy_error(code, nil, "transfer") -- the easy was closed behind the loop's back
end
Loop.transfer_error = transfer_error

-- A max_active value: nil (no limit) or a number >= 1.
local function valid_max(n)
  return n == nil or (type(n) == "number" and n == n and n >= 1)
end

local function lost_error(method)
  return usage_error(method, "the loop's multi was closed behind its back (multi:Close); " ..
                             "its transfers ended, close the loop with loop:Close()")
end

-- An object whose finalizer calls f (a proxy on 5.1 and LuaJIT, whose
-- tables have no __gc).
local function gc_probe(f)
  local newproxy = rawget(_G, "newproxy")
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = f
    return p
  end
  return setmetatable({}, { __gc = f })
end

--- Loop.new(backend[, multi[, opts]]): usually called by a backend's `new`.
--- opts.max_active: at most that many transfers at once, the rest queued.
function Loop.new(backend, multi, opts)
  if type(multi) == "table" and opts == nil then multi, opts = nil, multi end
  opts = opts or {}
  if type(opts) ~= "table" then
    error(bad_argument("loop.new", 2, "opts", "table or nil", opts), 3)
  end
  local max = opts.max_active
  if not valid_max(max) then
    error(usage_error("loop.new", "bad option 'max_active' (expected a number >= 1 or nil)"), 3)
  end
  local self = setmetatable({
    backend = backend,
    multi = type(multi) == "userdata" and multi or curl.Multi(), -- (ignores require's 2nd value)
    transfers = {}, -- easy -> its on_done, or true
    active = 0,
    depth = 0,      -- > 0 while libcurl runs (callbacks may call us)
    inside = 0,     -- > 0 while the loop handles an event or runs an on_done
    running = false, -- loop:Run is on the stack
    deferred = {},  -- Add / Cancel asked for while depth > 0
    errors = {},    -- errors from callbacks, raised by Run
    wake = {},      -- objects whose :_wake() runs after libcurl returns (WebSockets)
    on_error = nil, -- or a function(err): then errors go there instead
    max_active = max, -- nil: no limit
    queue = {},     -- { easy, opts } waiting for a place under max_active
    queued = {},    -- easy -> its queue entry
    timers = {},    -- timer -> true, until it fires or is cancelled
    ntimers = 0,
    due = {},       -- timers the loop fires itself (backends without `after`), by time
    -- flags read on every transfer: present (false), so that reading one
    -- does not go through the metatable
    closed = false, closing = false, lost = false, held_set = false, driven = false,
  }, Loop)
  -- Transfers added to a loop that never ran, when it is collected (or
  -- the program ends): one line on stderr, as the only sign of a
  -- forgotten loop:Run(). loop.warn = false turns it off.
  self._probe = gc_probe(function()
    if self.warn ~= false and not self.driven and not self.closed and (self.active > 0 or self.queue[1]) then
      pcall(function()
        io.stderr:write(("curl.loop: %d transfer(s) were added but the loop never ran " ..
                         "(call loop:Run(), or run its event loop)\n"):format(self.active + #self.queue))
      end)
    end
  end)
  local m = self.multi
  -- the methods of every transfer, looked up once
  self._add, self._out = m.AddHandle, {}
  self._backend_added = backend.added -- (or nil)
  m:SetOpt_SocketFunction(function(_, fd, what)
    if what == curl.CURL_POLL_REMOVE then backend:unwatch(fd) else backend:watch(fd, what) end
  end)
  m:SetOpt_TimerFunction(function(ms) backend:timer(ms) end)
  return self
end

-- Whether a yield here would suspend a coroutine (Lua 5.1's pcall never
-- lets one through; LuaJIT's and 5.2+'s do).
local yieldable = coroutine.isyieldable
if not yieldable then
  if _VERSION == "Lua 5.1" and not rawget(_G, "jit") then
    yieldable = function() return false end
  else
    yieldable = function()
      local co, main = coroutine.running()
      return co ~= nil and not main
    end
  end
end
local gsub = string.gsub

--- pcall(f, a, b, c) for the script's callbacks (on_done, on_error): a
--- yield inside them fails there, as in libcurl's callbacks, instead of
--- suspending the coroutine that called into the loop (the call runs under
--- a C function, string.gsub's replacement, when a yield could get out).
local function call_back(f, a, b, c)
  if not yieldable() then return pcall(f, a, b, c) end
  local ok, e
  gsub(" ", " ", function() ok, e = pcall(f, a, b, c) end)
  return ok, e
end
Loop._call_back = call_back

-- Runs one of the script's functions for the loop (an on_done, a timer's):
-- inside the loop, its error to loop:_error.
function Loop:_run_callback(f, a, b, c)
  self.inside = self.inside + 1
  local ok, e = call_back(f, a, b, c)
  self.inside = self.inside - 1
  if not ok then self:_error(e) end
end

function Loop:_error(err)
  if self.on_error then
    local ok, e2 = call_back(self.on_error, err)
    if not ok then self.errors[#self.errors + 1] = e2 end
  else
    self.errors[#self.errors + 1] = err
  end
end

-- self.transfers[easy]: the transfer's on_done, or true.
local function finish(self, easy, code, err, no_yield)
  local on_done = self.transfers[easy]
  if not on_done then return end
  self.transfers[easy] = nil
  self.active = self.active - 1
  if on_done ~= true then
    -- the callback error that ended the transfer reaches on_done as
    -- err.cause: Run does not raise it as well
    if self.held_set and type(err) == "table" and rawequal(rawget(err, "cause"), self.held) then
      self.held_set, self.held = false, nil
    end
    -- Loop:_run_callback, inline (once per transfer)
    self.inside = self.inside + 1
    local ok, e
    if no_yield then ok, e = pcall(on_done, easy, code, err) else ok, e = call_back(on_done, easy, code, err) end
    self.inside = self.inside - 1
    if not ok then self:_error(e) end
  end
end

-- Whether the multi was closed (by multi:Close behind the loop's back).
-- Timeout is cheap; GetHandles only runs when Timeout failed, and fails
-- only on a closed multi (Timeout also fails inside the multi's callbacks).
local function multi_closed(m)
  if pcall(m.Timeout, m) then return false end
  return not pcall(m.GetHandles, m)
end

-- Ends every transfer (a snapshot: on_done callbacks may cancel others),
-- and the Adds deferred from callbacks that never ran, with `code, err`.
-- Returns whether a Close was deferred.
local function end_all(self, code, err)
  local deferred, close = self.deferred, false
  self.deferred = {}
  for _, d in ipairs(deferred) do
    if d[1] == Loop.Close then close = true end
    if d[1] == Loop.Add and not self.transfers[d[2]] then self:_unqueued({ d[2], d[3] }, code, err) end
  end
  local list = {}
  for easy in pairs(self.transfers) do list[#list + 1] = easy end
  for _, easy in ipairs(list) do finish(self, easy, code, err) end
  local queue = self.queue
  self.queue, self.queued = {}, {}
  for _, q in ipairs(queue) do self:_unqueued(q, code, err) end
  return close
end

-- A transfer that ends before it started (queued, or an Add deferred from a
-- callback), `q = { easy, on_done | opts }`: its on_done gets `code, err`.
function Loop:_unqueued(q, code, err)
  local on_done = type(q[2]) == "function" and q[2] or type(q[2]) == "table" and q[2].on_done
  if on_done then self:_run_callback(on_done, q[1], code, err) end
end

-- Starts queued transfers while there is room under max_active.
function Loop:_start_queued()
  local queue = self.queue
  while queue[1] and not self.closed and not self.lost and self.depth == 0
        and (not self.max_active or self.active < self.max_active) do
    local q = table.remove(queue, 1)
    self.queued[q[1]] = nil
    local ok, e = pcall(self._start, self, q[1], q[2])
    if not ok then
      local code = type(e) == "table" and type(rawget(e, "code")) == "number" and e.code or -1
      self:_unqueued(q, code, e)
    end
  end
end

-- The multi was closed behind the loop's back: libcurl forgot the
-- transfers (their sockets are closed, no callback tells). The backend
-- drops its watches and timer, the transfers end with the returned usage
-- error (on_done gets CURLE_ABORTED_BY_CALLBACK), and Run/Add/Await raise
-- it until loop:Close().
function Loop:_lose(method)
  local err = lost_error(method)
  if self.lost or self.closed then return err end
  self.lost = true
  if self.backend.forget then
    local ok, e = pcall(self.backend.forget, self.backend)
    if not ok then self:_error(e) end
  end
  if end_all(self, curl.CURLE_ABORTED_BY_CALLBACK, err) and self.depth == 0 then self:Close() end
  return err
end

--- Takes what finished (InfoRead), then runs what callbacks deferred.
--- Errors go to loop:_error.
local OK = curl.CURLE_OK

local drain = curl._drain

function Loop:_drain()
  local m, transfers, out = self.multi, self.transfers, self._out
  -- (for finish: whether a yield here could suspend a coroutine, asked
  -- once; the on_done callbacks return to this coroutine)
  local no_yield = not yieldable()
  repeat
    if self.closed or self.lost then return end -- an on_done may close the loop
    -- every finished transfer at once, removed from the multi: `out` gets
    -- easy, result pairs (InfoRead and RemoveHandle in one call)
    local ok, e = pcall(drain, m, transfers, out)
    local n = #out
    if n > 0 then
      -- a new table for the next call: whatever the on_done callbacks do,
      -- these pairs are read once
      local got = out
      out = {}
      self._out = out
      for i = 1, n, 2 do
        local easy, result = got[i], got[i + 1]
        -- (once an on_done closed the loop, finish finds no transfers)
        finish(self, easy, result, result ~= OK and transfer_error(easy, result) or nil, no_yield)
      end
    end
    if not ok then
      -- raises on a closed multi (see _act); a callback error from a
      -- removal goes to the loop, and the drain goes on after its pair
      if multi_closed(m) then error(e, 0) end
      self:_error(e)
    end
  until n == 0
  -- what callbacks asked for while libcurl was busy
  while #self.deferred > 0 and not self.closed and not self.lost do
    local d = table.remove(self.deferred, 1)
    local ok, e = pcall(d[1], self, unpack(d, 2, d.n))
    if not ok then self:_error(e) end
  end
  -- room under max_active for queued transfers
  if self.queue[1] then self:_start_queued() end
  -- coroutines waiting on what libcurl's callbacks delivered (WebSockets)
  if next(self.wake) then
    local list = {}
    for w in pairs(self.wake) do list[#list + 1] = w end
    self.wake = {}
    for _, w in ipairs(list) do
      local ok, e = pcall(w._wake, w)
      if not ok then self:_error(e) end
    end
  end
end

--- Runs one libcurl call `f(a, b, c)` for the backend (SocketAction, or
--- poller:Dispatch), then takes what finished. Never raises: errors go to
--- loop:_error (raised by Run, or given to loop.on_error).
function Loop:_act(f, a, b, c)
  if self.closed or self.lost then return end
  self.driven = true
  self.inside = self.inside + 1
  self.depth = self.depth + 1
  local ok, err = pcall(f, a, b, c)
  self.depth = self.depth - 1
  if not ok then
    if multi_closed(self.multi) then
      self.inside = self.inside - 1
      self:_error(self:_lose("loop:Run"))
      return
    end
    -- a callback's error: after the drain, unless it reached an on_done
    -- as the cause of its transfer's error
    self.held_set, self.held = true, err
  end
  local ok2, err2 = pcall(self._drain, self)
  if not ok2 and multi_closed(self.multi) then
    -- InfoRead raised: the multi was closed behind the loop's back
    ok2 = true
    self:_error(self:_lose("loop:Run"))
  end
  self.inside = self.inside - 1
  if self.held_set then
    local held = self.held
    self.held_set, self.held = false, nil
    self:_error(held)
  end
  if not ok2 then self:_error(err2) end
end

--- Called by the backend when `fd` is ready (`mask`: CURL_CSELECT_*).
function Loop:_socket(fd, mask) self:_act(self.multi.SocketAction, self.multi, fd, mask) end

--- Called by the backend when libcurl's timer expires. Afterwards the
--- backend's timer is armed from multi:Timeout() if libcurl wants one and
--- did not say so (its timer function replaced behind the loop's back):
--- a one-shot timer that fired and was not re-armed would leave the loop
--- waiting for sockets only.
function Loop:_timeout()
  self:_act(self.multi.SocketAction, self.multi, curl.CURL_SOCKET_TIMEOUT, 0)
  self:_resync()
end

--- Arms the backend's timer from multi:Timeout() when libcurl wants one
--- sooner than the backend's timer (or none) fires. Never raises.
function Loop:_resync()
  local resync = self.backend.resync
  if not resync or self.closed or self.lost or self.depth > 0 then return end
  local ok, t = pcall(self.multi.Timeout, self.multi)
  if ok and t >= 0 then pcall(resync, self.backend, t) end
end

-- Checks the arguments of Add and Await (before anything changes).
local function check_args(method, easy, opts)
  if type(easy) ~= "userdata" then
    error(bad_argument(method, 1, "easy", "curl.Easy", easy), 3)
  end
  local t = type(opts)
  if t == "table" then
    if opts.on_done ~= nil and type(opts.on_done) ~= "function" then
      error(bad_argument(method, 2, "opts.on_done", "function or nil", opts.on_done), 3)
    end
    if opts.timeout_ms ~= nil and type(opts.timeout_ms) ~= "number" then
      error(bad_argument(method, 2, "opts.timeout_ms", "number or nil", opts.timeout_ms), 3)
    end
  elseif t ~= "function" and t ~= "nil" then
    error(bad_argument(method, 2, "on_done", "function or table", opts), 3)
  end
end

local function check_open(self, method)
  if self.closed or self.closing then error(usage_error(method, "the loop is closed"), 3) end
  if self.lost then error(lost_error(method), 3) end
end

local function options(o)
  if type(o) == "function" then return { on_done = o } end
  return o or {}
end

-- Whether `easy` is in the multi (false when the multi is closed).
function Loop:_added(easy)
  local ok, handles = pcall(self.multi.GetHandles, self.multi)
  if not ok then return false end
  for _, e in ipairs(handles) do
    if e == easy then return true end
  end
  return false
end

--- loop:Add(easy[, on_done | opts]): starts a transfer. `opts.on_done(easy,
--- result, err)` runs when it ends (err: a curl.Error when result is not
--- CURLE_OK); `opts.timeout_ms` limits the whole transfer (CURLOPT_TIMEOUT_MS).
function Loop:Add(easy, opts)
  -- (the checks, called only when they have something to say)
  if type(easy) ~= "userdata" or (opts ~= nil and type(opts) ~= "function") then
    check_args("loop:Add", easy, opts)
  end
  if self.closed or self.closing or self.lost then check_open(self, "loop:Add") end
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Add, easy, opts, n = 3 }
    return
  end
  if self.transfers[easy] or self.queued[easy] then
    error(usage_error("loop:Add", "the easy is already running in this loop"), 2)
  end
  if self.max_active and (self.active >= self.max_active or self.queue[1]) then
    local q = { easy, opts }
    self.queue[#self.queue + 1] = q
    self.queued[easy] = q
    return
  end
  self:_start(easy, opts, 3)
end

local function discard() end

-- Starts the transfer (Add's second half; also for a queued one).
function Loop:_start(easy, opts, level)
  local on_done = opts
  if type(opts) == "table" then
    on_done = opts.on_done
    if opts.timeout_ms then easy:SetOpt_TimeoutMS(opts.timeout_ms) end
  end
  -- a body with nowhere to go is dropped, not written to stdout
  -- (nil for a closed easy: AddHandle says why)
  local dropping = curl._writes(easy) == false
  if dropping then dropping = pcall(easy.SetOpt_WriteFunction, easy, discard) end
  self.transfers[easy] = on_done or true
  self.active = self.active + 1
  local ok, err = pcall(self._add, self.multi, easy)
  if not ok then
    if not self:_added(easy) then
      self.transfers[easy] = nil
      self.active = self.active - 1
      if dropping then pcall(easy.SetOpt_WriteFunction, easy, nil) end -- a refused Add changes nothing
      if multi_closed(self.multi) then err = self:_lose("loop:Add") end
      error(err, level or 2)
    end
    self:_error(err) -- a timer callback error: the easy was added all the same
  end
  local added = self._backend_added
  if added then added(self.backend) end
end

--- loop:Cancel(easy): stops a transfer; its on_done gets
--- CURLE_ABORTED_BY_CALLBACK with the message "cancelled".
function Loop:Cancel(easy)
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Cancel, easy, n = 2 }
    return
  end
  local q = self.queued[easy]
  if q then
    self.queued[easy] = nil
    for i, x in ipairs(self.queue) do
      if x == q then table.remove(self.queue, i) break end
    end
    self:_unqueued(q, curl.CURLE_ABORTED_BY_CALLBACK,
                   easy_error(curl.CURLE_ABORTED_BY_CALLBACK, "cancelled", "loop:Cancel"))
    return
  end
  if not self.transfers[easy] then return end
  local ok, err = pcall(self.multi.RemoveHandle, self.multi, easy)
  -- an easy removed or closed behind the loop's back, or a closed multi:
  -- nothing left to stop, the loop forgets it all the same
  if not ok and self:_added(easy) then error(err, 2) end
  finish(self, easy, curl.CURLE_ABORTED_BY_CALLBACK,
         easy_error(curl.CURLE_ABORTED_BY_CALLBACK, "cancelled", "loop:Cancel"))
end

--- loop:Await(easy[, opts]) -> true, easy | false, err: from a coroutine,
--- starts the transfer and waits for it while other transfers run.
function Loop:Await(easy, opts)
  check_args("loop:Await", easy, opts)
  check_open(self, "loop:Await")
  if self.backend.await then return self.backend:await(self, easy, opts) end
  local co, main = coroutine.running()
  if co == nil or main then
    error(usage_error("loop:Await", "must be called from inside a coroutine"), 2)
  end
  opts = options(opts)
  local user_done = opts.on_done
  local result, err, waiting
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.on_done = function(e, code, er)
    if user_done then
      local ok, e2 = call_back(user_done, e, code, er)
      if not ok then self:_error(e2) end -- the waiting coroutine resumes all the same
    end
    result, err = code, er
    if waiting then
      local ok, e2 = coroutine.resume(co)
      if not ok then self:_error(e2) end
    end
  end
  self:Add(easy, o)
  if result == nil then
    waiting = true
    coroutine.yield()
  end
  if result == curl.CURLE_OK then return true, easy end
  return false, err
end

--- loop:Fetch(url[, opts[, callback]]): curl.Fetch on this loop. With a
--- callback, starts the request and calls callback(response, err) when it
--- ends (err: the curl.Error, response nil); without, from a coroutine,
--- waits and returns the response or raises the same curl.Error as
--- curl.Fetch.
function Loop:Fetch(url, opts, callback)
  check_open(self, "loop:Fetch")
  if callback ~= nil and type(callback) ~= "function" then
    error(bad_argument("loop:Fetch", 3, "callback", "function or nil", callback), 2)
  end
  if callback == nil and not self.backend.await then
    local co, main = coroutine.running()
    if co == nil or main then
      error(usage_error("loop:Fetch", "must be called from inside a coroutine (or give a callback)"), 2)
    end
  end
  local F = curl._fetch()
  local easy, st = F.prepare("loop:Fetch", url, opts)
  if callback then
    local function on_done(e, code, err)
      local wait = not self.closing and not self.closed and F.next_try(e, st, err)
      if wait then
        self:After(wait, function() self:Add(easy, on_done) end)
        return
      end
      if code == OK then
        callback(F.response(e, st), nil)
      else
        F.failed(st)
        callback(nil, err)
      end
    end
    self:Add(easy, on_done)
    return
  end
  local ok, res
  while true do
    ok, res = self:Await(easy)
    local wait = F.next_try(easy, st, not ok and res or nil)
    if not wait then break end
    self:Sleep(wait)
  end
  if ok then return F.response(easy, st) end
  F.failed(st)
  error(res, 2)
end

--- loop:WebSocket(url[, opts]) -> ws | nil, err: from a coroutine, a
--- WebSocket connection on this loop (curl/loop/websocket.lua).
function Loop:WebSocket(url, opts)
  check_open(self, "loop:WebSocket")
  return require("curl.loop.websocket").open(self, url, opts)
end

--- Transfers running.
function Loop:Active() return self.active end

--- Transfers queued by max_active, not started yet.
function Loop:Queued() return #self.queue end

--- loop:SetMaxActive(n | nil): at most n transfers at once (nil: no
--- limit); raising it starts queued transfers at once, lowering it lets
--- the running ones finish.
function Loop:SetMaxActive(n)
  if not valid_max(n) then
    error(bad_argument("loop:SetMaxActive", 1, "n", "a number >= 1 or nil", n), 2)
  end
  self.max_active = n
  if self.depth == 0 then self:_start_queued() end
end

---------------------------------------------------------------- timers

local Timer = {}
Timer.__index = Timer
Timer.__name = "curl.loop.Timer"

--- timer:Cancel(): the function will not run (no effect once it ran).
function Timer:Cancel()
  local loop = self.loop
  if not loop.timers[self] then return end
  loop.timers[self] = nil
  loop.ntimers = loop.ntimers - 1
  if self.cancel then
    local ok, e = pcall(self.cancel)
    if not ok then loop:_error(e) end
  end
end

-- Runs a timer's function (once; not after Cancel or Close).
function Loop:_fire(t)
  if not self.timers[t] then return end
  self.timers[t] = nil
  self.ntimers = self.ntimers - 1
  self:_run_callback(t.fn)
end

-- At most 2^31 - 1 ms (24.8 days), as the uv and libcurl timers take.
local MAX_MS = 2147483647

local function check_ms(method, ms)
  if type(ms) ~= "number" or ms ~= ms or ms < 0 or ms > MAX_MS then
    error(bad_argument(method, 1, "ms", "milliseconds from 0 to 2^31 - 1", ms), 3)
  end
  return math.floor(ms + 0.5)
end

--- loop:After(ms, fn) -> timer: runs fn() once, `ms` milliseconds from now,
--- from the loop (an error it raises comes out of Run, or goes to
--- loop.on_error). Run waits for pending timers as for transfers;
--- timer:Cancel() drops one.
function Loop:After(ms, fn)
  ms = check_ms("loop:After", ms)
  if type(fn) ~= "function" then error(bad_argument("loop:After", 2, "fn", "function", fn), 2) end
  check_open(self, "loop:After")
  local t = setmetatable({ loop = self, fn = fn }, Timer)
  self.timers[t] = true
  self.ntimers = self.ntimers + 1
  if self.backend.after then
    t.cancel = self.backend:after(ms, function() self:_fire(t) end)
  else
    t.at = self.backend:now() + ms
    local due = self.due
    local i = #due
    while i > 0 and due[i].at > t.at do i = i - 1 end
    table.insert(due, i + 1, t)
  end
  return t
end

-- Backends without `after`: ms until the next timer the loop fires itself
-- (nil: none), and firing the ones that are due.
function Loop:_next_due()
  local due = self.due
  while due[1] and not self.timers[due[1]] do table.remove(due, 1) end
  if not due[1] then return nil end
  local ms = due[1].at - self.backend:now()
  return ms > 0 and math.ceil(ms) or 0
end

function Loop:_fire_due()
  local due, now = self.due, self.backend:now()
  while due[1] and due[1].at <= now and not self.closed do
    self:_fire(table.remove(due, 1))
  end
end

--- loop:Sleep(ms): from a coroutine, waits `ms` milliseconds while the
--- loop runs other transfers and timers.
function Loop:Sleep(ms)
  ms = check_ms("loop:Sleep", ms)
  check_open(self, "loop:Sleep")
  if self.backend.sleep then return self.backend:sleep(ms) end
  local co, main = coroutine.running()
  if co == nil or main then
    error(usage_error("loop:Sleep", "must be called from inside a coroutine"), 2)
  end
  local woke = false
  self:After(ms, function()
    woke = true
    local ok, e = coroutine.resume(co)
    if not ok then self:_error(e) end
  end)
  repeat coroutine.yield() until woke
end

--- Raises the first error callbacks produced, if any (and forgets it).
function Loop:_raise()
  if #self.errors > 0 then error(table.remove(self.errors, 1), 0) end
end

-- Before each turn of Run: a multi closed behind the loop's back raises a
-- usage error; a timer libcurl wants but the backend has not armed (the
-- timer function was replaced behind the loop's back) is armed from
-- multi:Timeout(). Returns how long the turn may wait.
local function check_turn(self, ms)
  if self.closed then return ms end
  if self.lost then error(lost_error("loop:Run"), 0) end
  local m = self.multi
  local ok, t = pcall(m.Timeout, m)
  if not ok then
    if not pcall(m.GetHandles, m) then
      error(self:_lose("loop:Run"), 0)
    end
    return ms
  end
  if t >= 0 then
    if self.backend.resync then pcall(self.backend.resync, self.backend, t) end
    if t < ms then ms = t end
  end
  return ms
end

local function run(self, opts)
  local backend = self.backend
  local clock = backend.now and function() return backend:now() / 1000 end or os.time
  local deadline = opts.seconds and (clock() + opts.seconds)
  self:_raise()
  while self.active > 0 or self.queue[1] or self.ntimers > 0 or (backend.pending and backend:pending()) do
    if self.queue[1] then self:_start_queued() end
    local ms = check_turn(self, 200)
    local next_timer = self.due[1] and self:_next_due()
    if next_timer and next_timer < ms then ms = next_timer end
    backend:step(ms)
    if self.due[1] then self:_fire_due() end
    self:_raise()
    if deadline and clock() > deadline then
      error(easy_error(curl.CURLE_OPERATION_TIMEDOUT,
        ("loop:Run deadline passed with %d transfers running"):format(self.active), "loop:Run"), 0)
    end
  end
  if self.lost then error(lost_error("loop:Run"), 0) end
end

--- loop:Run([opts]): drives the loop until no transfer runs (and, on
--- cqueues, no other task of the controller is left; opts.seconds: a
--- deadline, an error when passed). Errors raised by callbacks (and not given
--- to loop.on_error) come out of Run. Not from inside the loop's callbacks.
function Loop:Run(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(bad_argument("loop:Run", 1, "opts", "table or nil", opts), 2)
  end
  opts = opts or {}
  if opts.seconds ~= nil and type(opts.seconds) ~= "number" then
    error(bad_argument("loop:Run", 1, "opts.seconds", "number or nil", opts.seconds), 2)
  end
  local why
  if self.running or self.inside > 0 or self.depth > 0 then
    why = "called from inside the loop (a transfer callback, an on_done or a coroutine it resumed)"
  elseif self.backend.nested then
    why = self.backend:nested()
  end
  if why then
    error(usage_error("loop:Run", why .. "; Run cannot nest: return to the loop instead " ..
                                  "(or wait with loop:Await in a coroutine)"), 2)
  end
  self.running, self.driven = true, true
  local ok, err = pcall(run, self, opts)
  self.running = false
  if not ok then error(err, 0) end
end

--- loop:Close(): cancels what runs and closes the multi and the backend.
--- on_done callbacks it runs may not start transfers (usage error).
function Loop:Close()
  if self.depth > 0 then -- inside a libcurl call: when it returns
    self.deferred[#self.deferred + 1] = { Loop.Close, n = 1 }
    return
  end
  if self.closed or self.closing then return end
  self.closing = true -- from here Add and Await raise a usage error
  local timers = {}
  for t in pairs(self.timers) do timers[#timers + 1] = t end
  for _, t in ipairs(timers) do t:Cancel() end
  local cancelled = easy_error(curl.CURLE_ABORTED_BY_CALLBACK, "cancelled", "loop:Cancel")
  local list = {}
  for easy in pairs(self.transfers) do list[#list + 1] = easy end
  for _, easy in ipairs(list) do
    local ok, e = pcall(self.Cancel, self, easy)
    if not ok then self:_error(e) end
  end
  self.closed = true
  local ok, e = pcall(self.multi.Close, self.multi)
  if not ok then self:_error(e) end
  -- deferred Adds, and what Cancel could not remove (multi:Close did)
  end_all(self, curl.CURLE_ABORTED_BY_CALLBACK, cancelled)
  if self.backend.close then
    ok, e = pcall(self.backend.close, self.backend)
    if not ok then self:_error(e) end
  end
end

-- On a LuaJIT where the module's Lua code runs in the interpreter (see
-- curl._no_jit), the WebSocket helper is loaded now, while jit.off works,
-- not by a first loop:WebSocket that may run inside a __gc metamethod
-- (websocket.lua requires only curl).
if curl._jit_off then require "curl.loop.websocket" end

return Loop
