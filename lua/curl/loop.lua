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

local function lost_error(method)
  return usage_error(method, "the loop's multi was closed behind its back (multi:Close); " ..
                             "its transfers ended, close the loop with loop:Close()")
end

--- Loop.new(backend[, multi]): usually called by a backend's `new`.
function Loop.new(backend, multi)
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
  }, Loop)
  local m = self.multi
  -- the methods of every transfer, looked up once
  self._info_read, self._remove, self._add = m.InfoRead, m.RemoveHandle, m.AddHandle
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

function Loop:_error(err)
  if self.on_error then
    local ok, e2 = call_back(self.on_error, err)
    if not ok then self.errors[#self.errors + 1] = e2 end
  else
    self.errors[#self.errors + 1] = err
  end
end

-- self.transfers[easy]: the transfer's on_done, or true.
local function finish(self, easy, code, err)
  local on_done = self.transfers[easy]
  if not on_done then return end
  self.transfers[easy] = nil
  self.active = self.active - 1
  if on_done ~= true then
    self.inside = self.inside + 1
    local ok, e = call_back(on_done, easy, code, err)
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
    if d[1] == Loop.Add and not self.transfers[d[2]] then
      local on_done = type(d[3]) == "function" and d[3] or type(d[3]) == "table" and d[3].on_done
      if on_done then
        self.inside = self.inside + 1
        local ok, e = call_back(on_done, d[2], code, err)
        self.inside = self.inside - 1
        if not ok then self:_error(e) end
      end
    end
  end
  local list = {}
  for easy in pairs(self.transfers) do list[#list + 1] = easy end
  for _, easy in ipairs(list) do finish(self, easy, code, err) end
  return close
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
local DONE, OK = curl.CURLMSG_DONE, curl.CURLE_OK

function Loop:_drain()
  local m, transfers = self.multi, self.transfers
  local multi_info_read, multi_remove = self._info_read, self._remove
  repeat
    if self.closed or self.lost then return end -- an on_done may close the loop
    local ok, msg, result, remaining, easy = pcall(multi_info_read, m)
    if not ok then
      if multi_closed(m) then self:_error(self:_lose("loop:Run")) else self:_error(msg) end
      return
    end
    if msg == DONE and easy and transfers[easy] then
      ok, msg = pcall(multi_remove, m, easy)
      if not ok then self:_error(msg) end
      finish(self, easy, result, result ~= OK and transfer_error(easy, result) or nil)
    end
  until remaining == 0
  -- what callbacks asked for while libcurl was busy
  while #self.deferred > 0 and not self.closed and not self.lost do
    local d = table.remove(self.deferred, 1)
    local ok, e = pcall(d[1], self, unpack(d, 2, d.n))
    if not ok then self:_error(e) end
  end
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
    self:_error(err)
  end
  ok, err = pcall(self._drain, self)
  self.inside = self.inside - 1
  if not ok then self:_error(err) end
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
  check_args("loop:Add", easy, opts)
  check_open(self, "loop:Add")
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Add, easy, opts, n = 3 }
    return
  end
  if self.transfers[easy] then
    error(usage_error("loop:Add", "the easy is already running in this loop"), 2)
  end
  local on_done = opts
  if type(opts) == "table" then
    on_done = opts.on_done
    if opts.timeout_ms then easy:SetOpt_TimeoutMS(opts.timeout_ms) end
  end
  self.transfers[easy] = on_done or true
  self.active = self.active + 1
  local ok, err = pcall(self._add, self.multi, easy)
  if not ok then
    if not self:_added(easy) then
      self.transfers[easy] = nil
      self.active = self.active - 1
      if multi_closed(self.multi) then err = self:_lose("loop:Add") end
      error(err, 2)
    end
    self:_error(err) -- a timer callback error: the easy was added all the same
  end
  if self.backend.added then self.backend:added() end
end

--- loop:Cancel(easy): stops a transfer; its on_done gets
--- CURLE_ABORTED_BY_CALLBACK with the message "cancelled".
function Loop:Cancel(easy)
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Cancel, easy, n = 2 }
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
    self:Add(easy, function(e, code, err)
      if code == OK then
        callback(F.response(e, st), nil)
      else
        F.failed(st)
        callback(nil, err)
      end
    end)
    return
  end
  local ok, res = self:Await(easy)
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
  while self.active > 0 or (backend.pending and backend:pending()) do
    backend:step(check_turn(self, 200))
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
  self.running = true
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

return Loop
