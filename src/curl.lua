-- The thin Lua layer of `require "curl"`, embedded in the native module.
--
-- Every raw method (Rust) returns `true, results...` or `false, err`; the
-- wrappers raise `err` as is (`raw.checked`, a C closure, for methods;
-- `check` below elsewhere), so an error value raised in a callback (a
-- string, a table, anything) reaches the caller unchanged, and errors the
-- binding makes are `curl.Error` tables.
--
-- It also resolves the per-option forms (`SetOpt_FollowLocation`,
-- `GetInfo_ResponseCode`) and applies option tables given to constructors.

local raw = ...

local error, pairs, select, setmetatable, type, tostring =
      error, pairs, select, setmetatable, type, tostring
local format, gsub, lower = string.format, string.gsub, string.lower

local M = {}
for k, v in pairs(raw.constants) do M[k] = v end

-- Options the linked libcurl reports but the headers we were built with
-- lack (a newer runtime libcurl) still get their constant.
for name, id in pairs(raw.easy_option_constants) do
  if M[name] == nil then M[name] = id end
end

-- Every constant, in a plain table: `curl.constants.CURLOPT_X` is nil
-- where this libcurl lacks it (feature tests), where `curl.CURLOPT_X`
-- raises a usage error (a misspelt name would otherwise be a silent nil).
local constants = {}
for k, v in pairs(M) do constants[k] = v end
M.constants = constants

M._NAME = "lua-curl-socket"
M._VERSION = "0.1.0"
M._PATH = raw.module_path
M._reentry_keys = raw.reentry_guard_keys -- Lua 5.1 re-entry guard (docs/reference.md)

-- LuaJIT 2.1.0-beta3 (Debian 12's, and every build before upstream commit
-- 119fd1fa of August 2023) can spin forever in a JIT-compiled pairs()
-- loop: a trace exit back to the loop's ITERN that makes no progress
-- (LuaJIT issues #1000 and #1045). The fuzzer met it in this file's
-- option loop and in its own loops, with finalizers and hooks running
-- between iterations. On such a LuaJIT the module's Lua code (this chunk,
-- fetch.lua and the curl.loop files, which call M._no_jit() as they load)
-- runs in the interpreter: jit.off(chunk, true) covers the chunk and every
-- function defined in it, and a trace that reaches one of them stops
-- there. LuaJIT refuses jit.off inside a __gc metamethod: fetch.lua is
-- therefore compiled with this file (below), and a curl.loop file first
-- required by a finalizer stays compiled. The application's own code is
-- not covered (docs/reference.md, "Guards").
local jit = rawget(_G, "jit")
local jit_off = type(jit) == "table" and jit.version == "LuaJIT 2.1.0-beta3"
M._jit_off = jit_off
function M._no_jit()
  if not jit_off then return end
  local dbg = rawget(_G, "debug")
  local info = type(dbg) == "table" and dbg.getinfo and dbg.getinfo(2, "f")
  if info then pcall(jit.off, info.func, true) end
end
M._no_jit()

-- The same for a Lua library the module's code calls (dkjson, for Fetch's
-- JSON): the JIT off for the Lua functions of the module table `lib` and,
-- through their upvalues, for the functions they call (the library's
-- locals). Tables reached through upvalues are not walked (they can lead
-- to _G and the application's code).
function M._no_jit_lib(lib)
  if not jit_off or type(lib) ~= "table" then return end
  local dbg = rawget(_G, "debug")
  if type(dbg) ~= "table" or not dbg.getupvalue or not dbg.getinfo then return end
  local seen = {}
  local function walk(f)
    if seen[f] then return end
    seen[f] = true
    local info = dbg.getinfo(f, "S")
    if not info or info.what == "C" then return end
    pcall(jit.off, f, true)
    for i = 1, 255 do
      local name, u = dbg.getupvalue(f, i)
      if name == nil then break end
      if type(u) == "function" then walk(u) end
    end
  end
  for _, v in next, lib do
    if type(v) == "function" then walk(v) end
  end
end

--------------------------------------------------------------------- errors

local Error = {}
Error.__index = Error
Error.__name = "curl.Error"
function Error.__tostring(e)
  return format("[curl %s] %s (%s): %s", tostring(e.method), tostring(e.name),
                tostring(e.code), tostring(e.message))
end
raw.set_registry("curl.Error", Error)
M.Error = Error

local function usage(method, message)
  return setmetatable({ kind = "usage", code = -1, name = "USAGE",
                        message = message, method = method }, Error)
end

-- "CURLOPT_ECH needs libcurl 8.8.0 or later (this is 7.88.1)", or nil.
local function too_new(prefix, name)
  local want = raw.newer[prefix .. name:upper()]
  if not want then
    -- SetOpt_X matches ignoring underscores: compare normalised names
    local norm = lower((gsub(name, "_", "")))
    for full, v in pairs(raw.newer) do
      if full:sub(1, #prefix) == prefix and lower((gsub(full:sub(#prefix + 1), "_", ""))) == norm then
        name, want = full:sub(#prefix + 1), v
        break
      end
    end
  end
  if want then
    return format("%s%s needs libcurl %s or later (this is %s)", prefix, name:upper(), want, raw.runtime_version)
  end
end

-- Edit distance between two strings (did-you-mean suggestions).
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, #b do
      local cost = ca == b:byte(j) and 0 or 1
      local d = prev[j - 1] + cost
      if prev[j] + 1 < d then d = prev[j] + 1 end
      if cur[j - 1] + 1 < d then d = cur[j - 1] + 1 end
      cur[j] = d
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

-- The closest of `candidates` (a list) to `name` after `norm` (a function
-- applied to both), or nil when none is close: at most a third of the
-- name's length edited.
local function closest(name, candidates, norm)
  local n = norm and norm(name) or name
  local best, bestd = nil, math.max(1, math.floor(#n / 3))
  for _, c in ipairs(candidates) do
    local cn = norm and norm(c) or c
    if math.abs(#cn - #n) <= bestd then
      local d = distance(n, cn)
      if d < bestd or (d == bestd and best == nil) then best, bestd = c, d end
    end
  end
  return best
end
M._closest = closest

local function check(ok, ...)
  if ok then return ... end
  error((...), 0)
end
-- The same as `function(...) return check(f(...)) end`, as a C closure.
local checked = raw.checked

local function normalize(s)
  return lower((gsub(s, "_", "")))
end

-- " (did you mean CURLOPT_FOLLOWLOCATION?)" for a misspelt option or info
-- name (`name` without its prefix, any case, underscores optional), or "".
local by_prefix = {}
local function did_you_mean(prefix, name)
  local list = by_prefix[prefix]
  if not list then
    list = {}
    for k, v in pairs(constants) do
      if type(v) == "number" and k:sub(1, #prefix) == prefix then list[#list + 1] = k:sub(#prefix + 1) end
    end
    table.sort(list)
    by_prefix[prefix] = list
  end
  local near = closest(name, list, normalize)
  return near and format(" (did you mean %s%s?)", prefix, near) or ""
end

-------------------------------------------------------------------- classes

-- Builds the metatable fields of one handle class from its raw methods.
-- `optmap` maps normalised option names to ids (for SetOpt_X); `infomap`
-- the same for GetInfo_X.
local function class(name, short, rawmethods, optmap, infomap, optprefix)
  local methods = {}
  for k, f in pairs(rawmethods) do
    local rawfast = raw.fast["raw:" .. name .. "." .. k]
    methods[k] = checked(rawfast and rawfast(f) or f)
    local fast = raw.fast[name .. "." .. k]
    if fast then methods[k] = fast(methods[k]) end
  end
  local dynamic = {}
  function dynamic.__index(t, key)
    if type(key) ~= "string" then return nil end
    local opt = optmap and key:match("^SetOpt_(.+)$")
    if opt then
      local id = optmap[normalize(opt)]
      if id then
        local setopt = rawmethods.SetOpt
        local m = function(self, ...) return check(setopt(self, id, ...)) end
        t[key] = m
        return m
      end
      local msg = too_new(optprefix or "", opt)
                  or format("unknown option '%s'%s", opt, optprefix and did_you_mean(optprefix, opt) or "")
      return function()
        error(usage(short .. ":" .. key, msg), 0)
      end
    end
    local info = infomap and key:match("^GetInfo_(.+)$")
    if info then
      local id = infomap[normalize(info)]
      if id then
        -- a C closure: numeric infos straight from libcurl, the rest
        -- through the checked method
        local m = raw.fast_getinfo(t.GetInfo, id)
        t[key] = m
        return m
      end
      local msg = too_new("CURLINFO_", info) or format("unknown info '%s'%s", info, did_you_mean("CURLINFO_", info))
      return function()
        error(usage(short .. ":" .. key, msg), 0)
      end
    end
    return nil
  end
  setmetatable(methods, dynamic)
  raw.set_registry(name .. "__index", methods)
  raw.set_registry(name .. "__tostring", function(self)
    return format("%s (%s)", name, raw.addr(self))
  end)
  if methods.Close then
    raw.set_registry(name .. "__close", function(self) return methods.Close(self) end)
  end
  return methods
end

local share_options = {}
for k, v in pairs(raw.constants) do
  local n = k:match("^CURLSHOPT_(.+)$")
  if n and n ~= "LAST" and n ~= "NONE" then share_options[lower((gsub(n, "_", "")))] = v end
end

local multi_methods = class("curl.Multi", "multi", raw.Multi, raw.multi_options, nil, "CURLMOPT_")
local easy_methods = class("curl.Easy", "easy", raw.Easy, raw.easy_options, raw.infos, "CURLOPT_")
local poller_methods = class("curl.Poller", "poller", raw.Poller, nil, nil)
class("curl.Share", "share", raw.Share, share_options, nil, "CURLSHOPT_")
class("curl.URL", "url", raw.URL, nil, nil)
class("curl.Mime", "mime", raw.Mime, nil, nil)
class("curl.MimePart", "part", raw.MimePart, nil, nil)
class("curl.Buffer", "buffer", raw.Buffer, nil, nil)

-- for fd, mask in poller:Wait(ms) do ... end (the iterator is the
-- poller's own and ignores its arguments)
local poller_wait = raw.Poller.Wait
function poller_methods.Wait(self, ms)
  return check(poller_wait(self, ms)), self
end

-------------------------------------------------------------- constructors

local function apply(h, opts, optmap, method, prefix)
  if opts == nil then return h end
  if type(opts) ~= "table" then
    error(usage(method, format("bad argument #1 'options' (expected table, got %s)", type(opts))), 0)
  end
  for k, v in pairs(opts) do
    local id
    if type(k) == "number" then
      id = k
    elseif type(k) == "string" then
      id = optmap[normalize((gsub(k, "^CURL%u*OPT_", "")))]
    end
    if not id then
      local bare = type(k) == "string" and gsub(k, "^CURL%u*OPT_", "")
      local msg = bare and too_new(prefix, bare)
      error(usage(method, msg or format("unknown option '%s' in the options table%s", tostring(k),
                                        bare and did_you_mean(prefix, bare) or "")), 0)
    end
    if prefix == "CURLSHOPT_" and type(v) == "table" then
      for _, item in ipairs(v) do h:SetOpt(id, item) end
    else
      h:SetOpt(id, v)
    end
  end
  return h
end

local new_multi, new_easy, new_poller = raw.new_multi, raw.new_easy, raw.new_poller
local new_share, new_url, new_mime = raw.new_share, raw.new_url, raw.new_mime

--- curl.Multi([options]) -> multi
function M.Multi(opts)
  return apply(check(new_multi()), opts, raw.multi_options, "curl.Multi", "CURLMOPT_")
end

--- curl.Easy([options]) -> easy
function M.Easy(opts)
  return apply(check(new_easy()), opts, raw.easy_options, "curl.Easy", "CURLOPT_")
end

--- curl.Share([options]) -> share; options: { Share = lock_data or {lock_data, ...} }
function M.Share(opts)
  return apply(check(new_share()), opts, share_options, "curl.Share", "CURLSHOPT_")
end

--- curl.URL([url[, flags]]) -> url
function M.URL(...)
  return check(new_url(...))
end

--- curl.Buffer() -> buffer (WRITEDATA / HEADERDATA without a function)
function M.Buffer()
  return check(raw.new_buffer())
end

--- curl.Mime(easy) -> mime
function M.Mime(easy)
  return check(new_mime(easy))
end

--- curl.Poller() -> poller
function M.Poller()
  return check(new_poller())
end

for _, k in ipairs { "Version", "VersionInfo", "EasyStrError", "MultiStrError", "ShareStrError",
                     "EasyError", "MultiError" } do
  local f = raw[k]
  M[k] = checked(f)
end

-- For the loop helpers: whether an easy's body goes anywhere but stdout.
M._writes = raw.fast_writes(checked(raw.writes))
M._drain = raw.fast["curl._drain"](checked(raw.drain))
-- For the loop backends whose event loop watches a Poller's descriptor:
-- poller:Close() is refused while held.
M._poller_hold = checked(raw.poller_hold)
-- For the loop backends that drive from a coroutine (cqueues): `f(a)`
-- with the module's C paths serving that coroutine; `f` must not raise.
M._enter = raw.enter

------------------------------------------------------------------- Fetch

-- src/fetch.lua, compiled on first use (shared with curl.loop's Fetch).
local fetch_mod
function M._fetch()
  if not fetch_mod then
    local chunk = assert((loadstring or load)(raw.fetch_source, "=fetch.lua"))
    fetch_mod = chunk(M)
  end
  return fetch_mod
end

-- Where the module's Lua code runs in the interpreter (M._no_jit above),
-- fetch.lua is compiled now, while jit.off works: LuaJIT refuses it inside
-- a __gc metamethod, where a first curl.Fetch could be (the fuzzer's were,
-- and LuaJIT then spun in fetch.lua's loops).
if jit_off then M._fetch() end

--- curl.Fetch(url[, opts]) -> response (see docs/reference.md, "Fetch")
function M.Fetch(url, opts)
  return M._fetch().fetch(url, opts)
end

-- curl.CURLxxx names that do not exist: a usage error with a did-you-mean
-- (or the libcurl version that has it); curl.constants for feature tests.
setmetatable(M, {
  __index = function(_, key)
    if type(key) ~= "string" or not key:match("^CURL") then return nil end
    local prefix = key:match("^(CURL%u*_)") or "CURL"
    local msg = too_new(prefix, key:sub(#prefix + 1))
      or format("unknown constant '%s'%s; for a feature test use curl.constants.%s (nil when missing)",
                key, did_you_mean(prefix, key:sub(#prefix + 1)), key)
    error(usage("curl." .. key, msg), 2)
  end,
})

-- Normalised option / info names, for tools and docs.
M.options = { easy = raw.easy_options, multi = raw.multi_options, info = raw.infos,
              share = share_options, easy_types = raw.easy_option_kinds }

return M
