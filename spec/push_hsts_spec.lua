local H = require "helper"
local curl = H.curl

-- libcurl 7.88.1 answers every PUSH_PROMISE with RST_STREAM without
-- calling CURLMOPT_PUSHFUNCTION (seen against nginx and nghttpd, with a C
-- program too): the push specs are pending there.
local function push_broken(pushes)
  return #pushes == 0 and curl.VersionInfo().version_num < 0x080000
end

describe("HTTP/2 server push", function()
  after_each(H.gc)
  local why = "libcurl 7.88 resets pushed streams without calling CURLMOPT_PUSHFUNCTION"

  local function run(accept)
    local multi = curl.Multi { Pipelining = curl.CURLPIPE_MULTIPLEX }
    local loop = H.loop(multi)
    local pushes, bodies = {}, {}
    multi:SetOpt_PushFunction(function(parent, pushed, headers, ud)
      pushes[#pushes + 1] = { parent = parent, pushed = pushed, headers = headers, ud = ud }
      if not accept then return false end
      pushed:SetOpt_WriteFunction(function(d) bodies[pushed] = (bodies[pushed] or "") .. d end)
      return true
    end, "pushdata")
    local main_body = ""
    local e = curl.Easy { URL = H.nginx_https .. "/push.html", CAInfo = H.ca,
      HTTP_Version = curl.CURL_HTTP_VERSION_2TLS, WriteFunction = function(d) main_body = main_body .. d end }
    multi:AddHandle(e)
    loop:run()
    return pushes, bodies, main_body, loop, e, multi
  end

  it("hands each pushed stream to the push function as a new Easy", function()
    local pushes, bodies, main_body, loop, e = run(true)
    assert.are.equal("<html>push</html>\n", main_body)
    if push_broken(pushes) then return pending(why) end
    assert.are.equal(2, #pushes)
    local paths = {}
    for _, p in ipairs(pushes) do
      assert.are.equal(e, p.parent)
      assert.are.equal("pushdata", p.ud)
      local path
      for _, h in ipairs(p.headers) do path = path or h:match("^:path:(.*)$") end
      paths[path] = p.pushed
    end
    assert.is_not_nil(paths["/1k"]); assert.is_not_nil(paths["/100b"])
    -- the pushed transfers complete through InfoRead like added ones
    assert.are.equal(3, #loop.done)
    for _, d in ipairs(loop.done) do assert.are.equal(0, d.result) end
    assert.are.equal(1024, #bodies[paths["/1k"]])
    assert.are.equal(100, #bodies[paths["/100b"]])
  end)

  it("refused pushes leave no Easy behind", function()
    local pushes, _, main_body, loop, _, multi = run(false)
    assert.are.equal("<html>push</html>\n", main_body)
    if push_broken(pushes) then return pending(why) end
    assert.are.equal(2, #pushes)
    assert.are.equal(1, #loop.done)
    assert.are.equal("<html>push</html>\n", main_body)
    assert.are.equal(1, #multi:GetHandles())
    local ok, err = pcall(pushes[1].pushed.Perform, pushes[1].pushed)
    assert.is_false(ok)
    assert.truthy(err.message:find("closed", 1, true))
  end)
end)

describe("HSTS callbacks", function()
  after_each(H.gc)

  it("HSTSWRITEFUNCTION saves the policy a server sent", function()
    local saved = {}
    local e = curl.Easy { URL = H.nginx_https .. "/hsts/100b", CAInfo = H.ca,
      HSTS_Ctrl = curl.CURLHSTS_ENABLE, WriteFunction = function() end,
      HSTSWriteFunction = function(entry, index, ud)
        saved[#saved + 1] = { entry = entry, index = index, ud = ud }
      end, HSTSWriteData = "w" }
    e:Perform()
    e:Close() -- libcurl saves the cache when the handle goes away
    assert.are.equal(1, #saved)
    assert.are.equal("localhost", saved[1].entry.host)
    assert.is_true(saved[1].entry.include_subdomains)
    assert.truthy(saved[1].entry.expire:match("^%d%d%d%d%d%d%d%d %d%d:%d%d:%d%d$"))
    assert.are.same({ index = 0, total = 1 }, saved[1].index)
    assert.are.equal("w", saved[1].ud)
  end)

  it("HSTSREADFUNCTION preloads a policy that upgrades http:// to https://", function()
    local given = false
    local port = H.nginx_https:match(":(%d+)$")
    local e = curl.Easy { URL = "http://localhost:" .. port .. "/100b", CAInfo = H.ca,
      HSTS_Ctrl = curl.CURLHSTS_ENABLE, WriteFunction = function() end,
      HSTSReadFunction = function()
        if given then return nil end
        given = true
        return { host = "localhost", include_subdomains = false, expire = "20991231 00:00:00" }
      end }
    e:Perform()
    assert.are.equal("https://localhost:" .. port .. "/100b", e:GetInfo_EffectiveUrl())
  end)
end)
