-- curl.Fetch against the loopback servers: the response, every request
-- option, errors, and that nothing touches stdin or stdout.
local H = require "helper"
local curl = H.curl

local has_json = pcall(require, "cjson") or pcall(require, "dkjson")

local function echo(opts, path)
  local r = curl.Fetch(H.url(path or "/echo"), opts)
  assert.are.equal(200, r.status)
  return r:Json(), r
end

local usage_error = H.usage_error

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

describe("curl.Fetch", function()
  after_each(H.gc)

  it("GETs a body, with status, headers, url and HTTP version", function()
    local r = curl.Fetch(H.url("/size/300"))
    assert.are.equal(200, r.status)
    assert.are.equal(H.pattern(300), r.body)
    assert.are.equal("300", r.headers["content-length"])
    assert.are.equal("300", r:Header("Content-Length"))
    assert.are.equal(H.url("/size/300"), r.url)
    assert.are.equal("1.1", r.http_version)
    assert.are.equal(300, r.easy:GetInfo_Size_Download_T())
    assert.truthy(tostring(r):find("curl.Response 200", 1, true))
  end)

  it("follows redirects by default, keeping the final response's headers", function()
    local r = curl.Fetch(H.url("/redirect/3"))
    assert.are.equal(200, r.status)
    assert.are.equal("done", r.body)
    assert.are.equal(H.url("/redirect/0"), r.url)
    assert.is_nil(r.headers.location)
    r = curl.Fetch(H.url("/redirect/3"), { follow = false })
    assert.are.equal(302, r.status)
    assert.truthy(r.headers.location)
    local ok, err = pcall(curl.Fetch, H.url("/redirect/3"), { follow = 2 })
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_TOO_MANY_REDIRECTS, err.code)
  end)

  it("joins repeated headers and keeps set-cookie as a list", function()
    local r = curl.Fetch(H.url("/multiheader"))
    assert.are.same({ "a=1; Path=/", "b=2; Path=/" }, r.headers["set-cookie"])
    assert.are.equal("one, two", r.headers["x-multi"])
    assert.are.equal("padded", r.headers["x-spaced"])
  end)

  it("an HTTP error status is a response; FailOnError makes it an error", function()
    local r = curl.Fetch(H.url("/status/404"))
    assert.are.equal(404, r.status)
    assert.are.equal("status 404", r.body)
    local ok, err = pcall(curl.Fetch, H.url("/status/404"), { options = { FailOnError = true } })
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_HTTP_RETURNED_ERROR, err.code)
  end)

  it("raises the same curl.Error as Perform for a transport failure", function()
    local ok, err = pcall(curl.Fetch, "http://127.0.0.1:1/")
    assert.is_false(ok)
    local e = curl.Easy { URL = "http://127.0.0.1:1/" }
    local ok2, err2 = pcall(e.Perform, e)
    assert.is_false(ok2)
    -- libcurl's text has the time the attempt took ("after 0 ms")
    local function timeless(v) return type(v) == "string" and v:gsub("after %d+ ms", "after N ms") or v end
    for _, k in ipairs { "kind", "code", "name", "message", "method" } do
      assert.are.equal(timeless(err2[k]), timeless(err[k]), k)
    end
    e:Close()
  end)

  it("sends method, headers (map or list) and query", function()
    if not has_json then return pending("no JSON module") end
    local j = echo({ method = "PATCH", headers = { ["X-A"] = "1", ["X-Two"] = { "p", "q" } },
                     query = { b = "x y", a = 1, flag = true, list = { 1, 2 } } })
    assert.are.equal("PATCH", j.method)
    assert.are.equal("1", j.headers["x-a"])
    assert.are.equal("a=1&b=x%20y&flag&list=1&list=2", j.query)
    j = echo({ headers = { "X-L: 2" }, query = { q = "&=" } }, "/echo?z=0")
    assert.are.equal("GET", j.method)
    assert.are.equal("2", j.headers["x-l"])
    assert.are.equal("z=0&q=%26%3D", j.query)
  end)

  it("posts a body, JSON, or a multipart form with a file", function()
    if not has_json then return pending("no JSON module") end
    local j = echo({ body = "raw=1" })
    assert.are.equal("POST", j.method)
    assert.are.equal("raw=1", j.body)
    j = echo({ method = "PUT", body = "put me" })
    assert.are.equal("PUT", j.method)
    assert.are.equal("put me", j.body)
    j = echo({ json = { name = "x", list = { 1, 2 } } })
    assert.are.equal("application/json", j.headers["content-type"])
    local J = pcall(require, "cjson") and require("cjson") or require("dkjson")
    assert.are.same({ name = "x", list = { 1, 2 } }, (J.decode(j.body)))
    local path = tmpname()
    local f = assert(io.open(path, "wb")); f:write("file bytes\n"); f:close()
    j = echo({ form = { field = "value", upload = { file = path, type = "text/plain" },
                        inline = { data = "abc", filename = "a.txt" } } })
    os.remove(path)
    assert.truthy(j.headers["content-type"]:find("multipart/form-data", 1, true))
    assert.truthy(j.body:find('name="field"', 1, true))
    assert.truthy(j.body:find("file bytes", 1, true))
    assert.truthy(j.body:find('filename="a.txt"', 1, true))
  end)

  it("HEAD and a GET with an explicit method", function()
    local r = curl.Fetch(H.url("/size/50"), { method = "head" })
    assert.are.equal(200, r.status)
    assert.are.equal("", r.body)
    assert.are.equal("50", r.headers["content-length"])
    r = curl.Fetch(H.url("/size/5"), { method = "GET" })
    assert.are.equal(5, #r.body)
  end)

  it("auth: basic from a string, digest from a table", function()
    assert.are.equal(200, curl.Fetch(H.url("/basic/u/p"), { auth = "u:p" }).status)
    assert.are.equal(401, curl.Fetch(H.url("/basic/u/p"), { auth = "u:wrong" }).status)
    assert.are.equal(200, curl.Fetch(H.url("/digest/u/p"), { auth = { "u", "p", type = "digest" } }).status)
    if has_json then
      local sent = curl.Fetch(H.url("/echo"), { auth = { bearer = "t0k3n" } }):Json()
      assert.are.equal("Bearer t0k3n", sent.headers.authorization)
    end
    usage_error(function() curl.Fetch(H.url("/echo"), { auth = { bearer = 5 } }) end, "auth.bearer")
  end)

  it("TLS: ca, verify = false, HTTP/2", function()
    local ok, err = pcall(curl.Fetch, H.nginx_https .. "/1k")
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_PEER_FAILED_VERIFICATION, err.code)
    local r = curl.Fetch(H.nginx_https .. "/1k", { ca = H.ca })
    assert.are.equal(1024, #r.body)
    assert.are.equal("2", r.http_version)
    r = curl.Fetch(H.nginx_https .. "/1k", { verify = false })
    assert.are.equal(200, r.status)
  end)

  it("timeouts in seconds, fractions allowed", function()
    local ok, err = pcall(curl.Fetch, H.url("/delay/3000"), { timeout = 0.3 })
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_OPERATION_TIMEDOUT, err.code)
    assert.are.equal(1, #curl.Fetch(H.url("/size/1"), { connect_timeout = 1.5 }).body)
    assert.is_true(err.message:find("3%d%d milliseconds") ~= nil, err.message)
  end)

  it("streams the body to a path or a file, and reports progress", function()
    local path = tmpname()
    local calls = 0
    local r = curl.Fetch(H.url("/size/100000"), { output = path, progress = function(dt, dn)
      calls = calls + 1
      assert.is_number(dt); assert.is_number(dn)
    end })
    assert.is_nil(r.body)
    assert.are.equal(100000, r.size)
    local f = assert(io.open(path, "rb"))
    assert.are.equal(H.pattern(100000), f:read("*a"))
    f:close()
    assert.is_true(calls > 0)
    f = assert(io.open(path, "wb"))
    curl.Fetch(H.url("/size/10"), { output = f })
    f:close()
    f = assert(io.open(path, "rb")); assert.are.equal(H.pattern(10), f:read("*a")); f:close()
    os.remove(path)
    -- a progress function returning true aborts
    local ok, err = pcall(curl.Fetch, H.url("/slow/10000/100"), { progress = function() return true end })
    assert.is_false(ok)
    assert.are.equal(curl.CURLE_ABORTED_BY_CALLBACK, err.code)
  end)

  it("takes any libcurl option by name", function()
    local r = curl.Fetch(H.url("/size/10"), { options = { UserAgent = "fetch-spec", MaxFileSize = 100 } })
    assert.are.equal(10, #r.body)
    if has_json then
      assert.are.equal("fetch-spec", curl.Fetch(H.url("/echo"), { options = { UserAgent = "fetch-spec" } })
        :Json().headers["user-agent"])
    end
    local ok, err = pcall(curl.Fetch, H.url("/size/10"), { options = { NoSuchOption = 1 } })
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
  end)

  it("refuses bad options with usage errors", function()
    usage_error(function() curl.Fetch(42) end, "#1 'url'")
    usage_error(function() curl.Fetch(H.url("/"), 5) end, "#2 'opts'")
    usage_error(function() curl.Fetch(H.url("/"), { tiemout = 1 }) end, "unknown option 'tiemout'")
    usage_error(function() curl.Fetch(H.url("/"), { timeout = "1" }) end, "'timeout'")
    usage_error(function() curl.Fetch(H.url("/"), { body = "a", json = {} }) end, "one of")
    usage_error(function() curl.Fetch(H.url("/"), { method = "BAD METHOD" }) end, "'method'")
    usage_error(function() curl.Fetch(H.url("/"), { headers = { 1, 2 } }) end, "'headers'")
    usage_error(function() curl.Fetch(H.url("/"), { headers = { a = print } }) end, "header \"a\" is a function")
    usage_error(function() curl.Fetch(H.url("/"), { output = 5 }) end, "'output'")
    usage_error(function() curl.Fetch(H.url("/"), { auth = { type = "basic" } }) end, "auth.user")
    usage_error(function() curl.Fetch(H.url("/"), { output = "/nonexistent/dir/file" }) end, "cannot open")
  end)

  it("Json: decodes, says when the body is not JSON or no module is there", function()
    if not has_json then return pending("no JSON module") end
    local r = curl.Fetch(H.url("/status/404"))
    local ok, err = pcall(r.Json, r)
    assert.is_false(ok)
    assert.are.equal(curl.Error, getmetatable(err))
    assert.are.equal("json", err.kind)
    -- no JSON module at all: a usage error that says what to install
    local saved_loaded = { cjson = package.loaded.cjson, dkjson = package.loaded.dkjson }
    local searchers = package.searchers or package.loaders
    local saved = {}
    for i, sr in ipairs(searchers) do saved[i] = sr end
    for i = #searchers, 1, -1 do searchers[i] = nil end
    package.loaded.cjson, package.loaded.dkjson = nil, nil
    local ok2, err2 = pcall(r.Json, r)
    for i, sr in ipairs(saved) do searchers[i] = sr end
    package.loaded.cjson, package.loaded.dkjson = saved_loaded.cjson, saved_loaded.dkjson
    assert.is_false(ok2)
    assert.are.equal("usage", err2.kind)
    assert.truthy(err2.message:find("dkjson", 1, true), err2.message)
    -- curl.json overrides the module found
    curl.json = { encode = function() return "{}" end, decode = function(s) return { raw = s } end }
    local d = curl.Fetch(H.url("/size/3")):Json()
    curl.json = nil
    assert.are.same({ raw = H.pattern(3) }, d)
  end)

  it("never reads stdin or writes stdout", function()
    -- a child Lua with a stdin that would be sent and a stdout that is checked
    local stdout, stderr = H.run_lua(("local curl = require 'curl'\n" ..
      "local r = curl.Fetch(%q, { method = 'PUT' })\n" ..
      "curl.Fetch(%q, { body = 'x' })\n" ..
      "io.stderr:write(r.body)\n"):format(H.url("/echo"), H.url("/size/10")), "STDIN-DATA\n")
    assert.are.equal("", stdout)
    assert.truthy(stderr:find('"method": "PUT"', 1, true), stderr)
    assert.is_nil(stderr:find("STDIN-DATA", 1, true))
  end)
end)

-------------------------------------------------------------- loop:Fetch

local in_task = H.in_task

-- the same failure, sync and async: name, code, kind and message (digits
-- aside: timings), with libcurl's detail
local FAILURES = {
  { "refused", function() return "http://127.0.0.1:1/", {} end },
  { "timeout", function() return H.url("/delay/3000"), { timeout = 0.2 } end },
  { "TLS", function() return H.nginx_https .. "/1k", {} end },
  { "HTTP error", function() return H.url("/status/404"), { options = { FailOnError = true } } end },
}

local function shape(err)
  return { kind = err.kind, code = err.code, name = err.name, message = (err.message:gsub("%d+", "N")) }
end

for _, name in ipairs(H.loop_backends) do
  describe("loop:Fetch (" .. name .. ")", function()
    local new = require("curl.loop." .. name).new
    local loop
    before_each(function() loop = new() end)
    after_each(function() loop:Close(); loop = nil; H.gc() end)

    it("returns the response in a coroutine, or calls back", function()
      local got = {}
      in_task(name, loop, function(l)
        local r = l:Fetch(H.url("/size/200"))
        got.co = { r.status, #r.body, r.headers["content-length"] }
      end)
      loop:Fetch(H.url("/redirect/2"), nil, function(r, err)
        got.cb = { r and r.status, r and r.body, err }
      end)
      loop:Fetch("http://127.0.0.1:1/", {}, function(r, err)
        got.cb_err = { r, err and err.code }
      end)
      loop:Run { seconds = 20 }
      assert.are.same({ 200, 200, "200" }, got.co)
      assert.are.same({ 200, "done" }, got.cb)
      assert.are.same({ nil, curl.CURLE_COULDNT_CONNECT }, got.cb_err)
    end)

    it("raises the same curl.Error as curl.Fetch (name, message, detail)", function()
      local sync, async = {}, {}
      for _, f in ipairs(FAILURES) do
        local url, opts = f[2]()
        local ok, err = pcall(curl.Fetch, url, opts)
        assert.is_false(ok, f[1])
        sync[f[1]] = shape(err)
      end
      for _, f in ipairs(FAILURES) do
        local url, opts = f[2]()
        loop:Fetch(url, opts, function(r, err) async[f[1]] = r and { ok = true } or shape(err) end)
      end
      -- raised in a coroutine (where pcall can wait: not on Lua 5.1)
      local raised = {}
      local yieldable_pcall = _VERSION ~= "Lua 5.1" or type(jit) == "table"
      if yieldable_pcall then
        in_task(name, loop, function(l)
          for _, f in ipairs(FAILURES) do
            local url, opts = f[2]()
            local ok, err = pcall(l.Fetch, l, url, opts)
            raised[f[1]] = ok and { ok = true } or shape(err)
          end
        end)
      end
      loop:Run { seconds = 30 }
      for _, f in ipairs(FAILURES) do
        assert.are.same(sync[f[1]], async[f[1]], f[1])
        if yieldable_pcall then assert.are.same(sync[f[1]], raised[f[1]], f[1]) end
        assert.truthy(sync[f[1]].message:find(": ", 1, true), "libcurl's detail: " .. sync[f[1]].message)
      end
    end)

    it("refuses misuse", function()
      usage_error(function() loop:Fetch(H.url("/"), nil, 5) end, "#3 'callback'")
      usage_error(function() loop:Fetch(H.url("/"), { nope = 1 }, function() end) end, "unknown option")
      if name ~= "cqueues" then
        usage_error(function() loop:Fetch(H.url("/")) end, "coroutine")
      end
    end)
  end)
end

describe("examples/fetch.lua", function()
  it("fetches one URL, and several at once with failures reported", function()
    local env = ("LUA_CPATH=%q LUA_PATH=%q"):format(H.build_dir .. "/?.so;;", H.root .. "/lua/?.lua;;")
    local function run(args)
      local p = assert(io.popen(("%s %s %s/examples/fetch.lua %s 2>&1"):format(env, H.lua, H.root, args)))
      local out = p:read("*a")
      p:close()
      return out
    end
    local out = run("-i " .. H.url("/size/20"))
    assert.truthy(out:find(H.url("/size/20") .. " 200 (HTTP/1.1, 20 bytes", 1, true), out)
    assert.truthy(out:find("content-length: 20", 1, true), out)
    assert.truthy(out:find(H.pattern(20), 1, true), out)
    out = run(H.url("/size/5") .. " " .. H.url("/status/404") .. " http://127.0.0.1:1/")
    assert.truthy(out:find(" 200 (", 1, true), out)
    assert.truthy(out:find(" 404 (", 1, true), out)
    assert.truthy(out:find("CURLE_COULDNT_CONNECT", 1, true), out)
  end)
end)
