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
