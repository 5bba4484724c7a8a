local H = require "helper"
local curl = H.curl

local function json_field(body, key)
  return body:match('"' .. key .. '": "([^"]*)"')
end

describe("easy handles", function()
  after_each(H.gc)

  it("performs a blocking transfer and reports infos of every type", function()
    local e, body = H.collecting_easy(H.url("/size/1234"))
    e:Perform()
    assert.are.equal(H.pattern(1234), body())
    assert.are.equal(200, e:GetInfo(curl.CURLINFO_RESPONSE_CODE))        -- long
    assert.are.equal(H.url("/size/1234"), e:GetInfo_Effective_URL())     -- string
    assert.is_number(e:GetInfo_TotalTime())                                -- double
    assert.are.equal(1234, e:GetInfo_SizeDownload_T())                    -- off_t
    assert.are.equal("application/octet-stream", e:GetInfo_ContentType())
    assert.is_number(e:GetInfo_ActiveSocket())                             -- socket
    assert.are.same({}, e:GetInfo_CookieList())                            -- slist
    assert.are.equal(curl.CURL_HTTP_VERSION_1_1, e:GetInfo_HTTP_VERSION())
  end)

  it("resolves every CURLINFO_ the linked libcurl has to a GetInfo_X", function()
    local e = curl.Easy()
    for norm, id in pairs(curl.options.info) do
      assert.is_number(id, norm)
    end
    local n = 0
    for k in pairs(curl) do
      if type(k) == "string" and k:match("^CURLINFO_") and curl.options.info[(k:sub(10):gsub("_", "")):lower()] then
        n = n + 1
        assert.is_function(e["GetInfo_" .. k:sub(10)], k)
      end
    end
    assert.is_true(n > 60)
  end)

  it("sets long, off_t, string and slist options generically", function()
    local e, body = H.collecting_easy(H.url("/echo"), {
      HttpHeader = { "X-One: 1", "X-Two: two" },                 -- slist
      UserAgent = "spec-agent/1.0",                              -- string
      FollowLocation = true,                                      -- long (boolean)
      MaxRedirs = 5,                                              -- long
      MaxFileSize_Large = 1000000,                                -- off_t
    })
    e:Perform()
    local b = body()
    assert.are.equal("1", json_field(b, "x%-one"))
    assert.are.equal("two", json_field(b, "x%-two"))
    assert.are.equal("spec-agent/1.0", json_field(b, "user%-agent"))
    assert.are.equal("GET", json_field(b, "method"))
  end)

  it("keeps POSTFIELDS alive and sends binary bodies whole", function()
    local payload = "a\0b\0c" .. string.rep("z", 1000)
    local e, body = H.collecting_easy(H.url("/echo"))
    e:SetOpt_PostFields(payload)
    payload = nil
    H.gc()
    e:Perform()
    local b = body()
    assert.are.equal("POST", json_field(b, "method"))
    assert.are.equal("1005", json_field(b, "content%-length"))
  end)

  it("follows redirects with FOLLOWLOCATION and counts them", function()
    local e, body = H.collecting_easy(H.url("/redirect/3"), { FollowLocation = 1 })
    e:Perform()
    assert.are.equal("done", body())
    assert.are.equal(3, e:GetInfo_RedirectCount())
    assert.are.equal(H.url("/redirect/0"), e:GetInfo_EffectiveUrl())
  end)

  it("reads chunked bodies and passes each header line to the header callback", function()
    local headers = {}
    local e, body = H.collecting_easy(H.url("/chunked/1000/5"), {
      HeaderFunction = function(line, ud) headers[#headers + 1] = line; assert.are.equal("hd", ud) end,
      HeaderData = "hd",
    })
    e:Perform()
    assert.are.equal(H.pattern(1000), body())
    assert.truthy(headers[1]:match("^HTTP/1.1 200"))
    local chunked = false
    for _, h in ipairs(headers) do
      if h:lower():match("^transfer%-encoding: chunked") then chunked = true end
    end
    assert.is_true(chunked)
    assert.are.equal("\r\n", headers[#headers])
  end)

  it("passes the write userdata and honours a short byte count as an error", function()
    local got
    local e = curl.Easy { URL = H.url("/size/100") }
    e:SetOpt_WriteFunction(function(d, ud) got = ud; return #d - 1 end, "wd")
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_WRITE_ERROR, err.code)
    assert.are.equal("wd", got)
  end)

  it("reports HTTP errors as responses, and FAILONERROR as CURLE_HTTP_RETURNED_ERROR", function()
    local e, body = H.collecting_easy(H.url("/status/404"))
    e:Perform()
    assert.are.equal(404, e:GetInfo_ResponseCode())
    assert.are.equal("status 404", body())
    e:SetOpt_FailOnError(true)
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal("CURLE_HTTP_RETURNED_ERROR", err.name)
  end)

  it("reports a connection closed mid-body", function()
    local e = curl.Easy { URL = H.url("/close/10"), WriteFunction = function() end }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_PARTIAL_FILE, err.code)
    local e2 = curl.Easy { URL = H.url("/reset"), WriteFunction = function() end }
    ok, err = pcall(e2.Perform, e2)
    assert.is_false(ok)
    assert.is_true(err.code == curl.CURLE_GOT_NOTHING or err.code == curl.CURLE_RECV_ERROR, err.name)
  end)

  it("verifies TLS against the test CA and speaks HTTP/2 to nginx", function()
    local e, body = H.collecting_easy(H.nginx_https .. "/16k", {
      CAInfo = H.ca, HTTP_Version = curl.CURL_HTTP_VERSION_2TLS })
    e:Perform()
    assert.are.equal(16384, #body())
    assert.are.equal(curl.CURL_HTTP_VERSION_2_0, e:GetInfo_HttpVersion())
    assert.are.equal(0, e:GetInfo_SSL_VerifyResult())
    local bad = curl.Easy { URL = H.nginx_https .. "/16k", WriteFunction = function() end }
    local ok, err = pcall(bad.Perform, bad) -- no CA given: the system store does not know it
    assert.is_false(ok)
    assert.is_true(err.code == curl.CURLE_PEER_FAILED_VERIFICATION or err.code == curl.CURLE_SSL_CACERT, err.name)
  end)

  it("PRIVATE holds any Lua value", function()
    local t = {}
    local e = curl.Easy { Private = t }
    assert.are.equal(t, e:GetInfo_Private())
    e:SetOpt_Private("s")
    assert.are.equal("s", e:GetInfo(curl.CURLINFO_PRIVATE))
  end)

  it("GetInfo_Private's C path answers as the full method does", function()
    local e = curl.Easy()
    assert.is_nil(e:GetInfo_Private())
    assert.are.equal(1, select("#", e:GetInfo_Private()))
    e:SetOpt_Private(false)
    assert.is_false(e:GetInfo_Private())
    local t = {}
    e:SetOpt_Private(t)
    assert.are.equal(t, e:GetInfo_Private())
    -- the raw GetInfo: one value, not the tables the C path reads through
    local r = { e:GetInfo(curl.CURLINFO_PRIVATE) }
    assert.are.equal(1, #r)
    assert.are.equal(t, r[1])
    e:Reset()
    assert.is_nil(e:GetInfo_Private())
    e:SetOpt_Private(t)
    e:Close()
    local ok, err = pcall(e.GetInfo_Private, e)
    assert.is_false(ok)
    assert.matches("closed", err.message)
    for _, bad in ipairs { 1, "x", {}, curl.Multi(), curl.Buffer() } do
      ok, err = pcall(e.GetInfo_Private, bad)
      assert.is_false(ok)
      assert.matches("bad self", err.message)
    end
    -- an easy whose table a script took away: the full method's error,
    -- not a nil
    local e2 = curl.Easy { Private = 1 }
    if debug.setuservalue then debug.setuservalue(e2, nil) else debug.setfenv(e2, {}) end
    assert.is_false((pcall(e2.GetInfo_Private, e2)))
    assert.is_false((pcall(e2.GetInfo, e2, curl.CURLINFO_PRIVATE)))
  end)

  it("Reset forgets options and callbacks", function()
    local n = 0
    local e = curl.Easy { URL = H.url("/size/10"), WriteFunction = function(d) n = n + #d end }
    e:Perform()
    assert.are.equal(10, n)
    e:Reset()
    e:SetOpt_URL(H.url("/size/20"))
    local got = 0
    e:SetOpt_WriteFunction(function(d) got = got + #d end)
    e:Perform()
    assert.are.equal(10, n)
    assert.are.equal(20, got)
  end)

  it("pauses with CURL_WRITEFUNC_PAUSE and resumes with Pause inside a multi", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local e
    local paused_once, chunks = false, {}
    e = curl.Easy { URL = H.url("/size/50000"), WriteFunction = function(d)
      if not paused_once then paused_once = true; return curl.CURL_WRITEFUNC_PAUSE end
      chunks[#chunks + 1] = d
    end }
    multi:AddHandle(e)
    local resumed = false
    loop:run { until_fn = function()
      if paused_once and not resumed then resumed = true; e:Pause(curl.CURLPAUSE_CONT) end
    end }
    loop:run()
    assert.are.equal(1, #loop.done)
    assert.are.equal(0, loop.done[1].result)
    assert.are.equal(H.pattern(50000), table.concat(chunks))
  end)

  it("applies option tables with any spelling of the names", function()
    local e = curl.Easy { url = H.url("/redirect/1"), follow_location = true,
      FOLLOWLOCATION = true, CURLOPT_MAXREDIRS = 3, WriteFunction = function() end }
    e:Perform()
    assert.are.equal(1, e:GetInfo_REDIRECT_COUNT())
  end)
end)

describe("curl.Buffer", function()
  after_each(H.gc)

  it("takes a body and headers without a Lua call per chunk", function()
    local body, heads = curl.Buffer(), curl.Buffer()
    local e = curl.Easy { URL = H.url("/size/70000"), WriteData = body, HeaderData = heads }
    e:Perform()
    assert.are.equal(70000, body:Len())
    assert.are.equal(H.pattern(70000), body:Peek())
    assert.truthy(heads:Take():match("^HTTP/1.1 200"))
    assert.are.equal(0, heads:Len())
    assert.are.equal(H.pattern(70000), body:Take())
    assert.are.equal(0, body:Len())
    assert.are.equal(70000, body:Total())
    body:Write("abc")
    assert.are.equal("abc", body:Peek())
    body:Clear()
    assert.are.equal("", body:Take())
    local ok, err = pcall(body.Write, body, {})
    assert.is_false(ok)
    assert.are.equal("buffer:Write", err.method)
  end)

  it("Len, Total and Clear answer through their C paths as the full methods do", function()
    local b = curl.Buffer()
    assert.are.equal(0, b:Len())
    b:Write("abcd")
    assert.are.equal(4, b:Len())
    assert.are.equal(4, b:Len(1, 2)) -- extra arguments are ignored, as by every method
    assert.are.equal(0, select("#", b:Clear()))
    assert.are.equal(0, b:Len())
    assert.are.equal(4, b:Total())
    b:Write("ef")
    assert.are.equal(6, b:Total())
    for _, m in ipairs { "Len", "Total", "Clear" } do
      for _, bad in ipairs { false, 1, "x", {}, curl.Easy(), curl.Poller() } do
        local ok, err = pcall(b[m], bad)
        assert.is_false(ok)
        assert.are.equal("buffer:" .. m, err.method)
        assert.matches("bad self", err.message)
      end
      local ok, err = pcall(b[m])
      assert.is_false(ok)
      assert.matches("bad self", err.message)
    end
  end)

  it("a buffer that is WRITEDATA of many easies takes every body", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local b = curl.Buffer()
    for i = 1, 5 do multi:AddHandle(curl.Easy { URL = H.url("/size/" .. i * 100), WriteData = b }) end
    loop:run()
    assert.are.equal(1500, b:Len())
    assert.are.equal(1500, b:Total())
  end)

  it("works in a multi", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local bufs = {}
    for i = 1, 10 do
      bufs[i] = curl.Buffer()
      multi:AddHandle(curl.Easy { URL = H.url("/size/" .. i * 1000), WriteData = bufs[i] })
    end
    loop:run()
    for i = 1, 10 do assert.are.equal(H.pattern(i * 1000), bufs[i]:Take()) end
  end)
end)

describe("no silent failures", function()
  after_each(H.gc)

  it("takes a header map for HTTPHEADER and PROXYHEADER, refuses maps for other lists", function()
    local got = {}
    local e = curl.Easy { URL = H.url("/echo"), WriteFunction = function(d) got[#got + 1] = d end,
      HttpHeader = { ["X-A"] = "1", ["X-B"] = { "p", "q" }, ["User-Agent"] = false, ["X-N"] = 5 } }
    e:Perform()
    local body = table.concat(got)
    assert.truthy(body:find('"x-a": "1"', 1, true), body)
    assert.truthy(body:find('"x-b": "', 1, true), body) -- (the fixture keeps one of the two)
    assert.truthy(body:find('"x-n": "5"', 1, true), body)
    assert.is_nil(body:find('"user-agent"', 1, true), body)
    e:SetOpt_ProxyHeader { ["X-P"] = "1" }
    H.usage_error(function() e:SetOpt_HttpHeader { "X-L: 1", extra = "2" } end, "key \"extra\"")
    H.usage_error(function() e:SetOpt_HttpHeader { [true] = "x" } end, "keys are names")
    H.usage_error(function() e:SetOpt_HttpHeader { a = print } end, "header \"a\" is a function")
    H.usage_error(function() e:SetOpt_Mail_Rcpt { to = "a@b" } end, "expected a list of strings")
    e:Close()
  end)

  it("a bare easy never reads stdin (a POST whose PostFields was unset, an upload)", function()
    -- in a child process with a stdin that must not reach the server
    local stdout, stderr = H.run_lua(([[
local curl = require "curl"
local out = {}
local w = function(d) out[#out + 1] = d end
local e = curl.Easy { URL = %q, PostFields = "a=1", WriteFunction = w, TimeoutMs = 5000 }
e:Perform()
e:SetOpt_PostFields(nil)
e:Perform()
local u = curl.Easy { URL = %q, Upload = true, WriteFunction = w, TimeoutMs = 5000 }
u:Perform()
io.write(table.concat(out))
]]):format(H.url("/echo"), H.url("/echo")), "STDIN-SECRET\n")
    local out = stdout .. stderr
    assert.truthy(out:find('"method": "PUT"', 1, true), out)
    assert.is_nil(out:find("STDIN-SECRET", 1, true), out)
  end)

  it("AddHandle of an added easy says what to do", function()
    local m, m2 = curl.Multi(), curl.Multi()
    local e = curl.Easy { URL = "http://127.0.0.1:1/" }
    m:AddHandle(e)
    local ok, err = pcall(m.AddHandle, m, e)
    assert.is_false(ok)
    assert.are.equal("CURLM_ADDED_ALREADY", err.name)
    assert.truthy(err.message:find("RemoveHandle", 1, true), err.message)
    ok, err = pcall(m2.AddHandle, m2, e)
    assert.truthy(err.message:find("another multi", 1, true), err.message)
    m:Close(); m2:Close(); e:Close()
  end)
end)
