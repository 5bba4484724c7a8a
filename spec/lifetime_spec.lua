local H = require "helper"
local curl = H.curl

describe("lifetimes", function()
  after_each(H.gc)

  it("collects a multi with 50 running transfers, easies referring back, in any order", function()
    local calls = 0
    local refs = {}
    do
      local multi = curl.Multi()
      local loop = H.loop(multi)
      -- callbacks that capture the multi itself
      multi:SetOpt_SocketFunction(function(easy, s, what)
        calls = calls + 1
        local _ = multi
        if what == curl.CURL_POLL_REMOVE then loop.poller:Unwatch(s) else loop.poller:Watch(s, what) end
      end)
      for i = 1, 50 do
        local e = curl.Easy { URL = H.url("/slow/4000/200") }
        e:SetOpt_WriteFunction(function() local _ = e, multi end) -- refers back
        e:SetOpt_Private(multi)
        multi:AddHandle(e)
        refs[#refs + 1] = H.weak(e)
      end
      -- start the transfers and leave them running
      multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
      for _ = 1, 3 do
        for fd, mask in loop.poller:Wait(20) do multi:SocketAction(fd, mask) end
      end
      refs[#refs + 1] = H.weak(multi)
      refs[#refs + 1] = H.weak(loop.poller)
    end
    local before = calls
    H.gc()
    for i, r in ipairs(refs) do assert.is_nil(r[1], "object " .. i .. " not collected") end
    assert.are.equal(before, calls, "no Lua callback ran from __gc")
  end)

  it("collects easies created before their multi, with transfers running", function()
    local refs, calls = {}, 0
    do
      local easies = {}
      for i = 1, 20 do
        easies[i] = curl.Easy { URL = H.url("/slow/4000/200"), WriteFunction = function() end }
        refs[#refs + 1] = H.weak(easies[i])
      end
      local multi = curl.Multi()
      local loop = H.loop(multi)
      multi:SetOpt_TimerFunction(function(ms) calls = calls + 1; loop.timeout = ms end)
      for _, e in ipairs(easies) do
        e:SetOpt_Private(multi)
        multi:AddHandle(e)
      end
      multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
      for _ = 1, 3 do
        for fd, mask in loop.poller:Wait(20) do multi:SocketAction(fd, mask) end
      end
      refs[#refs + 1] = H.weak(multi)
    end
    local before = calls
    H.gc()
    for i, r in ipairs(refs) do assert.is_nil(r[1], "object " .. i .. " not collected") end
    assert.are.equal(before, calls, "no Lua callback ran from __gc")
  end)

  it("collects easies first and the multi later", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local refs = {}
    do
      for _ = 1, 10 do
        local e = curl.Easy { URL = H.url("/slow/2000/100"), WriteFunction = function() end }
        multi:AddHandle(e)
        refs[#refs + 1] = H.weak(e)
      end
      multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    end
    H.gc()
    for _, r in ipairs(refs) do assert.is_not_nil(r[1], "added easies stay alive") end
    multi:Close()
    H.gc()
    for _, r in ipairs(refs) do assert.is_nil(r[1], "released by Close") end
    local _ = loop
  end)

  it("Close detaches callbacks, removes the easies, which stay usable", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local e = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end }
    multi:AddHandle(e)
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    local sc, tc = loop.socket_calls, loop.timer_calls
    multi:Close()
    assert.are.equal(sc, loop.socket_calls, "no socket callback during Close")
    assert.are.equal(tc, loop.timer_calls, "no timer callback during Close")
    multi:Close() -- twice is harmless
    local ok, err = pcall(multi.SocketAction, multi, curl.CURL_SOCKET_TIMEOUT, 0)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.truthy(err.message:find("closed", 1, true))
    -- the easy can join another multi
    local m2 = curl.Multi()
    local l2 = H.loop(m2)
    m2:AddHandle(e)
    l2:run()
    assert.are.equal(1, #l2.done)
    assert.are.equal(0, l2.done[1].result)
  end)

  it("easy:Close removes it from its multi first", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local e = curl.Easy { URL = H.url("/slow/1000/100"), WriteFunction = function() end }
    multi:AddHandle(e)
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    for _ = 1, 3 do for fd, mask in loop.poller:Wait(20) do multi:SocketAction(fd, mask) end end
    e:Close()
    e:Close()
    assert.are.equal(0, #multi:GetHandles())
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    loop:run()
    assert.are.equal(0, loop.poller:Count(), "its socket was un-watched through the callback")
  end)

  it("collects a multi and an easy whose callbacks capture themselves", function()
    local refs = {}
    do
      local multi = curl.Multi()
      multi:SetOpt_TimerFunction(function() local _ = multi end)
      local e = curl.Easy()
      e:SetOpt_WriteFunction(function() return e end)
      e:SetOpt_HeaderFunction(function() return e end, e)
      refs = { H.weak(multi), H.weak(e) }
    end
    assert.is_true(H.collected(refs[1]))
    assert.is_true(H.collected(refs[2]))
  end)

  it("closing a poller is harmless twice and stops its use", function()
    local p = curl.Poller()
    p:Close(); p:Close()
    local ok, err = pcall(p.Wait, p, 0)
    assert.is_false(ok)
    assert.are.equal("poller:Wait", err.method)
  end)

  it("to-be-closed variables close handles (Lua 5.4)", function()
    if _VERSION ~= "Lua 5.4" then return end
    local f = assert(load([[
      local curl = ...
      local m
      do
        local multi <close> = curl.Multi()
        m = multi
      end
      return m
    ]]))
    local m = f(curl)
    local ok, err = pcall(m.Timeout, m)
    assert.is_false(ok)
    assert.truthy(err.message:find("closed", 1, true))
  end)
end)
