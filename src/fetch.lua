-- curl.Fetch(url[, opts]) -> response: the simple way to make a request.
-- Embedded in the native module and loaded on first use by curl.lua
-- (`curl.Fetch`); the loop helpers use the same request builder for
-- loop:Fetch. The rules (docs/reference.md, "Fetch"):
--   * the request is built from opts on a fresh curl.Easy; the body is
--     collected (or streamed to opts.output), the headers of the final
--     response parsed; nothing is read from stdin or written to stdout;
--   * a transport failure raises the same curl.Error as easy:Perform; an
--     HTTP error status is a response (opts.options = { FailOnError = true }
--     turns it into CURLE_HTTP_RETURNED_ERROR).
local curl = ...

local type, pairs, ipairs, next, tostring, setmetatable, error, pcall, require =
      type, pairs, ipairs, next, tostring, setmetatable, error, pcall, require
local concat, sort, insert = table.concat, table.sort, table.insert
local format, lower, gsub, match = string.format, string.lower, string.gsub, string.match
local floor = math.floor

local M = {}

local function usage(method, message)
  return setmetatable({ kind = "usage", code = -1, name = "USAGE", message = message, method = method },
                      curl.Error)
end

local function bad(method, name, expected, got)
  return usage(method, format("bad option '%s' (expected %s, got %s)", name, expected, type(got)))
end

------------------------------------------------------------------- JSON

-- The JSON module: curl.json if the script set one ({ encode =, decode = }),
-- else lua-cjson, else dkjson, looked up when needed (require caches).
local function json(method)
  if type(curl.json) == "table" then return curl.json end
  local ok, m = pcall(require, "cjson")
  if ok and type(m) == "table" then
    return { encode = m.encode, decode = m.decode }
  end
  ok, m = pcall(require, "dkjson")
  if ok and type(m) == "table" then
    return {
      encode = m.encode,
      decode = function(s)
        local v, _, err = m.decode(s, 1, m.null)
        if err then error(err, 0) end
        return v
      end,
    }
  end
  error(usage(method, "no JSON module: install lua-cjson or dkjson (luarocks install dkjson), " ..
                      "or set curl.json = { encode = fn, decode = fn }"), 3)
end

------------------------------------------------------------------- building

local function escape(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end

-- query table -> "a=1&b=x%20y" (keys sorted; a list value repeats its key)
local function query_string(q)
  local items = {}
  for k, v in pairs(q) do items[#items + 1] = { tostring(k), v } end
  sort(items, function(a, b) return a[1] < b[1] end)
  local parts = {}
  for _, kv in ipairs(items) do
    local k, v = kv[1], kv[2]
    if type(v) == "table" then
      for _, x in ipairs(v) do parts[#parts + 1] = escape(k) .. "=" .. escape(x) end
    elseif v == true then
      parts[#parts + 1] = escape(k)
    elseif v ~= false then
      parts[#parts + 1] = escape(k) .. "=" .. escape(v)
    end
  end
  return concat(parts, "&")
end

-- headers: a list of "Name: value" lines, checked and copied, or a map of
-- names to values, copied as is: easy:SetOpt_HttpHeader turns a map into
-- lines (and checks it) itself.
local function header_value(method, h)
  local out = {}
  if #h > 0 then
    for i, line in ipairs(h) do
      if type(line) ~= "string" then
        error(usage(method, format("bad option 'headers' (item %d is a %s, expected \"Name: value\")", i, type(line))), 4)
      end
      out[#out + 1] = line
    end
    return out
  end
  for k, v in pairs(h) do out[k] = v end
  return out
end

local KNOWN = {
  method = true, headers = true, query = true, body = true, json = true, form = true,
  timeout = true, connect_timeout = true, follow = true, auth = true, verify = true, ca = true,
  proxy = true, output = true, progress = true, options = true,
}

local AUTH = {
  basic = "CURLAUTH_BASIC", digest = "CURLAUTH_DIGEST", any = "CURLAUTH_ANY",
  anysafe = "CURLAUTH_ANYSAFE", bearer = "CURLAUTH_BEARER", ntlm = "CURLAUTH_NTLM",
}

local function seconds_ms(method, name, v)
  if type(v) ~= "number" or v ~= v or v < 0 then error(bad(method, name, "seconds (a number >= 0)", v), 4) end
  return floor(v * 1000 + 0.5)
end

-- Builds the easy for `url` and `opts`. Returns the easy and a state table
-- the response is made from once the transfer ends.
function M.prepare(method_name, url, opts)
  if type(url) ~= "string" then
    error(usage(method_name, format("bad argument #1 'url' (expected string, got %s)", type(url))), 3)
  end
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(usage(method_name, format("bad argument #2 'opts' (expected table or nil, got %s)", type(opts))), 3)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error(usage(method_name, format("unknown option '%s' (libcurl options go in opts.options)", tostring(k))), 3)
    end
  end
  local st = { headers = {}, cookies = nil, status = nil, chunks = {}, n = 0 }
  local easy = curl.Easy()
  local ok, err = pcall(function()
    -- URL and query
    if opts.query ~= nil then
      if type(opts.query) ~= "table" then error(bad(method_name, "query", "table", opts.query), 0) end
      local q = query_string(opts.query)
      if q ~= "" then
        local base, frag = match(url, "^([^#]*)(#?.*)$")
        url = base .. (base:find("?", 1, true) and "&" or "?") .. q .. frag
      end
    end
    easy:SetOpt_URL(url)
    -- never stdin/stdout: the body goes to Lua, reads only from what we give
    local out = opts.output
    local file, close_file
    if out ~= nil then
      if type(out) == "string" then
        local f, e = io.open(out, "wb")
        if not f then error(usage(method_name, format("option 'output': cannot open %s: %s", out, tostring(e))), 0) end
        file, close_file = f, true
      elseif (type(out) == "userdata" or type(out) == "table") and out.write then
        file = out
      else
        error(bad(method_name, "output", "a path or a file", out), 0)
      end
      st.file, st.close_file = file, close_file
      easy:SetOpt_WriteFunction(function(d)
        local w, e = file:write(d)
        if not w then st.write_error = e; return false end
        st.n = st.n + #d
      end)
    else
      easy:SetOpt_WriteFunction(function(d)
        local c = st.chunks
        c[#c + 1] = d
        st.n = st.n + #d
      end)
    end
    -- headers of the final response: a status line starts over (redirects,
    -- 100 Continue, proxy CONNECT)
    easy:SetOpt_HeaderFunction(function(line)
      local code = match(line, "^HTTP/[%d%.]+%s+(%d%d%d)")
      if code then
        st.status, st.headers, st.cookies = tonumber(code), {}, nil
        return
      end
      local name, value = match(line, "^([^:%s][^:]*):%s*(.-)%s*$")
      if name then
        name = lower(name)
        local h = st.headers
        if name == "set-cookie" then
          st.cookies = st.cookies or {}
          st.cookies[#st.cookies + 1] = value
          h[name] = st.cookies
        elseif h[name] then
          h[name] = h[name] .. ", " .. value
        else
          h[name] = value
        end
      end
    end)
    -- method and body
    local method = opts.method
    if method ~= nil and (type(method) ~= "string" or not match(method, "^[%w%-_!#$%%&'*+.^`|~]+$")) then
      error(bad(method_name, "method", "an HTTP method name", method), 0)
    end
    method = method and method:upper()
    local headers = {}
    if opts.headers ~= nil then
      if type(opts.headers) ~= "table" then error(bad(method_name, "headers", "table", opts.headers), 0) end
      headers = header_value(method_name, opts.headers)
    end
    local nbody = (opts.body ~= nil and 1 or 0) + (opts.json ~= nil and 1 or 0) + (opts.form ~= nil and 1 or 0)
    if nbody > 1 then error(usage(method_name, "give one of the options body, json and form"), 0) end
    if opts.body ~= nil then
      if type(opts.body) ~= "string" then error(bad(method_name, "body", "string", opts.body), 0) end
      easy:SetOpt_PostFields(opts.body)
    elseif opts.json ~= nil then
      local j = json(method_name)
      local ok2, s = pcall(j.encode, opts.json)
      if not ok2 or type(s) ~= "string" then
        error(usage(method_name, "option 'json': cannot encode: " .. tostring(s)), 0)
      end
      easy:SetOpt_PostFields(s)
      if #headers == 0 and next(headers) ~= nil then
        headers["Content-Type"] = "application/json"
      else
        headers[#headers + 1] = "Content-Type: application/json"
      end
    elseif opts.form ~= nil then
      if type(opts.form) ~= "table" then error(bad(method_name, "form", "table", opts.form), 0) end
      local mime = curl.Mime(easy)
      local names = {}
      for k in pairs(opts.form) do names[#names + 1] = tostring(k) end
      sort(names)
      for _, k in ipairs(names) do
        local v = opts.form[k]
        local part = mime:AddPart():Name(k)
        if type(v) == "table" then
          if v.file then
            part:FileData(v.file)
            if v.filename then part:Filename(v.filename) end
          elseif v.data then
            part:Data(v.data)
            if v.filename then part:Filename(v.filename) end
          else
            error(usage(method_name, format("bad option 'form.%s' (a table needs file or data)", k)), 0)
          end
          if v.type then part:Type(v.type) end
        else
          part:Data(tostring(v))
        end
      end
      easy:SetOpt_MimePost(mime)
      st.mime = mime
    end
    if method == "HEAD" then
      easy:SetOpt_NoBody(true)
    elseif method == "GET" and nbody == 0 then
      easy:SetOpt_HTTPGet(true)
    elseif method and not (method == "POST" and nbody > 0) then
      easy:SetOpt_CustomRequest(method)
    end
    if next(headers) ~= nil then easy:SetOpt_HttpHeader(headers) end
    -- redirects: followed by default, at most 10
    local follow = opts.follow
    if follow == nil or follow == true then follow = 10 end
    if follow then
      if type(follow) ~= "number" or follow < 0 then error(bad(method_name, "follow", "boolean or a number", follow), 0) end
      easy:SetOpt_FollowLocation(true)
      easy:SetOpt_MaxRedirs(floor(follow))
    end
    if opts.timeout ~= nil then easy:SetOpt_TimeoutMS(seconds_ms(method_name, "timeout", opts.timeout)) end
    if opts.connect_timeout ~= nil then
      easy:SetOpt_ConnectTimeoutMS(seconds_ms(method_name, "connect_timeout", opts.connect_timeout))
    end
    -- auth = "user:password" or { user, password, type = "basic" }
    local auth = opts.auth
    if auth ~= nil then
      if type(auth) == "string" then
        easy:SetOpt_UserPwd(auth)
      elseif type(auth) == "table" then
        local user, pass = auth.user or auth[1], auth.password or auth[2]
        if type(user) ~= "string" then error(bad(method_name, "auth.user", "string", user), 0) end
        easy:SetOpt_UserName(user)
        if pass ~= nil then easy:SetOpt_Password(tostring(pass)) end
        if auth.type ~= nil then
          local c = AUTH[auth.type]
          if not c then
            error(usage(method_name, "bad option 'auth.type' (basic, digest, any, anysafe, bearer or ntlm)"), 0)
          end
          easy:SetOpt_HTTPAuth(curl[c])
        end
        if auth.bearer then easy:SetOpt_XOAuth2_Bearer(auth.bearer); easy:SetOpt_HTTPAuth(curl.CURLAUTH_BEARER) end
      else
        error(bad(method_name, "auth", "\"user:password\" or a table", auth), 0)
      end
    end
    if opts.verify == false then
      easy:SetOpt_SSL_VerifyPeer(false)
      easy:SetOpt_SSL_VerifyHost(0)
    elseif opts.verify ~= nil and opts.verify ~= true then
      error(bad(method_name, "verify", "boolean", opts.verify), 0)
    end
    if opts.ca ~= nil then
      if type(opts.ca) ~= "string" then error(bad(method_name, "ca", "a path", opts.ca), 0) end
      easy:SetOpt_CAInfo(opts.ca)
    end
    if opts.proxy ~= nil then
      if type(opts.proxy) ~= "string" then error(bad(method_name, "proxy", "string", opts.proxy), 0) end
      easy:SetOpt_Proxy(opts.proxy)
    end
    if opts.progress ~= nil then
      if type(opts.progress) ~= "function" then error(bad(method_name, "progress", "function", opts.progress), 0) end
      local f = opts.progress
      easy:SetOpt_XferInfoFunction(function(dltotal, dlnow, ultotal, ulnow)
        return f(dltotal, dlnow, ultotal, ulnow)
      end)
      easy:SetOpt_NoProgress(false)
    end
    if opts.options ~= nil then
      if type(opts.options) ~= "table" then error(bad(method_name, "options", "table", opts.options), 0) end
      for k, v in pairs(opts.options) do
        if type(k) ~= "string" then
          error(usage(method_name, "bad option 'options' (expected libcurl option names as keys)"), 0)
        end
        easy["SetOpt_" .. k](easy, v)
      end
    end
  end)
  if not ok then
    if st.close_file then pcall(st.file.close, st.file) end
    easy:Close()
    error(err, 3)
  end
  return easy, st
end

------------------------------------------------------------------- the response

local Response = {}
Response.__index = Response
Response.__name = "curl.Response"

local VERSIONS = { [1] = "1.0", [2] = "1.1", [3] = "2", [30] = "3" }

--- response:Json() -> the body decoded (lua-cjson or dkjson, or curl.json)
function Response:Json()
  local j = json("response:Json")
  local ok, v = pcall(j.decode, self.body or "")
  if not ok then
    error(setmetatable({ kind = "json", code = -1, name = "JSON", method = "response:Json",
                         message = "the body is not JSON: " .. tostring(v) }, curl.Error), 2)
  end
  return v
end

--- response:Header(name) -> the value of a header of the final response
function Response:Header(name)
  return self.headers[lower(tostring(name))]
end

function Response:__tostring()
  return format("curl.Response %s %s (%d bytes)", tostring(self.status), tostring(self.url), self.size or 0)
end

-- The response of a finished transfer (the easy stays open for GetInfo).
function M.response(easy, st)
  if st.close_file then st.file:close() end
  local r = setmetatable({
    status = st.status or easy:GetInfo_ResponseCode(),
    headers = st.headers,
    url = easy:GetInfo_EffectiveURL(),
    easy = easy,
    size = st.n,
  }, Response)
  local v = easy:GetInfo_HTTP_Version()
  r.http_version = VERSIONS[v] or (v ~= 0 and tostring(v) or nil)
  if not st.file then r.body = concat(st.chunks) end
  return r
end

-- After a failed transfer: the output file is closed, the error raised.
function M.failed(st)
  if st.close_file then pcall(st.file.close, st.file) end
end

--- curl.Fetch(url[, opts]) -> response
function M.fetch(url, opts)
  local easy, st = M.prepare("curl.Fetch", url, opts)
  local ok, err = pcall(easy.Perform, easy)
  if not ok then
    M.failed(st)
    if st.write_error and type(err) == "table" then
      err.message = err.message .. " (option 'output': " .. tostring(st.write_error) .. ")"
    end
    error(err, 2)
  end
  return M.response(easy, st)
end

M.Response = Response
return M
