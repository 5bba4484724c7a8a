-- The pure-Lua event-loop helpers (lua/curl/loop*.lua) on every backend
-- available for this interpreter: the built-in Poller, luv and cqueues.
local H = require "helper"
local curl = H.curl

local backends = H.loop_backends
local in_task = H.in_task

for _, name in ipairs(backends) do
  describe("curl.loop." .. name, function()
    local new = require("curl.loop." .. name).new
    local loop
    before_each(function() loop = new() end)
    after_each(function() loop:Close(); loop = nil; H.gc() end)

    it("calls a completion callback per transfer", function()
      local done, sizes = {}, {}
      for i = 1, 60 do
        local e = curl.Easy { URL = H.url("/size/" .. i * 7) }
        e:SetOpt_WriteFunction(function(d) sizes[e] = (sizes[e] or 0) + #d end)
        loop:Add(e, function(easy, result, err)
          done[#done + 1] = { easy = easy, result = result, err = err, want = i * 7 }
        end)
      end
      assert.are.equal(60, loop:Active())
      loop:Run { seconds = 20 }
      assert.are.equal(60, #done)
      for _, d in ipairs(done) do
        assert.are.equal(curl.CURLE_OK, d.result)
        assert.is_nil(d.err)
        assert.are.equal(d.want, sizes[d.easy])
      end
      assert.are.equal(0, loop:Active())
      assert.are.equal(0, #loop.multi:GetHandles())
    end)

    it("lets coroutines wait for their transfer while others run", function()
      local log = {}
      for i = 1, 5 do
        in_task(name, loop, function(l)
          local body = {}
          local ok, e = l:Await(curl.Easy { URL = H.url("/delay/" .. (50 * i) .. "/" .. i),
            WriteFunction = function(d) body[#body + 1] = d end })
          log[#log + 1] = { i = i, ok = ok, code = ok and e:GetInfo_ResponseCode(), body = table.concat(body) }
          local ok2, err = l:Await(curl.Easy { URL = "http://127.0.0.1:1/" })
          log[#log + 1] = { i = i, ok = ok2, err = err }
        end)
      end
      loop:Run { seconds = 20 }
      assert.are.equal(10, #log)
      local firsts = 0
      for _, r in ipairs(log) do
        if r.body then
          firsts = firsts + 1
          assert.is_true(r.ok)
          assert.are.equal(200, r.code)
          assert.are.equal(H.pattern(r.i), r.body)
        else
          assert.is_false(r.ok)
          assert.are.equal("CURLE_COULDNT_CONNECT", r.err.name)
          assert.are.equal(curl.Error, getmetatable(r.err))
        end
      end
      assert.are.equal(5, firsts)
      -- the short delays finished first: they ran concurrently
      assert.are.equal(1, log[1].i)
    end)

    it("Await outside a coroutine is a clear error", function()
      if name == "cqueues" then return end
      local ok, err = pcall(loop.Await, loop, curl.Easy { URL = H.url("/size/1") })
      assert.is_false(ok)
      assert.truthy(tostring(err.message):find("coroutine", 1, true))
    end)

    it("applies per-transfer timeouts", function()
      local res = {}
      loop:Add(curl.Easy { URL = H.url("/delay/3000/5"), WriteFunction = function() end },
        { timeout_ms = 200, on_done = function(_, r) res.slow = r end })
      loop:Add(curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end },
        { timeout_ms = 5000, on_done = function(_, r) res.fast = r end })
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_OPERATION_TIMEDOUT, res.slow)
      assert.are.equal(curl.CURLE_OK, res.fast)
    end)

    it("cancels transfers, also from inside their own callbacks", function()
      local res, got = {}, 0
      local a = curl.Easy { URL = H.url("/slow/40000/100") }
      a:SetOpt_WriteFunction(function(d)
        got = got + #d
        loop:Cancel(a) -- inside a libcurl callback: deferred until it returns
      end)
      loop:Add(a, function(_, r, err) res.a = { r, err } end)
      local b = curl.Easy { URL = H.url("/delay/5000/5"), WriteFunction = function() end }
      loop:Add(b, function(_, r, err) res.b = { r, err } end)
      loop:Add(curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end },
        function() loop:Cancel(b) end) -- from a completion callback
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, res.a[1])
      assert.are.equal("cancelled", res.a[2].message)
      assert.is_true(got > 0 and got < 40000)
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, res.b[1])
      assert.are.equal(0, #loop.multi:GetHandles())
    end)

    it("starts transfers from completion callbacks (chains)", function()
      local order = {}
      local function step(i)
        if i > 5 then return end
        loop:Add(curl.Easy { URL = H.url("/size/" .. i), WriteFunction = function() end },
          function(_, r) order[#order + 1] = i; assert(r == 0); step(i + 1) end)
      end
      step(1)
      loop:Run { seconds = 10 }
      assert.are.same({ 1, 2, 3, 4, 5 }, order)
    end)

    it("raises callback errors from Run as the same value, transfers go on", function()
      local boom = { "boom" }
      local res = {}
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() error(boom) end })
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end },
        function(_, r) res.good = r end)
      local ok, err = pcall(loop.Run, loop, { seconds = 10 })
      assert.is_false(ok)
      assert.are.equal(boom, err)
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_OK, res.good)
    end)

    it("gives a callback error to the transfer's on_done as err.cause instead", function()
      local boom = { "boom" }
      local res = {}
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() error(boom) end },
        function(_, r, err) res.bad, res.cause = r, err.cause end)
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_WRITE_ERROR, res.bad)
      assert.are.equal(boom, res.cause)
    end)

    it("sends callback errors to on_error when set", function()
      local seen = {}
      loop.on_error = function(e) seen[#seen + 1] = e end
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() error("w", 0) end })
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end },
        function() error("done cb", 0) end)
      loop:Run { seconds = 10 }
      table.sort(seen)
      assert.are.same({ "done cb", "w" }, seen)
    end)

    it("Close cancels what runs", function()
      local res
      loop:Add(curl.Easy { URL = H.url("/delay/3000/5"), WriteFunction = function() end },
        function(_, r) res = r end)
      loop.backend:step(50)
      loop:Close()
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, res)
      loop = new() -- for after_each
    end)
  end)
end

describe("curl.loop misuse (second review)", function()
  after_each(H.gc)

  it("refuses adding a running easy twice, and a loop closed from on_done ends cleanly", function()
    local loop = require("curl.loop.poller").new()
    local e = curl.Easy { URL = H.url("/delay/100/1"), WriteFunction = function() end }
    local first
    loop:Add(e, function(_, r) first = r end)
    local ok, err = pcall(loop.Add, loop, e, function() end)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    loop:Add(curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end }, function() loop:Close() end)
    loop:Run { seconds = 10 }
    assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, first)
  end)

  it("an on_done error still resumes the awaiting coroutine", function()
    local loop = require("curl.loop.poller").new()
    local resumed
    coroutine.wrap(function()
      resumed = { loop:Await(curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end },
                             function() error("boom", 0) end) }
    end)()
    local ok, err = pcall(loop.Run, loop, { seconds = 10 })
    assert.is_false(ok)
    assert.are.equal("boom", err)
    assert.is_true(resumed[1])
    loop:Close()
  end)
end)

-------------------------------------------------------------- fuzz findings
-- Misuse found by fuzz/fuzz.lua: every case must end in a curl.Error usage
-- error (or be coped with), never a raw Lua error, a dead process or a
-- poisoned event loop.

local function usage(err, method, pattern)
  assert.are.equal(curl.Error, getmetatable(err), "a curl.Error: " .. tostring(err))
  assert.are.equal("usage", err.kind)
  assert.are.equal(-1, err.code)
  assert.are.equal("USAGE", err.name)
  assert.are.equal(method, err.method)
  if pattern then assert.truthy(err.message:find(pattern, 1, true), err.message) end
end

-- Steps the loop's backend until cond() holds; an error at the deadline.
local function drive_until(loop, cond, seconds)
  local stop = loop.backend:now() + (seconds or 5) * 1000
  while not cond() do
    if loop.backend:now() > stop then error("drive_until: deadline passed", 2) end
    loop.backend:step(20)
  end
end

-- Runs `code` in a child interpreter of this kind (with this build and
-- lua/ on the paths); returns its output and exit status.
local function child(code)
  local lua = (type(jit) == "table") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  local prelude = ("package.cpath = %q .. package.cpath; package.path = %q .. package.path\n")
    :format(H.build_dir .. "/?.so;", H.root .. "/lua/?.lua;")
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(prelude, code)
  f:close()
  local p = io.popen(lua .. " " .. name .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("*a")
  p:close()
  os.remove(name)
  return out, tonumber(out:match("exit=(%d+)%s*$"))
end

local silent_port
do
  local chunks = {}
  local e = curl.Easy { URL = H.url("/faults"), TimeoutMS = 5000,
                        WriteFunction = function(d) chunks[#chunks + 1] = d end }
  e:Perform()
  e:Close()
  silent_port = table.concat(chunks):match("silent=(%d+)")
end

for _, name in ipairs(backends) do
  describe("curl.loop." .. name .. " misuse (fuzz findings)", function()
    local new = require("curl.loop." .. name).new
    local loop
    before_each(function() loop = new() end)
    after_each(function() loop:Close(); loop = nil; H.gc() end)

    local function ok_easy(path)
      return curl.Easy { URL = H.url(path or "/size/10"), WriteFunction = function() end }
    end

    it("Add and Await refuse bad arguments with a usage error and change nothing", function()
      local e = ok_easy()
      for _, bad in ipairs { 5, "x", true } do
        local ok, err = pcall(loop.Add, loop, e, bad)
        assert.is_false(ok)
        usage(err, "loop:Add", ("bad argument #2 'on_done' (expected function or table, got %s)"):format(type(bad)))
      end
      local ok, err = pcall(loop.Add, loop, e, { on_done = 5 })
      assert.is_false(ok)
      usage(err, "loop:Add", "'opts.on_done' (expected function or nil, got number)")
      ok, err = pcall(loop.Add, loop, e, { timeout_ms = "soon" })
      assert.is_false(ok)
      usage(err, "loop:Add", "'opts.timeout_ms' (expected number or nil, got string)")
      ok, err = pcall(loop.Add, loop, nil, function() end)
      assert.is_false(ok)
      usage(err, "loop:Add", "bad argument #1 'easy' (expected curl.Easy, got nil)")
      assert.are.equal(0, loop:Active())
      assert.are.equal(0, #loop.multi:GetHandles())
      -- Await, from where it may be called
      local awaited = {}
      in_task(name, loop, function(l)
        for _, bad in ipairs { 5, "x" } do
          local ok2, err2 = pcall(l.Await, l, e, bad)
          awaited[#awaited + 1] = { ok2, err2 }
        end
      end)
      loop:Run { seconds = 5 }
      assert.are.equal(2, #awaited)
      for _, a in ipairs(awaited) do
        assert.is_false(a[1])
        usage(a[2], "loop:Await", "bad argument #2 'on_done' (expected function or table")
      end
      assert.are.equal(0, loop:Active())
      -- the loop works as before
      local res
      loop:Add(e, function(_, r) res = r end)
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_OK, res)
    end)

    it("Close copes with on_done callbacks that start transfers: refused, all cancelled", function()
      local results, refused = {}, {}
      for i = 1, 20 do
        loop:Add(ok_easy("/delay/3000/1"), function(_, r)
          results[#results + 1] = r
          local ok, err = pcall(loop.Add, loop, ok_easy(), function() end)
          refused[#refused + 1] = { ok, err }
        end)
        if i == 10 then loop.backend:step(10) end -- some started, some not yet
      end
      loop:Close()
      assert.are.equal(20, #results)
      for i = 1, 20 do
        assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, results[i])
        assert.is_false(refused[i][1])
        usage(refused[i][2], "loop:Add", "the loop is closed")
      end
      assert.are.equal(0, loop:Active())
      local ok, err = pcall(loop.Add, loop, ok_easy(), function() end)
      assert.is_false(ok)
      usage(err, "loop:Add", "the loop is closed")
      loop:Run { seconds = 1 } -- nothing left (no error)
    end)

    it("Run from inside the loop is a usage error, the outer Run goes on", function()
      local inner = {}
      local function try_run(where)
        if inner[where] == nil then
          inner[where] = { pcall(loop.Run, loop, { seconds = 1 }) }
        end
      end
      local res = {}
      loop:Add(curl.Easy { URL = H.url("/size/100"), WriteFunction = function() try_run("write") end },
        function(_, r) res.first = r; try_run("on_done") end)
      in_task(name, loop, function(l)
        local ok = l:Await(ok_easy("/size/5"))
        res.awaited = ok
        try_run("coroutine")
      end)
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_OK, res.first)
      assert.is_true(res.awaited)
      for _, where in ipairs { "write", "on_done", "coroutine" } do
        assert.is_table(inner[where], where)
        assert.is_false(inner[where][1], where)
        usage(inner[where][2], "loop:Run", "Run cannot nest")
      end
      assert.are.equal(0, loop:Active())
    end)

    it("Run{seconds} ends at its deadline while a transfer waits and libcurl has no timer", function()
      -- found by a hook hunt: on luv, uv.run("once") waited for the
      -- Poller's descriptor alone (libcurl had no timer: a server that never
      -- answers, no TIMEOUT), so Run never came back to check its deadline
      assert.truthy(silent_port, "fixture fault ports")
      local e = curl.Easy { URL = "http://127.0.0.1:" .. silent_port .. "/", WriteFunction = function() end }
      local done
      loop:Add(e, function(_, r) done = r end)
      drive_until(loop, function() return e:GetInfo_ConnectTime_T() > 0 end)
      local late = false -- (a loop timer long after the deadline: it would wake a stuck Run)
      local watchdog = loop:After(20000, function() late = true end)
      local ok, err = pcall(loop.Run, loop, { seconds = 0.3 })
      assert.is_false(ok)
      assert.are.equal(curl.CURLE_OPERATION_TIMEDOUT, err.code)
      assert.is_false(late)
      watchdog:Cancel()
      loop:Close()
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, done)
    end)

    -- (luv: in a child interpreter below; before the fix the process died)
    local it_in_process = name == "luv" and function() end or it
    it_in_process("Run raises a usage error when the multi was closed behind its back, and ends its transfers", function()
      assert.truthy(silent_port, "fixture fault ports")
      local e = curl.Easy { URL = "http://127.0.0.1:" .. silent_port .. "/", WriteFunction = function() end }
      local done
      loop:Add(e, function(_, r, err) done = { r, err } end)
      -- connected: the backend watches the socket
      drive_until(loop, function() return e:GetInfo_ConnectTime_T() > 0 end)
      local other -- another task of the event loop (cqueues: same controller)
      if name == "cqueues" then
        loop.backend.cq:wrap(function() require("cqueues").sleep(0.05); other = true end)
      end
      loop.multi:Close()
      local ok, err = pcall(loop.Run, loop, { seconds = 2 })
      assert.is_false(ok)
      usage(err, "loop:Run", "closed behind its back")
      assert.are.equal(0, loop:Active())
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, done[1])
      usage(done[2], "loop:Run", "closed behind its back")
      -- until Close: Run, Add and Await say so
      ok, err = pcall(loop.Run, loop, { seconds = 1 })
      assert.is_false(ok)
      usage(err, "loop:Run", "closed behind its back")
      ok, err = pcall(loop.Add, loop, ok_easy(), function() end)
      assert.is_false(ok)
      usage(err, "loop:Add", "closed behind its back")
      if name == "cqueues" then
        local cq = loop.backend.cq
        local stop = loop.backend:now() + 2000
        while not other and loop.backend:now() < stop do assert(cq:step(0.05)) end
        assert.is_true(other)
      end
      loop:Close()
    end)

    it("copes with a timer function replaced behind its back (Run arms the timer from multi:Timeout)", function()
      local res = {}
      loop.multi:SetOpt_TimerFunction(function() end)
      -- ends only by libcurl's timer: a server that never answers
      loop:Add(curl.Easy { URL = "http://127.0.0.1:" .. silent_port .. "/", WriteFunction = function() end },
        { timeout_ms = 300, on_done = function(_, r) res.silent = r end })
      loop:Add(ok_easy("/size/5"), function(_, r) res.fast = r end)
      loop:Run { seconds = 5 }
      assert.are.equal(curl.CURLE_OPERATION_TIMEDOUT, res.silent)
      assert.are.equal(curl.CURLE_OK, res.fast)
    end)

    it("a yield from an on_done fails there, like any callback's, and goes nowhere", function()
      local token, got = {}, nil
      loop:Add(ok_easy("/size/5"), function() got = { pcall(coroutine.yield, token) } end)
      loop:Run { seconds = 5 }
      assert.is_table(got)
      assert.is_false(got[1])
      assert.are_not.equal(token, got[2])
      assert.are.equal(0, loop:Active())
    end)

    it("a yield from an on_done fails there also when the loop runs in a coroutine", function()
      if name == "cqueues" then return end -- Run steps the controller from outside it
      local token, got, got2 = {}, nil, nil
      local co = coroutine.create(function()
        loop:Add(ok_easy("/size/5"), function() got = { pcall(coroutine.yield, token) } end)
        loop:Run { seconds = 5 }
        loop:Add(ok_easy("/delay/3000/1"), function() got2 = { pcall(coroutine.yield, token) } end)
        loop:Close() -- its on_done runs from Close
        return "finished"
      end)
      local ok, r = coroutine.resume(co)
      assert.is_true(ok, tostring(r))
      assert.are.equal("finished", r)
      for _, g in ipairs { got, got2 } do
        assert.is_table(g)
        assert.is_false(g[1])
        assert.are_not.equal(token, g[2])
      end
    end)

    it("Cancel ends a transfer whose easy was removed behind the loop's back", function()
      local e, res = ok_easy("/delay/3000/1"), nil
      loop:Add(e, function(_, r) res = r end)
      loop.multi:RemoveHandle(e)
      loop:Cancel(e)
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, res)
      assert.are.equal(0, loop:Active())
    end)

    if name == "luv" then
      it("an error inside a uv callback never reaches luv (the process goes on)", function()
        local out, status = child(([[
          local curl = require "curl"
          local uv = require "luv"
          local loop = require("curl.loop.luv").new(uv)
          local e = curl.Easy { URL = "http://127.0.0.1:%s/", WriteFunction = function() end }
          local done
          loop:Add(e, function(_, r, err) done = { r, err } end)
          while e:GetInfo_ConnectTime_T() == 0 do uv.run("once") end -- the socket is watched
          loop.multi:Close()
          print("Run", pcall(loop.Run, loop, { seconds = 1 }))
          print("on_done", done[1], done[2].kind, loop:Active())
          print("Run again", pcall(loop.Run, loop, { seconds = 1 }))
          print("Add", pcall(loop.Add, loop, curl.Easy(), function() end))
          loop:Close()
          -- driven by the application's own uv.run, with on_error
          loop = require("curl.loop.luv").new(uv)
          local seen = {}
          loop.on_error = function(err) seen[#seen + 1] = err end
          loop:Add(curl.Easy { URL = %q, WriteFunction = function() end }, function() end)
          loop.multi:Close()
          uv.run()
          print("on_error", #seen, seen[1] and seen[1].kind, seen[1] and seen[1].message)
          -- and left to the garbage collector, not closed
          loop = require("curl.loop.luv").new(uv)
          loop:Add(curl.Easy { URL = %q, WriteFunction = function() end }, function() end)
          loop.multi:Close()
          loop = nil
          collectgarbage(); collectgarbage()
          uv.run()
          print("after")
        ]]):format(silent_port, H.url("/size/10"), H.url("/size/10")))
        assert.are.equal(0, status, out)
        local closed = "USAGE (-1): the loop's multi was closed behind its back"
        assert.truthy(out:find("Run\tfalse\t[curl loop:Run] " .. closed, 1, true), out)
        assert.truthy(out:find("on_done\t" .. curl.CURLE_ABORTED_BY_CALLBACK .. "\tusage\t0", 1, true), out)
        assert.truthy(out:find("Run again\tfalse\t[curl loop:Run] " .. closed, 1, true), out)
        assert.truthy(out:find("Add\tfalse\t[curl loop:Add] " .. closed, 1, true), out)
        assert.truthy(out:find("on_error\t1\tusage\tthe loop's multi was closed behind its back", 1, true), out)
        assert.truthy(out:find("after", 1, true), out)
      end)

      it("Run from a uv callback of the application's own uv.run is a usage error", function()
        local uv = require "luv"
        local got
        local t = uv.new_timer()
        t:start(0, 0, function() got = { pcall(loop.Run, loop, { seconds = 1 }) } end)
        uv.run("once")
        t:close()
        assert.is_false(got[1])
        usage(got[2], "loop:Run", "uv loop runs")
      end)
    end

    if name == "cqueues" then
      it("a loop closed on a shared controller leaves the other loops working", function()
        -- the closed loop's driver puts its Poller's descriptor away; a
        -- controller still holding a closed descriptor would fail every
        -- later step ("unable to update event disposition")
        local cq = loop.backend.cq
        local other = require("curl.loop.cqueues").new(cq)
        local r1
        other:Add(ok_easy("/size/10"), function(_, r) r1 = r end)
        other:Run { seconds = 5 }
        assert.are.equal(curl.CURLE_OK, r1)
        other:Close()
        local r2
        loop:Add(ok_easy("/size/10"), function(_, r) r2 = r end)
        loop:Run { seconds = 5 }
        assert.are.equal(curl.CURLE_OK, r2)
      end)

      it("Run from a coroutine of its own controller is a usage error", function()
        local got
        local cq = loop.backend.cq
        cq:wrap(function() got = { pcall(loop.Run, loop, { seconds = 1 }) } end)
        local stop = loop.backend:now() + 5000
        while not got and loop.backend:now() < stop do assert(cq:step(0.05)) end -- the application's loop
        assert.is_table(got)
        assert.is_false(got[1])
        usage(got[2], "loop:Run", "controller it steps")
      end)

      it("a descriptor closed before CURL_POLL_REMOVE leaves the controller working", function()
        -- libcurl sometimes closes a socket before telling the socket
        -- function; here a pipe plays that socket, watched by the loop's
        -- Poller (the multi's socket function). The controller polls only
        -- the Poller's descriptor, so it never sees the closed one.
        local ok_uv, uv = pcall(require, "luv")
        if not ok_uv or not uv.pipe then return pending("needs luv's uv.pipe") end
        local fds = uv.pipe({ nonblock = true }, { nonblock = true })
        local b = loop.backend
        b.poller:Watch(fds.read, curl.CURL_POLL_IN)
        uv.fs_write(fds.write, "x")
        drive_until(loop, function() return b.poller:Count() == 1 end)
        uv.fs_close(fds.read)
        b.poller:Unwatch(fds.read) -- the CURL_POLL_REMOVE, after the close
        local other
        b.cq:wrap(function() require("cqueues").sleep(0.02); other = true end)
        local res
        loop:Add(ok_easy("/size/10"), function(_, r) res = r end)
        loop:Run { seconds = 5 }
        uv.fs_close(fds.write)
        assert.are.equal(curl.CURLE_OK, res)
        assert.is_true(other)
      end)
    end
  end)
end
