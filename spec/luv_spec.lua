-- Drives the multi socket interface from luv (libuv): one uv_poll per
-- socket, one uv_timer, SocketAction never called from inside the timer
-- callback's libcurl call (a 0 ms timeout is scheduled on the loop).
local H = require "helper"
local curl = H.curl
local ok_uv, uv = pcall(require, "luv")

local function luv_driver(multi)
  local D = { polls = {}, done = {}, max_polls = 0 }
  local timer = uv.new_timer()
  local function check_done()
    repeat
      local msg, result, remaining, easy = multi:InfoRead()
      if msg == curl.CURLMSG_DONE then
        D.done[#D.done + 1] = { easy = easy, result = result }
        multi:RemoveHandle(easy)
      end
    until remaining == 0
  end
  local function on_poll(fd)
    return function(err, events)
      local mask = 0
      if err then mask = curl.CURL_CSELECT_ERR end
      if events and events:find("r") then mask = mask + curl.CURL_CSELECT_IN end
      if events and events:find("w") then mask = mask + curl.CURL_CSELECT_OUT end
      multi:SocketAction(fd, mask)
      check_done()
    end
  end
  multi:SetOpt_SocketFunction(function(easy, fd, what)
    local p = D.polls[fd]
    if what == curl.CURL_POLL_REMOVE then
      if p then p:stop(); p:close(); D.polls[fd] = nil end
      return
    end
    if not p then
      p = uv.new_socket_poll(fd)
      D.polls[fd] = p
      local n = 0
      for _ in pairs(D.polls) do n = n + 1 end
      if n > D.max_polls then D.max_polls = n end
    end
    local ev = (what == curl.CURL_POLL_IN and "r") or (what == curl.CURL_POLL_OUT and "w") or "rw"
    p:start(ev, on_poll(fd))
  end)
  multi:SetOpt_TimerFunction(function(ms)
    timer:stop()
    if ms >= 0 then
      timer:start(ms, 0, function()
        multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
        check_done()
      end)
    end
  end)
  function D.close()
    timer:stop(); timer:close()
    for fd, p in pairs(D.polls) do p:stop(); p:close(); D.polls[fd] = nil end
    uv.run("nowait") -- let the handles finish closing (luv segfaults otherwise at exit)
  end
  return D
end

describe("driving from luv", function()
  if not ok_uv then
    pending("luv is not installed for " .. H.feature)
    return
  end

  it("curl.loop.luv: a script that ends after loop timers, or loop:Close() from one, exits cleanly", function()
    -- found by review: luv (1.44) crashes at exit on handles closed with
    -- no uv.run after them (timers closed as they fired or were cancelled,
    -- or by loop:Close() from a uv callback inside loop:Run)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.cpath = %q .. package.cpath\n"):format(H.build_dir .. "/?.so;"))
    f:write(("package.path = %q .. package.path\n"):format(os.getenv("CURL_REPO") .. "/lua/?.lua;"))
    f:write([[
      local loop = require("curl.loop.luv").new(require "luv")
      loop:After(5000, function() end):Cancel()
      loop:After(5, function() end)
      loop:After(10, function() loop:Close() end)
      loop:Run()
    ]])
    f:close()
    local r1, _, r3 = os.execute(("timeout -k 5 60 %s %s > /dev/null 2>&1"):format(H.lua, script))
    os.remove(script)
    -- (5.1 and LuaJIT: the status; 5.2 on: true or nil, how, the code)
    assert.is_true(r1 == 0 or (r1 == true and r3 == 0), "exit status " .. tostring(r1) .. " " .. tostring(r3))
  end)

  -- Runs `code` (with `loop`, `uv`, `curl` and `URL` set) in a child
  -- interpreter under `timeout`; returns its exit status and output.
  local function child(code)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.cpath = %q .. package.cpath\n"):format(H.build_dir .. "/?.so;"))
    f:write(("package.path = %q .. package.path\n"):format(os.getenv("CURL_REPO") .. "/lua/?.lua;"))
    f:write(("URL = %q\n"):format(H.url("/slow/5000/100")))
    f:write('curl = require "curl"; uv = require "luv"; loop = require("curl.loop.luv").new(uv)\n')
    f:write(code)
    f:close()
    local p = io.popen(("timeout -k 5 60 %s %s 2>&1; echo \"exit=$?\""):format(H.lua, script))
    local out = p:read("*a")
    p:close()
    os.remove(script)
    return tonumber(out:match("exit=(%d+)%s*$")), out
  end

  it("curl.loop.luv: no hang, abort or crash at exit from what a loop hunt found", function()
    local cases = {
      -- a chain of After(0): libuv ran each 0 ms timer in the same pass
      [[loop:After(0, function() local function again() loop:After(0, again) end again() end)
        local ok, err = pcall(loop.Run, loop, { seconds = 0.3 })
        assert(not ok and err.code == curl.CURLE_OPERATION_TIMEDOUT, tostring(err))
        loop:Close() print("ok")]],
      -- a uv.stop() left pending ended loop:Close()'s run of the uv loop
      -- before the handles closed (luv 1.44 crashes at exit then)
      [[uv.stop() loop:Close() print("ok")]],
      -- the Poller's __gc by hand: loop:Close() raised inside and left its
      -- handles closing
      [[local p = loop.backend.poller debug.getmetatable(p).__gc(p)
        assert(pcall(loop.Close, loop)) print("ok")]],
      -- uv.walk closing every handle (a shutdown idiom) while a transfer
      -- runs: libuv asserted on a stop of the closing poll handle
      [[loop:Add(curl.Easy { URL = URL, WriteFunction = function() end }, function() end)
        uv.walk(function(h) if not h:is_closing() then h:close() end end)
        assert(pcall(loop.Close, loop)) uv.run("nowait") print("ok")]],
      [[uv.walk(function(h) if not h:is_closing() then h:close() end end)
        loop:Add(curl.Easy { URL = URL, WriteFunction = function() end }, function() end)
        pcall(loop.Run, loop, { seconds = 0.3 })
        assert(pcall(loop.Close, loop)) uv.run("nowait") print("ok")]],
    }
    for i, code in ipairs(cases) do
      local status, out = child(code)
      assert.are.equal(0, status, "case " .. i .. ": " .. out)
      assert.matches("ok", out, 1, true)
    end
  end)

  it("curl.loop.luv: loop:After counts from the call, not from the last uv.run", function()
    -- found by CI under valgrind: libuv starts a timer from the loop's
    -- cached time, as old as the last uv.run; after 1.2 s of blocking work
    -- an After(1000) fired at once
    local loop = require("curl.loop.luv").new(uv)
    uv.update_time()
    os.execute("sleep 1.2")
    local fired = false
    loop:After(1000, function() fired = true end)
    local ok, err = pcall(loop.Run, loop, { seconds = 0.3 })
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_OPERATION_TIMEDOUT, err.code)
    assert.is_false(fired)
    loop:Close()
  end)

  it("curl.loop.luv: the loop's Poller cannot be closed behind its back", function()
    -- found by review: the error came out of a uv callback, where luv ends
    -- the process; and libuv aborts on a watched descriptor closed
    local loop = require("curl.loop.luv").new(uv)
    local got, closing
    loop:Add(curl.Easy { URL = H.url("/slow/2000/200"), WriteFunction = function() end },
      function(_, code) got = code end)
    loop:After(100, function() closing = { pcall(loop.backend.poller.Close, loop.backend.poller) } end)
    loop:Run { seconds = 10 }
    assert.is_false(closing[1])
    assert.matches("belongs to a curl.loop", tostring(closing[2]))
    assert.are.equal(curl.CURLE_OK, got)
    loop:Close()
    loop.backend.poller:Close() -- (the loop closed it: twice is harmless)
  end)

  it("completes 200 transfers to nginx, each with the right byte count", function()
    local multi = curl.Multi()
    local D = luv_driver(multi)
    local sizes = {}
    local files = { "100b", "1k", "16k" }
    local want = { ["100b"] = 100, ["1k"] = 1024, ["16k"] = 16384 }
    for i = 1, 200 do
      local f = files[i % 3 + 1]
      local e = curl.Easy { URL = H.nginx_http .. "/" .. f, Private = want[f] }
      e:SetOpt_WriteFunction(function(d) sizes[e] = (sizes[e] or 0) + #d end)
      multi:AddHandle(e)
    end
    local guard = uv.new_timer()
    guard:start(20000, 0, function() uv.stop() end)
    local idle = uv.new_check()
    idle:start(function() if #D.done == 200 then uv.stop() end end)
    uv.run("default")
    guard:stop(); guard:close(); idle:stop(); idle:close()
    D.close()
    assert.are.equal(200, #D.done)
    for _, d in ipairs(D.done) do
      assert.are.equal(curl.CURLE_OK, d.result)
      assert.are.equal(d.easy:GetInfo_Private(), sizes[d.easy])
      assert.are.equal(d.easy:GetInfo_Private(), d.easy:GetInfo_SizeDownload_T())
    end
    assert.is_true(D.max_polls > 1, "transfers ran concurrently")
    multi:Close()
  end)

end)
