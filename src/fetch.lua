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
curl._no_jit() -- LuaJIT #1000 (see curl.lua)

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

-- On a LuaJIT where the module's Lua code runs with the JIT off (see
-- curl.lua), dkjson's loops run in the interpreter too: the fuzzer met
-- LuaJIT spinning in its isarray() pairs loop, a Fetch with `json` inside
-- a finalizer. It is loaded and switched now (jit.off is refused inside
-- __gc, where a first Fetch could be), unless lua-cjson serves.
if curl._jit_off and not pcall(require, "cjson") then
  local ok, m = pcall(require, "dkjson")
  if ok then curl._no_jit_lib(m) end
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
  retries = true, retry_delay = true, retry_max_delay = true,
}

local AUTH = {
  basic = "CURLAUTH_BASIC", digest = "CURLAUTH_DIGEST", any = "CURLAUTH_ANY",
  anysafe = "CURLAUTH_ANYSAFE", bearer = "CURLAUTH_BEARER", ntlm = "CURLAUTH_NTLM",
}

local KNOWN_LIST = {}
for k in pairs(KNOWN) do KNOWN_LIST[#KNOWN_LIST + 1] = k end
sort(KNOWN_LIST)

-- Seconds to milliseconds, at most 2^31 - 1 ms (24.8 days: libcurl's and
-- the loop's timers take no more).
local function seconds_ms(method, name, v, level)
  if type(v) ~= "number" or v ~= v or v < 0 or v * 1000 > 2147483647 then
    error(bad(method, name, "seconds from 0 to 2147483 (24.8 days)", v), level or 4)
  end
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
      local near = type(k) == "string" and curl._closest(k, KNOWN_LIST)
      error(usage(method_name, format("unknown option '%s'%s (libcurl options go in opts.options)", tostring(k),
                                      near and format(" (did you mean %s?)", near) or "")), 3)
    end
  end
  local st = { headers = {}, cookies = nil, status = nil, chunks = {}, n = 0, attempt = 0 }
  -- retries: how many, the first delay, the longest (milliseconds)
  local retries = opts.retries
  if retries ~= nil and (type(retries) ~= "number" or retries ~= retries or retries < 0 or retries > 1000) then
    error(bad(method_name, "retries", "a number of retries from 0 to 1000", retries), 3)
  end
  st.retries = floor(retries or 0)
  st.delay = opts.retry_delay ~= nil and seconds_ms(method_name, "retry_delay", opts.retry_delay, 3) or 1000
  st.max_delay = opts.retry_max_delay ~= nil and seconds_ms(method_name, "retry_max_delay", opts.retry_max_delay, 3)
                 or 30000
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
        st.path = out
      elseif (type(out) == "userdata" or type(out) == "table") and out.write then
        file = out
        -- where a retry starts over, when the file can seek
        local okp, pos = pcall(function() return out:seek() end)
        if okp and type(pos) == "number" then st.start = pos end
      else
        error(bad(method_name, "output", "a path or a file", out), 0)
      end
      st.file, st.close_file = file, close_file
      easy:SetOpt_WriteFunction(function(d)
        local w, e = st.file:write(d)
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
      elseif type(auth) == "table" and auth.bearer ~= nil and auth.user == nil and auth[1] == nil then
        -- { bearer = token }
        if type(auth.bearer) ~= "string" then error(bad(method_name, "auth.bearer", "string", auth.bearer), 0) end
        easy:SetOpt_XOAuth2_Bearer(auth.bearer)
        easy:SetOpt_HTTPAuth(curl.CURLAUTH_BEARER)
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

------------------------------------------------------------------- retries

-- Transport errors worth another try (the connection, not the request):
-- could not resolve or connect, timed out, TLS handshake, HTTP/2 stream or
-- framing, sent nothing back, send/receive failures, a short body.
local TRANSIENT = {}
for _, name in ipairs { "CURLE_COULDNT_RESOLVE_HOST", "CURLE_COULDNT_CONNECT", "CURLE_OPERATION_TIMEDOUT",
                        "CURLE_SSL_CONNECT_ERROR", "CURLE_HTTP2", "CURLE_HTTP2_STREAM", "CURLE_GOT_NOTHING",
                        "CURLE_SEND_ERROR", "CURLE_RECV_ERROR", "CURLE_PARTIAL_FILE" } do
  local code = curl.constants[name]
  if code then TRANSIENT[code] = true end
end
local RETRY_STATUS = { [408] = true, [429] = true }

-- Retry-After: delay-seconds or an HTTP-date, in milliseconds (or nil).
local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
                 Nov = 11, Dec = 12 }
local function retry_after_ms(v)
  if type(v) ~= "string" then return nil end
  local secs = match(v, "^%s*(%d+)%s*$")
  if secs then return tonumber(secs) * 1000 end
  local d, mon, y, h, mi, sec = match(v, "(%d+) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT")
  if not d or not MONTHS[mon] then return nil end
  -- days since the epoch of a UTC date (no time zone from os.time)
  local yy, mm = tonumber(y), MONTHS[mon]
  if mm <= 2 then yy, mm = yy - 1, mm + 12 end
  local days = 365 * yy + floor(yy / 4) - floor(yy / 100) + floor(yy / 400) + floor((153 * (mm - 3) + 2) / 5)
               + tonumber(d) - 719469
  local at = ((days * 24 + tonumber(h)) * 60 + tonumber(mi)) * 60 + tonumber(sec)
  return math.max(0, (at - os.time()) * 1000)
end

-- After an attempt that ended with `code` (and, for CURLE_OK, the response
-- status): the milliseconds to wait before the next try, or nil when it
-- is not to be retried (no retries left, a permanent error, a status that
-- is an answer, or a Retry-After longer than retry_max_delay).
local function retry_delay(easy, st, code)
  if st.attempt >= st.retries then return nil end
  local wait = st.delay * 2 ^ st.attempt
  if code == 0 then
    local status = st.status or easy:GetInfo_ResponseCode()
    if not (RETRY_STATUS[status] or (status >= 500 and status <= 599)) then return nil end
    local after = retry_after_ms(st.headers["retry-after"])
    if after then
      if after > st.max_delay then return nil end
      if after > wait then wait = after end
    end
  elseif not TRANSIENT[code] then
    return nil
  end
  if wait > st.max_delay then wait = st.max_delay end
  st.attempt = st.attempt + 1
  return floor(wait)
end

-- Makes `st` ready for another try; false when the output cannot start
-- over (a file object that cannot seek, with data written).
local function restart(st)
  st.status, st.headers, st.cookies, st.chunks, st.write_error = nil, {}, nil, {}, nil
  if st.path then
    pcall(st.file.close, st.file)
    local f, e = io.open(st.path, "wb")
    if not f then
      st.write_error, st.close_file = e, false -- (closed above)
      return false
    end
    st.file = f
  elseif st.file and st.n > 0 then
    if not st.start or not pcall(st.file.seek, st.file, "set", st.start) then return false end
  end
  st.n = 0
  return true
end

-- After an attempt that ended with `err` (nil: it succeeded, whatever the
-- status): the milliseconds to wait before the next try, with `st` made
-- ready for it, or nil. Only a transfer's own error (kind "easy") or a
-- response can be retried, never a callback's error or a usage error.
function M.next_try(easy, st, err)
  local code = err == nil and 0 or (type(err) == "table" and rawget(err, "kind") == "easy" and err.code)
  local wait = code and retry_delay(easy, st, code)
  if wait and restart(st) then return wait end
end

local function sleep(ms)
  local p = curl.Poller()
  for _ in p:Wait(ms) do end -- luacheck: ignore
  p:Close()
end

--- curl.Fetch(url[, opts]) -> response
function M.fetch(url, opts)
  local easy, st = M.prepare("curl.Fetch", url, opts)
  local ok, err
  while true do
    ok, err = pcall(easy.Perform, easy)
    local wait = M.next_try(easy, st, not ok and err or nil)
    if not wait then break end
    sleep(wait)
  end
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
