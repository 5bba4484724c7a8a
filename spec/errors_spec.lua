local H = require "helper"
local curl = H.curl

-- A multi with three transfers and a Poller loop; `hooks` may replace the
-- socket/timer callbacks' bodies to misbehave once.
local function setup(n, url)
  local multi = curl.Multi()
  local loop = H.loop(multi)
  local easies = {}
  for i = 1, n or 3 do
    easies[i] = curl.Easy { URL = url or H.url("/size/50"), WriteFunction = function() end }
  end
  return multi, loop, easies
end

-- Runs the loop; each error raised by a multi method is recorded and the
-- loop goes on, until every transfer is done.
local function run_collecting(multi, loop)
  local errors = {}
  local deadline = os.time() + 15
  local running = 1
  local function step(f, ...)
    local ok, r = pcall(f, ...)
    if ok then return r end
    errors[#errors + 1] = r
    return 1
  end
  running = step(multi.SocketAction, multi, curl.CURL_SOCKET_TIMEOUT, 0)
  while os.time() <= deadline do
    local fired = false
    local wait = loop.timeout
    if wait < 0 or wait > 100 then wait = 100 end
    for fd, mask in loop.poller:Wait(wait) do
      running = step(multi.SocketAction, multi, fd, mask); fired = true
    end
    if not fired then running = step(multi.SocketAction, multi, curl.CURL_SOCKET_TIMEOUT, 0) end
    loop:drain {}
    if running == 0 and #loop.done >= #multi:GetHandles() then break end
  end
  return errors
end

describe("callback errors", function()
  after_each(H.gc)

  it("an error in the write callback comes out of SocketAction as the same value", function()
    local multi, loop, easies = setup(3)
    local boom = { reason = "boom" }
    easies[2]:SetOpt_WriteFunction(function() error(boom) end)
    for _, e in ipairs(easies) do multi:AddHandle(e) end
    local errors = run_collecting(multi, loop)
    assert.are.equal(1, #errors)
    assert.are.equal(boom, errors[1]) -- the very table, unchanged
    assert.are.equal(3, #loop.done)
    for _, d in ipairs(loop.done) do
      if d.easy == easies[2] then
        assert.are.equal(curl.CURLE_WRITE_ERROR, d.result)
      else
        assert.are.equal(curl.CURLE_OK, d.result)
      end
    end
    -- the multi stays usable
    local again = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end }
    multi:AddHandle(again)
    loop.done = {}
    loop:run()
    assert.are.equal(1, #loop.done)
    assert.are.equal(0, loop.done[1].result)
  end)

  it("a string error keeps its text with no position added", function()
    local multi, loop, easies = setup(1)
    easies[1]:SetOpt_WriteFunction(function() error("plain message", 0) end)
    multi:AddHandle(easies[1])
    local errors = run_collecting(multi, loop)
    assert.are.same({ "plain message" }, errors)
  end)

  it("an error in the socket callback is raised once and the transfers complete", function()
    local multi, loop, easies = setup(3)
    local original
    local failed = false
    original = function(easy, s, what)
      loop.socket_calls = loop.socket_calls + 1
      if what == curl.CURL_POLL_REMOVE then loop.poller:Unwatch(s) else loop.poller:Watch(s, what) end
      if not failed then failed = true; error("socket cb failed") end
    end
    multi:SetOpt_SocketFunction(original)
    for _, e in ipairs(easies) do multi:AddHandle(e) end
    local errors = run_collecting(multi, loop)
    assert.are.equal(1, #errors)
    assert.truthy(tostring(errors[1]):find("socket cb failed", 1, true))
    assert.are.equal(3, #loop.done)
    for _, d in ipairs(loop.done) do assert.are.equal(0, d.result) end
  end)

  it("an error in the timer callback comes out of AddHandle", function()
    local multi = curl.Multi()
    local e = curl.Easy { URL = H.url("/size/1") }
    local err = setmetatable({}, { __tostring = function() return "timer err" end })
    multi:SetOpt_TimerFunction(function() error(err) end)
    local ok, got = pcall(multi.AddHandle, multi, e)
    assert.is_false(ok)
    assert.are.equal(err, got)
    -- the easy was added all the same, and can be removed
    assert.are.equal(1, #multi:GetHandles())
    multi:SetOpt_TimerFunction(nil)
    multi:RemoveHandle(e)
    assert.are.equal(0, #multi:GetHandles())
  end)

  it("only the first of several errors in one call is raised", function()
    local multi, loop, easies = setup(3)
    for i, e in ipairs(easies) do e:SetOpt_WriteFunction(function() error("w" .. i, 0) end) end
    for _, e in ipairs(easies) do multi:AddHandle(e) end
    local errors = run_collecting(multi, loop)
    assert.is_true(#errors >= 1 and #errors <= 3)
    for _, d in ipairs(loop.done) do assert.are.equal(curl.CURLE_WRITE_ERROR, d.result) end
  end)

  it("a timer callback returning -1 gives CURLM_ABORTED_BY_CALLBACK, without a crash", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    multi:SetOpt_TimerFunction(function(ms) loop.timeout = ms; return -1 end)
    local e = curl.Easy { URL = H.url("/size/20"), WriteFunction = function() end }
    local ok, err = pcall(multi.AddHandle, multi, e)
    assert.is_false(ok)
    assert.are.equal("multi", err.kind)
    assert.are.equal(curl.CURLM_ABORTED_BY_CALLBACK, err.code)
    assert.are.equal("CURLM_ABORTED_BY_CALLBACK", err.name)
    assert.are.equal("multi:AddHandle", err.method)
    -- libcurl never saw -1: with a well-behaved timer the transfer completes
    multi:SetOpt_TimerFunction(function(ms) loop.timeout = ms end)
    loop:run()
    assert.are.equal(1, #loop.done)
    assert.are.equal(0, loop.done[1].result)
  end)

  it("a socket callback returning -1 gives CURLM_ABORTED_BY_CALLBACK from SocketAction", function()
    local multi, loop, easies = setup(2)
    local once = false
    multi:SetOpt_SocketFunction(function(easy, s, what)
      if what == curl.CURL_POLL_REMOVE then loop.poller:Unwatch(s) else loop.poller:Watch(s, what) end
      if not once then once = true; return -1 end
    end)
    for _, e in ipairs(easies) do multi:AddHandle(e) end
    local errors = run_collecting(multi, loop)
    assert.are.equal(1, #errors)
    assert.are.equal(curl.CURLM_ABORTED_BY_CALLBACK, errors[1].code)
    assert.are.equal(2, #loop.done)
    for _, d in ipairs(loop.done) do assert.are.equal(0, d.result) end
  end)

  it("an error in easy:Perform's write callback comes out of Perform", function()
    local e = curl.Easy { URL = H.url("/size/100") }
    local t = {}
    e:SetOpt_WriteFunction(function() error(t) end)
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(t, err)
    -- usable again
    local n = 0
    e:SetOpt_WriteFunction(function(d) n = n + #d end)
    e:Perform()
    assert.are.equal(100, n)
  end)

  it("yielding inside a callback is an ordinary callback error", function()
    local e = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() coroutine.yield() end }
    local co = coroutine.create(function() return pcall(e.Perform, e) end)
    local ok, pok, err = coroutine.resume(co)
    assert.is_true(ok)
    assert.is_false(pok)
    assert.truthy(tostring(err):find("yield", 1, true))
  end)
end)

describe("calls from inside callbacks", function()
  after_each(H.gc)

  local function inside_timer(f)
    local multi = curl.Multi()
    local result
    multi:SetOpt_TimerFunction(function(ms) if result == nil then result = { pcall(f, multi) } end end)
    local e = curl.Easy { URL = H.url("/size/1") }
    multi:AddHandle(e)
    multi:SetOpt_TimerFunction(nil)
    return result, multi, e
  end

  it("multi methods get CURLM_RECURSIVE_API_CALL", function()
    for _, name in ipairs { "SocketAction", "Perform", "Timeout", "SetOpt_MaxConnects" } do
      local r = inside_timer(function(m)
        if name == "SocketAction" then return m:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
        if name == "SetOpt_MaxConnects" then return m:SetOpt_MaxConnects(1) end
        return m[name](m)
      end)
      assert.is_false(r[1], name)
      assert.are.equal("multi", r[2].kind, name)
      assert.are.equal(curl.CURLM_RECURSIVE_API_CALL, r[2].code, name)
      assert.truthy(r[2].message:find("inside", 1, true))
    end
  end)

  it("AddHandle and RemoveHandle from a callback are clear errors", function()
    local other = curl.Easy { URL = H.url("/size/1") }
    local r = inside_timer(function(m) return m:AddHandle(other) end)
    assert.are.equal(curl.CURLM_RECURSIVE_API_CALL, r[2].code)
    local r2, multi, e = inside_timer(function(m) return m:GetHandles() end)
    assert.is_true(r2[1])
    local r3
    multi:SetOpt_TimerFunction(function() r3 = { pcall(multi.RemoveHandle, multi, e) } end)
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    assert.is_table(r3)
    assert.is_false(r3[1])
    assert.are.equal(curl.CURLM_RECURSIVE_API_CALL, r3[2].code)
    assert.are.equal(1, #multi:GetHandles())
  end)

  it("Close of the multi or of an easy from inside a callback is refused", function()
    local r, multi, e = inside_timer(function(m) return m:Close() end)
    assert.is_false(r[1])
    assert.are.equal("usage", r[2].kind)
    assert.are.equal("multi:Close", r[2].method)
    local r2
    multi:SetOpt_TimerFunction(function() r2 = { pcall(e.Close, e) } end)
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    assert.is_false(r2[1])
    assert.are.equal("easy:Close", r2[2].method)
    -- both still work
    assert.are.equal(1, #multi:GetHandles())
    multi:SetOpt_TimerFunction(nil)
    e:Close()
    assert.are.equal(0, #multi:GetHandles())
    multi:Close()
  end)

  it("easy:Close and easy:Perform from its own write callback are refused", function()
    local e
    local r1, r2
    e = curl.Easy { URL = H.url("/size/10"), WriteFunction = function()
      r1 = { pcall(e.Close, e) }
      r2 = { pcall(e.Perform, e) }
    end }
    e:Perform()
    assert.is_false(r1[1]); assert.are.equal("easy:Close", r1[2].method)
    assert.is_false(r2[1]); assert.are.equal("easy:Perform", r2[2].method)
    assert.are.equal(200, e:GetInfo_ResponseCode())
  end)

  it("InfoRead inside a callback returns no message", function()
    local r = inside_timer(function(m) return m:InfoRead() end)
    assert.is_true(r[1])
    assert.are.equal(curl.CURLMSG_NONE, r[2])
  end)
end)

describe("usage errors", function()
  it("name the method and the argument, and change nothing", function()
    local multi, e = curl.Multi(), curl.Easy()
    local cases = {
      { multi.SocketAction, multi, "x", 0, "multi:SocketAction", "#1 'socket'" },
      { multi.SocketAction, multi, 1, {}, "multi:SocketAction", "#2 'mask'" },
      { multi.AddHandle, multi, "e", nil, "multi:AddHandle", "#1 'easy'" },
      { multi.RemoveHandle, multi, e, nil, "multi:RemoveHandle", "not added" },
      { multi.SetOpt, multi, "x", 1, "multi:SetOpt", "#1 'option'" },
      { multi.SetOpt, multi, 999999, 1, "multi:SetOpt", "unknown multi option" },
      { multi.SetOpt, multi, curl.CURLMOPT_MAXCONNECTS, "ten", "multi:SetOpt", "CURLMOPT_MAXCONNECTS" },
      { multi.SetOpt, multi, curl.CURLMOPT_SOCKETFUNCTION, 5, "multi:SetOpt", "function, curl.Poller or nil" },
      { multi.Wait, multi, "soon", nil, "multi:Wait", "#1 'timeout_ms'" },
      { multi.Wait, multi, 0, 5, "multi:Wait", "#2 'extra'" },
      { multi.Assign, multi, "s", 1, "multi:Assign", "#1 'socket'" },
      { e.SetOpt, e, curl.CURLOPT_URL, {}, "easy:SetOpt", "CURLOPT_URL" },
      { e.SetOpt, e, curl.CURLOPT_VERBOSE, "yes", "easy:SetOpt", "integer or boolean" },
      { e.SetOpt, e, curl.CURLOPT_HTTPHEADER, { "a", {} }, "easy:SetOpt", "item 2" },
      { e.SetOpt, e, curl.CURLOPT_INFILESIZE_LARGE, 1.5, "easy:SetOpt", "integer" },
      { e.SetOpt, e, curl.CURLOPT_URL, "a\0b", "easy:SetOpt", "NUL" },
      { e.SetOpt, e, -5, 1, "easy:SetOpt", "unknown easy option" },
      { e.GetInfo, e, 12345, nil, "easy:GetInfo", "unknown CURLINFO" },
      { e.SetOpt, e, curl.CURLOPT_WRITEFUNCTION, "f", "easy:SetOpt", "function or nil" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1], c[2], c[3], c[4])
      assert.is_false(ok, c[5])
      assert.are.equal(getmetatable(err), curl.Error)
      assert.are.equal("usage", err.kind, c[5] .. " " .. tostring(err))
      assert.are.equal(c[5], err.method)
      assert.truthy(err.message:find(c[6], 1, true), tostring(err) .. " lacks " .. c[6])
      assert.truthy(tostring(err):find(c[5], 1, true))
    end
    -- a bad self
    local ok, err = pcall(multi.SocketAction, e, 1, 0)
    assert.is_false(ok)
    assert.truthy(err.message:find("expected curl.Multi, got curl.Easy", 1, true))
    -- nothing changed: both still work
    e:SetOpt_URL(H.url("/size/3"))
    e:SetOpt_WriteFunction(function() end)
    e:Perform()
    assert.are.equal(200, e:GetInfo_ResponseCode())
    assert.are.equal(-1, multi:Timeout())
  end)

  it("unknown SetOpt_X / GetInfo_X names are usage errors", function()
    local e = curl.Easy()
    local ok, err = pcall(function() e:SetOpt_NoSuchOption(1) end)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal("easy:SetOpt_NoSuchOption", err.method)
    ok, err = pcall(function() return e:GetInfo_Nope() end)
    assert.is_false(ok)
    assert.are.equal("easy:GetInfo_Nope", err.method)
  end)

  it("a libcurl failure carries code, name, message and detail", function()
    local e = curl.Easy { URL = "http://127.0.0.1:1/", ConnectTimeout_MS = 2000 }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal("easy", err.kind)
    assert.are.equal(curl.CURLE_COULDNT_CONNECT, err.code)
    assert.are.equal("CURLE_COULDNT_CONNECT", err.name)
    assert.are.equal("easy:Perform", err.method)
    assert.truthy(err.message:find(curl.EasyStrError(curl.CURLE_COULDNT_CONNECT), 1, true), err.message)
    assert.truthy(err.message:find("127.0.0.1", 1, true), "error-buffer detail: " .. err.message)
    assert.truthy(tostring(err):find("CURLE_COULDNT_CONNECT", 1, true))
  end)
end)

describe("curl.EasyError / curl.MultiError", function()
  it("make curl.Error values named from the one code table", function()
    local e = curl.EasyError(curl.CURLE_HTTP_RETURNED_ERROR)
    assert.are.equal(curl.Error, getmetatable(e))
    assert.are.same({ kind = "easy", code = 22, name = "CURLE_HTTP_RETURNED_ERROR",
                      message = curl.EasyStrError(22), method = "curl.EasyError" },
                    setmetatable(e, nil))
    -- canonical names, not the shortest alias
    assert.are.equal("CURLE_REMOTE_ACCESS_DENIED", curl.EasyError(9).name)
    assert.are.equal("CURLE_PEER_FAILED_VERIFICATION", curl.EasyError(60).name)
    local t = curl.EasyError(curl.CURLE_OPERATION_TIMEDOUT, "timed out", "loop:Await")
    assert.are.equal("timed out", t.message)
    assert.are.equal("loop:Await", t.method)
    local m = curl.MultiError(curl.CURLM_RECURSIVE_API_CALL)
    assert.are.equal("multi", m.kind)
    assert.are.equal("CURLM_RECURSIVE_API_CALL", m.name)
    assert.are.equal("CURLE_12345", curl.EasyError(12345).name)
  end)

  it("refuse bad arguments with a usage error", function()
    local ok, err = pcall(curl.EasyError, "7")
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal("curl.EasyError", err.method)
    ok, err = pcall(curl.MultiError, 1, 2)
    assert.is_false(ok)
    assert.truthy(err.message:find("'message'", 1, true))
  end)
end)

describe("review regressions", function()
  after_each(H.gc)

  it("a write function set back to nil writes to stdout again, not through NULL", function()
    -- run in a child interpreter: the body goes to its stdout
    local lua = (type(jit) == "table") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local code = ("package.cpath=%q .. package.cpath; local curl = require 'curl';" ..
      "local e = curl.Easy{ URL = %q }; e:SetOpt_WriteFunction(function() end);" ..
      "e:SetOpt_WriteFunction(nil); e:Perform()"):format(H.build_dir .. "/?.so;", H.url("/size/10"))
    local p = io.popen(lua .. " -e " .. ("%q"):format(code))
    local out = p:read("*a")
    p:close()
    assert.are.equal(H.pattern(10), out)
  end)

  it("a userdata at the address of an easy freed without __gc is not taken for it", function()
    -- a child interpreter: removing the metatable leaks the easy on purpose
    local lua = (type(jit) == "table") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
    local code = ([[
      package.cpath = %q .. package.cpath
      local curl = require "curl"
      local multi, poller = curl.Multi(), curl.Poller()
      multi:SetOpt_SocketFunction(poller); multi:SetOpt_TimerFunction(poller)
      local function addr(u)
        local mt = debug.getmetatable(u); debug.setmetatable(u, nil)
        local s = tostring(u):match("0x%%x+"); debug.setmetatable(u, mt); return s
      end
      local e = curl.Easy { URL = "http://127.0.0.1:1/" }
      local a = addr(e)
      debug.setmetatable(e, nil)
      e = nil
      collectgarbage(); collectgarbage()
      local keep = {}
      for _ = 1, 20000 do
        local p = curl.Poller()
        if addr(p) == a then
          local ok, err = pcall(multi.AddHandle, multi, p)
          print(ok, err.message, #multi:GetHandles())
          os.exit(0)
        end
        keep[#keep + 1] = p
        if #keep > 50 then keep = {}; collectgarbage() end
      end
      print("no reuse")
    ]]):format(H.build_dir .. "/?.so;")
    local p = io.popen(lua .. " -e " .. ("%q"):format(code))
    local out = p:read("*a")
    p:close()
    if out ~= "no reuse\n" then -- the allocator did not hand the block out again
      assert.are.equal("false\tbad argument #1 'easy' (expected curl.Easy, got curl.Poller)\t0\n", out)
    end
  end)

  it("POSTFIELDSIZE cannot exceed a kept POSTFIELDS body", function()
    local e = curl.Easy { URL = H.url("/echo"), WriteFunction = function() end }
    e:SetOpt_PostFields("abc")
    local ok, err = pcall(e.SetOpt_PostFieldSize, e, 4000)
    assert.is_false(ok)
    assert.truthy(err.message:find("3 bytes", 1, true))
    ok = pcall(e.SetOpt_PostFieldSize_Large, e, -1)
    assert.is_false(ok)
    e:SetOpt_PostFieldSize(2) -- shorter is fine
    e:Perform()
  end)

  it("numbers outside the C range are usage errors, not truncated", function()
    local m, e, p = curl.Multi(), curl.Easy(), curl.Poller()
    local cases = {
      { m.SocketAction, m, 2 ^ 32 + 3, 0 },
      { m.SocketAction, m, 1, 99 },
      { p.Watch, p, 2 ^ 32 + 1, 1 },
      { e.SetOpt, e, 2 ^ 32 + curl.CURLOPT_URL, "http://x/" },
      { m.Wait, m, 2 ^ 31 },
      { curl.EasyStrError, 2 ^ 40 },
      { m.Assign, m, -5, 1 },
      { e.Pause, e, 99 },
    }
    for i, c in ipairs(cases) do
      local ok, err = pcall(c[1], c[2], c[3], c[4])
      assert.is_false(ok, "case " .. i)
      assert.are.equal("usage", err.kind, "case " .. i .. ": " .. tostring(err))
    end
  end)

  it("a reused descriptor number is watched again after its multi closed", function()
    local poller = curl.Poller()
    local function mk()
      local m = curl.Multi()
      m:SetOpt_SocketFunction(function(_, s, what)
        if what == curl.CURL_POLL_REMOVE then poller:Unwatch(s) else poller:Watch(s, what) end
      end)
      return m
    end
    local m1 = mk()
    m1:AddHandle(curl.Easy { URL = H.url("/delay/300/5"), WriteFunction = function() end })
    m1:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    m1:Close() -- no REMOVE is heard: the poller keeps a stale entry
    local m2 = mk()
    local n = 0
    m2:AddHandle(curl.Easy { URL = H.url("/size/100"), WriteFunction = function(d) n = n + #d end })
    local running = m2:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    local deadline = os.time() + 10
    while running > 0 and os.time() <= deadline do
      local fired = false
      for fd, mask in poller:Wait(100) do running = m2:SocketAction(fd, mask); fired = true end
      if not fired then running = m2:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
    end
    assert.are.equal(0, running)
    assert.are.equal(100, n)
  end)

  it("a close-socket function forces FORBID_REUSE: no connection outlives its easy", function()
    local closed = 0
    local m = curl.Multi()
    local loop = H.loop(m)
    local e = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end,
      CloseSocketFunction = function() closed = closed + 1 end }
    local ok, err = pcall(e.SetOpt_Forbid_Reuse, e, false)
    assert.is_false(ok)
    assert.truthy(err.message:find("CLOSESOCKETFUNCTION", 1, true))
    m:AddHandle(e)
    loop:run()
    assert.are.equal(1, closed, "closed when the transfer ended")
    m:RemoveHandle(e)
    e:Close()
    H.gc()
    m:Close() -- would call the close-socket callback of a freed easy otherwise
    assert.are.equal(1, closed)
  end)
end)
