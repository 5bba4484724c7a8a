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
end)
