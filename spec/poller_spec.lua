local H = require "helper"
local curl = H.curl

describe("curl.Poller", function()
  it("reports nothing when nothing is watched and honours the timeout", function()
    local p = curl.Poller()
    local n = 0
    for _ in p:Wait(10) do n = n + 1 end
    assert.are.equal(0, n)
    assert.are.equal(0, p:Count())
  end)

  it("watches, re-watches and un-watches sockets libcurl hands out", function()
    local multi = curl.Multi()
    local p = curl.Poller()
    local whats = {}
    multi:SetOpt_SocketFunction(function(_, s, what)
      whats[#whats + 1] = what
      p:Watch(s, what) -- REMOVE is accepted by Watch too
    end)
    local timeout = -1
    multi:SetOpt_TimerFunction(function(ms) timeout = ms end)
    multi:AddHandle(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end })
    local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    local masks = {}
    local deadline = os.time() + 10
    while running > 0 and os.time() <= deadline do
      local fired = false
      for fd, mask in p:Wait(timeout < 0 and 100 or timeout) do
        masks[#masks + 1] = mask
        running = multi:SocketAction(fd, mask); fired = true
      end
      if not fired then running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
    end
    assert.are.equal(0, running)
    assert.are.equal(0, p:Count())
    assert.are.equal(curl.CURL_POLL_REMOVE, whats[#whats])
    local saw_out, saw_in = false, false
    for _, m in ipairs(masks) do
      if m % 4 >= 2 then saw_out = true end
      if m % 2 == 1 then saw_in = true end
    end
    assert.is_true(saw_out and saw_in)
  end)

  it("rejects bad arguments with usage errors", function()
    local p = curl.Poller()
    local ok, err = pcall(p.Watch, p, 5, 99)
    assert.is_false(ok)
    assert.are.equal("poller:Watch", err.method)
    assert.truthy(err.message:find("#2 'what'", 1, true))
    ok, err = pcall(p.Watch, p, 987654, curl.CURL_POLL_IN) -- not an open descriptor
    assert.is_false(ok)
    assert.truthy(err.message:find("epoll_ctl", 1, true))
    ok, err = pcall(p.Wait, p, "x")
    assert.is_false(ok)
    assert.truthy(err.message:find("timeout_ms", 1, true))
    p:Unwatch(987654) -- unknown descriptors are ignored
  end)
end)

describe("curl.Poller as the multi's socket and timer function", function()
  after_each(H.gc)

  it("drives transfers with Dispatch, without Lua socket/timer callbacks", function()
    local multi, poller = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    local sizes = {}
    for i = 1, 30 do
      local e = curl.Easy { URL = H.url("/size/" .. i) }
      e:SetOpt_WriteFunction(function(d) sizes[i] = (sizes[i] or 0) + #d end)
      multi:AddHandle(e)
    end
    local running, n = 1, 0
    local deadline = os.time() + 10
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    while running > 0 and os.time() <= deadline do
      running = poller:Dispatch(multi, 200)
      repeat
        local msg, result, remaining = multi:InfoRead()
        if msg == curl.CURLMSG_DONE then n = n + 1; assert.are.equal(0, result) end
      until remaining == 0
    end
    assert.are.equal(0, running)
    assert.are.equal(30, n)
    for i = 1, 30 do assert.are.equal(i, sizes[i]) end
    assert.are.equal(0, poller:Count())
  end)

  it("is driven through its one descriptor (Fd, Timeout, Dispatch's results)", function()
    -- another loop (here a second Poller) watches only poller:Fd() and
    -- arms its timer from what Dispatch returns
    local multi, poller, outer = curl.Multi(), curl.Poller(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    assert.is_true(poller:Fd() >= 0)
    assert.are.equal(-1, poller:Timeout())
    local sizes = {}
    for i = 1, 20 do
      local e = curl.Easy { URL = H.url("/size/" .. i * 11) }
      e:SetOpt_WriteFunction(function(d) sizes[i] = (sizes[i] or 0) + #d end)
      multi:AddHandle(e)
    end
    local ms = poller:Timeout()
    assert.is_true(ms >= 0 and ms <= 1, "AddHandle asked for a timeout at once")
    outer:Watch(poller:Fd(), curl.CURL_POLL_IN)
    local n, running, deadline = 0, 20, os.time() + 10
    while running > 0 and os.time() <= deadline do
      outer:SetTimer(ms)
      local fired = false
      for fd in outer:Wait(200) do
        assert.is_true(fd == poller:Fd() or fd == curl.CURL_SOCKET_TIMEOUT)
        fired = true
      end
      if fired then
        running, ms = poller:Dispatch(multi, 0)
        assert.are.equal(poller:Timeout() >= 0, ms >= 0)
        repeat
          local msg, result, remaining = multi:InfoRead()
          if msg == curl.CURLMSG_DONE then n = n + 1; assert.are.equal(0, result) end
        until remaining == 0
      end
    end
    assert.are.equal(20, n)
    for i = 1, 20 do assert.are.equal(i * 11, sizes[i]) end
    multi:Close()
    outer:Close()
    poller:Close()
  end)

  it("is a cqueues pollable (pollfd, events, timeout)", function()
    local p = curl.Poller()
    assert.are.equal(p:Fd(), p:pollfd())
    assert.are.equal("r", p:events())
    assert.is_nil(p:timeout())
    p:SetTimer(1500)
    local t = p:timeout()
    assert.is_true(t > 1.4 and t <= 1.5, tostring(t))
    assert.is_true(p:Timeout() > 1400 and p:Timeout() <= 1500)
    p:SetTimer(0)
    assert.are.equal(0, p:Timeout())
    p:SetTimer(-1)
    assert.are.equal(-1, p:Timeout())
    p:Close()
    for _, m in ipairs { "Fd", "Timeout", "pollfd", "events", "timeout" } do
      local ok, err = pcall(p[m], p)
      assert.is_false(ok)
      assert.are.equal("usage", err.kind)
      assert.truthy(err.message:find("closed", 1, true))
    end
  end)

  it("fires libcurl's timer through SetTimer and Wait's iterator", function()
    local multi, poller = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    multi:AddHandle(curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end })
    -- AddHandle set a 0 ms timer: the iterator yields CURL_SOCKET_TIMEOUT
    local got
    for fd, mask in poller:Wait(1000) do got = { fd, mask } end
    assert.are.same({ curl.CURL_SOCKET_TIMEOUT, 0 }, got)
    local t0 = poller:Now()
    poller:SetTimer(50)
    local fired
    for fd in poller:Wait(5000) do fired = fd end
    assert.are.equal(curl.CURL_SOCKET_TIMEOUT, fired)
    assert.is_true(poller:Now() - t0 >= 49)
    multi:Close()
  end)

  it("a callback error comes out of Dispatch unchanged", function()
    local multi, poller = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    local t = {}
    multi:AddHandle(curl.Easy { URL = H.url("/size/5"), WriteFunction = function() error(t) end })
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    local caught
    local deadline = os.time() + 10
    while not caught and os.time() <= deadline do
      local ok, err = pcall(poller.Dispatch, poller, multi, 200)
      if not ok then caught = err end
    end
    assert.are.equal(t, caught)
    local msg, result = multi:InfoRead()
    assert.are.equal(curl.CURLMSG_DONE, msg)
    assert.are.equal(curl.CURLE_WRITE_ERROR, result)
  end)

  describe("fast paths of AddHandle, RemoveHandle and InfoRead", function()
    local function fast_multi()
      local multi, poller = curl.Multi(), curl.Poller()
      multi:SetOpt_SocketFunction(poller)
      multi:SetOpt_TimerFunction(poller)
      return multi, poller
    end

    -- runs the multi until `n` transfers are done; returns {easy = result}
    local function run(multi, poller, n, remove)
      local done, results = 0, {}
      local deadline = os.time() + 15
      multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
      while done < n and os.time() <= deadline do
        poller:Dispatch(multi, 200)
        repeat
          local msg, result, remaining, e = multi:InfoRead()
          if msg == curl.CURLMSG_DONE then
            done = done + 1
            results[e] = result
            if remove then multi:RemoveHandle(e) end
          end
        until remaining == 0
      end
      return results, done
    end

    it("keep an added easy alive without a reference and reuse handles", function()
      local multi, poller = fast_multi()
      local seen = {}
      for i = 1, 20 do
        multi:AddHandle(curl.Easy { URL = H.url("/size/" .. i), Private = i,
          WriteFunction = function(d) seen[i] = (seen[i] or 0) + #d end })
      end
      collectgarbage(); collectgarbage()
      local results, done = run(multi, poller, 20, true)
      assert.are.equal(20, done)
      local n = 0
      for e, r in pairs(results) do
        n = n + 1
        assert.are.equal(curl.CURLE_OK, r)
        local i = e:GetInfo(curl.CURLINFO_PRIVATE)
        assert.are.equal(i, seen[i])
      end
      assert.are.equal(20, n)
      assert.are.equal(0, #multi:GetHandles())
      -- removed (fast) handles go back in, here or in another multi
      local other, p2 = fast_multi()
      local k = 0
      for e in pairs(results) do
        k = k + 1
        if k % 2 == 0 then multi:AddHandle(e) else other:AddHandle(e) end
      end
      assert.are.equal(10, #multi:GetHandles())
      assert.are.equal(10, #other:GetHandles())
      assert.are.equal(10, select(2, run(multi, poller, 10, true)))
      assert.are.equal(10, select(2, run(other, p2, 10, true)))
      multi:Close(); other:Close()
    end)

    it("give the full methods' errors for anything unusual", function()
      local multi, poller = fast_multi()
      local e = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end }
      multi:AddHandle(e)
      local ok, err = pcall(multi.AddHandle, multi, e)
      assert.is_false(ok)
      assert.are.equal("CURLM_ADDED_ALREADY", err.name)
      local other = fast_multi()
      ok, err = pcall(other.AddHandle, other, e)
      assert.is_false(ok)
      assert.matches("another multi", err.detail or err.message)
      ok, err = pcall(other.RemoveHandle, other, e)
      assert.is_false(ok)
      assert.matches("not added to this multi", err.message)
      for _, bad in ipairs { false, 1, {}, multi, poller } do
        ok, err = pcall(multi.AddHandle, multi, bad)
        assert.is_false(ok)
        assert.are.equal("multi:AddHandle", err.method)
        ok, err = pcall(multi.RemoveHandle, multi, bad)
        assert.is_false(ok)
        assert.are.equal("multi:RemoveHandle", err.method)
        if bad ~= multi then
          ok, err = pcall(multi.AddHandle, bad, e)
          assert.is_false(ok)
          assert.matches("bad self", err.message)
        end
      end
      -- a premature removal (no CURLMSG_DONE read yet) takes the full path
      multi:RemoveHandle(e)
      assert.are.equal(0, #multi:GetHandles())
      local closed = curl.Easy { URL = H.url("/size/5") }
      closed:Close()
      ok, err = pcall(multi.AddHandle, multi, closed)
      assert.is_false(ok)
      assert.matches("closed", err.message)
      multi:Close()
      ok, err = pcall(multi.AddHandle, multi, e)
      assert.is_false(ok)
      assert.matches("closed", err.message)
      other:Close()
    end)

    it("leave Lua callbacks of the easy to the full path", function()
      local multi, poller = fast_multi()
      local debug_calls = 0
      local e = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end,
        Verbose = true, DebugFunction = function() debug_calls = debug_calls + 1 end }
      multi:AddHandle(e)
      local results, done = run(multi, poller, 1, false)
      assert.are.equal(1, done)
      assert.are.equal(curl.CURLE_OK, results[e])
      local before = debug_calls
      multi:RemoveHandle(e)
      assert.is_true(before > 0)
      -- the easy can be reset and go through the fast path again
      e:Reset()
      e:SetOpt_URL(H.url("/size/7"))
      e:SetOpt_WriteFunction(function() end)
      multi:AddHandle(e)
      results, done = run(multi, poller, 1, true)
      assert.are.equal(curl.CURLE_OK, results[e])
      multi:Close()
    end)
  end)
end)
