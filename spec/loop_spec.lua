-- The pure-Lua event-loop helpers (lua/curl/loop*.lua) on every backend
-- available for this interpreter: the built-in Poller, luv and cqueues.
local H = require "helper"
local curl = H.curl

local backends = { "poller" }
if pcall(require, "luv") then backends[#backends + 1] = "luv" end
if pcall(require, "cqueues") then backends[#backends + 1] = "cqueues" end

-- Runs `f(loop)` as a coroutine the backend can suspend (a cqueues-managed
-- one for cqueues), then drives the loop until idle.
local function in_task(name, loop, f)
  if name == "cqueues" then
    loop.backend.cq:wrap(function() f(loop) end)
  else
    local co = coroutine.create(f)
    local ok, err = coroutine.resume(co, loop)
    assert(ok, err)
  end
end

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
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() error(boom) end },
        function(_, r) res.bad = r end)
      loop:Add(curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end },
        function(_, r) res.good = r end)
      local ok, err = pcall(loop.Run, loop, { seconds = 10 })
      assert.is_false(ok)
      assert.are.equal(boom, err)
      loop:Run { seconds = 10 }
      assert.are.equal(curl.CURLE_WRITE_ERROR, res.bad)
      assert.are.equal(curl.CURLE_OK, res.good)
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
