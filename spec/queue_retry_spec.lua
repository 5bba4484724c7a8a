-- curl.loop's queue (max_active), timers (After, Sleep), Fetch retries
-- with backoff and Retry-After, err.cause, and bodies with nowhere to go,
-- on every backend this interpreter has, against the fixture server.
local H = require "helper"
local curl = H.curl

local usage_error = H.usage_error
local key_n = 0
-- a fresh /flaky key (the server counts requests per key)
local function flaky(n, what)
  key_n = key_n + 1
  return H.url(("/flaky/%s-%d-%d/%d/%s"):format(_VERSION:gsub(" ", ""), H.lua_pid, key_n, n, what))
end

local function new_loop(name, opts)
  if name == "poller" then return require("curl.loop.poller").new(nil, opts) end
  if name == "luv" then return require("curl.loop.luv").new(require "luv", nil, opts) end
  return require("curl.loop.cqueues").new(require("cqueues").new(), nil, opts)
end

describe("curl.Fetch retries", function()
  after_each(H.gc)

  it("retries a 5xx with backoff until it succeeds", function()
    local r = curl.Fetch(flaky(2, "503"), { retries = 3, retry_delay = 0.01 })
    assert.are.equal(200, r.status)
    assert.truthy(r.body:match("^ok .* 3$"), r.body)
  end)

  it("returns the last response when the retries run out", function()
    local r = curl.Fetch(flaky(5, "500"), { retries = 2, retry_delay = 0.01 })
    assert.are.equal(500, r.status)
    assert.are.equal("try 3", r.body)
  end)

  it("does not retry without retries, nor a 4xx other than 408 and 429", function()
    assert.are.equal(503, curl.Fetch(flaky(1, "503")).status)
    assert.are.equal(404, curl.Fetch(flaky(1, "404"), { retries = 3, retry_delay = 0.01 }).status)
    assert.are.equal(200, curl.Fetch(flaky(1, "408"), { retries = 1, retry_delay = 0.01 }).status)
  end)

  it("retries a transport error (connection reset)", function()
    local r = curl.Fetch(flaky(1, "reset"), { retries = 1, retry_delay = 0.01 })
    assert.are.equal(200, r.status)
    local ok, err = pcall(curl.Fetch, flaky(3, "reset"), { retries = 1, retry_delay = 0.01 })
    assert.is_false(ok)
    assert.are.equal("easy", err.kind)
  end)

  it("honours Retry-After, and gives up when it is longer than retry_max_delay", function()
    local r = curl.Fetch(flaky(1, "429/0"), { retries = 1, retry_delay = 0.01 })
    assert.are.equal(200, r.status)
    r = curl.Fetch(flaky(1, "429/100"), { retries = 3, retry_delay = 0.01, retry_max_delay = 5 })
    assert.are.equal(429, r.status)
    assert.are.equal("100", r.headers["retry-after"])
  end)

  it("starts an output file over on each try", function()
    local path = os.tmpname()
    local r = curl.Fetch(flaky(2, "503"), { retries = 2, retry_delay = 0.01, output = path })
    assert.are.equal(200, r.status)
    assert.truthy(H.read_text(path):match("^ok .* 3$"))
    local f = assert(io.open(path, "w+b"))
    f:write("head:")
    r = curl.Fetch(flaky(1, "503"), { retries = 1, retry_delay = 0.01, output = f })
    f:seek("set", 0)
    assert.truthy(f:read("*a"):match("^head:ok .* 2$"))
    f:close()
    os.remove(path)
  end)

  it("checks the retry options", function()
    usage_error(function() curl.Fetch(H.url("/size/1"), { retries = -1 }) end, "retries")
    usage_error(function() curl.Fetch(H.url("/size/1"), { retries = "3" }) end, "retries")
    usage_error(function() curl.Fetch(H.url("/size/1"), { retry_delay = 0 / 0 }) end, "retry_delay")
    usage_error(function() curl.Fetch(H.url("/size/1"), { retry_max_delay = {} }) end, "retry_max_delay")
    usage_error(function() curl.Fetch(H.url("/size/1"), { retry_max_delay = 1e300 }) end, "retry_max_delay")
    usage_error(function() curl.Fetch(H.url("/size/1"), { timeout = 3e6 }) end, "24.8 days")
    usage_error(function() curl.Fetch(H.url("/size/1"), { retires = 3 }) end, "did you mean retries")
  end)
end)

for _, name in ipairs(H.loop_backends) do
  describe("curl.loop (" .. name .. ")", function()
    after_each(H.gc)

    it("runs at most max_active transfers, queueing the rest", function()
      local loop = new_loop(name, { max_active = 2 })
      local peak, done = 0, 0
      local function on_done(_, code)
        assert.are.equal(curl.CURLE_OK, code)
        done = done + 1
        if loop:Active() > peak then peak = loop:Active() end
      end
      for _ = 1, 7 do loop:Add(curl.Easy { URL = H.url("/delay/20/10") }, on_done) end
      assert.are.equal(2, loop:Active())
      assert.are.equal(5, loop:Queued())
      loop:Run({ seconds = 20 })
      assert.are.equal(7, done)
      assert.is_true(peak <= 2)
      assert.are.equal(0, loop:Queued())
      loop:Close()
    end)

    it("changes max_active later, and cancels a queued transfer", function()
      local loop = new_loop(name, { max_active = 1 })
      local results = {}
      local easies = {}
      for i = 1, 4 do
        easies[i] = curl.Easy { URL = H.url("/delay/20/10") }
        loop:Add(easies[i], function(_, code) results[i] = code end)
      end
      assert.are.equal(3, loop:Queued())
      loop:Cancel(easies[4])
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, results[4])
      loop:SetMaxActive(3)
      assert.are.equal(3, loop:Active())
      assert.are.equal(0, loop:Queued())
      usage_error(function() loop:SetMaxActive(0) end, "'n'")
      usage_error(function() loop:Add(easies[1]) end, "already running")
      loop:Run({ seconds = 20 })
      for i = 1, 3 do assert.are.equal(curl.CURLE_OK, results[i]) end
      loop:Close()
    end)

    it("ends queued transfers on Close", function()
      local loop = new_loop(name, { max_active = 1 })
      local codes = {}
      for i = 1, 3 do loop:Add(curl.Easy { URL = H.url("/delay/20/10") }, function(_, code) codes[i] = code end) end
      loop:Close()
      for i = 1, 3 do assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, codes[i]) end
    end)

    it("runs timers in order, waits for them in Run, and cancels them", function()
      local loop = new_loop(name)
      local fired = {}
      loop:After(40, function() fired[#fired + 1] = "40" end)
      local t = loop:After(10, function() fired[#fired + 1] = "cancelled" end)
      loop:After(0, function() fired[#fired + 1] = "0" end)
      t:Cancel()
      t:Cancel()
      H.in_task(name, loop, function(l)
        l:Sleep(20)
        fired[#fired + 1] = "slept"
      end)
      loop:Run({ seconds = 20 })
      assert.are.same({ "0", "slept", "40" }, fired)
      usage_error(function() loop:After(-1, print) end, "ms")
      usage_error(function() loop:After(2 ^ 63, print) end, "2^31") -- fuzz seed lua5.4 1058628778
      usage_error(function() loop:After(math.huge, print) end, "2^31")
      usage_error(function() loop:After(1, "x") end, "fn")
      usage_error(function() loop:Sleep(1) end, "coroutine")
      loop:Close()
      usage_error(function() loop:After(1, print) end, "closed")
    end)

    it("raises a timer function's error from Run", function()
      local loop = new_loop(name)
      local boom = {}
      loop:After(1, function() error(boom) end)
      local ok, err = pcall(loop.Run, loop, { seconds = 20 })
      assert.is_false(ok)
      assert.are.equal(boom, err)
      loop:Close()
    end)

    it("retries loop:Fetch in a coroutine and with a callback", function()
      local loop = new_loop(name, { max_active = 1 })
      local a, b
      H.in_task(name, loop, function(l)
        a = l:Fetch(flaky(2, "502"), { retries = 2, retry_delay = 0.01 })
      end)
      loop:Fetch(flaky(1, "reset"), { retries = 1, retry_delay = 0.01 }, function(r, err)
        b = r or err
      end)
      loop:Run({ seconds = 20 })
      assert.are.equal(200, a.status)
      assert.truthy(a.body:match(" 3$"))
      assert.are.equal(200, b.status)
      loop:Close()
    end)

    it("gives on_done the callback's own error as err.cause, and Run does not raise it again", function()
      local loop = new_loop(name)
      local mine = { "mine" }
      local got
      local e = curl.Easy { URL = H.url("/size/100"), WriteFunction = function() error(mine) end }
      loop:Add(e, function(_, code, err)
        assert.are.equal(curl.CURLE_WRITE_ERROR, code)
        got = err
      end)
      loop:Run({ seconds = 20 })
      assert.are.equal("CURLE_WRITE_ERROR", got.name)
      assert.are.equal(mine, got.cause)
      -- without an on_done the error comes out of Run
      local e2 = curl.Easy { URL = H.url("/size/100"), WriteFunction = function() error(mine) end }
      loop:Add(e2)
      local ok, err = pcall(loop.Run, loop, { seconds = 20 })
      assert.is_false(ok)
      assert.are.equal(mine, err)
      -- a later transfer on the same easy has no stale cause
      e:SetOpt_URL(H.url("/status/404"))
      e:SetOpt_FailOnError(true)
      e:SetOpt_WriteFunction(function() end)
      loop:Add(e, function(_, _, err2) got = err2 end)
      loop:Run({ seconds = 20 })
      assert.are.equal("CURLE_HTTP_RETURNED_ERROR", got.name)
      assert.is_nil(got.cause)
      loop:Close()
    end)

    it("leaves an easy as it was when Add refuses it", function()
      local loop = new_loop(name)
      local other = curl.Multi()
      local e = curl.Easy { URL = H.url("/size/5") }
      other:AddHandle(e)
      local ok, err = pcall(loop.Add, loop, e, function() end)
      assert.is_false(ok)
      assert.are.equal("CURLM_ADDED_ALREADY", err.name)
      assert.is_false(curl._writes(e)) -- no write function left behind
      other:Close()
      loop:Close()
    end)

    it("drops the body of an easy without a write function instead of writing stdout", function()
      local out, errout = H.run_lua(([[
        package.path = %q
        package.cpath = %q
        local curl = require "curl"
        local loop = require("curl.loop.%s").new(%s)
        loop:Add(curl.Easy { URL = %q }, function(_, code) io.stderr:write("code ", code, "\n") end)
        loop:Run()
        loop:Close()
      ]]):format(package.path, package.cpath, name,
                 name == "luv" and "require 'luv'" or name == "cqueues" and "require('cqueues').new()" or "",
                 H.url("/size/50")))
      assert.are.equal("", out)
      assert.truthy(errout:find("code 0", 1, true), errout)
    end)
  end)
end

describe("a forgotten loop:Run()", function()
  it("says so on stderr when the program ends, once per loop", function()
    for _, name in ipairs(H.loop_backends) do
      local code = ([[
        package.path = %q
        local curl = require "curl"
        local loop = require("curl.loop.%s").new(%s)
        loop:Add(curl.Easy { URL = %q })
        loop:Add(curl.Easy { URL = %q })
        local quiet = require("curl.loop.%s").new(%s)
        quiet.warn = false
        quiet:Add(curl.Easy { URL = %q })
      ]]):format(package.path, name,
                 name == "luv" and "require 'luv'" or name == "cqueues" and "require('cqueues').new()" or "",
                 H.url("/size/1"), H.url("/size/2"), name,
                 name == "luv" and "require 'luv'" or name == "cqueues" and "require('cqueues').new()" or "",
                 H.url("/size/3"))
      local out, err = H.run_lua(code)
      assert.are.equal("", out)
      local _, n = err:gsub("curl%.loop: 2 transfer%(s%) were added but the loop never ran", "")
      assert.are.equal(1, n, name .. ": " .. err)
      assert.is_nil(err:find("1 transfer", 1, true), err)
    end
  end)
end)
