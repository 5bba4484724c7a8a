-- Generates types/curl_options.lua: the LuaLS (lua-language-server) fields
-- that are resolved at run time, from the built module:
--   * every constant of `curl.constants` (`curl.CURLOPT_URL`, ...);
--   * `easy:SetOpt_X(value[, userdata])` per easy option, typed by its kind
--     (`curl.options.easy`, `curl.options.easy_types`), named by the C name's
--     tail as libcurl spells it (`SetOpt_FOLLOWLOCATION`, which always works);
--   * `easy:GetInfo_X()` per info (`curl.options.info`), typed by the
--     CURLINFO type bits;
--   * `multi:SetOpt_X(...)` per multi option (`curl.options.multi`);
--   * the option tables of `curl.Easy{...}` / `curl.Multi{...}`
--     (curl.EasyOptions, curl.MultiOptions);
--   * the options, infos and constants of src/newer.tsv this build lacks
--     (usage errors on an older libcurl, valid on the bundled 8.22 one).
-- Options the module refuses (docs/reference.md, "Not supported") get no
-- field, so LuaLS flags them as it flags a misspelt name.
--
-- Run from the repository root:
--   lua5.4 scripts/gen_types.lua > types/curl_options.lua
-- (build/lua54/curl.so first: scripts/build.sh lua54). spec/types_spec.lua
-- loads this file as a function, `loadfile(path)(curl, root)`, which then
-- returns the text instead of printing it.
local curl, root = ...

if type(curl) ~= "table" then
  root = "."
  package.cpath = "build/lua54/?.so;" .. package.cpath
  curl = require "curl"
end
root = root or "."

local format, concat, sort = string.format, table.concat, table.sort

local function normalize(s) return (s:gsub("_", "")):lower() end

-- Options, infos and multi options of src/newer.tsv, for a build whose
-- headers lack them: libcurl's ids (stable ABI) and easy option kinds, as the
-- bundled libcurl 8.22 reports them. The spec checks them against the
-- vendored build when it runs on one.
local NEWER = {
  CURLOPT_HAPROXY_CLIENT_IP = { 10323, "string" },
  CURLOPT_MAIL_RCPT_ALLOWFAILS = { 290, "long" },
  CURLOPT_SERVER_RESPONSE_TIMEOUT_MS = { 324, "long" },
  CURLOPT_ECH = { 10325, "string" },
  CURLOPT_TCP_KEEPCNT = { 326, "long" },
  CURLOPT_UPLOAD_FLAGS = { 327, "long" },
  CURLOPT_SSL_SIGNATURE_ALGORITHMS = { 10328, "string" },
  CURLOPT_HTTPSIG_ALGORITHM = { 329, "values" },
  CURLOPT_HTTPSIG_HEADERS = { 10332, "string" },
  CURLOPT_HTTPSIG_KEY = { 10330, "string" },
  CURLOPT_HTTPSIG_KEYID = { 10331, "string" },
  CURLINFO_CONN_ID = { 0x600040 },
  CURLINFO_XFER_ID = { 0x60003f },
  CURLINFO_QUEUE_TIME_T = { 0x600041 },
  CURLINFO_USED_PROXY = { 0x200042 },
  CURLINFO_POSTTRANSFER_TIME_T = { 0x600043 },
  CURLINFO_EARLYDATA_SENT_T = { 0x600044 },
  CURLINFO_HTTPAUTH_USED = { 0x200045 },
  CURLINFO_PROXYAUTH_USED = { 0x200046 },
  CURLINFO_SIZE_DELIVERED = { 0x600047 },
  CURLMOPT_NETWORK_CHANGED = { 17 },
  CURLMOPT_NOTIFYDATA = { 10019 },
  CURLMOPT_NOTIFYFUNCTION = { 20018 },
  CURLMOPT_QUICK_EXIT = { 21 },
  CURLMOPT_RESOLVE_THREADS_MAX = { 20 },
}

-- Refused by the module with a usage error (docs/reference.md, "Not
-- supported"): no field.
local REFUSED = {
  CURLOPT_ERRORBUFFER = true, CURLOPT_STDERR = true, CURLOPT_SSL_CTX_FUNCTION = true,
  CURLOPT_SSL_CTX_DATA = true, CURLOPT_IOCTLFUNCTION = true, CURLOPT_IOCTLDATA = true,
  CURLOPT_CONV_FROM_NETWORK_FUNCTION = true, CURLOPT_CONV_TO_NETWORK_FUNCTION = true,
  CURLOPT_CONV_FROM_UTF8_FUNCTION = true, CURLOPT_HTTPPOST = true,
  CURLINFO_TLS_SESSION = true, CURLINFO_TLS_SSL_PTR = true,
}

-- The Lua function type of each callback option (types/curl.lua's aliases).
local CALLBACKS = {
  WRITEFUNCTION = "curl.WriteFunction", HEADERFUNCTION = "curl.HeaderFunction",
  READFUNCTION = "curl.ReadFunction", XFERINFOFUNCTION = "curl.XferInfoFunction",
  PROGRESSFUNCTION = "curl.ProgressFunction", DEBUGFUNCTION = "curl.DebugFunction",
  SEEKFUNCTION = "curl.SeekFunction", SOCKOPTFUNCTION = "curl.SockOptFunction",
  OPENSOCKETFUNCTION = "curl.OpenSocketFunction", CLOSESOCKETFUNCTION = "curl.CloseSocketFunction",
  RESOLVER_START_FUNCTION = "curl.ResolverStartFunction", PREREQFUNCTION = "curl.PrereqFunction",
  TRAILERFUNCTION = "curl.TrailerFunction", CHUNK_BGN_FUNCTION = "curl.ChunkBgnFunction",
  CHUNK_END_FUNCTION = "curl.ChunkEndFunction", FNMATCH_FUNCTION = "curl.FnMatchFunction",
  SSH_KEYFUNCTION = "curl.SshKeyFunction", SSH_HOSTKEYFUNCTION = "curl.SshHostKeyFunction",
  HSTSREADFUNCTION = "curl.HstsReadFunction", HSTSWRITEFUNCTION = "curl.HstsWriteFunction",
  INTERLEAVEFUNCTION = "curl.InterleaveFunction",
}

-- Easy options whose value is not what their kind says (by canonical name).
local SPECIAL_EASY = {
  SHARE = "curl.Share?", CURLU = "curl.URL?", MIMEPOST = "curl.Mime?",
  STREAM_DEPENDS = "curl.Easy?", STREAM_DEPENDS_E = "curl.Easy?",
  PRIVATE = "any", POSTFIELDS = "string?", COPYPOSTFIELDS = "string?",
  HTTPHEADER = "curl.HeaderList?", PROXYHEADER = "curl.HeaderList?",
}

------------------------------------------------------------------ the data

local constants = {} -- name -> value
for k, v in pairs(curl.constants) do constants[k] = v end

local newer_version = {} -- name -> libcurl version that has it
for line in io.lines(root .. "/src/newer.tsv") do
  local name, version = line:match("^(CURL%u*_[%w_]+)\t([%d%.]+)")
  if name and constants[name] == nil then
    local n = NEWER[name]
    if not n then
      error(format("src/newer.tsv lists %s: add its id (and kind) to NEWER in scripts/gen_types.lua", name))
    end
    newer_version[name] = version
    constants[name] = n[1]
  end
end

-- names by family: C name -> id, for the names this build (or newer.tsv) has
local function family(prefix, map, extra)
  local out = {}
  for name, v in pairs(constants) do
    local tail = name:sub(#prefix + 1)
    if name:sub(1, #prefix) == prefix then
      if map[normalize(tail)] == v or (newer_version[name] and extra(name, v)) then
        out[name] = v
      end
    end
  end
  return out
end

local easy_types = {}
for id, kind in pairs(curl.options.easy_types) do easy_types[id] = kind end
local easy = family("CURLOPT_", curl.options.easy, function(name, id)
  easy_types[id] = easy_types[id] or NEWER[name][2]
  return true
end)
local infos = family("CURLINFO_", curl.options.info, function() return true end)
local multi = family("CURLMOPT_", curl.options.multi, function() return true end)

-- every normalised name of this build has its C name
for fam, t in pairs { CURLOPT_ = { curl.options.easy, easy }, CURLINFO_ = { curl.options.info, infos },
                      CURLMOPT_ = { curl.options.multi, multi } } do
  local seen = {}
  for name in pairs(t[2]) do seen[normalize(name:sub(#fam + 1))] = true end
  for n in pairs(t[1]) do
    if not seen[n] then error(format("no %s constant for the option '%s'", fam, n)) end
  end
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  sort(out)
  return out
end

-- the other names of the same id: " (same as CURLOPT_X)"
local function same_as(names, name)
  local others = {}
  for _, other in ipairs(names) do
    if other ~= name and names[other] == names[name] then others[#others + 1] = other end
  end
  if #others == 0 then return "" end
  return " (same as " .. concat(others, ", ") .. ")"
end
local function with_lookup(t)
  local names = sorted_keys(t)
  for _, n in ipairs(names) do names[n] = t[n] end
  return names
end

local function since(name)
  local v = newer_version[name]
  return v and format("; libcurl %s or later, a usage error before", v) or ""
end

------------------------------------------------------------------ types

local ID = {} -- canonical easy option ids by tail (this build or NEWER)
for name, id in pairs(easy) do ID[name:sub(9)] = id end

-- the Lua type of an easy option's value, and its kind for the description
local function easy_value(name, id)
  local tail = name:sub(9)
  local kind = easy_types[id]
  for special, ty in pairs(SPECIAL_EASY) do
    if ID[special] == id then return ty, kind end
  end
  if kind == "long" or kind == "values" then return "integer|boolean", kind end
  if kind == "off_t" then return "integer", kind end
  if kind == "string" or kind == "blob" then return "string?", kind end
  if kind == "slist" then return "string[]?", kind end
  if kind == "function" then
    local cb = CALLBACKS[tail]
    if not cb then
      -- an alias spelling of a callback option: by id
      for t, c in pairs(CALLBACKS) do
        if ID[t] == id then cb = c end
      end
    end
    return (cb or "function") .. "?", kind
  end
  return "any", kind -- cbptr (the callback's userdata), object
end

local INFO_TYPES = {
  [0x100000] = { "string?", "string" }, [0x200000] = { "integer", "long" },
  [0x300000] = { "number", "double" }, [0x400000] = { "string[]", "list" },
  [0x500000] = { "integer", "socket" }, [0x600000] = { "integer", "off_t" },
}
local function info_value(name, id)
  if id == constants.CURLINFO_PRIVATE then return "any", "the value given to CURLOPT_PRIVATE" end
  if id == constants.CURLINFO_CERTINFO then return "table<string, string>[]", "one table per certificate" end
  local t = INFO_TYPES[id - id % 0x100000]
  return t[1], t[2]
end

-- multi options: kind from the id's range, as the module does
local MULTI_SPECIAL = {
  SOCKETFUNCTION = { "fn: curl.SocketFunction|curl.Poller|nil, userdata?: any", "function or curl.Poller" },
  TIMERFUNCTION = { "fn: curl.TimerFunction|curl.Poller|nil, userdata?: any", "function or curl.Poller" },
  PUSHFUNCTION = { "fn: curl.PushFunction?, userdata?: any", "function" },
  SOCKETDATA = { "value: any", "userdata of SOCKETFUNCTION" },
  TIMERDATA = { "value: any", "userdata of TIMERFUNCTION" },
  PUSHDATA = { "value: any", "userdata of PUSHFUNCTION" },
  PIPELINING_SITE_BL = { "value: string[]?", "array of strings" },
  PIPELINING_SERVER_BL = { "value: string[]?", "array of strings" },
}
local MULTI_OPTION_TYPES = {
  SOCKETFUNCTION = "curl.SocketFunction|curl.Poller", TIMERFUNCTION = "curl.TimerFunction|curl.Poller",
  PUSHFUNCTION = "curl.PushFunction", SOCKETDATA = "any", TIMERDATA = "any", PUSHDATA = "any",
  PIPELINING_SITE_BL = "string[]", PIPELINING_SERVER_BL = "string[]",
}
-- the argument list and kind of a multi option, or nil when the module
-- does not support it (a usage error)
local function multi_value(name, id)
  local tail = name:sub(10)
  local s = MULTI_SPECIAL[tail]
  if s then return s[1], s[2], MULTI_OPTION_TYPES[tail] end
  if id < 10000 then return "value: integer|boolean", "long", "integer|boolean" end
  if id >= 30000 and id < 40000 then return "value: integer", "off_t", "integer" end
  return nil
end

------------------------------------------------------------------ output

local out = {}
local function put(...) out[#out + 1] = concat({ ... }) end

local vi = curl.VersionInfo()
local headers = constants.LIBCURL_VERSION_NUM
put("---@meta _")
put("-- Generated by scripts/gen_types.lua from the built module; do not edit:")
put("--   lua5.4 scripts/gen_types.lua > types/curl_options.lua")
put(format("-- libcurl headers 0x%06x, libcurl %s at run time; the options, infos and", headers or 0,
           vi.version))
put("-- constants of src/newer.tsv these headers lack are included (usage errors on")
put("-- an older libcurl, valid on the bundled libcurl 8.22).")
put("-- SetOpt_X and GetInfo_X match names ignoring case and underscores at run")
put("-- time; these fields use the C spelling, which always works.")
put("")

put("---@class curl")
local cnames = with_lookup(constants)
for _, name in ipairs(cnames) do
  put(format("---@field %s integer # %s%s", name, tostring(constants[name]), since(name)))
end
put("")

-- The other spellings the docs and examples use (`SetOpt_FollowLocation`,
-- `GetInfo_TotalTime`): fields too, so code written from them checks clean.
-- (LuaLS cannot match names ignoring case; other spellings are flagged.)
local spelled = { SetOpt = {}, GetInfo = {} }
do
  local files = { "README.md", "docs/reference.md", "docs/editor.md", "src/fetch.lua" }
  for _, dir in ipairs { "examples", "lua/curl", "lua/curl/loop" } do
    local p = io.popen(("ls %s/%s/*.lua 2>/dev/null"):format(root, dir))
    if p then
      for f in p:lines() do files[#files + 1] = f:sub(#root + 2) end
      p:close()
    end
  end
  sort(files)
  for _, f in ipairs(files) do
    local h = io.open(root .. "/" .. f, "rb")
    if h then
      local text = h:read("*a")
      h:close()
      for kind in pairs(spelled) do
        for x in text:gmatch(kind .. "_([%w_]+)") do spelled[kind][x:gsub("_+$", "")] = true end
      end
    end
  end
end

-- The spellings of `kind` ("SetOpt"/"GetInfo") that name the option `tail`
-- (the C tail) other than the C spelling itself, sorted.
local function other_spellings(kind, tail)
  local list = {}
  for x in pairs(spelled[kind]) do
    if x ~= tail and normalize(x) == normalize(tail) then list[#list + 1] = x end
  end
  sort(list)
  return list
end

-- One `---@field <method>_<tail>` line for a C name, then one per other
-- spelling the docs use.
local function method_fields(method, tail, sig, comment)
  put(format("---@field %s_%s %s # %s", method, tail, sig, comment))
  for _, x in ipairs(other_spellings(method, tail)) do
    put(format("---@field %s_%s %s # = %s_%s", method, x, sig, method, tail))
  end
end

local easy_names = with_lookup(easy)
put("---@class curl.Easy")
for _, name in ipairs(easy_names) do
  if not REFUSED[name] then
    local id = easy[name]
    local ty, kind = easy_value(name, id)
    local args = "value: " .. ty
    if kind == "function" then args = "fn: " .. ty .. ", userdata?: any" end
    method_fields("SetOpt", name:sub(9), format("fun(self: curl.Easy, %s)", args),
                  format("curl_easy_setopt %s (%s)%s%s", name, kind, same_as(easy_names, name), since(name)))
  end
end
local info_names = with_lookup(infos)
for _, name in ipairs(info_names) do
  if not REFUSED[name] then
    local ty, what = info_value(name, infos[name])
    method_fields("GetInfo", name:sub(10), format("fun(self: curl.Easy): %s", ty),
                  format("curl_easy_getinfo %s (%s)%s%s", name, what, same_as(info_names, name), since(name)))
  end
end
put("")

local multi_names = with_lookup(multi)
put("---@class curl.Multi")
for _, name in ipairs(multi_names) do
  local args, kind = multi_value(name, multi[name])
  if args then
    method_fields("SetOpt", name:sub(10), format("fun(self: curl.Multi, %s)", args),
                  format("curl_multi_setopt %s (%s)%s%s", name, kind, same_as(multi_names, name), since(name)))
  end
end
put("")

put("---The options table of `curl.Easy{...}` (and `opts.options` of Fetch and")
put("---WebSocket): easy options by name, any case, underscores optional, or")
put("---`CURLOPT_X` and numeric keys; the C spellings are listed.")
put("---@class curl.EasyOptions")
for _, name in ipairs(easy_names) do
  if not REFUSED[name] then
    local ty, kind = easy_value(name, easy[name])
    ty = ty:gsub("%?$", "")
    put(format("---@field %s? %s # %s (%s)%s", name:sub(9), ty, name, kind, since(name)))
  end
end
put("---@field [string|integer] any")
put("")

put("---The options table of `curl.Multi{...}`: multi options by name, as for")
put("---curl.EasyOptions.")
put("---@class curl.MultiOptions")
for _, name in ipairs(multi_names) do
  local args, kind, ty = multi_value(name, multi[name])
  if args then
    put(format("---@field %s? %s # %s (%s)%s", name:sub(10), ty, name, kind, since(name)))
  end
end
put("---@field [string|integer] any")

local text = concat(out, "\n") .. "\n"
if select("#", ...) > 0 and type((...)) == "table" then return text end
io.write(text)
