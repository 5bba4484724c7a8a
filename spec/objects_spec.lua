local H = require "helper"
local curl = H.curl

local function json_field(body, key)
  return body:match('"' .. key .. '": "([^"]*)"')
end

describe("curl.Share", function()
  after_each(H.gc)

  it("shares cookies between easy handles", function()
    local share = curl.Share { Share = curl.CURL_LOCK_DATA_COOKIE }
    local a = curl.Easy { URL = H.url("/setcookie/flavour/oat"), CookieFile = "", Share = share,
      WriteFunction = function() end }
    a:Perform()
    local b, body = H.collecting_easy(H.url("/echo"), { CookieFile = "", Share = share })
    b:Perform()
    assert.are.equal("flavour=oat", json_field(body(), "cookie"))
    -- without the share, no cookie
    local c, body2 = H.collecting_easy(H.url("/echo"), { CookieFile = "" })
    c:Perform()
    assert.is_nil(json_field(body2(), "cookie"))
  end)

  it("shares connections and DNS", function()
    local share = curl.Share { Share = { curl.CURL_LOCK_DATA_CONNECT, curl.CURL_LOCK_DATA_DNS } }
    local a = curl.Easy { URL = H.url("/size/1"), Share = share, WriteFunction = function() end }
    a:Perform()
    local b = curl.Easy { URL = H.url("/size/1"), Share = share, WriteFunction = function() end }
    b:Perform()
    assert.are.equal(1, a:GetInfo_NumConnects())
    assert.are.equal(0, b:GetInfo_NumConnects(), "the second easy reused the first one's connection")
  end)

  it("refuses Close while an easy uses it, and stays alive for the easy after GC", function()
    local share = curl.Share()
    share:SetOpt(curl.CURLSHOPT_SHARE, curl.CURL_LOCK_DATA_COOKIE)
    local e = curl.Easy { Share = share }
    local ok, err = pcall(share.Close, share)
    assert.is_false(ok)
    assert.are.equal("share:Close", err.method)
    assert.truthy(err.message:find("in use by 1", 1, true))
    e:SetOpt_Share(nil)
    share:Close()
    share:Close()
    ok, err = pcall(e.SetOpt_Share, e, share)
    assert.is_false(ok)
    assert.truthy(err.message:find("closed", 1, true))
    -- GC in any order
    -- made in a function, checked in separate statements: LuaJIT marks
    -- stale stack slots, which can hold the objects a little longer
    local function make()
      local s2 = curl.Share { Share = curl.CURL_LOCK_DATA_DNS }
      local e2 = curl.Easy { Share = s2 }
      return { H.weak(s2), H.weak(e2) }
    end
    local refs = make()
    local share_gone = H.collected(refs[1])
    local easy_gone = H.collected(refs[2])
    assert.is_true(share_gone)
    assert.is_true(easy_gone)
  end)

  it("rejects locking callbacks and bad values with usage errors", function()
    local share = curl.Share()
    local ok, err = pcall(share.SetOpt, share, curl.CURLSHOPT_LOCKFUNC, function() end)
    assert.is_false(ok); assert.are.equal("usage", err.kind)
    ok, err = pcall(share.SetOpt, share, curl.CURLSHOPT_SHARE, 999)
    assert.is_false(ok); assert.are.equal("share", err.kind)
    assert.are.equal("CURLSHE_BAD_OPTION", err.name)
  end)
end)

describe("curl.URL", function()
  after_each(H.gc)

  it("parses, edits and rebuilds URLs", function()
    local u = curl.URL("https://user:pw@example.com:8443/a/b?x=1#frag")
    assert.are.equal("https", u:Get(curl.CURLUPART_SCHEME))
    assert.are.equal("user", u:Get(curl.CURLUPART_USER))
    assert.are.equal("pw", u:Get(curl.CURLUPART_PASSWORD))
    assert.are.equal("example.com", u:Get(curl.CURLUPART_HOST))
    assert.are.equal("8443", u:Get(curl.CURLUPART_PORT))
    assert.are.equal("/a/b", u:Get(curl.CURLUPART_PATH))
    assert.are.equal("x=1", u:Get(curl.CURLUPART_QUERY))
    assert.are.equal("frag", u:Get(curl.CURLUPART_FRAGMENT))
    u:Set(curl.CURLUPART_QUERY, "y=2 3", curl.CURLU_APPENDQUERY + curl.CURLU_URLENCODE)
    u:Set(curl.CURLUPART_FRAGMENT, nil)
    assert.are.equal("https://user:pw@example.com:8443/a/b?x=1&y=2+3", u:Get(curl.CURLUPART_URL))
    assert.is_nil(u:Get(curl.CURLUPART_FRAGMENT))
    local d = u:Dup()
    d:Set(curl.CURLUPART_HOST, "other.example")
    assert.are.equal("example.com", u:Get(curl.CURLUPART_HOST))
    assert.are.equal("other.example", d:Get(curl.CURLUPART_HOST))
    -- relative redirect resolution
    u:Set(curl.CURLUPART_URL, "../c?z")
    assert.are.equal("https://user:pw@example.com:8443/c?z", u:Get(curl.CURLUPART_URL))
  end)

  it("raises url errors with CURLUE_ names", function()
    local ok, err = pcall(curl.URL, "http://exa mple.com/")
    assert.is_false(ok)
    assert.are.equal("url", err.kind)
    assert.is_string(err.name:match("^CURLUE_"))
    local u = curl.URL()
    ok, err = pcall(u.Set, u, curl.CURLUPART_PORT, "99999")
    assert.is_false(ok)
    assert.are.equal("CURLUE_BAD_PORT_NUMBER", err.name)
    assert.is_nil(u:Get(curl.CURLUPART_URL), "an empty URL has no scheme: absent, not an error")
    ok, err = pcall(u.Get, u, 12345)
    assert.is_false(ok)
    assert.are.equal("url", err.kind)
  end)

  it("drives a transfer through the CURLU option, kept alive by the easy", function()
    local e, body
    do
      local u = curl.URL(H.url("/size/17"))
      e, body = H.collecting_easy(nil, { CURLU = u })
      local ok, err = pcall(u.Close, u)
      assert.is_false(ok)
      assert.truthy(err.message:find("in use", 1, true))
    end
    H.gc()
    e:Perform()
    assert.are.equal(H.pattern(17), body())
  end)
end)

describe("curl.Mime", function()
  after_each(H.gc)

  it("posts a multipart form with data, file, callback and nested parts", function()
    local e, body = H.collecting_easy(H.url("/echo"))
    local mime = curl.Mime(e)
    mime:AddPart():Name("field"):Data("value 1")
    local path = os.tmpname()
    local f = assert(io.open(path, "wb")); f:write("file contents"); f:close()
    mime:AddPart():Name("upload"):FileData(path):Type("text/plain"):Filename("notes.txt")
    local chunks = { "gen", "erated" }
    local i = 0
    mime:AddPart():Name("stream"):DataCallback(9, function(max, ud)
      assert.are.equal("cbdata", ud)
      i = i + 1
      return chunks[i]
    end, nil, "cbdata")
    local inner = curl.Mime(e)
    inner:AddPart():Data("inner text"):Headers { "X-Inner: 1" }
    mime:AddPart():Name("nested"):SubParts(inner)
    e:SetOpt_MimePost(mime)
    mime = nil
    H.gc()
    e:Perform()
    os.remove(path)
    local b = body()
    assert.truthy(json_field(b, "content%-type"):find("multipart/form%-data; boundary="))
    for _, needle in ipairs { 'name=\\"field\\"', "value 1", 'filename=\\"notes.txt\\"', "file contents",
                              "generated", 'name=\\"nested\\"', "inner text", "X%-Inner: 1" } do
      assert.truthy(b:find(needle), needle)
    end
  end)

  it("a callback part's error fails the transfer and is raised unchanged", function()
    local e = curl.Easy { URL = H.url("/echo"), WriteFunction = function() end }
    local mime = curl.Mime(e)
    local t = {}
    mime:AddPart():Name("x"):DataCallback(5, function() error(t) end)
    e:SetOpt_MimePost(mime)
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal(t, err)
  end)

  it("enforces ownership: attached sub-mimes and mimes in use", function()
    local e = curl.Easy()
    local outer, inner = curl.Mime(e), curl.Mime(e)
    local part = outer:AddPart()
    part:SubParts(inner)
    local ok, err = pcall(inner.AddPart, inner)
    assert.is_false(ok)
    assert.truthy(err.message:find("belongs to it", 1, true))
    ok = pcall(outer:AddPart().SubParts, outer:AddPart(), inner)
    assert.is_false(ok)
    ok = pcall(e.SetOpt_MimePost, e, inner)
    assert.is_false(ok)
    e:SetOpt_MimePost(outer)
    ok, err = pcall(outer.Close, outer)
    assert.is_false(ok)
    assert.truthy(err.message:find("in use", 1, true))
    e:SetOpt_MimePost(nil)
    outer:Close()
    ok = pcall(part.Name, part, "x")
    assert.is_false(ok, "parts of a freed mime are unusable")
  end)
end)

describe("mime and dup edge cases (second review)", function()
  after_each(H.gc)

  it("DupHandle of an easy posting a mime copies no mime, and both handles stay sound", function()
    local e, body = H.collecting_easy(H.url("/echo"))
    local m = curl.Mime(e)
    local n = 0
    m:AddPart():Name("a"):DataCallback(5, function() n = n + 1; return n == 1 and "hello" or "" end)
    e:SetOpt_MimePost(m)
    local d = e:DupHandle()
    d:SetOpt_WriteFunction(function() end)
    d:Perform() -- no mime: a plain GET
    e:Perform()
    assert.truthy(body():find("hello", 1, true))
  end)

  it("a posted mime is frozen; replacing a part's content forgets its sub-mime", function()
    local e = curl.Easy { URL = H.url("/echo"), WriteFunction = function() end }
    local outer, inner = curl.Mime(e), curl.Mime(e)
    local p = outer:AddPart()
    local ip = inner:AddPart()
    p:SubParts(inner)
    p:Data("replaced") -- libcurl frees `inner`
    local ok, err = pcall(ip.Name, ip, "x")
    assert.is_false(ok)
    assert.truthy(err.message:find("freed", 1, true))
    e:SetOpt_MimePost(outer)
    ok, err = pcall(p.Name, p, "y")
    assert.is_false(ok)
    assert.truthy(err.message:find("posted", 1, true))
    local e2 = curl.Easy()
    ok, err = pcall(e2.SetOpt_MimePost, e2, outer)
    assert.is_false(ok)
    assert.truthy(err.message:find("another easy", 1, true))
    e:Perform()
  end)

  it("DupHandle keeps the share working for the copy", function()
    local share = curl.Share { Share = curl.CURL_LOCK_DATA_COOKIE }
    local a = curl.Easy { URL = H.url("/setcookie/n/v"), CookieFile = "", Share = share,
      WriteFunction = function() end }
    a:Perform()
    local d, body = a:DupHandle(), {}
    d:SetOpt_URL(H.url("/echo"))
    d:SetOpt_WriteFunction(function(s) body[#body + 1] = s end)
    d:Perform()
    assert.truthy(table.concat(body):find('"cookie": "n=v"', 1, true))
  end)

  it("odd callback return values are usage errors, not truncated", function()
    local e = curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end,
      OpenSocketFunction = function() return 2 ^ 32 + 2 end }
    local ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    e = curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end,
      SockOptFunction = function() return 2 ^ 32 end }
    ok, err = pcall(e.Perform, e)
    assert.is_false(ok)
    assert.truthy(err.message:find("4294967296", 1, true))
  end)
end)
