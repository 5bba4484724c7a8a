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
--
-- This file is the loop-independent part; a backend (curl/loop/*.lua)
-- provides watch/unwatch/timer and calls loop:_socket(fd, mask) and
-- loop:_timeout() from the event loop, never from inside a libcurl call.
local curl = require "curl"

local Loop = {}
Loop.__index = Loop

local unpack = table.unpack or unpack

-- CURLE_* number -> name, for error values.
local easy_names = {}
for k, v in pairs(curl) do
  if type(k) == "string" and k:match("^CURLE_") and not k:match("OBSOLETE")
     and (easy_names[v] == nil or #k < #easy_names[v]) then
    easy_names[v] = k
  end
end

local function easy_error(code, message, method)
  return setmetatable({
    kind = "easy", code = code, name = easy_names[code] or ("CURLE_" .. code),
    message = message or curl.EasyStrError(code), method = method,
  }, curl.Error)
end
Loop.easy_error = easy_error

local function usage_error(method, message)
  return setmetatable({ kind = "usage", code = -1, name = "USAGE", message = message, method = method },
                      curl.Error)
end
Loop.usage_error = usage_error

--- Loop.new(backend[, multi]): usually called by a backend's `new`.
function Loop.new(backend, multi)
  local self = setmetatable({
    backend = backend,
    multi = type(multi) == "userdata" and multi or curl.Multi(), -- (ignores require's 2nd value)
    transfers = {}, -- easy -> { on_done = fn }
    active = 0,
    depth = 0,      -- > 0 while SocketAction runs (callbacks may call us)
    deferred = {},  -- Add / Cancel asked for while depth > 0
    errors = {},    -- errors from callbacks, raised by Run
    on_error = nil, -- or a function(err): then errors go there instead
  }, Loop)
  local m = self.multi
  m:SetOpt_SocketFunction(function(_, fd, what)
    if what == curl.CURL_POLL_REMOVE then backend:unwatch(fd) else backend:watch(fd, what) end
  end)
  m:SetOpt_TimerFunction(function(ms) backend:timer(ms) end)
  return self
end

function Loop:_error(err)
  if self.on_error then
    local ok, e2 = pcall(self.on_error, err)
    if not ok then self.errors[#self.errors + 1] = e2 end
  else
    self.errors[#self.errors + 1] = err
  end
end

local function finish(self, easy, code, err)
  local t = self.transfers[easy]
  if not t then return end
  self.transfers[easy] = nil
  self.active = self.active - 1
  if t.on_done then
    local ok, e = pcall(t.on_done, easy, code, err)
    if not ok then self:_error(e) end
  end
end

function Loop:_drain()
  local m = self.multi
  if self.closed then return end
  repeat
    local msg, result, remaining, easy = m:InfoRead()
    if msg == curl.CURLMSG_DONE and easy then
      if self.transfers[easy] then
        m:RemoveHandle(easy)
        finish(self, easy, result, result ~= curl.CURLE_OK and easy_error(result, nil, "transfer") or nil)
      end
    end
  until remaining == 0 or self.closed -- an on_done may close the loop
  -- what callbacks asked for while libcurl was busy
  while #self.deferred > 0 and not self.closed do
    local d = table.remove(self.deferred, 1)
    local ok, e = pcall(d[1], self, unpack(d, 2, d.n))
    if not ok then self:_error(e) end
  end
end

local function action(self, fd, mask)
  if self.closed then return end
  self.depth = self.depth + 1
  local ok, err = pcall(self.multi.SocketAction, self.multi, fd, mask)
  self.depth = self.depth - 1
  if not ok then self:_error(err) end
  self:_drain()
end

--- Called by the backend when `fd` is ready (`mask`: CURL_CSELECT_*).
function Loop:_socket(fd, mask) action(self, fd, mask) end

--- Called by the backend when libcurl's timer expires.
function Loop:_timeout() action(self, curl.CURL_SOCKET_TIMEOUT, 0) end

local function options(o)
  if type(o) == "function" then return { on_done = o } end
  return o or {}
end

--- loop:Add(easy[, on_done | opts]): starts a transfer. `opts.on_done(easy,
--- result, err)` runs when it ends (err: a curl.Error when result is not
--- CURLE_OK); `opts.timeout_ms` limits the whole transfer (CURLOPT_TIMEOUT_MS).
function Loop:Add(easy, opts)
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Add, easy, opts, n = 3 }
    return
  end
  opts = options(opts)
  if self.transfers[easy] then
    error(usage_error("loop:Add", "the easy is already running in this loop"), 2)
  end
  if opts.timeout_ms then easy:SetOpt_TimeoutMS(opts.timeout_ms) end
  self.transfers[easy] = { on_done = opts.on_done }
  self.active = self.active + 1
  local ok, err = pcall(self.multi.AddHandle, self.multi, easy)
  if not ok then
    if not self:_added(easy) then
      self.transfers[easy] = nil
      self.active = self.active - 1
      error(err, 2)
    end
    self:_error(err) -- a timer callback error: the easy was added all the same
  end
end

function Loop:_added(easy)
  for _, e in ipairs(self.multi:GetHandles()) do
    if e == easy then return true end
  end
  return false
end

--- loop:Cancel(easy): stops a transfer; its on_done gets
--- CURLE_ABORTED_BY_CALLBACK with the message "cancelled".
function Loop:Cancel(easy)
  if self.depth > 0 then
    self.deferred[#self.deferred + 1] = { Loop.Cancel, easy, n = 2 }
    return
  end
  if not self.transfers[easy] then return end
  self.multi:RemoveHandle(easy)
  finish(self, easy, curl.CURLE_ABORTED_BY_CALLBACK,
         easy_error(curl.CURLE_ABORTED_BY_CALLBACK, "cancelled", "loop:Cancel"))
end

--- loop:Await(easy[, opts]) -> true, easy | false, err: from a coroutine,
--- starts the transfer and waits for it while other transfers run.
function Loop:Await(easy, opts)
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
      local ok, e2 = pcall(user_done, e, code, er)
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

--- Transfers running.
function Loop:Active() return self.active end

--- Raises the first error callbacks produced, if any (and forgets it).
function Loop:_raise()
  if #self.errors > 0 then error(table.remove(self.errors, 1), 0) end
end

--- loop:Run([opts]): drives the loop until no transfer runs (and, on
--- cqueues, no other task of the controller is left; opts.seconds: a
--- deadline, an error when passed). Errors raised by callbacks (and not given
--- to loop.on_error) come out of Run.
function Loop:Run(opts)
  opts = opts or {}
  local clock = self.backend.now and function() return self.backend:now() / 1000 end or os.time
  local deadline = opts.seconds and (clock() + opts.seconds)
  self:_raise()
  local backend = self.backend
  while self.active > 0 or (backend.pending and backend:pending()) do
    self.backend:step(200)
    self:_raise()
    if deadline and clock() > deadline then
      error(easy_error(curl.CURLE_OPERATION_TIMEDOUT,
        ("loop:Run deadline passed with %d transfers running"):format(self.active), "loop:Run"), 2)
    end
  end
end

--- loop:Close(): cancels what runs and closes the multi and the backend.
function Loop:Close()
  if self.depth > 0 then -- inside a libcurl call: when it returns
    self.deferred[#self.deferred + 1] = { Loop.Close, n = 1 }
    return
  end
  if self.closed then return end
  for easy in pairs(self.transfers) do self:Cancel(easy) end
  self.closed = true
  self.multi:Close()
  if self.backend.close then self.backend:close() end
end

return Loop
