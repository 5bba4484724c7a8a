-- WebSockets: easy:WsSend / WsRecv / WsMeta in both of libcurl's modes
-- (CONNECT_ONLY = 2, and the write callback inside a multi driven by
-- SocketAction), and loop:WebSocket on every loop backend, against
-- spec/support/ws_server.py (python3-websockets) on 127.0.0.1. On a
-- libcurl without WebSockets the methods are clear usage errors.
local H = require "helper"
local curl = H.curl

local TEXT, BINARY, CONT = curl.constants.CURLWS_TEXT or 1, curl.constants.CURLWS_BINARY or 2, curl.constants.CURLWS_CONT or 4
local CLOSE, PING = curl.constants.CURLWS_CLOSE or 8, curl.constants.CURLWS_PING or 16

local function has(flags, bit) return math.floor(flags / bit) % 2 == 1 end

local has_ws = H.has_protocol("ws")

local usage_error = H.usage_error

local it_if = H.it_if(it, pending)

-- bytes (i*7 + j) % 256 of the server's fragment i
local function fragment(i, size)
  local t = {}
  for j = 0, size - 1 do t[#t + 1] = string.char((i * 7 + j) % 256) end
  return table.concat(t)
end

local pattern = H.pattern

describe("WebSockets without libcurl support", function()
  it_if(has_ws and "this libcurl has WebSockets", "WsSend, WsRecv and WsMeta say which libcurl has them", function()
    local e = curl.Easy()
    for _, m in ipairs { "WsSend", "WsRecv", "WsMeta" } do
      local args = m == "WsSend" and { "x" } or {}
      local err = usage_error(function() e[m](e, (table.unpack or unpack)(args)) end, "WebSockets need")
      assert.truthy(err.message:find(H.libcurl.version, 1, true), err.message)
      assert.are.equal("easy:" .. m, err.method)
    end
    e:Close()
  end)
end)

describe("WebSockets", function()
  local why = H.needs_protocol("ws")
  local pids, base = {}, nil
  if not why then
    local info, reason = H.start_server(("/usr/bin/python3 '%s/spec/support/ws_server.py' 127.0.0.1 %s")
      :format(H.root, H.lua_pid), pids)
    if info then base = "ws://127.0.0.1:" .. info.PORT else why = "WebSocket server: " .. reason end
  end
  teardown(function() H.stop_servers(pids) end)
  after_each(H.gc)

  -- CONNECT_ONLY = 2: connect, then WsSend / WsRecv, waiting on the socket
  local function connect(path)
    local e = curl.Easy { URL = base .. path, ConnectOnly = 2, TimeoutMs = 10000 }
    e:Perform()
    local poller = curl.Poller()
    poller:Watch(e:GetInfo_ActiveSocket(), curl.CURL_POLL_IN)
    -- the next whole message: data, flags of its first frame
    local function recv_message(deadline_s)
      local deadline = os.time() + (deadline_s or 10)
      local parts, first = {}, nil
      while os.time() <= deadline do
        local d, meta = e:WsRecv(256 * 1024)
        if d then
          first = first or meta.flags
          if not has(meta.flags, PING) then parts[#parts + 1] = d end
          if meta.bytesleft == 0 and not has(meta.flags, CONT) and not has(meta.flags, PING) then
            return table.concat(parts), first
          end
        else
          for _ in poller:Wait(100) do end
        end
      end
      error("no message within the deadline")
    end
    local function send_all(data, flags)
      local sent, deadline = 0, os.time() + 10
      while sent < #data or #data == 0 do
        local n = e:WsSend(data:sub(sent + 1), flags)
        sent = sent + n
        if #data == 0 then return end
        if n == 0 then
          assert(os.time() <= deadline, "could not send within the deadline")
          for _ in poller:Wait(10) do end
        end
      end
    end
    return e, recv_message, send_all, poller
  end

  it_if(why, "CONNECT_ONLY = 2: text and binary frames echo back, up to 1 MiB", function()
    local e, recv, send = connect("/echo")
    send("hello", TEXT)
    local d, flags = recv()
    assert.are.equal("hello", d)
    assert.is_true(has(flags, TEXT))
    for _, n in ipairs { 0, 1, 125, 126, 65535, 65536, 1024 * 1024 } do
      local msg = pattern(n)
      send(msg, BINARY)
      d, flags = recv()
      assert.are.equal(n, #d)
      assert.are.equal(msg, d)
      assert.is_true(has(flags, BINARY))
    end
    e:Close()
  end)

  it_if(why, "CONNECT_ONLY = 2: a message sent in fragments comes back whole", function()
    local e, recv, send = connect("/echo")
    send("one ", TEXT + CONT)
    send("two ", TEXT + CONT)
    send("three", TEXT)
    assert.are.equal("one two three", (recv()))
    e:Close()
  end)

  it_if(why, "CONNECT_ONLY = 2: the server's fragmented message arrives in parts", function()
    local e, recv = connect("/fragments/5/1000")
    local want = {}
    for i = 0, 4 do want[#want + 1] = fragment(i, 1000) end
    assert.are.equal(table.concat(want), (recv()))
    e:Close()
  end)

  it_if(why, "CONNECT_ONLY = 2: a ping from the server is answered with the next send", function()
    -- libcurl takes the ping inside WsRecv and queues its pong, which goes
    -- out with the next WsSend (or the next data frame WsRecv returns)
    -- (the server pings 300 ms after the upgrade, so the ping is the next
    -- thing the socket delivers)
    local e, recv, send, poller = connect("/ping/300")
    local deadline, readable = os.time() + 10, false
    while not readable and os.time() <= deadline do
      for _ in poller:Wait(100) do readable = true end
    end
    assert.is_true(readable)
    assert.is_nil(e:WsRecv()) -- the ping is taken, not handed out
    send("hi", TEXT)
    local d, flags = recv()
    assert.are.equal("pong ok", d)
    assert.is_true(has(flags, TEXT))
    assert.are.equal("hi", (recv()))
    e:Close()
  end)

  it_if(why, "CONNECT_ONLY = 2: the server's close frame carries its code and reason", function()
    local e = connect("/close/4001/going-away")
    local deadline, got = os.time() + 10, nil
    while os.time() <= deadline and not got do
      local ok, d, meta = pcall(e.WsRecv, e)
      if ok and d and has(meta.flags, CLOSE) then got = d end
      if not ok then break end
    end
    assert.is_string(got)
    assert.are.equal(4001, got:byte(1) * 256 + got:byte(2))
    assert.are.equal("going-away", got:sub(3))
    e:Close()
  end)

  it_if(why, "callback mode under SocketAction: the write callback gets frames, WsMeta describes them", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local e
    local frames, data = {}, {}
    local sent = false
    e = curl.Easy { URL = base .. "/fragments/3/70000",
      WriteFunction = function(d)
        local m = e:WsMeta()
        frames[#frames + 1] = { flags = m.flags, offset = m.offset, bytesleft = m.bytesleft, len = m.len, n = #d }
        data[#data + 1] = d
        if m.bytesleft == 0 and not has(m.flags, CONT) and not sent then
          sent = true
          -- inside the write callback: close politely
          e:WsSend(string.char(3, 232) .. "done", CLOSE)
        end
      end }
    multi:AddHandle(e)
    loop:run { remove = true, seconds = 20 }
    local want = {}
    for i = 0, 2 do want[#want + 1] = fragment(i, 70000) end
    local got = {}
    for i, f in ipairs(frames) do
      assert.are.equal(f.n, f.len)
      if not has(f.flags, CLOSE) then got[#got + 1] = data[i] end
    end
    assert.are.equal(table.concat(want), table.concat(got))
    assert.is_true(has(frames[1].flags, BINARY))
    assert.is_true(has(frames[1].flags, CONT))
    assert.is_nil(e:WsMeta()) -- outside the callback
    e:Close()
    multi:Close()
  end)

  it_if(why, "WsSend and WsRecv refuse bad arguments", function()
    local e = connect("/echo")
    usage_error(function() e:WsSend({}) end, "#1 'data'")
    usage_error(function() e:WsSend("x", -1) end, "#2 'flags'")
    usage_error(function() e:WsSend("xyz", TEXT, 2) end, "#3 'fragsize'")
    usage_error(function() e:WsRecv(0) end, "#1 'max'")
    e:Close()
    usage_error(function() e:WsSend("x") end, "closed")
  end)

  -------------------------------------------------------------- loop helper

  local in_task = H.in_task

  for _, name in ipairs(H.loop_backends) do
    describe("loop:WebSocket (" .. name .. ")", function()
      local new = require("curl.loop." .. name).new
      local loop
      before_each(function() if not why then loop = new() end end)
      after_each(function() if loop then loop:Close(); loop = nil end end)

      it_if(why, "echoes text and binary messages up to 1 MiB, and closes", function()
        local log = {}
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/echo"))
          assert(ws:Send("hello"))
          log[#log + 1] = { ws:Receive() }
          local big = pattern(1024 * 1024)
          assert(ws:Send(big, "binary"))
          local d, kind = ws:Receive()
          log[#log + 1] = { #d, kind, d == big }
          assert(ws:Ping("x"))
          log[#log + 1] = { ws:Close(1000, "bye") }
          log[#log + 1] = { ws.close_code, ws.close_reason }
        end)
        loop:Run { seconds = 30 }
        assert.are.same({ "hello", "text" }, log[1])
        assert.are.same({ 1024 * 1024, "binary", true }, log[2])
        assert.are.same({ true }, log[3])
        assert.are.same({ 1000, "bye" }, log[4])
        assert.are.equal(0, loop:Active())
      end)

      it_if(why, "sends a message larger than the socket takes at once (5 MiB)", function()
        -- found by a loop hunt: once libcurl took nothing more, Send waited
        -- for a loop turn that never came on luv (no event: the echo server
        -- waits for the whole message) and lost its wake-up on cqueues
        local got
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/echo"))
          local big = pattern(5 * 1024 * 1024)
          assert(ws:Send(big, "binary"))
          local d = ws:Receive()
          got = d == big
          assert(ws:Close())
        end)
        loop:Run { seconds = 60 }
        assert.is_true(got)
        assert.are.equal(0, loop:Active())
      end)

      it_if(why, "assembles a fragmented message and answers the server's ping", function()
        local got = {}
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/fragments/4/3000"))
          got.frag = { ws:Receive() }
          ws:Close()
          local p = assert(l:WebSocket(base .. "/ping"))
          got.ping = { p:Receive() }
          p:Close()
        end)
        loop:Run { seconds = 30 }
        local want = {}
        for i = 0, 3 do want[#want + 1] = fragment(i, 3000) end
        assert.are.same({ table.concat(want), "binary" }, got.frag)
        assert.are.same({ "pong ok", "text" }, got.ping)
      end)

      it_if(why, "reports the server's close code and reason", function()
        local got
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/close/4001/going-away"))
          got = { ws:Receive() }
          got.code, got.reason = ws.close_code, ws.close_reason
          got.send = { ws:Send("late") }
        end)
        loop:Run { seconds = 20 }
        assert.is_nil(got[1])
        assert.is_nil(got[2])
        assert.are.equal(4001, got.code)
        assert.are.equal("going-away", got.reason)
        assert.is_nil(got.send[1])
        assert.are.equal(curl.Error, getmetatable(got.send[2]))
      end)

      it_if(why, "a server vanishing mid-message is a clean error, and the multi goes on", function()
        local got = {}
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/vanish"))
          got.vanish = { ws:Receive() }
          local again = assert(l:WebSocket(base .. "/echo"))
          again:Send("still here")
          got.after = { again:Receive() }
          again:Close()
        end)
        loop:Run { seconds = 20 }
        assert.is_nil(got.vanish[1])
        local err = got.vanish[2]
        assert.are.equal(curl.Error, getmetatable(err), tostring(err))
        assert.are.equal("easy", err.kind)
        assert.are.same({ "still here", "text" }, got.after)
      end)

      it_if(why, "100 WebSockets at once in one multi", function()
        local done = 0
        for i = 1, 100 do
          in_task(name, loop, function(l)
            local ws = assert(l:WebSocket(base .. "/echo"))
            for k = 1, 5 do
              local msg = ("%d/%d "):format(i, k) .. pattern(i * 10)
              assert(ws:Send(msg))
              local d = ws:Receive()
              assert(d == msg, "echo mismatch")
            end
            assert(ws:Close())
            done = done + 1
          end)
        end
        loop:Run { seconds = 60 }
        assert.are.equal(100, done)
        assert.are.equal(0, #loop.multi:GetHandles())
      end)

      it_if(why, "refuses misuse with usage errors", function()
        usage_error(function() loop:WebSocket(base .. "/echo") end, "coroutine")
        usage_error(function() loop:WebSocket(42) end, "#1 'url'")
        local errs = {}
        in_task(name, loop, function(l)
          errs.options = { pcall(l.WebSocket, l, base .. "/echo", { options = 5 }) }
        end)
        in_task(name, loop, function(l)
          local ws = assert(l:WebSocket(base .. "/echo"))
          errs.send = { pcall(ws.Send, ws, {}) }
          errs.kind = { pcall(ws.Send, ws, "x", "json") }
          errs.close = { pcall(ws.Close, ws, 5) }
          errs.close_frac = { pcall(ws.Close, ws, 1000.5) }
          errs.close_nan = { pcall(ws.Close, ws, 0 / 0) }
          -- from another transfer's write function (inside libcurl, which
          -- would send the whole message there, waiting on the peer)
          local e = curl.Easy { URL = H.url("/size/10") }
          e:SetOpt_WriteFunction(function()
            errs.in_callback = errs.in_callback or { ws:Send("x") }
          end)
          l:Await(e)
          ws:Close()
        end)
        loop:Run { seconds = 20 }
        assert.is_nil(errs.in_callback[1])
        assert.matches("inside a libcurl callback", tostring(errs.in_callback[2]))
        for _, k in ipairs { "send", "kind", "close", "close_frac", "close_nan", "options" } do
          assert.is_false(errs[k][1])
          assert.are.equal(curl.Error, getmetatable(errs[k][2]), k)
          assert.are.equal("usage", errs[k][2].kind)
        end
      end)
    end)
  end
end)
