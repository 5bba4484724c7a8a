-- Regressions for crashes and contract deviations found by fuzzing (issue
-- "No Lua sequence can crash the process"). Each case once crashed the
-- process or corrupted memory (seen under valgrind); the suite's valgrind
-- pass runs these too. Several are libcurl 7.88 bugs the binding guards
-- against (docs/reference.md, "Guards against libcurl bugs").
local H = require "helper"
local curl = H.curl

local usage_error = H.usage_error

local older_than = function(num) return curl.VersionInfo().version_num < num end

-- The C function the write trampoline calls a write function through
-- (its caller, as debug.getinfo sees it from the write function).
local function write_caller()
  local caller
  local probe = curl.Easy {
    URL = H.url("/size/10"),
    WriteFunction = function(s)
      caller = caller or debug.getinfo(2, "f").func
      return #s
    end,
  }
  probe:Perform()
  probe:Close()
  assert.is_function(caller)
  return caller
end

describe("crash regressions", function()
  after_each(H.gc)

  it("Escape and Unescape of an empty string", function()
    local e = curl.Easy()
    assert.are.equal("", e:Escape(""))
    assert.are.equal("", e:Unescape(""))
    assert.are.equal("a%00b", e:Escape("a\0b"))
    assert.are.equal("a\0b", e:Unescape("a%00b"))
    e:Close()
  end)

  it("part:FileData of a missing file on a part that has a sub-mime", function()
    local e = curl.Easy()
    local root = curl.Mime(e)
    local part = root:AddPart()
    local sub = curl.Mime(e)
    local inner = sub:AddPart():Data("inner")
    part:SubParts(sub)
    local ok, err = pcall(part.FileData, part, "/nonexistent/file")
    assert.is_false(ok)
    assert.are.equal(curl.Error, getmetatable(err))
    -- libcurl freed the sub-mime and its parts: the binding knows it
    usage_error(function() inner:Data("x") end, "freed")
    usage_error(function() sub:AddPart() end)
    part:Data("replacement")
    root:Close()
    e:Close()
    H.gc()
  end)

  it("part:SubParts with the root of its own tree is refused before libcurl frees anything", function()
    local e = curl.Easy()
    local root = curl.Mime(e)
    local part = root:AddPart()
    local sub = curl.Mime(e)
    local inner = sub:AddPart()
    part:SubParts(sub)
    usage_error(function() inner:SubParts(root) end, "part of itself")
    usage_error(function() part:SubParts(root) end, "part of itself")
    -- the earlier sub-mime is still attached and usable through its part
    inner:Data("still here")
    local body = {}
    e:SetOpt_URL(H.url("/echo"))
    e:SetOpt_MimePost(root)
    e:SetOpt_WriteFunction(function(d) body[#body + 1] = d end)
    e:Perform()
    assert.truthy(table.concat(body):find("still here", 1, true))
    e:Close()
    root:Close()
  end)

  it("a cached connection outlives the easy whose close-socket function it carries", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local closed = 0
    do
      local e = curl.Easy { URL = H.url("/slow/2000/50"), WriteFunction = function() end,
                            CloseSocketFunction = function() closed = closed + 1 end }
      multi:AddHandle(e)
      multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
      -- mid-transfer: clear the function, allow reuse again
      e:SetOpt_CloseSocketFunction(nil)
      e:SetOpt_ForbidReuse(0)
      loop:run { remove = true }
      assert.are.equal(1, #loop.done)
    end
    loop.done = {}
    H.gc() -- the easy is gone; its connection is cached in the multi
    multi:Close() -- closes the cached connection: must not reach the freed easy
    assert.are.equal(0, closed)
  end)

  it("a connection closed while its easy still lives calls the easy's function", function()
    local closed = 0
    local e = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end,
                          CloseSocketFunction = function() closed = closed + 1 end }
    e:Perform()
    assert.are.equal(1, closed)
    local copy = e:DupHandle()
    copy:Perform()
    assert.are.equal(2, closed)
    copy:Close()
    e:Close()
  end)

  it("STREAM_DEPENDS with DupHandle and Reset", function()
    local parent = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end }
    local child = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end }
    child:SetOpt_StreamDepends(parent)
    child:SetOpt_StreamDependsE(parent)
    local copy = parent:DupHandle()
    local ccopy = child:DupHandle()
    copy:Close()
    parent:Close()
    ccopy:Close()
    child:Close()

    parent = curl.Easy()
    child = curl.Easy()
    child:SetOpt_StreamDepends(parent)
    child:Reset()
    child:Close()
    parent:Close()
    usage_error(function() curl.Easy():SetOpt_StreamDepends(parent) end, "closed")
    usage_error(function() curl.Easy():SetOpt_StreamDepends(42) end, "curl.Easy")
  end)

  it("CURLOPT_HSTS and DupHandle", function()
    local file = os.tmpname()
    local e = curl.Easy { HSTS = file }
    if older_than(0x080500) then
      usage_error(function() e:DupHandle() end, "8%.5%.0")
      e:SetOpt_HSTS(nil)
      e:DupHandle():Close()
    else
      e:DupHandle():Close()
    end
    e:SetOpt_HSTS(file)
    e:Reset() -- frees the file list (7.88 would leak it)
    e:DupHandle():Close()
    e:Close()
    os.remove(file)
  end)

  it("HSTS_CTRL = 0 on an easy using a share that shares HSTS", function()
    local share = curl.Share { Share = curl.CURL_LOCK_DATA_HSTS }
    local e = curl.Easy { Share = share }
    if older_than(0x081500) then
      usage_error(function() e:SetOpt_HSTS_Ctrl(0) end, "8%.21%.0")
    else
      e:SetOpt_HSTS_Ctrl(0)
    end
    e:SetOpt_HSTS_Ctrl(curl.CURLHSTS_ENABLE)
    e:SetOpt_Share(nil)
    e:SetOpt_HSTS_Ctrl(0) -- its own cache: fine
    e:Close()
    share:Close()
  end)

  it("Send/Recv after a CONNECT_ONLY transfer that failed use no other connection", function()
    -- the easy's last connection is then an earlier transfer's, HTTP/2
    -- here: 7.88 sent on it without a stream (a crash; fuzz seed 96886032)
    local e = curl.Easy { URL = H.nginx_https .. "/1k", CAInfo = H.ca, WriteFunction = function() end }
    e:Perform()
    assert.are.equal("2", ({ [3] = "2" })[e:GetInfo_HTTP_Version()])
    e:SetOpt_ConnectOnly(1)
    e:SetOpt_URL("http://127.0.0.1:1/")
    assert.is_false(pcall(e.Perform, e))
    for _, m in ipairs { "Send", "Recv" } do
      local err = usage_error(function() e[m](e, m == "Send" and "x" or 10) end, "CONNECT_ONLY transfer")
      assert.are.equal("easy:" .. m, err.method)
    end
    -- after one that succeeded they work
    e:SetOpt_URL(H.nginx_http .. "/")
    e:Perform()
    assert.are.equal(2, e:Send("GE"))
    e:Close()
  end)

  it("a SIGPIPE inside a libcurl call that does not ignore it does not end the process", function()
    -- easy:Pause hands buffered data to the write callback, which writes to
    -- a pipe whose reader is gone: SIGPIPE, which killed the process (seen
    -- as an unexplained SIGPIPE in fuzz runs)
    local p = assert(io.popen(("%s %s/spec/support/sigpipe_child.lua %s %s 2>&1; echo rc=$?")
      :format(H.lua, H.root, H.build_dir, H.nginx_http .. "/1k")))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("survived\ttrue\ttrue", 1, false), out)
    assert.truthy(out:find("rc=0", 1, true), out)
  end)

  it("Reset keeps the share, so its HSTS cache cannot be freed under it", function()
    -- curl_easy_reset keeps the share; the binding let go of it, so the
    -- HSTS_CTRL guard passed and freed the share's cache (a use after free
    -- when another user of the share closed, fuzz seed 1216482056)
    local share = curl.Share { Share = curl.CURL_LOCK_DATA_HSTS }
    local e = curl.Easy { Share = share }
    e:Reset()
    H.gc()
    if older_than(0x081500) then
      usage_error(function() e:SetOpt_HSTS_Ctrl(0) end, "8%.21%.0")
    end
    usage_error(function() share:Close() end, "in use")
    local e2 = curl.Easy { Share = share, HSTS_Ctrl = curl.CURLHSTS_ENABLE }
    e2:Close()
    e:SetOpt_Share(nil)
    e:SetOpt_HSTS_Ctrl(0)
    e:Close()
    share:Close()
  end)

  it("a curl.URL with an empty path, as CURLOPT_CURLU", function()
    for _, base in ipairs { H.nginx_http .. "/100b", "file:///etc/hostname" } do
      local u = curl.URL(base)
      u:Set(curl.CURLUPART_PATH, "")
      local e = curl.Easy { CURLU = u, WriteFunction = function() end, TimeoutMs = 5000 }
      pcall(e.Perform, e) -- an HTTP 404 or a file error, not a crash
      e:Close()
    end
    local u = curl.URL("http://127.0.0.1/")
    local ok, err = pcall(u.Set, u, curl.CURLUPART_HOST, "", curl.CURLU_URLENCODE)
    assert.is_false(ok)
    assert.are.equal("url", err.kind)
  end)

  it("CONNECT_ONLY cannot change while the easy is added to a multi", function()
    local multi = curl.Multi()
    local loop = H.loop(multi)
    local a = curl.Easy { URL = H.nginx_http .. "/100b", WriteFunction = function() end }
    multi:AddHandle(a)
    loop:run()
    -- a's connection is cached; b reuses it
    local b = curl.Easy { URL = H.nginx_http .. "/1m", WriteFunction = function() end }
    multi:AddHandle(b)
    multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    usage_error(function() a:SetOpt_ConnectOnly(1) end, "AddHandle")
    multi:RemoveHandle(a)
    loop.done = {}
    loop:run()
    assert.are.equal(1, #loop.done)
    assert.are.equal(curl.CURLE_OK, loop.done[1].result)
    a:SetOpt_ConnectOnly(1) -- not added: fine
    multi:Close()
  end)

  it("the Poller's iterator, called by hand with any arguments", function()
    local p = curl.Poller()
    local it = p:Wait(0)
    assert.is_nil(it())
    assert.is_nil(it(42, "x"))
    assert.is_nil(it(curl.Easy()))
    p:SetTimer(0)
    it = p:Wait(10)
    assert.are.same({ curl.CURL_SOCKET_TIMEOUT, 0 }, { it({}) })
    p:Close()
    assert.is_nil(it())
  end)

  it("InfoRead inside a callback hands out no message, also after a nested callback", function()
    local multi, p = curl.Multi(), curl.Poller()
    multi:SetOpt_SocketFunction(p)
    multi:SetOpt_TimerFunction(p)
    local first = curl.Easy { URL = H.url("/size/10"), WriteFunction = function() end }
    local inside, paused, writes = {}, false, 0
    local second
    second = curl.Easy {
      URL = H.url("/slow/800/50"), NoProgress = false,
      WriteFunction = function()
        writes = writes + 1
        if writes == 2 then paused = true; return curl.CURL_WRITEFUNC_PAUSE end
      end,
      XferInfoFunction = function()
        if paused then
          paused = false
          second:Pause(curl.CURLPAUSE_CONT) -- runs the write callback, nested
          inside[#inside + 1] = { multi:InfoRead() }
        end
        inside[#inside + 1] = { multi:InfoRead() }
      end,
    }
    multi:AddHandle(first)
    multi:AddHandle(second)
    local deadline, running = os.time() + 20, 1
    while running > 0 do
      assert(os.time() < deadline, "deadline")
      running = p:Dispatch(multi, 100)
    end
    -- the first transfer's message was queued while the second's
    -- callbacks ran
    assert.is_true(writes >= 3)
    assert.is_true(#inside >= 4)
    for _, r in ipairs(inside) do assert.are.equal(curl.CURLMSG_NONE, r[1]) end
    local n = 0
    repeat
      local msg, _, remaining = multi:InfoRead()
      if msg == curl.CURLMSG_DONE then n = n + 1 end
    until remaining == 0
    assert.are.equal(2, n)
    multi:Close()
  end)

  it("a handle used from a finalizer after its own __gc gives a usage error", function()
    local seen = {}
    do
      -- Finalizers run in the reverse order of their objects' creation:
      -- the finalizer object is made first, so the handles' __gc run before it.
      local objs = {}
      local function finalizer()
        for _, o in ipairs(objs) do
          local ok, err = pcall(function() return o:Close() end)
          seen[#seen + 1] = { ok, err, tostring(o) }
        end
      end
      objs.keep = H.finalized_by(finalizer)
      for _, o in ipairs { curl.Easy(), curl.Multi(), curl.Poller(), curl.Share(), curl.URL() } do
        objs[#objs + 1] = o
      end
    end
    H.gc()
    assert.are.equal(5, #seen)
    for _, s in ipairs(seen) do
      local ok, err = s[1], s[2]
      assert.is_false(ok, "collected before the finalizer ran")
      assert.are.equal(curl.Error, getmetatable(err), tostring(err))
      assert.are.equal("usage", err.kind)
      assert.truthy(err.message:find("garbage%-collected"))
      assert.are.equal("string", type(s[3]))
    end
  end)

  it("the C paths of methods on a handle after its own __gc give a usage error", function()
    local seen = {}
    do
      local objs = {}
      local function finalizer()
        local b, e = objs[1], objs[2]
        for _, call in ipairs {
          function() return b:Len() end, function() return b:Total() end,
          function() return b:Clear() end, function() return e:GetInfo_Private() end,
          function() return e:GetInfo_ResponseCode() end,
        } do
          seen[#seen + 1] = { pcall(call) }
        end
      end
      objs.keep = H.finalized_by(finalizer)
      objs[1] = curl.Buffer()
      objs[1]:Write("x")
      objs[2] = curl.Easy { Private = objs[1] }
      local _ = objs[2].GetInfo_Private, objs[2].GetInfo_ResponseCode
    end
    H.gc()
    assert.are.equal(5, #seen)
    for _, s in ipairs(seen) do
      local ok, err = s[1], s[2]
      assert.is_false(ok, "collected before the finalizer ran")
      assert.are.equal("usage", err.kind)
      assert.truthy(err.message:find("garbage%-collected"))
    end
  end)

  it("HSTS_CTRL off while CURLOPT_HSTS names a file, then a transfer", function()
    local file = os.tmpname()
    local e = curl.Easy { URL = "file:///etc/hostname", WriteFunction = function() end }
    e:SetOpt_HSTS(file)
    e:SetOpt_HSTS_Ctrl(0)
    e:Perform()
    e:Close()
    os.remove(file)
  end)

  it("an easy that sent trailers runs no second transfer (libcurl before 8.7.0)", function()
    local sent, trailers = false, 0
    local e = curl.Easy { URL = H.url("/echo"), Post = 1, TimeoutMs = 5000,
      HttpHeader = { "Transfer-Encoding: chunked" },
      ReadFunction = function() if sent then return "" end sent = true; return "hello" end,
      TrailerFunction = function() trailers = trailers + 1; return { "X-T: 1" } end,
      WriteFunction = function() end }
    e:Perform()
    assert.are.equal(1, trailers)
    sent = false
    if older_than(0x080700) then
      usage_error(function() e:Perform() end, "8%.7%.0")
      local multi = curl.Multi()
      usage_error(function() multi:AddHandle(e) end, "8%.7%.0")
      multi:Close()
    end
    local copy = e:DupHandle() -- a fresh handle, the same callbacks
    sent = false
    copy:Perform()
    assert.are.equal(2, trailers)
    copy:Close()
    e:Close()
  end)

  it("a body is not sent again after its trailers (redirect; libcurl before 8.7.0)", function()
    -- 7.88 keeps the "trailers done" state, and the 307's second request
    -- wrote before the upload buffer (a double free): the binding stops
    -- every second request of such a transfer in the pre-request callback.
    local function make(with_prereq)
      local n, trailers, prereqs = 0, 0, 0
      local opts = { URL = H.url("/307"), Post = 1, FollowLocation = 1, TimeoutMs = 5000,
        HttpHeader = { "Transfer-Encoding: chunked" },
        ReadFunction = function() n = n + 1; if n % 2 == 0 then return "" end return "hello" end,
        SeekFunction = function() return curl.CURL_SEEKFUNC_OK end,
        TrailerFunction = function() trailers = trailers + 1; return { "X-T: 1" } end,
        WriteFunction = function() end }
      local e = curl.Easy(opts)
      if with_prereq then
        e:SetOpt_PrereqFunction(function() prereqs = prereqs + 1 end)
      end
      return e, function() return trailers, prereqs end
    end
    -- Perform: the second request is refused, with the reason
    local e, counts = make()
    local ok, err = pcall(e.Perform, e)
    if older_than(0x080700) then
      assert.is_false(ok)
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code)
      assert.truthy(err.message:find("8.7.0", 1, true), err.message)
      assert.are.equal(307, e:GetInfo_ResponseCode())
    else
      assert.is_true(ok, tostring(err))
    end
    -- fixed libcurl sends the body (and its trailers) again to the 307's target
    local sends = older_than(0x080700) and 1 or 2
    assert.are.equal(sends, (counts()))
    e:Close()
    -- in a multi, with the script's own pre-request function kept working
    local multi = curl.Multi()
    local loop = H.loop(multi)
    e, counts = make(true)
    multi:AddHandle(e)
    local done = loop:run()
    local trailers, prereqs = counts()
    assert.are.equal(sends, trailers)
    assert.are.equal(e, done[1].easy)
    if older_than(0x080700) then
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, done[1].result)
      assert.are.equal(1, prereqs, "the script's function ran for the first request only")
    end
    multi:RemoveHandle(e)
    e:Close()
    multi:Close()
  end)

  it("an easy holding its CONNECT_ONLY connection starts no other transfer (libcurl before 8.12.0)", function()
    -- 7.88 leaked that connection when the handle ran another transfer
    -- (in a multi, or Perform again): seen by the valgrind pass.
    local e = curl.Easy { URL = H.nginx_http .. "/", ConnectOnly = 1, TimeoutMs = 5000 }
    e:Perform()
    assert.is_true(e:GetInfo_ActiveSocket() >= 0)
    e:Send("GET /100b HTTP/1.1\r\nHost: x\r\n\r\n")
    if older_than(0x080C00) then
      local multi = curl.Multi()
      usage_error(function() multi:AddHandle(e) end, "8%.12%.0")
      e:SetOpt_ConnectOnly(0)
      usage_error(function() e:Perform() end, "8%.12%.0")
      multi:Close()
    end
    -- a copy is a fresh handle
    local copy = e:DupHandle()
    copy:SetOpt_ConnectOnly(0)
    copy:SetOpt_URL(H.nginx_http .. "/100b")
    copy:SetOpt_WriteFunction(function() end)
    copy:Perform()
    assert.are.equal(200, copy:GetInfo_ResponseCode())
    copy:Close()
    e:Close()
    -- a CONNECT_ONLY transfer that connected nowhere holds nothing
    local f = curl.Easy { URL = "http://127.0.0.1:1/", ConnectOnly = 1, TimeoutMs = 5000 }
    assert.is_false(pcall(f.Perform, f))
    f:SetOpt_ConnectOnly(0)
    f:SetOpt_URL(H.nginx_http .. "/100b")
    f:SetOpt_WriteFunction(function() end)
    f:Perform()
    f:Close()
  end)

  it("an easy attached to its CONNECT_ONLY connection: no Upkeep, no share change (libcurl before 8.22)", function()
    -- found by the fuzzer under valgrind: Send and Recv attach the handle
    -- to its CONNECT_ONLY connection; 7.88's upkeep attaches it to every
    -- cached connection again and detaches it once, and after a share
    -- change ACTIVESOCKET looks in another cache, so another transfer was
    -- let through while the handle was still attached: either way the
    -- connection was never freed (the valgrind pass sees a leak)
    local s = curl.Share { Share = curl.CURL_LOCK_DATA_CONNECT }
    local e = curl.Easy { URL = H.nginx_http .. "/", ConnectOnly = 1, TimeoutMs = 5000, UpkeepIntervalMs = 0 }
    e:Perform()
    e:Upkeep() -- not attached yet: fine
    e:Send("GET /100b HTTP/1.1\r\nHost: x\r\n\r\n")
    if older_than(0x081600) then
      usage_error(function() e:Upkeep() end, "8%.22%.0")
      usage_error(function() e:SetOpt_Share(s) end, "8%.22%.0")
      usage_error(function() e:SetOpt_Share(nil) end, "8%.22%.0")
      if older_than(0x080C00) then
        usage_error(function() e:Perform() end, "8%.12%.0")
      end
    else
      e:Upkeep()
    end
    -- a copy is a fresh handle: it may do all of that
    local copy = e:DupHandle()
    copy:SetOpt_Share(s)
    copy:Upkeep()
    copy:Close()
    e:Close()
    s:Close()
  end)

  it("DupHandle after an SSLENGINE that failed to load", function()
    -- found by the fuzzer under valgrind: libcurl keeps the name of an
    -- engine that failed to load; duphandle gives the copy its own cookie
    -- store, fails to load the engine for it, and before 8.5.0 frees the
    -- copy without its cookie store (a leak). On every version it then
    -- fails with CURLE_OUT_OF_MEMORY, which says nothing of the cause.
    local e = curl.Easy { CookieList = "Set-Cookie: a=b; domain=example.com" }
    assert.is_false(pcall(e.SetOpt_SSLEngine, e, "curl-no-such-engine"))
    usage_error(function() e:DupHandle() end, "SSLENGINE")
    -- SSLENGINE_DEFAULT forgets the name (whatever it returns)
    pcall(e.SetOpt_SSLEngine_Default, e, 1)
    e:DupHandle():Close()
    -- nil and "" leave the name as it was (libcurl ignores them)
    assert.is_false(pcall(e.SetOpt_SSLEngine, e, "curl-no-such-engine"))
    e:SetOpt_SSLEngine(nil)
    usage_error(function() e:DupHandle() end, "SSLENGINE")
    e:SetOpt_SSLEngine("")
    usage_error(function() e:DupHandle() end, "SSLENGINE")
    -- so does Reset
    e:Reset()
    e:DupHandle():Close()
    e:Close()
  end)

  it("a share of TLS sessions is not set on an easy with its own session cache (libcurl before 8.12.0)", function()
    -- 7.88 made the easy's own cache at its first transfer and lost it
    -- when such a share replaced it (a leak the valgrind pass sees).
    local sh = curl.Share { Share = curl.CURL_LOCK_DATA_SSL_SESSION }
    local e = curl.Easy { URL = H.nginx_http .. "/100b", WriteFunction = function() end, TimeoutMs = 5000 }
    e:Perform()
    local copy = e:DupHandle()
    if older_than(0x080C00) then
      usage_error(function() e:SetOpt_Share(sh) end, "8%.12%.0")
    end
    copy:SetOpt_Share(sh) -- a copy has no cache of its own yet
    copy:Perform()
    -- shared, unshared (the easy makes its own cache), shared again
    local f = curl.Easy { URL = H.nginx_http .. "/100b", WriteFunction = function() end,
                          TimeoutMs = 5000, Share = sh }
    f:Perform()
    f:SetOpt_Share(nil)
    f:Perform()
    if older_than(0x080C00) then
      usage_error(function() f:SetOpt_Share(sh) end, "8%.12%.0")
    end
    -- a share without TLS sessions is fine at any time
    local plain = curl.Share { Share = curl.CURL_LOCK_DATA_DNS }
    e:SetOpt_Share(plain)
    e:Perform()
    e:Close(); copy:Close(); f:Close(); sh:Close(); plain:Close()
  end)

  it("Reset after CURLOPT_RESOLVE, then a transfer", function()
    -- curl_easy_reset kept a copy of the list pointer that the next
    -- transfer reads, and the binding freed the list (a use after free)
    local e = curl.Easy { URL = H.url("/size/5"), WriteFunction = function() end }
    e:SetOpt_Resolve { "-fuzz.test:80", "fuzz.test:80:127.0.0.1" }
    e:Reset()
    H.gc()
    local n = 0
    e:SetOpt_URL(H.url("/size/5"))
    e:SetOpt_WriteFunction(function(d) n = n + #d end)
    e:Perform()
    assert.are.equal(5, n)
    e:Close()
  end)

  it("Reset after COOKIEFILE frees the file list and keeps the cookies (libcurl before 8.0.0)", function()
    -- 7.88's curl_easy_reset forgot the COOKIEFILE list without freeing it
    -- (found by the fuzzer under valgrind); the binding frees it first and
    -- gives the handle's cookies back, as 8.0.0's reset keeps them
    local path = os.tmpname()
    local line = "127.0.0.1\tFALSE\t/\tFALSE\t0\tkept\t1"
    local function has_cookie(e)
      for _, l in ipairs(e:GetInfo_CookieList()) do
        if l:find("kept\t1", 1, true) then return true end
      end
      return false
    end
    local e = curl.Easy()
    e:SetOpt_CookieFile(path)
    e:Reset()
    e:SetOpt_CookieFile(path)
    e:SetOpt_CookieList(line)
    assert.is_true(has_cookie(e))
    e:Reset()
    assert.is_true(has_cookie(e), "the cookie survives the reset")
    e:SetOpt_CookieFile(path)
    local copy = e:DupHandle()
    copy:Reset()
    copy:Close()
    e:Close()
    -- with a share of cookies: the handle still uses the share's after Reset
    local sh = curl.Share { Share = curl.CURL_LOCK_DATA_COOKIE }
    local a = curl.Easy { Share = sh, CookieFile = path }
    a:SetOpt_CookieList(line)
    a:Reset()
    assert.is_true(has_cookie(a), "still linked to the share's cookies")
    local b = curl.Easy { Share = sh }
    assert.is_true(has_cookie(b))
    a:Close(); b:Close()
    os.remove(path)
  end)

  it("debug.setlocal on the frame of a running SocketAction or RemoveHandle", function()
    -- the C paths of these methods read their argument slots again after
    -- libcurl returned; a callback can change those slots with the debug
    -- library (found by review: a crash on 5.2-5.4), so the C functions put
    -- their arguments back first
    if not (debug and debug.setlocal) then return end
    local m = curl.Multi()
    local phase, value
    m:SetOpt_SocketFunction(function()
      if phase then
        -- level 2: the method's C function (only that frame is changed)
        local info = debug.getinfo(2, "S")
        if info and info.what == "C" then
          for slot = 1, 2 do debug.setlocal(2, slot, value) end
        end
        if phase == "raise" then error("boom", 0) end
      end
    end)
    m:SetOpt_TimerFunction(function() end)
    for _, v in ipairs { 12345, {}, false } do
      value = v
      local e = curl.Easy { URL = H.url("/slow/100/200"), WriteFunction = function() end }
      m:AddHandle(e)
      phase = nil
      for _ = 1, 5 do m:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0); os.execute("sleep 0.01") end
      phase = "remove"
      m:RemoveHandle(e)
      assert.are.equal(0, #m:GetHandles())
      m:AddHandle(e)
      phase = "raise"
      local ok, err
      for _ = 1, 50 do
        ok, err = pcall(m.SocketAction, m, curl.CURL_SOCKET_TIMEOUT, 0)
        if not ok then break end
        os.execute("sleep 0.01")
      end
      assert.is_false(ok)
      assert.are.equal("boom", err)
      phase = nil
      m:RemoveHandle(e)
      e:Close()
    end
    -- and the methods' closures hold nothing a script could misuse
    for _, f in ipairs { m.SocketAction, m.AddHandle, m.RemoveHandle } do
      for i = 1, 5 do
        local _, v = debug.getupvalue(f, i)
        assert.are_not.equal("thread", type(v))
      end
    end
    m:Close()
  end)

  -- Lua 5.1 runs a GC step (and so finalizers) at the end of lua_cpcall's
  -- inner call, and return hooks when C functions return: inside mlua's
  -- protected-call setup, between storing its two C functions in the
  -- registry and reading them back. A finalizer or hook calling the module
  -- there made the outer call run the nested call's function (a crash on
  -- 5.1 within a few thousand calls). The re-entry guard keeps the two
  -- entries (src/luaapi/export.rs); run in a child, so a crash fails the
  -- case instead of ending the suite.
  it("finalizers and return hooks that call the module while it runs", function()
    if H.feature == "lua51" then
      assert.are.equal(2, curl._reentry_keys, "the guard found mlua's two registry entries")
    else
      assert.are.equal(0, curl._reentry_keys)
    end
    local out, err = H.run_lua([[
      local curl = require "curl"
      collectgarbage("setpause", 50)
      collectgarbage("setstepmul", 400)
      local fins, hooks = 0, 0
      local function fin()
        fins = fins + 1
        local e = curl.Easy()
        pcall(e.SetOpt_URL, e, "http://127.0.0.1:1/")
        pcall(curl.Easy, { URL = 1 }) -- an error inside too
        e:Close()
      end
      local make
      if newproxy then
        local proto = newproxy(true)
        getmetatable(proto).__gc = fin
        make = function() return newproxy(proto) end
      else
        local mt = { __gc = fin }
        make = function() return setmetatable({}, mt) end
      end
      local m = curl.Multi()
      for _ = 1, 30000 do
        local _ = make()
        local e = curl.Easy()
        e:SetOpt_URL("http://127.0.0.1:1/")
        m:AddHandle(e)
        m:RemoveHandle(e)
        e:Close()
      end
      local busy = false
      debug.sethook(function()
        if busy then return end
        busy = true
        hooks = hooks + 1
        local e = curl.Easy()
        e:Close()
        busy = false
      end, "r")
      for _ = 1, 3000 do
        local e = curl.Easy()
        e:SetOpt_URL("http://127.0.0.1:1/")
        e:Close()
      end
      debug.sethook()
      m:Close()
      print("done", fins > 0, hooks > 0)
    ]])
    assert.are.equal("done\ttrue\ttrue\n", out, err)
  end)

  it("a finalizer that calls the module after lua_close finalized it", function()
    -- found by the re-entry fuzz ops: objects given a __gc before
    -- require "curl" are finalized at lua_close after the module's state
    -- (mlua's data: freed memory on every version) and, on 5.1 and LuaJIT,
    -- after the module's code was unmapped (dlclose); a crash at exit
    local out, err = H.run_lua([[
      local curl
      local function fin()
        local ok, e = pcall(function() local x = curl.Easy(); x:Close() end)
        io.write("late ", tostring(ok), " ", tostring(e):match("closing") or tostring(e), "\n")
      end
      keep = {}
      for i = 1, 3 do
        if newproxy then local p = newproxy(true); getmetatable(p).__gc = fin; keep[i] = p
        else keep[i] = setmetatable({}, { __gc = fin }) end
      end
      curl = require "curl"
      -- made after the module: finalized before it, the module still works
      local function early()
        local x = curl.Easy(); x:Close()
        io.write("early ok\n")
      end
      if newproxy then local p = newproxy(true); getmetatable(p).__gc = early; keep[4] = p
      else keep[4] = setmetatable({}, { __gc = early }) end
      io.write("end\n")
    ]])
    assert.are.equal("end\nearly ok\nlate false closing\nlate false closing\nlate false closing\n", out, err)
  end)

  it("LuaJIT 2.1.0-beta3: the module's Lua code runs with the JIT off (LuaJIT #1000)", function()
    -- found by the re-entry fuzz ops: Debian 12's LuaJIT spun forever in a
    -- JIT-compiled pairs() loop of curl.lua (and of the fuzzer); the fix
    -- (upstream 119fd1fa) is not in it. No trace may start in the
    -- module's Lua code there (elsewhere traces do start in curl.lua).
    local jit = rawget(_G, "jit")
    if not (jit and jit.version == "LuaJIT 2.1.0-beta3" and jit.status()) then
      return pending("LuaJIT 2.1.0-beta3 with the JIT on only")
    end
    local sources = {}
    local function on_trace(what, _, func)
      if what == "start" then sources[debug.getinfo(func, "S").source] = true end
    end
    jit.attach(on_trace, "trace")
    for _ = 1, 300 do
      local e = curl.Easy { URL = "http://127.0.0.1:1/", TimeoutMS = 5, ConnectTimeoutMS = 5 }
      e:Close()
    end
    -- dkjson (Fetch's JSON without lua-cjson): LuaJIT spun in its
    -- isarray() pairs loop (a Fetch with `json` in a finalizer)
    local has_cjson = pcall(require, "cjson")
    local has_dk, dk = pcall(require, "dkjson")
    if has_dk and not has_cjson then
      for i = 1, 300 do dk.decode(dk.encode { a = i, b = { 1, 2, 3 }, c = { x = "y" } }) end
    end
    jit.attach(on_trace)
    assert.is_nil(sources["=curl.lua"])
    for source in pairs(sources) do assert.is_nil(source:match("dkjson%.lua$"), source) end
    -- LuaJIT refuses jit.off in a finalizer: a loop file first loaded
    -- there still loads (and stays compiled)
    local out, err = H.run_lua(([[
      package.path = %q .. package.path
      require "curl"
      local ok, e
      do
        local p = newproxy(true)
        getmetatable(p).__gc = function() ok, e = pcall(require, "curl.loop.poller") end
      end
      collectgarbage(); collectgarbage()
      io.write(tostring(ok), " ", type(e), "\n")
    ]]):format(H.root .. "/lua/?.lua;"))
    assert.are.equal("true table\n", out, err)
    -- the WebSocket helper is loaded with curl.loop (loop:WebSocket's own
    -- require may be in a finalizer)
    out, err = H.run_lua(([[
      package.path = %q .. package.path
      require "curl.loop"
      io.write(type(package.loaded["curl.loop.websocket"]), "\n")
    ]]):format(H.root .. "/lua/?.lua;"))
    assert.are.equal("table\n", out, err)
  end)

  it("sharing connections twice, and again after UNSHARE (libcurl before 8.22)", function()
    -- found by the fuzzer under valgrind: 7.88 makes a new connection cache
    -- at each SHARE of CURL_LOCK_DATA_CONNECT and leaks the one before
    -- (UNSHARE keeps it); the suite's valgrind pass checks no leak is left
    local s = curl.Share()
    s:SetOpt(curl.CURLSHOPT_SHARE, curl.CURL_LOCK_DATA_CONNECT)
    s:SetOpt(curl.CURLSHOPT_SHARE, curl.CURL_LOCK_DATA_CONNECT) -- a no-op
    s:SetOpt(curl.CURLSHOPT_UNSHARE, curl.CURL_LOCK_DATA_CONNECT)
    if older_than(0x081600) then
      usage_error(function() s:SetOpt(curl.CURLSHOPT_SHARE, curl.CURL_LOCK_DATA_CONNECT) end, "leaks the first")
    else
      s:SetOpt(curl.CURLSHOPT_SHARE, curl.CURL_LOCK_DATA_CONNECT)
    end
    -- a transfer through the share still works
    local e = curl.Easy { URL = H.url("/size/5"), Share = s, WriteFunction = function() end }
    e:Perform()
    e:Close()
    s:Close()
  end)

  it("the write callback's internal caller, called from Lua", function()
    -- reachable with debug.getinfo from a write callback; it once read
    -- the bytes through its arguments (a NULL pointer: a crash)
    local found
    local e = curl.Easy {
      URL = H.url("/size/10"),
      WriteFunction = function(s)
        for level = 2, 4 do
          local info = debug.getinfo(level, "fS")
          if info and info.what == "C" and not found then found = info.func end
        end
        return #s
      end,
    }
    e:Perform()
    e:Close()
    assert.is_function(found)
    for _, args in ipairs { {}, { print, nil, 100000 }, { print, "x", 5, nil } } do
      local ok, err = pcall(found, (table.unpack or unpack)(args, 1, 4))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("internal function", 1, true))
    end
  end)

  it("a call hook of the write callback's caller that writes on another easy", function()
    -- found by the re-entry fuzz ops (Lua 5.1): the hook ran after the
    -- outer write had handed its bytes over and before the caller took
    -- them; the nested write's own hand-over emptied the slot, and the
    -- outer write then failed with "internal function called from Lua"
    local caller = write_caller()
    local inner_got, got, nested = {}, {}, 0
    local inner = curl.Easy { URL = H.url("/size/7"), WriteFunction = function(s) inner_got[#inner_got + 1] = s end }
    local outer = curl.Easy { URL = H.url("/size/10"), WriteFunction = function(s) got[#got + 1] = s end }
    debug.sethook(function()
      local info = debug.getinfo(2, "f")
      if nested == 0 and info and info.func == caller then
        nested = 1
        inner:Perform()
      end
    end, "c")
    local ok, err = pcall(outer.Perform, outer)
    debug.sethook()
    inner:Close()
    outer:Close()
    assert.is_true(ok, tostring(err))
    assert.are.equal(10, #table.concat(got))
    if nested == 1 then assert.are.equal(7, #table.concat(inner_got)) end
  end)

  it("an easy whose transfer ended while resolving over DoH (libcurl before 8.22)", function()
    -- found by the fuzzer under valgrind: 7.88 frees a DoH lookup's state
    -- when the lookup ends or at cleanup; a transfer that ends during it
    -- (an abort, a timeout, RemoveHandle) leaves it in the handle, and
    -- the handle's next transfer cleared it without freeing it
    local doh = "http://127.0.0.1:1/dns-query" -- never reached here
    local e = curl.Easy {
      URL = "http://doh-guard.invalid/", DoH_URL = doh,
      XferInfoFunction = function() return true end, -- abort while resolving
    }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    if older_than(0x081600) then
      -- (8.22 finds the DoH server refused before the first progress call)
      assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code, tostring(err))
      usage_error(function() e:Perform() end, "DOH_URL")
      e:Reset() -- the state is still there
      e:SetOpt_URL(H.url("/size/5"))
      usage_error(function() e:Perform() end, "DOH_URL")
    end
    -- a copy is a fresh handle
    local copy = e:DupHandle()
    copy:SetOpt_URL(H.url("/size/5"))
    copy:SetOpt_DoH_URL(nil)
    copy:SetOpt_XferInfoFunction(nil)
    copy:SetOpt_WriteFunction(function() end)
    copy:Perform()
    copy:Close()
    e:Close()
    -- removed from a multi while resolving
    local m = curl.Multi()
    local f = curl.Easy { URL = "http://doh-guard.invalid/", DoH_URL = doh, WriteFunction = function() end }
    m:AddHandle(f)
    m:Perform()
    m:RemoveHandle(f)
    f:SetOpt_URL(H.url("/size/5"))
    f:SetOpt_DoH_URL(nil)
    if older_than(0x081600) then
      usage_error(function() f:Perform() end, "DOH_URL")
    end
    f:Close()
    -- DOH_URL cleared while the lookup runs (found by review): the
    -- transfer started with DoH all the same
    local g = curl.Easy { URL = "http://doh-guard.invalid/", DoH_URL = doh, WriteFunction = function() end }
    m:AddHandle(g)
    m:Perform()
    g:SetOpt_DoH_URL(nil)
    m:RemoveHandle(g)
    g:SetOpt_URL(H.url("/size/5"))
    if older_than(0x081600) then
      usage_error(function() g:Perform() end, "DOH_URL")
    end
    g:Close()
    m:Close()
  end)

  it("a file:// transfer whose progress callback aborts (libcurl before 8.22)", function()
    -- found by the fuzzer under valgrind: a file:// transfer has no socket
    -- and goes to DONE within one pass of libcurl's loop; a progress
    -- callback that aborts at the end of that pass (the 5th call for an
    -- empty upload) made 7.88 skip the transfer's "done" step, so the
    -- file's path and descriptor were never freed. Before 8.22 the
    -- binding runs file:// transfers without progress callbacks.
    local path = os.tmpname()
    local calls = 0
    local e = curl.Easy {
      URL = "file://" .. path,
      Upload = true,
      ReadFunction = function() return nil end,
      XferInfoFunction = function()
        calls = calls + 1
        return calls == 5
      end,
    }
    local ok, err = pcall(e.Perform, e)
    if older_than(0x081600) then
      assert.is_true(ok, tostring(err))
      assert.are.equal(0, calls)
    else
      assert.is_true(calls > 0)
    end
    -- the script's own setting is back for other URLs
    calls = 0
    e:SetOpt_Upload(false)
    e:SetOpt_URL(H.url("/size/10"))
    e:SetOpt_XferInfoFunction(function() calls = calls + 1 end)
    e:SetOpt_WriteFunction(function() end)
    e:Perform()
    assert.is_true(calls > 0)
    e:Close()
    -- "file:/path" (one slash) is a file URL to libcurl too (found by
    -- review: the guard read only "scheme://")
    calls = 0
    local f = curl.Easy {
      URL = "file:" .. path, Upload = true, ReadFunction = function() return nil end,
      XferInfoFunction = function()
        calls = calls + 1
        return calls == 5
      end,
    }
    ok, err = pcall(f.Perform, f)
    if older_than(0x081600) then
      assert.is_true(ok, tostring(err))
      assert.are.equal(0, calls)
    end
    f:Close()
    os.remove(path)
  end)

  it("Upkeep on an easy whose transfer runs (libcurl before 8.22)", function()
    -- found by review: 7.88's curl_easy_upkeep attaches the easy to each
    -- cached connection and detaches it, so a running transfer lost its
    -- connection (a crash from the easy's own callback; between
    -- multi:Perform calls CURLM_INTERNAL_ERROR and a leaked connection)
    local refused = older_than(0x081600)
    local e = curl.Easy { URL = H.url("/size/10"), UpkeepIntervalMs = 0, WriteFunction = function() end }
    e:Perform() -- a connection idles in the easy's own cache
    e:Upkeep() -- not transferring: fine
    local seen
    e:SetOpt_URL(H.url("/size/300000"))
    e:SetOpt_WriteFunction(function()
      if seen == nil then seen = { pcall(e.Upkeep, e) } end
    end)
    e:Perform()
    if refused then
      assert.is_false(seen[1])
      assert.matches("Upkeep cannot run", tostring(seen[2]))
    end
    -- in a multi, between calls
    local m = curl.Multi()
    local body = {}
    e:SetOpt_URL(H.url("/size/300000"))
    e:SetOpt_WriteFunction(function(d) body[#body + 1] = d end)
    m:AddHandle(e)
    m:Perform()
    if refused then usage_error(function() e:Upkeep() end, "Upkeep cannot run") end
    local deadline = os.time() + 10
    while m:Perform() > 0 do
      assert.is_true(os.time() <= deadline, "deadline passed")
      m:Wait(100)
    end
    local msg, result = m:InfoRead()
    assert.are.equal(curl.CURLMSG_DONE, msg)
    assert.are.equal(curl.CURLE_OK, result)
    assert.are.equal(H.pattern(300000), table.concat(body))
    m:RemoveHandle(e)
    e:Upkeep() -- removed: fine again
    e:Close()
    m:Close()
  end)

  it("__gc called by hand (debug library): twice, or on another class", function()
    -- found by review: mlua's destructor drops whatever block it is given
    local gc = debug.getmetatable(curl.Easy()).__gc
    local e = curl.Easy()
    gc(e)
    gc(e) -- nothing: the object is already destructed
    assert.has_error(function() e:Perform() end)
    local m = curl.Multi()
    gc(m) -- the Easy's __gc on a Multi: nothing
    assert.are.equal(0, m:Perform())
    local p = curl.Poller()
    debug.getmetatable(m).__gc(p)
    assert.are.equal(0, p:Count())
    m:Close()
    p:Close()
    collectgarbage()
    collectgarbage()
  end)

  -- One object of every class (the guard is installed per class).
  local function one_of_each()
    local e = curl.Easy()
    local mime = curl.Mime(e)
    return { Easy = e, Multi = curl.Multi(), Poller = curl.Poller(), Share = curl.Share(),
             URL = curl.URL(), Buffer = curl.Buffer(), Mime = mime, MimePart = mime:AddPart() }
  end

  it("every class's __gc is the module's guard, not mlua's destructor", function()
    -- (the guard calls mlua's destructor directly: new_object leaves a
    -- class unguarded if mlua's __gc is not an upvalue-less C function)
    for name, obj in pairs(one_of_each()) do
      local gc = debug.getmetatable(obj).__gc
      assert.are.equal("C", debug.getinfo(gc, "S").what, name)
      assert.is_nil(debug.getupvalue(gc, 1), name) -- nothing to swap
    end
  end)

  it("__gc by hand from a call hook inside __gc, or with its argument swapped", function()
    -- found by a hook hunt: the guard called mlua's destructor with
    -- lua_call, where a call hook could call __gc again on the same object
    -- (the outer call then dropped freed memory), swap the argument for an
    -- object of another class (debug.setlocal), or take the destructor
    -- itself (debug.getinfo) and call it on anything
    for name, obj in pairs(one_of_each()) do
      local gc = debug.getmetatable(obj).__gc
      local nested, calls = false, 0
      debug.sethook(function()
        calls = calls + 1
        local caller = debug.getinfo(3, "f")
        if not nested and caller and caller.func == gc then
          nested = true
          gc(obj)
        end
      end, "c")
      gc(obj)
      debug.sethook()
      assert.is_false(nested, name) -- no call event inside the guard
      gc(obj) -- destructed: nothing
    end
    local victim = curl.Multi()
    local easy_gc = debug.getmetatable(curl.Easy()).__gc
    local taken
    debug.sethook(function()
      local info = debug.getinfo(2, "fS")
      if info and info.what == "C" and info.func ~= easy_gc and info.func ~= debug.sethook then
        taken = taken or info.func
        pcall(debug.setlocal, 2, 1, victim)
      end
    end, "c")
    easy_gc(curl.Easy())
    debug.sethook()
    if taken then pcall(taken, victim) end
    assert.are.equal(0, victim:Perform())
    victim:Close()
    collectgarbage()
    collectgarbage()
  end)

  it("__gc of a class on an object of another class given its metatable", function()
    -- found by review: the guard compared metatables only, and
    -- debug.setmetatable gives any userdata a class's metatable: mlua's
    -- destructor then dropped a URL's block as an Easy (SIGSEGV)
    local mt = debug.getmetatable(curl.Easy())
    local u = curl.URL("http://x/")
    local umt = debug.getmetatable(u)
    debug.setmetatable(u, mt)
    mt.__gc(u) -- not an Easy: nothing
    local f = io.tmpfile()
    local fmt = debug.getmetatable(f)
    debug.setmetatable(f, mt)
    mt.__gc(f) -- not the module's at all: nothing
    debug.setmetatable(f, fmt)
    f:close()
    debug.setmetatable(u, umt)
    assert.are.equal("http://x/", u:Get(curl.CURLUPART_URL))
    u = nil
    collectgarbage()
    collectgarbage()
  end)

  it("mlua's registry entries kept across a call on 5.1 go back as they were", function()
    -- found by review: the 5.1 keeper put back whatever was in the two
    -- registry slots as upvalue-less C functions; a closure stored there
    -- came back without its upvalues (SIGSEGV when called)
    local reg = debug.getregistry()
    local keys = {}
    for k, v in pairs(reg) do
      if type(k) == "userdata" and type(v) == "function" and not pcall(string.dump, v) then keys[#keys + 1] = k end
    end
    local before = {}
    for i, k in ipairs(keys) do before[i] = reg[k]; reg[k] = coroutine.wrap(function() return "ok" end) end
    curl._enter(function() end)
    for i, k in ipairs(keys) do
      local ok, r = pcall(reg[k])
      assert.is_true(ok)
      assert.are.equal("ok", r)
      reg[k] = before[i]
    end
  end)

  it("debug.setlocal on the frame that keeps mlua's registry entries (Lua 5.1)", function()
    -- found by a hook hunt: on 5.1 the exported functions keep two of mlua's
    -- registry entries across the call, on their own Lua stack, where a
    -- callback could replace them with debug.setlocal; a call from a return
    -- hook inside mlua's next protected call then put the replacements back
    -- and mlua ran the wrong function (SIGSEGV). Each now goes back only if
    -- its slot still holds it (else mlua's function again, from Rust).
    local path = os.tmpname()
    local f = assert(io.open(path, "wb")); f:write("x"); f:close()
    local e2 = curl.Easy { URL = "file://" .. path }
    local Perform = e2.Perform
    local replaced = 0
    e2:SetOpt_WriteFunction(function(s)
      for level = 2, 30 do
        local info = debug.getinfo(level, "f")
        if not info then break end
        if info.func == Perform then
          for i = 1, 2 do
            if debug.setlocal(level - 1, i, print) then replaced = replaced + 1 end
          end
          break
        end
      end
      return #s
    end)
    local busy = false
    debug.sethook(function()
      if busy then return end
      busy = true
      pcall(Perform, e2)
      busy = false
    end, "r")
    for _ = 1, 200 do curl.Easy():Close() end
    debug.sethook()
    e2:Close()
    os.remove(path)
    assert.is_true(replaced >= 0) -- (5.1: the slots are there, and checked before they go back)
  end)

  it("a tree of mimes is at most 64 levels deep", function()
    -- found by review: freeing a chain of 100,000 nested mimes overflowed
    -- the stack (the binding's drops and libcurl's own free recurse)
    local e = curl.Easy()
    local sub
    for i = 1, 64 do
      local m = curl.Mime(e)
      local p = m:AddPart()
      if sub then p:SubParts(sub) else p:Data("x") end
      sub = m
    end
    local top = curl.Mime(e)
    usage_error(function() top:AddPart():SubParts(sub) end, "64 levels")
    -- from the top down, through parts made before their mime was attached
    local root = curl.Mime(e)
    local p = root:AddPart()
    for _ = 1, 63 do
      local s = curl.Mime(e)
      local sp = s:AddPart()
      p:SubParts(s)
      p = sp
    end
    usage_error(function() p:SubParts(curl.Mime(e)) end, "64 levels")
    p:Data("leaf") -- the tree is unchanged and usable
    sub:Close()
    root:Close()
    top:Close()
    e:Close()
    collectgarbage()
  end)

  it("url:Get of a host that is not ASCII with CURLU_PUNYCODE (libcurl before 8.22)", function()
    -- found by review under valgrind: 7.88 loses its copy of the host when
    -- the conversion fails
    local u = curl.URL("http://m\195\188nchen.example/")
    if older_than(0x081600) then
      usage_error(function() u:Get(curl.CURLUPART_HOST, curl.CURLU_PUNYCODE) end, "CURLU_PUNYCODE")
    else
      pcall(u.Get, u, curl.CURLUPART_HOST, curl.CURLU_PUNYCODE)
    end
    pcall(u.Get, u, curl.CURLUPART_URL, curl.CURLU_PUNYCODE) -- no loss there
    local ascii = curl.URL("http://example.com/")
    assert.are.equal("example.com", ascii:Get(curl.CURLUPART_HOST, curl.CURLU_PUNYCODE))
    u:Close()
    ascii:Close()
  end)

  it("a call hook of the write callback's caller that calls it with other arguments", function()
    -- found by review: a hook of the caller runs while the bytes are set
    -- for it, and can call it with any arguments; it used to take the
    -- bytes and index past what it was given (a crash on Lua 5.1 and 5.2)
    local caller = write_caller()
    local unpack = table.unpack or unpack
    local got, results, hooked = {}, {}, false
    local outer = curl.Easy { URL = H.url("/size/10"), WriteFunction = function(s) got[#got + 1] = s end }
    debug.sethook(function()
      local info = debug.getinfo(2, "f")
      if not hooked and info and info.func == caller then
        hooked = true
        for _, args in ipairs { {}, { print }, { print, 1, 2 } } do
          results[#results + 1] = { pcall(caller, unpack(args)) }
        end
      end
    end, "c")
    local ok, err = pcall(outer.Perform, outer)
    debug.sethook()
    outer:Close()
    assert.is_true(ok, tostring(err))
    assert.are.equal(10, #table.concat(got)) -- the real call still got its bytes
    assert.is_true(hooked)
    assert.are.equal(3, #results)
    for _, r in ipairs(results) do
      assert.is_false(r[1])
      assert.truthy(tostring(r[2]):find("internal function called from Lua", 1, true), tostring(r[2]))
    end
  end)

  it("CONNECT_ONLY over TLS, then Recv", function()
    local e = curl.Easy { URL = H.nginx_https .. "/", CAInfo = H.ca, ConnectOnly = 1, TimeoutMs = 5000 }
    e:Perform()
    assert.is_nil(e:Recv(10)) -- nothing sent yet: not ready (HTTP/2 would crash 7.88 here)
    e:Close()
  end)

  it("CONNECT_ONLY 2 with CUSTOMREQUEST HEAD cannot make Perform wait forever (libcurl 8)", function()
    -- fuzz seed lua5.4 1805720116 on the bundled 8.22: Perform never
    -- returned, its TIMEOUT_MS ignored (7.88 times out)
    local e = curl.Easy { URL = H.url("/size/9"), ConnectOnly = 2, CustomRequest = "HEAD", TimeoutMs = 400,
                          WriteFunction = function() end }
    if older_than(0x080000) then
      local ok, err = pcall(e.Perform, e)
      assert.is_true(ok or err.kind == "easy", tostring(err))
    else
      usage_error(function() e:Perform() end, "never ends the transfer")
      local multi = curl.Multi()
      usage_error(function() multi:AddHandle(e) end, "never ends the transfer")
      multi:Close()
      e:SetOpt_CustomRequest(nil)
      -- CONNECT_ONLY 2 alone on an http:// URL: the next case's guard
      usage_error(function() e:Perform() end, "CONNECT_ONLY 2 is for ws://")
    end
    e:Close()
  end)

  it("a CONNECT_ONLY 2 transfer paused inside Perform cannot make it wait forever (libcurl 8)", function()
    -- fuzz (bundled 8.22, lua5.4 seed 7): a header callback paused a
    -- CONNECT_ONLY 2 transfer (ws://, also http://) inside Perform, which
    -- then never returned, its TIMEOUT_MS ignored (7.88 times out). From
    -- 8.0 CONNECT_ONLY 2 is refused for other than ws:// (next case), so
    -- there the WebSocket test server answers.
    local url, pids = H.url("/size/9"), {}
    if not older_than(0x080000) then
      if H.needs_protocol("ws") then return pending(H.needs_protocol("ws")) end
      local info, reason = H.start_server(("/usr/bin/python3 '%s/spec/support/ws_server.py' 127.0.0.1 %s")
        :format(H.root, H.lua_pid), pids)
      if not info then return pending("WebSocket server: " .. tostring(reason)) end
      url = "ws://127.0.0.1:" .. info.PORT .. "/echo"
    end
    finally(function() H.stop_servers(pids) end)
    local function run(how)
      local n, e = 0, nil
      e = curl.Easy { URL = url, ConnectOnly = 2, TimeoutMs = 300, WriteFunction = function() end,
        HeaderFunction = function()
          n = n + 1
          if n == 2 then
            if how == "return" then return curl.CURL_WRITEFUNC_PAUSE end
            e:Pause(curl.CURLPAUSE_RECV)
          end
        end }
      local ok, err = pcall(e.Perform, e)
      e:Close()
      return ok, err, n
    end
    for _, how in ipairs { "return", "method" } do
      local ok, err, n = run(how)
      assert.is_false(ok)
      assert.is_true(n >= 2)
      if older_than(0x080000) then
        assert.are.equal("CURLE_OPERATION_TIMEDOUT", err.name, tostring(err))
      elseif how == "return" then
        assert.are.equal("CURLE_WRITE_ERROR", err.name, tostring(err))
        assert.truthy(err.message:find("refused to pause a CONNECT_ONLY 2 transfer", 1, true), tostring(err))
      else
        -- the usage error easy:Pause raised in the callback ends the transfer
        assert.are.equal("usage", err.kind, tostring(err))
        assert.truthy(err.message:find("never ends it once paused", 1, true), tostring(err))
      end
    end
    -- outside Perform (a multi, which can unpause) pausing is not refused
    local m, n = curl.Multi(), 0
    local e = curl.Easy { URL = url, ConnectOnly = 2, WriteFunction = function() end,
      HeaderFunction = function() n = n + 1; if n == 2 then return curl.CURL_WRITEFUNC_PAUSE end end }
    m:AddHandle(e)
    local deadline = os.time() + 10
    while n < 2 and os.time() < deadline do m:Perform(); m:Wait(20) end
    assert.are.equal(2, n)
    e:Pause(curl.CURLPAUSE_CONT)
    m:RemoveHandle(e)
    e:Close()
    m:Close()
  end)

  it("CONNECT_ONLY 2 with a URL that is not a WebSocket one cannot make Perform wait forever (libcurl 8)", function()
    -- fuzz (bundled 8.22, lua5.4 seed 7 with the re-entry ops): an
    -- http:// CONNECT_ONLY 2 transfer to a server that never answers:
    -- 8.22 waits for the response whatever the TIMEOUT (7.88 times out)
    local e = curl.Easy { URL = H.url("/size/9"), ConnectOnly = 2, TimeoutMs = 300, WriteFunction = function() end }
    local ok, err = pcall(e.Perform, e)
    if older_than(0x080000) then
      assert.is_true(ok, tostring(err))
    else
      assert.is_false(ok)
      assert.are.equal("usage", err.kind, tostring(err))
      assert.truthy(err.message:find("CONNECT_ONLY 2 is for ws:// and wss:// URLs", 1, true), tostring(err))
      -- and in a multi, where the transfer would never end either
      local m = curl.Multi()
      local ok2, err2 = pcall(m.AddHandle, m, e)
      assert.is_false(ok2)
      assert.are.equal("usage", err2.kind, tostring(err2))
      m:Close()
      e:SetOpt_ConnectOnly(1) -- a connection of another protocol: fine
      e:Perform()
    end
    e:Close()
  end)

  it("the request body cannot change while its transfer runs (libcurl before 8.7.0)", function()
    -- fuzz seed lua5.3 1592112580: a chunked POST from a read function,
    -- answered with a 307, given a 70,000-byte POSTFIELDS before it
    -- follows: 7.88 copies the new body into its 64 KiB upload buffer
    local multi = curl.Multi()
    local sent, headers = 0, 0
    local e = curl.Easy {
      URL = H.url("/307"), Post = true, FollowLocation = true, TimeoutMs = 5000,
      ReadFunction = function(n) if sent < 300000 then sent = sent + n; return ("r"):rep(n) end return "" end,
      SeekFunction = function() sent = 0; return 0 end,
      HeaderFunction = function() headers = headers + 1 end,
      WriteFunction = function() end,
    }
    multi:AddHandle(e)
    local tried, result = false, nil
    for _ = 1, 5000 do
      local running = multi:Perform()
      if headers > 0 and not tried then
        tried = true
        local ok, err = pcall(e.SetOpt_PostFields, e, ("x"):rep(70000))
        local ok2, err2 = pcall(e.SetOpt_PostFieldSize_Large, e, 10)
        if older_than(0x080700) then
          assert.is_false(ok)
          assert.truthy(err.message:find("8.7.0", 1, true), err.message)
          assert.is_false(ok2)
          assert.are.equal("usage", err2.kind)
        end
      end
      local msg, res = multi:InfoRead()
      if msg == curl.CURLMSG_DONE then result = res break end
      if running == 0 then break end
      multi:Poll(20)
    end
    assert.is_true(tried)
    assert.are.equal(curl.CURLE_OK, result)
    -- once it ended (InfoRead said so) the body may change again
    e:SetOpt_PostFields("a=1")
    multi:RemoveHandle(e)
    e:Close()
    multi:Close()
  end)

  it("HTTP/2 and other protocols do not share a connection cache (libcurl before 8.1.0)", function()
    if not older_than(0x080100) then return end
    local multi = curl.Multi()
    local loop = H.loop(multi)
    multi:AddHandle(curl.Easy { URL = H.nginx_https .. "/1k", CAInfo = H.ca, WriteFunction = function() end })
    loop:run { remove = true }
    local dict = curl.Easy { URL = "dict://127.0.0.1:1/x", TimeoutMs = 1000 }
    usage_error(function() multi:AddHandle(dict) end, "8%.1%.0")
    assert.are.equal(0, #multi:GetHandles(), "nothing was added")
    multi:Close()
    -- HTTP/1.1 for the HTTPS transfer: both can run in one multi
    multi = curl.Multi()
    loop = H.loop(multi)
    multi:AddHandle(curl.Easy { URL = H.nginx_https .. "/1k", CAInfo = H.ca, HttpVersion = curl.CURL_HTTP_VERSION_1_1,
                                WriteFunction = function() end })
    loop:run { remove = true }
    multi:AddHandle(dict)
    loop.done = {}
    loop:run { remove = true }
    assert.are.equal(1, #loop.done)
    multi:Close()
    -- an easy's own cache (Perform)
    local e = curl.Easy { URL = H.nginx_https .. "/1k", CAInfo = H.ca, WriteFunction = function() end }
    e:Perform()
    e:SetOpt_URL("dict://127.0.0.1:1/x")
    usage_error(function() e:Perform() end, "8%.1%.0")
    e:Close()
  end)
end)
