-- WebSockets on a curl.loop, for coroutines (loaded by loop:WebSocket, or with curl.loop on LuaJIT 2.1.0-beta3).
--
--   local ws, err = loop:WebSocket("ws://127.0.0.1:8080/chat"[, opts])
--   ws:Send("hello")                       -- a text message ("binary": 2nd arg)
--   local msg, kind = ws:Receive()         -- kind "text" or "binary"
--   -- msg nil: closed by the server (ws.close_code, ws.close_reason), or
--   -- the connection failed (the 2nd value is the curl.Error)
--   ws:Ping("are you there")
--   ws:Close(1000, "bye")                  -- waits for the server's close
--
-- libcurl's callback mode underneath: the transfer runs in the loop's multi
-- for as long as the connection lives, its write callback gets the frames
-- (easy:WsMeta says which), the module assembles them into messages, and
-- easy:WsSend sends (libcurl answers pings itself). Waiting coroutines are
-- resumed after libcurl returns, never from inside its callbacks.
local curl = require "curl"
curl._no_jit() -- LuaJIT #1000 (see curl.lua)

-- libcurl's CURLWS_* bits (websockets.h), also where the headers lack them
local TEXT, BINARY, CONT = curl.constants.CURLWS_TEXT or 1, curl.constants.CURLWS_BINARY or 2, curl.constants.CURLWS_CONT or 4
local CLOSE, PING, PONG = curl.constants.CURLWS_CLOSE or 8, curl.constants.CURLWS_PING or 16, curl.constants.CURLWS_PONG or 64

local function has(flags, bit) return math.floor(flags / bit) % 2 == 1 end

local WS = {}
WS.__index = WS

local function usage(method, message)
  return setmetatable({ kind = "usage", code = -1, name = "USAGE", message = message, method = method },
                      curl.Error)
end

local function coroutine_or_error(method)
  local co, main = coroutine.running()
  if co == nil or main then error(usage(method, "must be called from inside a coroutine"), 3) end
  return co
end

-- Waiting: a backend with conditions (cqueues) lends one, whose wait and
-- signal its controller schedules; otherwise the coroutine yields and the
-- loop resumes it (ws:_wake) after libcurl returned.
local function wait(ws, co)
  if ws.cond then
    ws.cond:wait()
  else
    ws.waiting = co
    coroutine.yield()
  end
end

function WS:_wake()
  local co = self.waiting
  if not co then return end
  self.waiting = nil
  local ok, err = coroutine.resume(co)
  if not ok then self.loop:_error(err) end
end

function WS:_notify()
  if self.cond then self.cond:signal() else self.loop.wake[self] = true end
end

-- The close frame's payload: a 16-bit status code and a reason.
local function close_payload(code, reason)
  if not code then return "" end
  return string.char(math.floor(code / 256) % 256, code % 256) .. (reason or "")
end

-- The write callback: one frame, or part of one (easy:WsMeta tells).
function WS:_frame(data)
  local meta = self.easy:WsMeta()
  if not meta then return end
  local flags = meta.flags
  if has(flags, CLOSE) then
    self.close_buf = (self.close_buf or "") .. data
    if meta.bytesleft == 0 then
      local b = self.close_buf
      if #b >= 2 then
        self.close_code = b:byte(1) * 256 + b:byte(2)
        self.close_reason = b:sub(3)
      else
        self.close_code = 1005 -- no status in the frame (RFC 6455)
        self.close_reason = ""
      end
      self.state = "closing"
      self:_notify()
    end
    return
  end
  if has(flags, PING) or has(flags, PONG) then return end -- libcurl answers pings
  if not self.kind then self.kind = has(flags, TEXT) and "text" or "binary" end
  self.parts[#self.parts + 1] = data
  self.partial = meta.bytesleft > 0 or has(flags, CONT)
  if not self.partial then
    self.queue[#self.queue + 1] = { table.concat(self.parts), self.kind }
    self.parts, self.kind = {}, nil
    self:_notify()
  end
end

-- The header callback: the blank line after "101" completes the upgrade.
function WS:_header(line)
  local status = line:match("^HTTP/%S+ (%d%d%d)")
  if status then self.status = tonumber(status) end
  if (line == "\r\n" or line == "\n") and self.status == 101 and self.state == "connecting" then
    self.state = "open"
    self:_notify()
  end
end

function WS:_done(code, err)
  self.state = "closed"
  if code ~= curl.CURLE_OK and not self.close_code then
    self.err = err
  elseif code == curl.CURLE_OK and not self.close_code and not self.close_sent then
    -- libcurl (8.22) ends the transfer without an error when the server
    -- drops the connection, even in the middle of a frame
    self.err = curl.EasyError(curl.CURLE_PARTIAL_FILE, self.partial
      and "the connection ended in the middle of a message"
      or "the connection ended without a close frame", "ws:Receive")
  end
  if self.cond then
    self.cond:signal()
  else
    self.loop.wake[self] = nil
    self:_wake() -- on_done runs after libcurl returned (or from loop:Close)
  end
end

--- ws:Send(data[, kind]): one message, kind "text" (default) or "binary".
--- Returns true, or nil and a curl.Error. Waits (in a coroutine) while
--- libcurl cannot take all of it at once.
function WS:Send(data, kind)
  if type(data) ~= "string" then
    error(usage("ws:Send", ("bad argument #1 'data' (expected string, got %s)"):format(type(data))), 2)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error(usage("ws:Send", "bad argument #2 'kind' (expected \"text\", \"binary\" or nil)"), 2)
  end
  return self:_send(data, kind == "binary" and BINARY or TEXT, "ws:Send")
end

--- ws:Ping([data]): a ping frame (the server's pong is not reported).
function WS:Ping(data)
  return self:_send(data or "", PING, "ws:Ping")
end

function WS:_send(data, flags, method)
  if self.state ~= "open" then
    return nil, usage(method, "the WebSocket is " .. self.state)
  end
  if self.loop.depth > 0 then
    -- inside a callback of a libcurl call of the loop (another transfer's
    -- write function, say): libcurl would send the whole message there,
    -- waiting as long as the peer does not read (found by review)
    return nil, usage(method, "called from inside a libcurl callback, where libcurl would send the " ..
      "whole message before returning, waiting on the peer; send from a coroutine, an on_done or a loop:After timer")
  end
  local rest, pause = data, 0
  repeat
    local ok, n = pcall(self.easy.WsSend, self.easy, rest, flags)
    if not ok then return nil, n end
    if n >= #rest then return true end
    rest = rest:sub(n + 1)
    if n == 0 then
      -- libcurl cannot take more now, and nothing tells when it can (it
      -- does not watch the socket for writing on our behalf, and a peer
      -- that waits for the whole message sends nothing meanwhile): try
      -- again after a loop timer, 1 ms at first, then longer, up to 50 ms
      -- (found by a loop hunt: on luv and cqueues a large send waited
      -- forever for a turn that never came, or lost its wake-up)
      local co = coroutine_or_error(method)
      pause = pause == 0 and 1 or math.min(pause * 2, 50)
      local armed, timer = pcall(self.loop.After, self.loop, pause, function() self:_retry() end)
      if not armed then return nil, timer end -- (the loop is closing)
      wait(self, co)
      timer:Cancel()
      if self.state ~= "open" then return nil, self.err or usage(method, "the WebSocket is closed") end
    else
      pause = 0
    end
  until false
end

-- Wakes a coroutine waiting in ws:Send (its loop:After timer).
function WS:_retry()
  if self.cond then self.cond:signal() else self:_wake() end
end

--- ws:Receive() -> message, kind ("text" or "binary"); nil when the
--- connection ended: nil, nil after a close (ws.close_code,
--- ws.close_reason), nil and the curl.Error when it failed. Waits in a
--- coroutine until a message is there.
function WS:Receive()
  while true do
    local m = self.queue[1]
    if m then
      table.remove(self.queue, 1)
      return m[1], m[2]
    end
    if self.state == "closed" or self.state == "closing" then return nil, self.err end
    wait(self, coroutine_or_error("ws:Receive"))
  end
end

--- ws:Close([code[, reason]]): sends a close frame (code default 1000) and
--- waits for the connection to end (the server answers the close). Returns
--- true, or nil and a curl.Error.
function WS:Close(code, reason)
  if code ~= nil and (type(code) ~= "number" or code ~= math.floor(code) or code < 1000 or code > 4999) then
    error(usage("ws:Close", "bad argument #1 'code' (expected 1000 to 4999 or nil)"), 2)
  end
  if reason ~= nil and (type(reason) ~= "string" or #reason > 123) then
    error(usage("ws:Close", "bad argument #2 'reason' (expected a string of at most 123 bytes or nil)"), 2)
  end
  if self.state == "open" then
    local ok, err = self:_send(close_payload(code or 1000, reason), CLOSE, "ws:Close")
    if not ok then return nil, err end
    self.state, self.close_sent = "closing", true
  end
  local co = coroutine.running()
  while self.state ~= "closed" and co do
    wait(self, coroutine_or_error("ws:Close"))
  end
  if self.state ~= "closed" then -- not in a coroutine: stop it now
    self.loop:Cancel(self.easy)
  end
  if self.err and not self.close_code then return nil, self.err end
  return true
end

--- The curl.Easy underneath (for GetInfo).
function WS:Easy() return self.easy end

local M = {}

--- loop:WebSocket(url[, opts]) -> ws | nil, err (from a coroutine):
--- connects and waits for the upgrade. opts.options: easy options by name
--- ({ CAInfo = ..., HttpHeader = {...} }); opts.timeout_ms limits the
--- connection (CURLOPT_CONNECTTIMEOUT_MS).
function M.open(loop, url, opts)
  if type(url) ~= "string" then
    error(usage("loop:WebSocket", ("bad argument #1 'url' (expected string, got %s)"):format(type(url))), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(usage("loop:WebSocket", ("bad argument #2 'opts' (expected table or nil, got %s)"):format(type(opts))), 2)
  end
  opts = opts or {}
  if opts.options ~= nil and type(opts.options) ~= "table" then
    error(usage("loop:WebSocket", ("bad argument #2 'opts.options' (expected table or nil, got %s)")
      :format(type(opts.options))), 2)
  end
  if opts.timeout_ms ~= nil and type(opts.timeout_ms) ~= "number" then
    error(usage("loop:WebSocket", ("bad argument #2 'opts.timeout_ms' (expected number or nil, got %s)")
      :format(type(opts.timeout_ms))), 2)
  end
  local co = coroutine_or_error("loop:WebSocket")
  local ws = setmetatable({ loop = loop, queue = {}, parts = {}, state = "connecting" }, WS)
  if loop.backend.condition then ws.cond = loop.backend:condition() end
  local easy = curl.Easy()
  for k, v in pairs(opts.options or {}) do
    if type(k) ~= "string" then
      error(usage("loop:WebSocket", "bad argument #2 'opts.options' (expected option names as keys)"), 2)
    end
    easy["SetOpt_" .. k](easy, v)
  end
  if opts.timeout_ms then easy:SetOpt_ConnectTimeout_MS(opts.timeout_ms) end
  easy:SetOpt_URL(url)
  easy:SetOpt_HeaderFunction(function(line) ws:_header(line) end)
  easy:SetOpt_WriteFunction(function(data) ws:_frame(data) end)
  ws.easy = easy
  loop:Add(easy, function(_, code, err) ws:_done(code, err) end)
  while ws.state == "connecting" do wait(ws, co) end
  if ws.status == 101 and not ws.err then return ws end -- (it may be closing already)
  return nil, ws.err or usage("loop:WebSocket", "the server did not upgrade the connection")
end

return M
