-- Faulty peers: each gives a clean curl.Error with the right CURLE_* name,
-- from easy:Perform and through a multi driven by SocketAction (InfoRead),
-- and the multi then still completes a normal transfer. The fault ports
-- come from the fixture server (/faults); the unresolvable name fails
-- inside the C library (a host label longer than 63 bytes cannot be put in
-- a DNS query), so no query leaves the machine.
local H = require "helper"
local curl = H.curl

local function fetch(url)
  local chunks = {}
  local e = curl.Easy { URL = url, TimeoutMS = 5000, WriteFunction = function(d) chunks[#chunks + 1] = d end }
  e:Perform()
  e:Close()
  return table.concat(chunks)
end

local ports = fetch(H.url("/faults"))
local garbage, silent, refused = ports:match("garbage=(%d+) silent=(%d+) refused=(%d+)")
assert(garbage, "fixture server without fault ports: " .. ports)
local fixture_port = H.fixture:match(":(%d+)$")

local faults = {
  { "connection reset mid-body", H.url("/resetmid/5000"), "CURLE_RECV_ERROR" },
  { "garbage instead of HTTP", "http://127.0.0.1:" .. garbage .. "/", "CURLE_UNSUPPORTED_PROTOCOL" },
  { "a server that never answers", "http://127.0.0.1:" .. silent .. "/", "CURLE_OPERATION_TIMEDOUT" },
  { "TLS to a plain HTTP server", "https://127.0.0.1:" .. fixture_port .. "/size/1", "CURLE_SSL_CONNECT_ERROR" },
  { "TLS to a garbage server", "https://127.0.0.1:" .. garbage .. "/", "CURLE_SSL_CONNECT_ERROR" },
  { "a refused port", "http://127.0.0.1:" .. refused .. "/", "CURLE_COULDNT_CONNECT" },
  { "a name that does not resolve", "http://" .. ("a"):rep(70) .. ".invalid/", "CURLE_COULDNT_RESOLVE_HOST" },
}

-- Only the silent server needs the timeout to fail; the others fail on
-- their own and get a deadline that valgrind's slow TLS start-up stays
-- well within.
local function faulty_easy(url, name)
  local ms = name == "CURLE_OPERATION_TIMEDOUT" and 400 or 20000
  return curl.Easy { URL = url, TimeoutMS = ms, WriteFunction = function() end }
end

local function assert_clean(err, name, method)
  assert.are.equal(curl.Error, getmetatable(err), tostring(err))
  assert.are.equal("easy", err.kind)
  assert.are.equal(name, err.name, tostring(err))
  assert.are.equal(curl[name], err.code)
  assert.are.equal(method, err.method)
  assert.is_string(err.message)
  assert.is_true(#err.message > 0)
end

describe("faulty peers", function()
  after_each(H.gc)

  for _, f in ipairs(faults) do
    local what, url, name = f[1], f[2], f[3]

    it(what .. ": easy:Perform raises " .. name, function()
      local e = faulty_easy(url, name)
      local ok, err = pcall(e.Perform, e)
      assert.is_false(ok)
      assert_clean(err, name, "easy:Perform")
      -- the same handle works afterwards
      local body = {}
      e:SetOpt_URL(H.url("/size/33"))
      e:SetOpt_WriteFunction(function(d) body[#body + 1] = d end)
      e:Perform()
      assert.are.equal(H.pattern(33), table.concat(body))
    end)

    it(what .. ": a SocketAction multi reports " .. name .. " and goes on", function()
      local multi = curl.Multi()
      local loop = H.loop(multi)
      local bad = faulty_easy(url, name)
      local good, body = H.collecting_easy(H.url("/size/1000"))
      multi:AddHandle(bad)
      multi:AddHandle(good)
      local done = loop:run { remove = true, seconds = 10 }
      assert.are.equal(2, #done)
      local by = {}
      for _, d in ipairs(done) do by[d.easy] = d.result end
      assert.are.equal(curl[name], by[bad], curl.EasyStrError(by[bad] or 0))
      assert.are.equal(curl.CURLE_OK, by[good])
      assert.are.equal(H.pattern(1000), body())
      assert.are.equal(0, #multi:GetHandles())
      -- a normal transfer afterwards, on the same multi
      local again, body2 = H.collecting_easy(H.url("/size/77"))
      multi:AddHandle(again)
      loop.done = {}
      loop:run { remove = true, seconds = 10 }
      assert.are.equal(1, #loop.done)
      assert.are.equal(curl.CURLE_OK, loop.done[1].result)
      assert.are.equal(H.pattern(77), body2())
      assert.are.equal(0, loop.poller:Count(), "every socket was un-watched")
      multi:Close()
    end)
  end

  it("every fault at once, twice over, beside normal transfers in one multi", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local want, bodies = {}, {}
    for round = 1, 2 do
      for _, f in ipairs(faults) do
        local e = faulty_easy(f[2], f[3])
        want[e] = curl[f[3]]
        multi:AddHandle(e)
      end
      for i = 1, 5 do
        local e, body = H.collecting_easy(H.url("/size/" .. (round * 100 + i)))
        want[e] = curl.CURLE_OK
        bodies[e] = { body, round * 100 + i }
        multi:AddHandle(e)
      end
    end
    local done = loop:run { remove = true, seconds = 15 }
    assert.are.equal(2 * (#faults + 5), #done)
    for _, d in ipairs(done) do
      assert.are.equal(want[d.easy], d.result, curl.EasyStrError(d.result))
      if bodies[d.easy] then
        assert.are.equal(H.pattern(bodies[d.easy][2]), bodies[d.easy][1]())
      end
    end
    multi:Close()
  end)

  it("the fast form (Poller as socket/timer function + Dispatch) reports the same codes", function()
    local multi, poller = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(poller)
    multi:SetOpt_TimerFunction(poller)
    local want = {}
    for _, f in ipairs(faults) do
      local e = faulty_easy(f[2], f[3])
      want[e] = curl[f[3]]
      multi:AddHandle(e)
    end
    local good, body = H.collecting_easy(H.url("/size/500"))
    want[good] = curl.CURLE_OK
    multi:AddHandle(good)
    local seen, n = {}, 0
    local deadline = os.time() + 15
    local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    repeat
      assert.is_true(os.time() <= deadline, "deadline passed")
      running = poller:Dispatch(multi, 100)
      repeat
        local msg, result, remaining, easy = multi:InfoRead()
        if msg == curl.CURLMSG_DONE then
          seen[easy] = result; n = n + 1
          multi:RemoveHandle(easy)
        end
      until remaining == 0
    until running == 0 and n == #faults + 1
    for e, code in pairs(want) do assert.are.equal(code, seen[e], curl.EasyStrError(seen[e] or 0)) end
    assert.are.equal(H.pattern(500), body())
    multi:Close()
  end)
end)
