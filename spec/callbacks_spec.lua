local H = require "helper"
local curl = H.curl

local function json_field(body, key)
  return body:match('"' .. key .. '": "([^"]*)"')
end

describe("easy callbacks", function()
  after_each(H.gc)

  it("READFUNCTION uploads a body in pieces, longer strings are split for libcurl", function()
    local parts = { "alpha-", ("x"):rep(70000), "-omega" }
    local i, maxes = 0, {}
    local e, body = H.collecting_easy(H.url("/echo"), {
      Upload = true, InFileSize_Large = 6 + 70000 + 6,
      ReadFunction = function(max, ud)
        assert.are.equal("rd", ud)
        maxes[#maxes + 1] = max
        i = i + 1
        return parts[i]
      end,
      ReadData = "rd",
    })
    e:Perform()
    local b = body()
    assert.are.equal("PUT", json_field(b, "method"))
    assert.are.equal(tostring(70012), json_field(b, "content%-length"))
    assert.truthy(b:find('"body": "alpha%-xxx'))
    assert.truthy(b:find('xxx%-omega"'))
    assert.is_true(maxes[1] >= 1024)
  end)

  it("READFUNCTION can abort the transfer", function()
    local e = curl.Easy { URL = H.url("/echo"), Upload = true, WriteFunction = function() end,
      ReadFunction = function() return curl.CURL_READFUNC_ABORT end }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code)
  end)

  it("a read callback error fails the transfer and is raised unchanged", function()
    local t = {}
    local e = curl.Easy { URL = H.url("/echo"), Upload = true, WriteFunction = function() end,
      ReadFunction = function() error(t) end }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(t, err)
  end)

  it("READDATA and WRITEDATA take Lua files", function()
    local src = os.tmpname()
    local f = assert(io.open(src, "wb")); f:write(("abc"):rep(1000)); f:close()
    local dst = os.tmpname()
    local inf = assert(io.open(src, "rb"))
    local outf = assert(io.open(dst, "wb"))
    local e = curl.Easy { URL = H.url("/echo"), Upload = true, InFileSize = 3000,
      ReadData = inf, WriteData = outf }
    e:Perform()
    inf:close(); outf:close()
    local got = assert(io.open(dst, "rb")):read("*a")
    os.remove(src); os.remove(dst)
    assert.truthy(got:find('"body": "abcabc', 1))
    assert.are.equal("3000", json_field(got, "content%-length"))
  end)

  it("XFERINFOFUNCTION reports progress and aborts when it returns true", function()
    local calls, last = 0, nil
    local e = curl.Easy { URL = H.url("/slow/40000/30"), WriteFunction = function() end,
      XferInfoFunction = function(dltotal, dlnow, ultotal, ulnow, ud)
        calls = calls + 1
        last = { dltotal, dlnow, ud }
        return dlnow > 10000
      end, XferInfoData = "xd" }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code)
    assert.is_true(calls > 1)
    assert.are.equal(40000, last[1])
    assert.are.equal("xd", last[3])
  end)

  it("PROGRESSFUNCTION gets numbers and lets the transfer finish", function()
    local seen = 0
    local e = curl.Easy { URL = H.url("/size/5000"), WriteFunction = function() end,
      ProgressFunction = function(dltotal, dlnow)
        assert.is_number(dltotal); assert.is_number(dlnow)
        seen = seen + 1
      end }
    e:Perform()
    assert.is_true(seen >= 1)
  end)

  it("DEBUGFUNCTION sees text, headers and data with VERBOSE", function()
    local kinds = {}
    local e = curl.Easy { URL = H.url("/size/10"), Verbose = true, WriteFunction = function() end,
      DebugFunction = function(kind, data) kinds[kind] = (kinds[kind] or "") .. data end }
    e:Perform()
    assert.truthy(kinds[curl.CURLINFO_HEADER_OUT]:find("GET /size/10 HTTP/1.1", 1, true))
    assert.truthy(kinds[curl.CURLINFO_HEADER_IN]:find("200 OK", 1, true))
    assert.are.equal(H.pattern(10), kinds[curl.CURLINFO_DATA_IN])
    assert.is_string(kinds[curl.CURLINFO_TEXT])
  end)

  it("SEEKFUNCTION rewinds an upload for a 307 redirect", function()
    local data, pos = ("0123456789"):rep(100), 0
    local seeks = {}
    local e, body = H.collecting_easy(H.url("/307"), {
      Upload = true, InFileSize = #data, FollowLocation = true,
      ReadFunction = function(max)
        local chunk = data:sub(pos + 1, pos + max); pos = pos + #chunk; return chunk
      end,
      SeekFunction = function(offset, origin)
        seeks[#seeks + 1] = { offset, origin }
        pos = offset
        return curl.CURL_SEEKFUNC_OK
      end,
    })
    e:Perform()
    assert.are.equal(1, #seeks)
    assert.are.same({ 0, 0 }, seeks[1])
    assert.truthy(body():find('"body": "0123456789', 1))
    assert.are.equal(H.url("/echo"), e:GetInfo_EffectiveUrl())
  end)

  it("SOCKOPT, OPENSOCKET and CLOSESOCKET functions see the connection's socket", function()
    local opened, sockopt, closed = nil, nil, nil
    local e = curl.Easy { URL = H.url("/size/3"), WriteFunction = function() end, Forbid_Reuse = true,
      OpenSocketFunction = function(purpose, addr)
        opened = addr
        assert.are.equal(curl.CURLSOCKTYPE_IPCXN, purpose)
      end,
      SockOptFunction = function(fd, purpose) sockopt = fd end,
      CloseSocketFunction = function(fd) closed = fd end }
    e:Perform()
    assert.are.equal("127.0.0.1", opened.ip)
    assert.are.equal(tonumber(H.fixture:match(":(%d+)$")), opened.port)
    assert.is_number(sockopt)
    assert.are.equal(sockopt, closed)
  end)

  it("OPENSOCKETFUNCTION returning false refuses the connection", function()
    local e = curl.Easy { URL = H.url("/size/3"), WriteFunction = function() end,
      OpenSocketFunction = function() return false end }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_COULDNT_CONNECT, err.code)
  end)

  it("PREREQFUNCTION sees both ends and can abort", function()
    local seen
    local e = curl.Easy { URL = H.url("/size/3"), WriteFunction = function() end,
      PrereqFunction = function(primary_ip, local_ip, primary_port, local_port)
        seen = { primary_ip, local_ip, primary_port, local_port }
      end }
    e:Perform()
    assert.are.equal("127.0.0.1", seen[1])
    assert.are.equal("127.0.0.1", seen[2])
    assert.is_true(seen[4] > 0)
    e:SetOpt_PrereqFunction(function() return false end)
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code)
  end)

  it("RESOLVER_START_FUNCTION runs before a name lookup and can abort", function()
    local n = 0
    local e = curl.Easy { URL = H.url("/size/3"):gsub("127%.0%.0%.1", "localhost"),
      WriteFunction = function() end, IPResolve = curl.CURL_IPRESOLVE_V4,
      Resolver_Start_Function = function(ud) n = n + 1; assert.are.equal(7, ud) end,
      Resolver_Start_Data = 7 }
    e:Perform()
    assert.are.equal(1, n)
    e:SetOpt_Fresh_Connect(true)
    e:SetOpt_DNS_Cache_Timeout(0)
    e:SetOpt_Resolver_Start_Function(function() return true end)
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    -- 7.88 turns an aborted resolve into a failed one, 8.22 reports the abort
    assert.is_true(err.code == curl.CURLE_COULDNT_RESOLVE_HOST or err.code == curl.CURLE_ABORTED_BY_CALLBACK,
      tostring(err))
  end)

  it("TRAILERFUNCTION adds trailers to a chunked upload", function()
    local sent = false
    local trailers_asked = 0
    local e, body = H.collecting_easy(H.url("/echo"), {
      Upload = true, HttpHeader = { "Transfer-Encoding: chunked", "Trailer: X-Sum" },
      ReadFunction = function() if sent then return "" end sent = true; return "payload" end,
      TrailerFunction = function() trailers_asked = trailers_asked + 1; return { "X-Sum: 42" } end,
    })
    e:Perform()
    assert.are.equal(1, trailers_asked)
    assert.are.equal("payload", json_field(body(), "body"))
  end)

  it("HEADERDATA takes a file-like object without a function", function()
    local sink = { lines = {} }
    function sink:write(s) self.lines[#self.lines + 1] = s; return true end
    local e = curl.Easy { URL = H.url("/size/3"), WriteFunction = function() end, HeaderData = sink }
    e:Perform()
    assert.truthy(sink.lines[1]:match("^HTTP/1.1 200"))
  end)
end)

describe("more easy methods", function()
  after_each(H.gc)

  it("Escape and Unescape round-trip bytes, NUL included", function()
    local e = curl.Easy()
    local s = "a b&c=d/é\0z"
    local esc = e:Escape(s)
    assert.are.equal("a%20b%26c%3Dd%2F%C3%A9%00z", esc)
    assert.are.equal(s, e:Unescape(esc))
  end)

  it("DupHandle copies options, lists, bodies and Lua callbacks", function()
    local got = {}
    local e = curl.Easy { URL = H.url("/echo"), HttpHeader = { "X-Dup: yes" }, PostFields = "body!",
      WriteFunction = function(d, ud) got[ud] = (got[ud] or "") .. d end, WriteData = "orig" }
    local d = e:DupHandle()
    e:Close()
    H.gc()
    d:SetOpt_WriteData("dup")
    d:Perform()
    assert.is_nil(got.orig)
    assert.are.equal("yes", json_field(got.dup, "x%-dup"))
    assert.are.equal("body!", json_field(got.dup, "body"))
  end)

  it("Send and Recv talk raw bytes over a CONNECT_ONLY connection", function()
    local e = curl.Easy { URL = H.url("/"), Connect_Only = true }
    e:Perform()
    local req = "GET /size/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    local sent = 0
    local deadline = os.time() + 5
    while sent < #req and os.time() <= deadline do
      sent = sent + e:Send(req:sub(sent + 1))
    end
    local resp = ""
    while not resp:find("\r\n\r\n" .. H.pattern(5), 1, true) and os.time() <= deadline do
      local chunk = e:Recv(4096)
      if chunk == "" then break end
      if chunk then resp = resp .. chunk end
    end
    assert.truthy(resp:match("^HTTP/1.1 200"))
    assert.truthy(resp:find(H.pattern(5), 1, true))
    if curl.VersionInfo().version_num < 0x081600 then
      -- attached to the connection: see crash_regressions_spec.lua
      H.usage_error(function() e:Upkeep() end, "CONNECT_ONLY")
    else
      e:Upkeep()
    end
  end)

  it("CAINFO_BLOB verifies TLS from memory, and CERTINFO lists the chain", function()
    local pem = assert(io.open(H.ca, "rb")):read("*a")
    local e, body = H.collecting_easy(H.nginx_https .. "/1k", { CAInfo_Blob = pem, CertInfo = true })
    e:Perform()
    assert.are.equal(1024, #body())
    local certs = e:GetInfo_CertInfo()
    assert.is_true(#certs >= 1)
    assert.truthy(certs[1].Subject:find("localhost", 1, true))
  end)

  it("refuses options Lua cannot use, with the reason", function()
    local e = curl.Easy()
    for _, name in ipairs { "STDERR", "SSL_CTX_FUNCTION", "IOCTLFUNCTION", "HTTPPOST", "ERRORBUFFER" } do
      local ok, err = pcall(e.SetOpt, e, curl["CURLOPT_" .. name], 1)
      assert.is_false(ok, name)
      assert.are.equal("usage", err.kind)
      assert.truthy(err.message:find("CURLOPT_" .. name, 1, true))
    end
  end)
end)

describe("pausing inside a multi", function()
  after_each(H.gc)

  it("CURL_READFUNC_PAUSE stops an upload until easy:Pause(CURLPAUSE_CONT)", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local parts = { "first-", "PAUSE", "second" }
    local i, paused = 0, false
    local e, body = H.collecting_easy(H.url("/echo"), { Upload = true, InFileSize = 12 })
    e:SetOpt_ReadFunction(function()
      i = i + 1
      if parts[i] == "PAUSE" then
        paused = true
        return curl.CURL_READFUNC_PAUSE
      end
      return parts[i]
    end)
    multi:AddHandle(e)
    local resumed = false
    loop:run { until_fn = function() return paused end }
    assert.is_true(paused)
    -- nothing moves while paused
    for _ = 1, 3 do loop.poller:Wait(20) end
    assert.are.equal(2, i)
    e:Pause(curl.CURLPAUSE_CONT)
    resumed = true
    loop:run()
    assert.is_true(resumed)
    assert.are.equal(1, #loop.done)
    assert.are.equal(0, loop.done[1].result)
    assert.truthy(body():find('"body": "first-second"', 1, true))
  end)
end)
