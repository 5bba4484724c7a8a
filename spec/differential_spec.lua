-- Differential spec: for each scenario, the status, response headers and body
-- our module gets equal what the `curl` command-line tool (same libcurl) gets
-- from the same server. Date headers are left out; multipart boundaries
-- (random per request) are normalised.
local H = require "helper"
local curl = H.curl

local tmpdir = (function()
  local p = io.popen("mktemp -d")
  local d = p:read("*l")
  p:close()
  return d
end)()

local function write_file(name, content)
  local path = tmpdir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
  return path
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("*a")
  f:close()
  return s
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function normalise_headers(raw)
  local out = {}
  for line in raw:gmatch("[^\n]*\n?") do
    if line ~= "" and not line:lower():match("^date:") then
      out[#out + 1] = line
    end
  end
  return (table.concat(out):gsub("%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-[%w]+", "BOUNDARY"))
end

local function normalise_body(b)
  b = b:gsub("\n[Dd]ate: [^\n]*\n", "\n")
  return (b:gsub("%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-%-[%w]+", "BOUNDARY"))
end

-- The curl CLI: returns status, headers, body.
local function cli(args)
  local hdr = tmpdir .. "/h"
  os.remove(hdr)
  local cmd = { "curl", "-s", "-S", "-A", "''", "-D", hdr, "-w", "'%{http_code}\\n'" }
  local outs = {}
  for _, a in ipairs(args) do
    if a:match("^https?://") then -- one output file per URL, in order
      outs[#outs + 1] = tmpdir .. "/b" .. #outs
      os.remove(outs[#outs])
      cmd[#cmd + 1] = "-o " .. outs[#outs]
    end
  end
  for _, a in ipairs(args) do cmd[#cmd + 1] = shell_quote(a) end
  local p = assert(io.popen(table.concat(cmd, " ")))
  local code = p:read("*a")
  p:close()
  local body = {}
  for i, o in ipairs(outs) do body[i] = read_file(o) end
  return tonumber(code:match("(%d+)%s*$")), normalise_headers(read_file(hdr)),
         normalise_body(table.concat(body))
end

-- Our module: `opts` for curl.Easy, `setup(e)` for what a table cannot say;
-- `times` performs (cookies across requests).
local function ours(opts, setup, times)
  local headers, body = {}, {}
  local o = { HeaderFunction = function(l) headers[#headers + 1] = l end,
              WriteFunction = function(d) body[#body + 1] = d end }
  for k, v in pairs(opts) do o[k] = v end
  local urls = type(opts.URL) == "table" and opts.URL or { opts.URL }
  o.URL = urls[1]
  local e = curl.Easy(o)
  if setup then setup(e) end
  for i = 1, times or 1 do
    e:SetOpt_URL(urls[i] or urls[1])
    e:Perform()
  end
  return e:GetInfo_ResponseCode(), normalise_headers(table.concat(headers)),
         normalise_body(table.concat(body))
end

local function same(cli_args, opts, setup, times)
  local c_code, c_headers, c_body = cli(cli_args)
  local o_code, o_headers, o_body = ours(opts, setup, times)
  assert.are.equal(c_code, o_code)
  assert.are.equal(c_headers, o_headers)
  assert.are.equal(c_body, o_body)
  return o_body
end

local it_if = H.it_if(it, pending)

-- The curl tool runs the system libcurl; on another one (the bundled build)
-- cases whose request differs between libcurl versions are skipped.
local tool_libcurl
do
  local p = io.popen("curl --version 2>/dev/null")
  tool_libcurl = p and (p:read("*l") or ""):match("libcurl/([%w%.%-]+)")
  if p then p:close() end
end
local function same_libcurl(what)
  if tool_libcurl == H.libcurl.version then return nil end
  return ("the curl tool runs libcurl %s, this build %s, and they send different %s")
    :format(tostring(tool_libcurl), H.libcurl.version, what)
end

describe("same results as the curl command-line tool", function()
  after_each(H.gc)

  it("a redirect chain", function()
    local b = same({ "-L", H.url("/redirect/3") }, { URL = H.url("/redirect/3"), FollowLocation = true })
    assert.are.equal("done", b)
  end)

  it("gzip decoding", function()
    local b = same({ "--compressed", H.url("/gzip/3000") }, { URL = H.url("/gzip/3000"), AcceptEncoding = "" })
    assert.are.equal(H.pattern(3000), b)
  end)

  it_if(H.needs_feature("BROTLI") or same_libcurl("Accept-Encoding lists"), "brotli decoding", function()
    local b = same({ "--compressed", H.url("/br/3000") }, { URL = H.url("/br/3000"), AcceptEncoding = "" })
    assert.are.equal(H.pattern(3000), b)
  end)

  it("a chunked body", function()
    same({ H.url("/chunked/5000/7") }, { URL = H.url("/chunked/5000/7") })
  end)

  it("HEAD", function()
    -- the tool writes the headers as the output: CURLOPT_HEADER
    same({ "-I", H.url("/size/50") }, { URL = H.url("/size/50"), NoBody = true, Header = true })
  end)

  it("a 404 with a body", function()
    local b = same({ H.url("/status/404") }, { URL = H.url("/status/404") })
    assert.are.equal("status 404", b)
  end)

  it("basic and digest authentication", function()
    local b = same({ "-u", "ann:secret", H.url("/basic/ann/secret") },
      { URL = H.url("/basic/ann/secret"), UserPwd = "ann:secret" })
    assert.are.equal("welcome ann", b)
    b = same({ "--digest", "-u", "bob:pw", H.url("/digest/bob/pw") },
      { URL = H.url("/digest/bob/pw"), UserPwd = "bob:pw", HttpAuth = curl.CURLAUTH_DIGEST })
    assert.are.equal("digest ok bob", b)
  end)

  it("cookies across requests", function()
    local jar = tmpdir .. "/jar"
    local b = same({ "-c", jar, H.url("/setcookie/k/v"), H.url("/echo") },
      { URL = { H.url("/setcookie/k/v"), H.url("/echo") }, CookieFile = "" }, nil, 2)
    assert.truthy(b:find('"cookie": "k=v"', 1, true))
  end)

  it("a POST form", function()
    local b = same({ "-d", "a=1&b=two", H.url("/echo") }, { URL = H.url("/echo"), PostFields = "a=1&b=two" })
    assert.truthy(b:find('"body": "a=1&b=two"', 1, true))
  end)

  it_if(same_libcurl("multipart bodies"), "a multipart upload", function()
    local path = write_file("upload", "file bytes\n")
    local b = same({ "-F", "field=value", "-F", "upload=@" .. path, H.url("/echo") },
      { URL = H.url("/echo") }, function(e)
        local m = curl.Mime(e)
        m:AddPart():Name("field"):Data("value")
        m:AddPart():Name("upload"):FileData(path)
        e:SetOpt_MimePost(m)
      end)
    assert.truthy(b:find("file bytes", 1, true))
  end)

  it_if(same_libcurl("Expect: 100-continue headers"), "a PUT from a read callback", function()
    local content = ("put data "):rep(500)
    local path = write_file("put", content)
    local b = same({ "-T", path, H.url("/echo") }, { URL = H.url("/echo"), Upload = true,
      InFileSize_Large = #content }, function(e)
        local pos = 0
        e:SetOpt_ReadFunction(function(max)
          local s = content:sub(pos + 1, pos + max)
          pos = pos + #s
          return s
        end)
      end)
    assert.truthy(b:find('"method": "PUT"', 1, true))
  end)

  it("a range request", function()
    local b = same({ "-r", "10-19", H.nginx_http .. "/1k" }, { URL = H.nginx_http .. "/1k", Range = "10-19" })
    assert.are.equal(H.pattern(1024):sub(11, 20), b)
  end)

  it("HTTP/2 over TLS", function()
    local b = same({ "--http2", "--cacert", H.ca, H.nginx_https .. "/16k" },
      { URL = H.nginx_https .. "/16k", CAInfo = H.ca, HTTP_Version = curl.CURL_HTTP_VERSION_2TLS })
    assert.are.equal(16384, #b)
  end)
end)
