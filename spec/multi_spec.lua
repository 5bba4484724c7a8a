local H = require "helper"
local curl = H.curl

describe("multi socket interface", function()
  after_each(H.gc)

  it("drives 100 concurrent transfers with SocketAction and the Poller", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local bodies = {}
    for i = 1, 100 do
      local e = curl.Easy { URL = H.url("/size/" .. (100 + i)),
        WriteFunction = function(d) bodies[i] = (bodies[i] or "") .. d end,
        Private = i }
      multi:AddHandle(e)
    end
    local done = loop:run { remove = true }
    assert.are.equal(100, #done)
    for _, d in ipairs(done) do
      assert.are.equal(curl.CURLE_OK, d.result)
      assert.are.equal(200, d.easy:GetInfo_ResponseCode())
      local i = d.easy:GetInfo(curl.CURLINFO_PRIVATE)
      assert.are.equal(H.pattern(100 + i), bodies[i])
      assert.are.equal(100 + i, d.easy:GetInfo_SizeDownload_T())
    end
    assert.is_true(loop.socket_calls >= 100)
    assert.is_true(loop.timer_calls >= 1)
    assert.are.equal(0, #multi:GetHandles())
    assert.are.equal(0, loop.poller:Count(), "every socket was un-watched")
    multi:Close()
  end)

  it("returns CURLMSG_NONE, 0, 0, nil from an empty queue", function()
    local multi = curl.Multi()
    local msg, result, remaining, easy = multi:InfoRead()
    assert.are.equal(curl.CURLMSG_NONE, msg)
    assert.are.equal(0, result)
    assert.are.equal(0, remaining)
    assert.is_nil(easy)
  end)

  it("InfoRead's fast path hands anything unusual to the full method", function()
    local multi = curl.Multi()
    local InfoRead = multi.InfoRead
    assert.are.equal(4, select("#", InfoRead(multi)))
    -- extra arguments are ignored, as by every method
    assert.are.equal(curl.CURLMSG_NONE, (InfoRead(multi, 1, 2)))
    for _, bad in ipairs { false, 1, "x", {}, curl.Easy(), curl.Poller() } do
      local ok, err = pcall(InfoRead, bad)
      assert.is_false(ok)
      assert.are.equal("multi:InfoRead", err.method)
      assert.matches("bad self", err.message)
    end
    local ok, err = pcall(InfoRead)
    assert.is_false(ok)
    assert.matches("bad self", err.message)
    multi:Close()
    ok, err = pcall(InfoRead, multi)
    assert.is_false(ok)
    assert.matches("closed", err.message)
  end)

  it("reports a failed transfer through InfoRead with its code", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local ok = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end }
    local bad = curl.Easy { URL = "http://127.0.0.1:1/", WriteFunction = function() end }
    multi:AddHandle(ok); multi:AddHandle(bad)
    local done = loop:run()
    assert.are.equal(2, #done)
    local by = {}
    for _, d in ipairs(done) do by[d.easy] = d.result end
    assert.are.equal(curl.CURLE_OK, by[ok])
    assert.are.equal(curl.CURLE_COULDNT_CONNECT, by[bad])
  end)

  it("hands the socket callback easy, socket, what, userdata and the Assign value", function()
    local multi = curl.Multi()
    local poller = curl.Poller()
    local seen, timeout = {}, -1
    local e = curl.Easy { URL = H.url("/delay/50/10"), WriteFunction = function() end }
    local token = { "socket state" }
    multi:SetOpt_SocketFunction(function(easy, s, what, ud, socketp)
      seen[#seen + 1] = { easy = easy, s = s, what = what, ud = ud, socketp = socketp }
      if what == curl.CURL_POLL_REMOVE then
        poller:Unwatch(s)
      else
        poller:Watch(s, what)
        if socketp == nil then multi:Assign(s, token) end -- allowed from the callback
      end
    end, "my userdata")
    multi:SetOpt_TimerFunction(function(ms) timeout = ms end)
    multi:AddHandle(e)
    local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    local deadline = os.time() + 10
    while running > 0 and os.time() <= deadline do
      local fired = false
      for fd, mask in poller:Wait(timeout < 0 and 100 or timeout) do
        running = multi:SocketAction(fd, mask); fired = true
      end
      if not fired then running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
    end
    assert.are.equal(0, running)
    -- libcurl 8 also watches sockets of its own (the threaded resolver's
    -- notification pair, for the multi's internal handle): easy is nil there
    local ours = {}
    for _, c in ipairs(seen) do
      assert.are.equal("my userdata", c.ud)
      assert.is_number(c.s)
      if c.easy ~= nil then
        assert.are.equal(e, c.easy)
        ours[#ours + 1] = c
      end
    end
    assert.is_true(#ours >= 2)
    assert.is_nil(ours[1].socketp)
    local later_with_token = false
    for i = 2, #ours do
      if ours[i].socketp == token then later_with_token = true end
    end
    assert.is_true(later_with_token, "a later callback got the Assign value")
  end)

  it("lets SocketData / TimerData set the userdata alone", function()
    local multi = curl.Multi()
    local got_t
    multi:SetOpt(curl.CURLMOPT_TIMERDATA, 42)
    multi:SetOpt(curl.CURLMOPT_TIMERFUNCTION, function(ms, ud) got_t = ud end)
    multi:AddHandle(curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end })
    assert.are.equal(42, got_t)
    multi:Close()
  end)

  it("Timeout returns -1 when idle and 0 right after adding", function()
    local multi = curl.Multi()
    assert.are.equal(-1, multi:Timeout())
    multi:AddHandle(curl.Easy { URL = H.url("/size/1") })
    assert.are.equal(0, multi:Timeout())
    multi:Close()
  end)

  it("keeps added easies alive without other references", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local got = 0
    for _ = 1, 5 do
      multi:AddHandle(curl.Easy { URL = H.url("/size/7"), WriteFunction = function(d) got = got + #d end })
    end
    H.gc()
    assert.are.equal(5, #multi:GetHandles())
    local done = loop:run()
    assert.are.equal(5, #done)
    assert.are.equal(35, got)
  end)

  it("drives transfers with Perform and Wait", function()
    local multi = curl.Multi()
    local bodies = {}
    for i = 1, 10 do
      multi:AddHandle(curl.Easy { URL = H.url("/size/" .. i * 10),
        WriteFunction = function(d) bodies[i] = (bodies[i] or "") .. d end })
    end
    local running = multi:Perform()
    local deadline = os.time() + 10
    while running > 0 and os.time() <= deadline do
      multi:Wait(100)
      running = multi:Perform()
    end
    assert.are.equal(0, running)
    local n = 0
    repeat
      local msg, result, remaining = multi:InfoRead()
      if msg == curl.CURLMSG_DONE then n = n + 1; assert.are.equal(0, result) end
    until remaining == 0 and msg == curl.CURLMSG_NONE
    assert.are.equal(10, n)
    for i = 1, 10 do assert.are.equal(H.pattern(i * 10), bodies[i]) end
  end)

  it("Poll returns early on Wakeup and fills revents of extra descriptors", function()
    local multi = curl.Multi()
    multi:Wakeup()
    local n = multi:Poll(5000)
    assert.are.equal(0, n)
    -- stdin-like descriptors: use a socket libcurl does not know (fd 0 may be
    -- closed in CI); an invalid descriptor reports POLLNVAL-free revents 0
    local extra = { { fd = 0, events = curl.CURL_WAIT_POLLOUT } }
    multi:Wait(0, extra)
    assert.is_number(extra[1].revents)
  end)

  it("accepts every CURLMOPT_ of the linked libcurl by name and by constant", function()
    local multi = curl.Multi()
    local longs = { "PIPELINING", "MAXCONNECTS", "MAX_HOST_CONNECTIONS", "MAX_PIPELINE_LENGTH",
                    "MAX_TOTAL_CONNECTIONS", "MAX_CONCURRENT_STREAMS" }
    for _, n in ipairs(longs) do
      multi:SetOpt(curl["CURLMOPT_" .. n], 5)
    end
    multi:SetOpt_Pipelining(curl.CURLPIPE_MULTIPLEX)
    multi:SetOpt_maxconnects(10)
    multi:SetOpt_MAX_HOST_CONNECTIONS(4)
    multi:SetOpt_MaxTotalConnections(20)
    multi:SetOpt(curl.CURLMOPT_CONTENT_LENGTH_PENALTY_SIZE, 1000)
    multi:SetOpt(curl.CURLMOPT_CHUNK_LENGTH_PENALTY_SIZE, 1000)
    multi:SetOpt(curl.CURLMOPT_PIPELINING_SITE_BL, { "a.example", "b.example" })
    multi:SetOpt(curl.CURLMOPT_PIPELINING_SERVER_BL, nil)
    multi:SetOpt_SocketFunction(nil)
    multi:SetOpt_TimerFunction(nil)
    multi:SetOpt_SocketData({})
    multi:SetOpt_TimerData(1)
    -- every CURLMOPT_ constant resolves to a SetOpt_X method
    for k, id in pairs(curl) do
      local name = type(k) == "string" and k:match("^CURLMOPT_(.+)$")
      if name and name ~= "LASTENTRY" then
        assert.is_function(multi["SetOpt_" .. name], name)
        assert.are.equal(id, curl.options.multi[(name:gsub("_", "")):lower()])
      end
    end
  end)

  it("applies an option table at construction", function()
    local multi = curl.Multi { MaxConnects = 3, [curl.CURLMOPT_MAX_TOTAL_CONNECTIONS] = 7 }
    assert.is_userdata(multi)
    local ok, err = pcall(curl.Multi, { NoSuchThing = 1 })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.truthy(err.message:find("NoSuchThing", 1, true))
  end)

  it("moves an easy between multis after RemoveHandle", function()
    local a, b = curl.Multi(), curl.Multi()
    local e = curl.Easy { URL = H.url("/size/3"), WriteFunction = function() end }
    a:AddHandle(e)
    a:RemoveHandle(e)
    local loop = H.loop(b)
    b:AddHandle(e)
    local done = loop:run()
    assert.are.equal(1, #done)
    assert.are.equal(0, done[1].result)
  end)

  it("drives HTTP/2 over TLS to nginx, multiplexed", function()
    local multi = curl.Multi { Pipelining = curl.CURLPIPE_MULTIPLEX }
    local loop = H.loop(multi)
    local size = 0
    for _ = 1, 20 do
      multi:AddHandle(curl.Easy { URL = H.nginx_https .. "/1k", CAInfo = H.ca,
        HTTP_Version = curl.CURL_HTTP_VERSION_2TLS, PipeWait = true,
        WriteFunction = function(d) size = size + #d end })
    end
    local done = loop:run()
    assert.are.equal(20, #done)
    for _, d in ipairs(done) do
      assert.are.equal(0, d.result)
      assert.are.equal(curl.CURL_HTTP_VERSION_2_0, d.easy:GetInfo_HttpVersion())
    end
    assert.are.equal(20 * 1024, size)
  end)

  describe("C paths of SocketAction, AddHandle and RemoveHandle", function()
    -- A small loop with Lua socket and timer functions that checks each
    -- socket callback's easy belongs to its own multi.
    local function lua_loop(multi, mine, wrong)
      local L = { poller = curl.Poller(), timeout = -1, done = 0 }
      multi:SetOpt_SocketFunction(function(easy, s, what)
        if easy ~= nil and not mine[easy] then wrong[#wrong + 1] = easy end
        if what == curl.CURL_POLL_REMOVE then L.poller:Unwatch(s) else L.poller:Watch(s, what) end
        if L.on_socket then L.on_socket() end
      end)
      multi:SetOpt_TimerFunction(function(ms) L.timeout = ms end)
      function L.turn()
        for fd, mask in L.poller:Wait(0) do multi:SocketAction(fd, mask) end
        multi:SocketAction(curl.CURL_SOCKET_TIMEOUT)
        while true do
          local msg, result, remaining, e = multi:InfoRead()
          if msg ~= curl.CURLMSG_DONE then break end
          assert.is_true(mine[e] ~= nil, "InfoRead gave another multi's easy")
          assert.are.equal(curl.CURLE_OK, result)
          multi:RemoveHandle(e)
          L.done = L.done + 1
          if remaining == 0 then break end
        end
      end
      return L
    end

    it("calls on a second multi from inside the first one's callbacks keep them apart", function()
      local A, B = curl.Multi(), curl.Multi()
      local mineA, mineB, wrong, bodies = {}, {}, {}, {}
      local la, lb = lua_loop(A, mineA, wrong), lua_loop(B, mineB, wrong)
      local function easy(mine, i)
        local e = curl.Easy { URL = H.url("/size/" .. (200 + i)),
          WriteFunction = function(d) bodies[i] = (bodies[i] or "") .. d end }
        mine[e] = i
        return e
      end
      for i = 1, 5 do A:AddHandle(easy(mineA, i)) end
      local added = false
      la.on_socket = function()
        -- nested: B's C paths run while A's SocketAction has A pinned
        if not added then
          added = true
          for i = 6, 10 do B:AddHandle(easy(mineB, i)) end
        end
        lb.turn()
      end
      local deadline = os.time() + 20
      while la.done + lb.done < 10 do
        assert.is_true(os.time() <= deadline, "deadline")
        la.turn()
        lb.turn()
        la.poller:Wait(5)
      end
      assert.are.same({}, wrong)
      for i = 1, 10 do assert.are.equal(H.pattern(200 + i), bodies[i]) end
      A:Close(); B:Close()
    end)

    it("raise a callback's error unchanged and leave the easy as the full method does", function()
      local multi = curl.Multi()
      local boom = setmetatable({}, { __tostring = function() return "boom" end })
      local e = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end }
      multi:SetOpt_TimerFunction(function() error(boom) end)
      local ok, err = pcall(multi.AddHandle, multi, e)
      assert.is_false(ok)
      assert.are.equal(boom, err)
      -- libcurl added it: it stays in the multi
      assert.are.equal(1, #multi:GetHandles())
      local again = { pcall(multi.AddHandle, multi, e) }
      assert.is_false(again[1])
      assert.are.equal(curl.CURLM_ADDED_ALREADY, again[2].code)
      multi:SetOpt_TimerFunction(nil)
      local boom2 = {}
      multi:SetOpt_SocketFunction(function() error(boom2) end)
      local ok2, err2
      for _ = 1, 200 do
        ok2, err2 = pcall(multi.SocketAction, multi, curl.CURL_SOCKET_TIMEOUT, 0)
        if not ok2 then break end
        os.execute("sleep 0.01")
      end
      assert.is_false(ok2)
      assert.are.equal(boom2, err2)
      multi:SetOpt_SocketFunction(nil)
      multi:RemoveHandle(e)
      assert.are.equal(0, #multi:GetHandles())
      -- the same from a coroutine (the full method takes calls there)
      multi:SetOpt_TimerFunction(function() error(boom) end)
      local co = coroutine.wrap(function() return pcall(multi.AddHandle, multi, e) end)
      local ok3, err3 = co()
      assert.is_false(ok3)
      assert.are.equal(boom, err3)
      multi:Close()
    end)

    it("refuse bad arguments with the full method's usage errors", function()
      local multi = curl.Multi()
      local function refused(f, method, pattern)
        assert.are.equal(method, H.usage_error(f, pattern).method)
      end
      refused(function() multi:SocketAction(-2, 0) end, "multi:SocketAction", "socket")
      refused(function() multi:SocketAction(3, 8) end, "multi:SocketAction", "mask")
      refused(function() multi:SocketAction(1.5) end, "multi:SocketAction", "socket")
      refused(function() multi:AddHandle(multi) end, "multi:AddHandle", "easy")
      refused(function() multi:RemoveHandle(curl.Easy()) end, "multi:RemoveHandle", "not added")
      assert.are.equal(0, multi:SocketAction(curl.CURL_SOCKET_TIMEOUT))
      assert.are.equal(0, multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, nil))
      multi:Close()
      refused(function() multi:SocketAction(-1, 0) end, "multi:SocketAction", "closed")
    end)
  end)
end)

describe("curl._drain (InfoRead and RemoveHandle in one call, for the loop helpers)", function()
  after_each(H.gc)

  -- a multi with a Poller as its socket and timer function, running `n`
  -- tiny GETs, all keys of the returned `transfers`
  local function fast_multi(n)
    local multi, poller = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    local transfers, easies = {}, {}
    for i = 1, n do
      local e = curl.Easy { URL = H.url("/size/" .. i), WriteFunction = function() end }
      multi:AddHandle(e)
      transfers[e] = true
      easies[i] = e
    end
    return multi, poller, transfers, easies
  end

  -- runs `multi` (Poller as its socket and timer function) until no
  -- transfer runs, taking no message
  local function run_all(multi, poller)
    local deadline = os.time() + 10
    local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    while running > 0 do
      assert.is_true(os.time() <= deadline, "deadline passed")
      running = poller:Dispatch(multi, 100)
    end
  end

  it("takes the transfers that are keys of `transfers`, and leaves the others", function()
    local multi, poller, all, easies = fast_multi(6)
    local mine, other, transfers = {}, {}, {}
    for i, e in ipairs(easies) do
      if i % 2 == 0 then mine[#mine + 1] = e; transfers[e] = all[e] else other[#other + 1] = e end
    end
    local bad = curl.Easy { URL = "http://127.0.0.1:1/", WriteFunction = function() end }
    multi:AddHandle(bad)
    transfers[bad] = true
    run_all(multi, poller)
    local out = { "kept" }
    local n = curl._drain(multi, transfers, out)
    assert.are.equal(8, n)
    assert.are.equal("kept", out[1])
    local got = {}
    for i = 2, 9, 2 do got[out[i]] = out[i + 1] end
    for _, e in ipairs(mine) do assert.are.equal(curl.CURLE_OK, got[e]) end
    assert.are.equal(curl.CURLE_COULDNT_CONNECT, got[bad])
    -- taken ones are removed; the others stay added, their messages gone
    assert.are.equal(3, #multi:GetHandles())
    for _, e in ipairs(other) do assert.is_nil(got[e]) end
    assert.are.equal(0, curl._drain(multi, transfers, out))
    local msg = multi:InfoRead()
    assert.are.equal(curl.CURLMSG_NONE, msg)
    for _, e in ipairs(mine) do multi:AddHandle(e) end -- free to run again
    multi:Close()
    poller:Close()
  end)

  it("refuses arguments that are not a multi and two tables", function()
    local multi = curl.Multi()
    assert.has_error(function() curl._drain(multi, {}, nil) end)
    assert.has_error(function() curl._drain(multi, nil, {}) end)
    assert.has_error(function() curl._drain(curl.Easy(), {}, {}) end)
    assert.has_error(function() curl._drain() end)
    assert.are.equal(0, curl._drain(multi, {}, {}))
    multi:Close()
    assert.has_error(function() curl._drain(multi, {}, {}) end)
  end)

  it("gives the same results from a coroutine (the full method)", function()
    local multi, poller, transfers = fast_multi(3)
    run_all(multi, poller)
    local out = {}
    local n = coroutine.wrap(function() return curl._drain(multi, transfers, out) end)()
    assert.are.equal(6, n)
    for i = 2, 6, 2 do assert.are.equal(curl.CURLE_OK, out[i]) end
    assert.are.equal(0, #multi:GetHandles())
    multi:Close()
    poller:Close()
  end)
end)

describe("curl._enter", function()
  after_each(H.gc)

  -- Transfers driven from the coroutine `co` (AddHandle, SocketAction,
  -- InfoRead, RemoveHandle: C paths when mlua has `co` as its current
  -- thread, full methods when not): every callback runs on `co`.
  local function drive(via_enter)
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local threads = {}
    local function seen() threads[#threads + 1] = coroutine.running() end
    multi:SetOpt_TimerFunction(function(ms) seen(); loop.timeout = ms end)
    multi:SetOpt_SocketFunction(function(_, s, what)
      seen()
      if what == curl.CURL_POLL_REMOVE then loop.poller:Unwatch(s) else loop.poller:Watch(s, what) end
    end)
    local co = coroutine.create(function()
      local function body()
        for i = 1, 3 do
          multi:AddHandle(curl.Easy { URL = H.url("/size/" .. (1000 * i)), WriteFunction = seen })
        end
        loop:run { remove = true }
      end
      if via_enter then curl._enter(body) else body() end
      return "done"
    end)
    local ok, res = coroutine.resume(co)
    assert.is_true(ok, res)
    assert.are.equal("done", res)
    assert.are.equal(3, #loop.done)
    for _, d in ipairs(loop.done) do assert.are.equal(curl.CURLE_OK, d.result) end
    assert.is_true(#threads >= 9) -- (timer, socket and write calls)
    for _, t in ipairs(threads) do assert.are.equal(co, t) end
    multi:Close()
    loop.poller:Close()
  end

  it("runs libcurl's callbacks on the coroutine that made the call", function()
    drive(false)
    drive(true)
  end)

  it("calls f(a), returns nothing, and refuses what is not a function", function()
    local got
    assert.are.equal(0, select("#", curl._enter(function(a) got = a; return 1, 2 end, "x")))
    assert.are.equal("x", got)
    assert.has_error(function() curl._enter(nil) end)
    assert.has_error(function() curl._enter({}) end)
  end)

  it("does not let f yield", function()
    local co = coroutine.wrap(function()
      return pcall(curl._enter, function() coroutine.yield("out") end)
    end)
    local ok, err = co()
    assert.is_false(ok)
    assert.matches("yield", tostring(err))
  end)
end)
