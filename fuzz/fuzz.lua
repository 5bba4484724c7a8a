-- fuzz/fuzz.lua: the API-sequence fuzzer of lua-curl-socket.
--
--   <interpreter> fuzz/fuzz.lua SEED CALLS [LOGFILE]
--
-- Runs CALLS operations chosen by a PRNG seeded with SEED on pools of every
-- object kind (Multi, Easy, Share, URL, Mime and parts, Poller, Buffer, the
-- curl.loop helpers), against the loopback servers named in the environment
-- (NGINX_HTTP, NGINX_HTTPS, NGINX_CA, CURL_TEST_FIXTURE; scripts/fuzz.sh
-- starts them). Every module call is logged (one line, flushed) to LOGFILE
-- before it runs, so a crash leaves the last operations behind.
--
-- The check: every error a module call raises must be a curl.Error (with
-- string kind/name/message/method) or rawequal to a value that one of the
-- fuzzer's own callbacks raised since that call started (for the curl.loop
-- helpers, which defer callback errors to a later Run: since the run
-- started). Callbacks must not run outside a binding call nor during
-- multi:Close, and must not be able to yield.
--
-- Exit codes: 0 done; 2 contract violation ("FUZZ VIOLATION: ..." on
-- stderr); 3 a bug in this fuzzer ("FUZZ BUG: ..."); 4 bad usage.
--
-- Environment: FUZZ_AVOID=all|none|name,name (known crash triggers to steer
-- clear of, see KNOWN below; default none), FUZZ_TMP (scratch directory;
-- default: a new one under /tmp), CURL_REPO (default: this file's ../),
-- FUZZ_CPATH (a package.cpath entry for curl.so), CURL_BUILD (the builds'
-- directory, default build/), FUZZ_REENTRY=0 (no finalizer/hook re-entry
-- operations), FUZZ_NO_LOOPS=1 (skip the
-- curl.loop helpers), FUZZ_VERBOSE_LOG=0 (log top-level operations only).

local SEED = tonumber(arg and arg[1] or "")
local CALLS = tonumber(arg and arg[2] or "")
local LOGFILE = arg and arg[3]
if not SEED or not CALLS then
  io.stderr:write("usage: fuzz.lua SEED CALLS [LOGFILE]\n")
  os.exit(4)
end
SEED = math.floor(SEED)
CALLS = math.floor(CALLS)

local ROOT = os.getenv("CURL_REPO")
if not ROOT then
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  ROOT = (src:match("^(.*)/fuzz/[^/]*$") or ".")
end
local FEATURE
if type(jit) == "table" then
  FEATURE = "luajit"
else
  local a, b = _VERSION:match("(%d)%.(%d)")
  FEATURE = "lua" .. a .. b
end
package.cpath = (os.getenv("FUZZ_CPATH") or ((os.getenv("CURL_BUILD") or (ROOT .. "/build")) .. "/" .. FEATURE .. "/?.so")) .. ";" .. package.cpath
package.path = ROOT .. "/lua/?.lua;" .. package.path

local curl = require "curl"
-- LuaJIT 2.1.0-beta3 (Debian 12's) can spin forever in a JIT-compiled
-- pairs() loop (LuaJIT #1000, fixed upstream in 119fd1fa); with the
-- finalizer and hook operations it did so in this file's loops in most
-- seeds. As the module does for its own Lua code (curl._no_jit), the
-- fuzzer then runs in the interpreter; on a fixed LuaJIT it is compiled.
curl._no_jit()
assert(curl._NAME == "lua-curl-socket", "wrong curl module: " .. tostring(curl._PATH))

local unpack = table.unpack or unpack
local function pack(...) return { n = select("#", ...), ... } end
local floor = math.floor
local mathtype = math.type or function() return nil end
local LUA54 = _VERSION == "Lua 5.4"

------------------------------------------------------------------ the PRNG
-- L'Ecuyer's combined multiplicative generator: every product stays below
-- 2^47, exact in doubles and in 64-bit integers, so the sequence is the
-- same on Lua 5.1 to 5.4 and LuaJIT.
local function Rng(seed)
  local s1 = seed % 2147483562 + 1
  local s2 = floor(seed / 2147483562) % 2147483398 + 1
  local r = {}
  function r.next()
    s1 = (s1 * 40014) % 2147483563
    s2 = (s2 * 40692) % 2147483399
    local z = s1 - s2
    if z < 1 then z = z + 2147483562 end
    return z
  end
  -- integer in [a, b]
  function r.int(a, b)
    if b <= a then return a end
    local span = b - a + 1
    if span <= 2147483562 then return a + (r.next() % span) end
    return a + ((r.next() * 2147483562 + r.next()) % span)
  end
  function r.chance(p) return r.next() < p * 2147483562 end
  function r.pick(t) return t[r.int(1, #t)] end
  -- weighted: t = { {w, x}, ... } -> x
  function r.weighted(t)
    local total = 0
    for i = 1, #t do total = total + t[i][1] end
    local x = r.int(1, total)
    for i = 1, #t do
      x = x - t[i][1]
      if x <= 0 then return t[i][2] end
    end
    return t[#t][2]
  end
  for _ = 1, 10 do r.next() end
  return r
end

local R = Rng(SEED)                 -- the operation sequence
local CB = Rng(SEED * 7 + 13)       -- callbacks (their count depends on timing)
local DR = Rng(SEED * 3 + 1)        -- inside the drive loops (their turns depend on timing)

------------------------------------------------------------------ known bugs
-- Known crash triggers, kept so that a fix can be checked against its
-- trigger (FUZZ_AVOID naming them steers clear of them). All are fixed or
-- guarded in the binding (docs/reference.md, "Guards against libcurl
-- bugs"). (n) also covers the body sent again after its trailers within
-- one transfer (a 307), and (r) the held connection of any later
-- transfer (in a multi too), both found later.
local KNOWN = {
  escape_empty = "(a) easy:Escape('') / easy:Unescape('')",
  filedata_subparts = "(b) part:FileData(missing path) on a part that has a sub-mime",
  subparts_root = "(c) part:SubParts(a mime of the part's own tree: a cycle)",
  closesocket_reuse = "(d) CLOSESOCKETFUNCTION set then cleared, then FORBID_REUSE = 0",
  stream_depends_dup = "(e) STREAM_DEPENDS(_E) with DupHandle or Reset",
  hsts_dup = "(f) CURLOPT_HSTS (a file name) then DupHandle",
  share_hsts_ctrl = "(g) a share with CURL_LOCK_DATA_HSTS (and HSTS_CTRL = 0)",
  curlu_empty_path = "(h) a curl.URL whose path was set to '' given as CURLOPT_CURLU",
  connect_only_multi = "(i) CONNECT_ONLY on an easy that is (or was) added to a multi",
  h2_socketaction = "(j) HTTP/2 transfers driven by a multi (forced to HTTP/1.1)",
  -- found by this fuzzer
  hsts_ctrl_file = "(k) CURLOPT_HSTS (a file name), then HSTS_CTRL without CURLHSTS_ENABLE: NULL deref at the next transfer",
  loop_multi_closed = "(l) the multi of a luv/cqueues curl.loop closed (or its socket/timer function replaced) behind the loop's back: luv exits the process ('Uncaught Error'); cqueues: Run raises a raw 'Bad file descriptor' string",
  loop_bad_opts = "(m) loop:Add/Await with options neither table nor function: a raw Lua error ('attempt to index')",
  trailer_reuse = "(n) a chunked upload with a TRAILERFUNCTION, then another chunked upload on the same easy: heap write before state.ulbuf, double free",
  connect_only_h2 = "(o) CONNECT_ONLY over https (ALPN h2), then Recv/Send: NULL deref in on_frame_recv (data->multi)",
  loop_close_add = "(p) loop:Close while transfers run, and an on_done starts another: 'invalid key to next'",
  cqueues_nested_run = "(q) loop:Run of a cqueues loop from inside a transfer callback: a raw 'attempt to yield across a C-call boundary'",
  connect_only_leak = "(r) CONNECT_ONLY: Perform, Send, Perform again: libcurl leaks the first connection (valgrind)",
  ssl_share_leak = "(s) CURLOPT_SHARE with CURL_LOCK_DATA_SSL_SESSION on an easy that has run a transfer: its session cache leaks (valgrind)",
  body_midtransfer = "(t) POSTFIELDS set while the easy's transfer runs (a chunked POST from a read function that follows a 307): heap overflow of state.ulbuf, 'free(): invalid size' later",
  connect_only_head = "(u) CONNECT_ONLY 2 with CUSTOMREQUEST 'HEAD' (libcurl 8.22): Perform never returns, its TIMEOUT ignored",
  cookiefile_reset = "(v) CURLOPT_COOKIEFILE (a file name), then Reset (libcurl 7.88): the file list leaks (valgrind)",
}
local KNOWN_ORDER = { "escape_empty", "filedata_subparts", "subparts_root", "closesocket_reuse",
  "stream_depends_dup", "hsts_dup", "share_hsts_ctrl", "curlu_empty_path", "connect_only_multi",
  "h2_socketaction", "hsts_ctrl_file", "loop_multi_closed", "loop_bad_opts", "trailer_reuse",
  "connect_only_h2", "loop_close_add", "cqueues_nested_run", "connect_only_leak", "ssl_share_leak",
  "body_midtransfer", "connect_only_head", "cookiefile_reset" }
local AVOID = {}
do
  local spec = os.getenv("FUZZ_AVOID") or "none"
  if spec == "all" then
    for k in pairs(KNOWN) do AVOID[k] = true end
  elseif spec ~= "none" and spec ~= "" then
    for name in spec:gmatch("[^,%s]+") do
      if not KNOWN[name] then
        io.stderr:write("FUZZ_AVOID: unknown trigger '" .. name .. "'; known: " .. table.concat(KNOWN_ORDER, ",") .. "\n")
        os.exit(4)
      end
      AVOID[name] = true
    end
  end
end

------------------------------------------------------------------ servers
local NGINX_HTTP = os.getenv("NGINX_HTTP")
local NGINX_HTTPS = os.getenv("NGINX_HTTPS")
local NGINX_CA = os.getenv("NGINX_CA")
local FIXTURE = os.getenv("CURL_TEST_FIXTURE")
local WS = os.getenv("CURL_TEST_WS") -- the WebSocket server, when it runs
if not (NGINX_HTTP and NGINX_HTTPS and NGINX_CA and FIXTURE) then
  io.stderr:write("fuzz.lua needs NGINX_HTTP, NGINX_HTTPS, NGINX_CA and CURL_TEST_FIXTURE (scripts/fuzz.sh sets them)\n")
  os.exit(4)
end
local FPORT = FIXTURE:match(":(%d+)$")
local HTTPS_PORT = NGINX_HTTPS:match(":(%d+)$")
local HTTP_PORT = NGINX_HTTP:match(":(%d+)$")

local TMP = os.getenv("FUZZ_TMP")
if not TMP then
  local p = io.popen("mktemp -d /tmp/fuzz.XXXXXX")
  TMP = p:read("*l")
  p:close()
end

local function fetch(url)
  local chunks = {}
  local e = curl.Easy { URL = url, TimeoutMS = 5000, WriteFunction = function(d) chunks[#chunks + 1] = d end }
  e:Perform()
  e:Close()
  return table.concat(chunks)
end
local GARBAGE, SILENT, REFUSED = fetch(FIXTURE .. "/faults"):match("garbage=(%d+) silent=(%d+) refused=(%d+)")
if not GARBAGE then
  io.stderr:write("the fixture server has no /faults route\n")
  os.exit(4)
end

-- scratch files (file:// URLs, mime FileData, cookie jars ...)
local function writefile(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
writefile(TMP .. "/small.txt", "small file\n")
writefile(TMP .. "/body.bin", ("0123456789abcdef\0\255"):rep(1000))
writefile(TMP .. "/cookies.txt", "127.0.0.1\tFALSE\t/\tFALSE\t0\tfuzz\tcookie\n")
writefile(TMP .. "/hsts.txt", "localhost \"20991231 00:00:00\"\n")
writefile(TMP .. "/altsvc.txt", "")
local CA_PEM
do
  local f = io.open(NGINX_CA, "rb")
  CA_PEM = f and f:read("*a") or "not a pem"
  if f then f:close() end
end
-- File options that write (cookie jar, HSTS and alt-svc caches) may get
-- any name of SAFE_FILES: a copy of the CA stands in for the real one,
-- which every process of a run reads.
writefile(TMP .. "/ca-copy.crt", CA_PEM)
local LONG_LABEL = ("a"):rep(70)   -- cannot be put in a DNS query: fails inside libc
local BIG = ("0123456789abcdef"):rep(65536)  -- 1 MiB
local MEDIUM = ("x"):rep(70000)

local URLS_GOOD = {
  NGINX_HTTP .. "/100b", NGINX_HTTP .. "/1k", NGINX_HTTP .. "/16k", NGINX_HTTP .. "/missing",
  NGINX_HTTP .. "/", NGINX_HTTPS .. "/1k", NGINX_HTTPS .. "/100b", NGINX_HTTPS .. "/16k",
  NGINX_HTTPS .. "/hsts/1k", "https://127.0.0.1:" .. HTTPS_PORT .. "/1k",
  FIXTURE .. "/size/10", FIXTURE .. "/size/3000", FIXTURE .. "/chunked/5000/7", FIXTURE .. "/delay/30/10",
  FIXTURE .. "/status/404", FIXTURE .. "/status/500", FIXTURE .. "/status/204", FIXTURE .. "/redirect/3",
  FIXTURE .. "/307", FIXTURE .. "/setcookie/fz/1", FIXTURE .. "/hsts", FIXTURE .. "/close/50",
  FIXTURE .. "/echo", FIXTURE .. "/echo?x=1", FIXTURE .. "/slow/400/5", FIXTURE .. "/gzip/2000",
  FIXTURE .. "/br/2000", FIXTURE .. "/basic/u/p", FIXTURE .. "/digest/u/p",
  "file://" .. TMP .. "/small.txt", "file://" .. TMP .. "/body.bin", "file://" .. TMP .. "/upload.out",
  "http://localhost:" .. FPORT .. "/size/20", "127.0.0.1:" .. FPORT .. "/size/5",
}
if WS then
  for _, path in ipairs { "/echo", "/fragments/3/70000", "/ping", "/close/4001/bye", "/vanish" } do
    URLS_GOOD[#URLS_GOOD + 1] = WS .. path
  end
end
local URLS_BAD = {
  FIXTURE .. "/reset", FIXTURE .. "/resetmid/3000", "http://127.0.0.1:" .. GARBAGE .. "/",
  "http://127.0.0.1:" .. SILENT .. "/", "https://127.0.0.1:" .. FPORT .. "/size/1",
  "https://127.0.0.1:" .. GARBAGE .. "/", "http://127.0.0.1:" .. REFUSED .. "/",
  "http://" .. LONG_LABEL .. ".invalid/", "file://" .. TMP .. "/missing", "file://" .. TMP .. "/",
  "http://[::1]:" .. HTTP_PORT .. "/", "dict://127.0.0.1:" .. FPORT .. "/d:x",
  "gopher://127.0.0.1:" .. FPORT .. "/1x", "ftp://127.0.0.1:" .. FPORT .. "/x",
  "imap://127.0.0.1:" .. FPORT .. "/", "smtp://127.0.0.1:" .. FPORT .. "/", "pop3://127.0.0.1:" .. FPORT .. "/",
  "ldap://127.0.0.1:" .. FPORT .. "/", "tftp://127.0.0.1:" .. FPORT .. "/x", "sftp://127.0.0.1:" .. FPORT .. "/x",
  "scp://127.0.0.1:" .. FPORT .. "/x", "rtsp://127.0.0.1:" .. FPORT .. "/", "mqtt://127.0.0.1:" .. FPORT .. "/t",
  "smb://127.0.0.1:" .. FPORT .. "/s/f", "ws://127.0.0.1:" .. FPORT .. "/", "nope://127.0.0.1/",
  "", "http://", "http://127.0.0.1:99999/", "http://a b/", "http://" .. LONG_LABEL .. "/",
}
-- strings for options that name a host or a proxy: never one that resolves off-host
local SAFE_HOSTISH = {
  "", "127.0.0.1", "localhost", "[::1]", LONG_LABEL .. ".invalid", "http://127.0.0.1:" .. FPORT,
  "socks5://127.0.0.1:" .. GARBAGE, "socks5h://127.0.0.1:" .. SILENT, "http://127.0.0.1:" .. REFUSED,
  "https://127.0.0.1:" .. FPORT, "socks4://127.0.0.1:" .. FPORT, "http://" .. LONG_LABEL .. ".invalid:1",
}
local SAFE_FILES = {
  TMP .. "/small.txt", TMP .. "/missing", TMP .. "/", TMP .. "/cookies.txt", TMP .. "/hsts.txt",
  TMP .. "/altsvc.txt", TMP .. "/jar.txt", TMP .. "/ca-copy.crt", "fz_rel", "", TMP .. "/nodir/x",
}

------------------------------------------------------------------ log
local LOG = LOGFILE and assert(io.open(LOGFILE, "w"))
local VERBOSE_LOG = os.getenv("FUZZ_VERBOSE_LOG") ~= "0"
local opno = 0
local ncalls = 0
local depth = 0         -- module calls in progress
local cbdepth = 0       -- our callbacks in progress
-- Re-entry (see "re-entry" below): finalizers (__gc) and debug hooks that
-- call the module at arbitrary points, possibly inside a module call.
-- (one table: the main chunk is near Lua's 200-locals limit)
local RX = {
  reentry = 0,          -- finalizer / hook bodies in progress
  fin_depth = 0,        -- finalizer bodies in progress
  hold = 0,             -- > 0: the fuzzer is in a section re-entry must not disturb
  off = false,          -- set at the end: finalizers left for lua_close do nothing
  enabled = os.getenv("FUZZ_REENTRY") ~= "0",
  raw_collectgarbage = collectgarbage,
}

local function logline(s)
  if LOG then
    -- one string, one write: a finalizer or hook that logs while this
    -- line is being written cannot split it
    LOG:write(opno .. " " .. ("  "):rep(depth + cbdepth) .. s .. "\n")
    LOG:flush()
  end
end

-- collectgarbage, except inside a finalizer (where a full cycle or a mode
-- change is the interpreter's business, not the module's: Lua 5.1-5.3 do
-- not guard against it). Everything below uses this one.
local function collectgarbage(opt, ...)
  if RX.fin_depth > 0 and opt ~= "count" then return 0 end
  return RX.raw_collectgarbage(opt, ...)
end

------------------------------------------------------------------ naming
local meta = setmetatable({}, { __mode = "k" })   -- object -> tracking info
local counters = {}
local function track(obj, kind, extra)
  counters[kind] = (counters[kind] or 0) + 1
  local info = extra or {}
  info.kind = kind
  info.name = ({ easy = "E", multi = "M", share = "S", url = "U", mime = "Mi", part = "P", poller = "Po",
                 buffer = "B", loop = "L" })[kind] .. counters[kind]
  meta[obj] = info
  return info
end

local OPTNAME, INFONAME, MOPTNAME = {}, {}, {}
for k, v in pairs(curl) do
  if type(k) == "string" then
    if k:match("^CURLOPT_") and (not OPTNAME[v] or #k < #OPTNAME[v] or (#k == #OPTNAME[v] and k < OPTNAME[v])) then OPTNAME[v] = k end
    if k:match("^CURLINFO_") and (not INFONAME[v] or k < INFONAME[v]) then INFONAME[v] = k end
    if k:match("^CURLMOPT_") then MOPTNAME[v] = k end
  end
end

local function esc(s)
  return (s:gsub("[%c\"\\\128-\255]", function(c) return ("\\%d"):format(c:byte()) end))
end

local function D(v)
  local t = type(v)
  if t == "string" then
    if #v > 60 then return ('"%s".."..(%d)'):format(esc(v:sub(1, 30)), #v) end
    return '"' .. esc(v) .. '"'
  elseif t == "number" then
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" end
    if v == -math.huge then return "-inf" end
    if mathtype(v) == "integer" then return tostring(v) end
    return ("%.17g"):format(v)
  elseif t == "nil" or t == "boolean" then
    return tostring(v)
  end
  local info = meta[v]
  if info then return info.name end
  if t == "table" then
    if v == curl then return "curl" end
    if getmetatable(v) == curl.Error then return "curl.Error{...}" end
    local n, parts = 0, {}
    for i = 1, 3 do
      if v[i] ~= nil then n = n + 1; parts[n] = D(v[i]) end
    end
    if #v > 3 then parts[#parts + 1] = "..." .. #v end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return t
end

local function DA(a, from)
  local out = {}
  for i = from or 1, a.n do out[#out + 1] = D(a[i]) end
  return table.concat(out, ", ")
end

------------------------------------------------------------------ outcomes
local function flushlog() if LOG then LOG:flush() end end

local function die(code, label, msg)
  flushlog()
  io.stderr:write(("FUZZ %s: %s\n  seed=%s op=%d interpreter=%s\n"):format(label, msg, tostring(SEED), opno,
    type(jit) == "table" and jit.version or _VERSION))
  io.stderr:flush()
  os.exit(code)
end
local function violation(msg) die(2, "VIOLATION", msg) end
local function fuzzbug(msg) die(3, "BUG", msg) end

------------------------------------------------------------------ callbacks' raises
local raised = {}       -- values our callbacks raised, in order ({ v = value })
local nraised = 0
local ever = setmetatable({}, { __mode = "k" })  -- tables ever raised
local ever_str = {}                               -- strings ever raised
local ever_nil, ever_false = false, false
local raisecount = 0

local function record_raise(v)
  nraised = nraised + 1
  raised[nraised] = { v = v }
  if type(v) == "table" then ever[v] = true
  elseif type(v) == "string" then ever_str[v] = true
  elseif v == nil then ever_nil = true
  elseif v == false then ever_false = true end
end

-- The value to raise: a unique string, a unique table, nil or false.
local function raise_value()
  raisecount = raisecount + 1
  local k = CB.int(1, 6)
  if k <= 2 then return "fuzz-raise-" .. raisecount end
  if k <= 4 then return { fuzz_raise = raisecount } end
  if k == 5 then return nil end
  return false
end

local INTENT = {}   -- marker: the error in flight was raised on purpose
local function raise(v)
  record_raise(v)
  INTENT.v, INTENT.set = v, true
  error(v, 0)
end

local function ever_raised(err)
  if type(err) == "table" then return ever[err] == true end
  if type(err) == "string" then return ever_str[err] == true end
  if err == nil then return ever_nil end
  if err == false then return ever_false end
  return false
end

local function good_error(err, start, lenient)
  if getmetatable(err) == curl.Error then
    if type(err.kind) == "string" and type(err.name) == "string" and type(err.message) == "string"
       and type(err.method) == "string" then
      return true
    end
    return false, "a curl.Error with a missing field: kind=" .. D(err.kind) .. " name=" .. D(err.name) ..
      " message=" .. D(err.message) .. " method=" .. D(err.method)
  end
  for i = start + 1, nraised do
    if rawequal(raised[i].v, err) then return true end
  end
  if lenient and ever_raised(err) then return true end
  -- a library the call drives (cqueues' step, which yields to emulate C
  -- continuations on 5.1 and LuaJIT) yielding inside a finalizer or hook
  -- body: the interpreter's business, as the bodies' own yields are
  if RX.reentry > 0 and type(err) == "string" and err:find("attempt to yield across", 1, true) then
    return true
  end
  local full = type(err) == "string" and ('"' .. esc(err:sub(1, 600)) .. '"') or (D(err) .. " (" .. tostring(err) .. ")")
  return false, "not a curl.Error and not raised by a callback of this call: " .. full
end

------------------------------------------------------------------ calls
local CLOCK = curl.Poller()
local function now() return CLOCK:Now() end

local closing_multi = 0     -- > 0 while a multi:Close runs
local performing = setmetatable({}, { __mode = "k" })  -- easies inside easy:Perform

-- call(desc, f, ...) -> packed results (r[1] = ok). Logs, runs f protected
-- and checks the error, if any.
local function call_opts(lenient, desc, f, ...)
  ncalls = ncalls + 1
  if VERBOSE_LOG or depth == 0 then logline(desc) end
  local start = nraised
  depth = depth + 1
  local r = pack(pcall(f, ...))
  depth = depth - 1
  if not r[1] then
    local ok, why = good_error(r[2], start, lenient)
    if not ok then violation(desc .. " raised " .. why) end
  end
  return r
end
local function call(desc, f, ...) return call_opts(false, desc, f, ...) end

------------------------------------------------------------------ pools
local P = {
  easy = {}, multi = {}, share = {}, url = {}, mime = {}, part = {}, poller = {}, buffer = {}, loop = {},
}
local CAP = { easy = 40, multi = 6, share = 4, url = 10, mime = 10, part = 30, poller = 4, buffer = 6, loop = 4 }
local closed = {}   -- closed handles, for garbage arguments
local KINDS = { "easy", "multi", "share", "url", "mime", "part", "poller", "buffer", "loop" }

local function add(kind, obj)
  local pool = P[kind]
  if #pool >= CAP[kind] then table.remove(pool, R.int(1, #pool)) end
  pool[#pool + 1] = obj
  return obj
end
local function any_of(kind, rng)
  local pool = P[kind]
  if #pool == 0 then return nil end
  return pool[(rng or R).int(1, #pool)]
end
local function drop(obj)
  local info = meta[obj]
  if not info then return end
  local pool = P[info.kind]
  for i = #pool, 1, -1 do
    if rawequal(pool[i], obj) then table.remove(pool, i) end
  end
end
local function remember_closed(obj)
  if #closed >= 20 then table.remove(closed, 1) end
  closed[#closed + 1] = obj
end

------------------------------------------------------------------ values
local dead_co = coroutine.create(function() end)
coroutine.resume(dead_co)
local fake_error = setmetatable({ kind = 7, name = {}, message = nil }, curl.Error)

local function any_object(rng)
  rng = rng or R
  local kind = rng.pick(KINDS)
  local o = any_of(kind, rng)
  if o == nil and #closed > 0 then o = rng.pick(closed) end
  return o
end

local function random_bytes(rng, n)
  local t = {}
  for i = 1, n do t[i] = string.char(rng.int(0, 255)) end
  return table.concat(t)
end
local function word(rng)
  local t = {}
  for i = 1, rng.int(1, 12) do t[i] = string.char(rng.pick { rng.int(97, 122), rng.int(65, 90), rng.int(48, 57) }) end
  return table.concat(t)
end

-- Any Lua value, edge values first.
local function any_value(rng)
  rng = rng or R
  local k = rng.int(1, 40)
  if k == 1 then return nil
  elseif k == 2 then return true
  elseif k == 3 then return false
  elseif k == 4 then return 0
  elseif k == 5 then return -1
  elseif k == 6 then return 1
  elseif k == 7 then return 2147483648
  elseif k == 8 then return 4294967296
  elseif k == 9 then return 9007199254740993
  elseif k == 10 then return 0x7fffffffffffffff
  elseif k == 11 then return -0x7fffffffffffffff - 1
  elseif k == 12 then return math.huge
  elseif k == 13 then return -math.huge
  elseif k == 14 then return 0 / 0
  elseif k == 15 then return 0.5
  elseif k == 16 then return -2.5
  elseif k == 17 then return 1e300
  elseif k == 18 then return ""
  elseif k == 19 then return word(rng)
  elseif k == 20 then return MEDIUM
  elseif k == 21 then return "a\0b"
  elseif k == 22 then return random_bytes(rng, rng.int(1, 40))
  elseif k == 23 then return {}
  elseif k == 24 then return { 1, 2, 3 }
  elseif k == 25 then return { "a", {} }
  elseif k == 26 then return function() end
  elseif k == 27 then return coroutine.create(function() end)
  elseif k == 28 then return dead_co
  elseif k <= 33 then return any_object(rng)
  elseif k == 34 then return #closed > 0 and rng.pick(closed) or nil
  elseif k == 35 then return curl
  elseif k == 36 then return fake_error
  elseif k == 37 then return 2 ^ 63
  elseif k == 38 then return -2147483649
  elseif k == 39 then return BIG
  else return io.stdout end
end

------------------------------------------------------------------ callbacks
local YIELD_TOKEN = {}
local callback_kinds = {}   -- function -> kind (for the log)

-- Checks made whenever one of our callbacks starts.
local function callback_enter(what)
  if depth == 0 then violation("callback '" .. what .. "' ran outside any binding call\n" .. debug.traceback()) end
  if closing_multi > 0 and closing_multi == depth then
    violation("callback '" .. what .. "' ran during multi:Close\n" .. debug.traceback())
  end
end

-- Wraps a callback body: an error that was not raised on purpose is a bug
-- of this fuzzer; a deliberate one goes on unchanged.
local function wrapcb(what, body)
  local f = function(...)
    callback_enter(what)
    cbdepth = cbdepth + 1
    if VERBOSE_LOG then logline("cb " .. what) end
    INTENT.set = false
    local args = pack(...)   -- (Lua 5.1's xpcall passes no arguments)
    local r = pack(xpcall(function() return body(unpack(args, 1, args.n)) end, function(e)
      if INTENT.set and rawequal(INTENT.v, e) then return e end
      return { fuzzbug = tostring(e) .. "\n" .. debug.traceback() }
    end))
    cbdepth = cbdepth - 1
    if r[1] then return unpack(r, 2, r.n) end
    local e = r[2]
    if type(e) == "table" and e.fuzzbug and not ever[e] then fuzzbug("in callback " .. what .. ": " .. e.fuzzbug) end
    error(e, 0)
  end
  callback_kinds[f] = what
  return f
end

local ops   -- forward: the operation table (callbacks may run a random one)
local run_op
local invoke

-- A callback's temperament: how often it misbehaves.
local function temperament()
  local t = R.int(1, 10)
  if t <= 6 then return 0.01 elseif t <= 9 then return 0.06 else return 0.3 end
end

local odd_returns = {
  function() return -1 end, function() return 0 end, function() return false end, function() return true end,
  function() return "odd" end, function() return {} end, function() return 0 / 0 end,
  function() return 2 ^ 53 end, function() return 0x7fffffffffffffff end, function() return function() end end,
  function() return nil, "extra" end, function() return curl.CURL_WRITEFUNC_PAUSE end,
  function() return curl.CURL_READFUNC_ABORT end, function() return 4294967297 end,
  function() return 1.5 end, function() return any_object(CB) end,
}

-- Something a callback does besides its job: call the API back, collect
-- garbage, drop references, yield. `ctx` = { easy =, multi = } (either may be nil).
local function mischief(ctx)
  local k = CB.int(1, 16)
  if k == 4 and RX.reentry > 0 then k = 2 end -- yielding out of a finalizer / hook: the interpreter's business
  local e, m = ctx.easy, ctx.multi
  if k == 1 then
    collectgarbage("collect")
  elseif k == 2 then
    collectgarbage("step", 10)
  elseif k == 3 then
    -- drop the last references we hold
    if e then drop(e) end
    local o = any_object(CB)
    if o then drop(o) end
    collectgarbage("collect")
  elseif k == 4 then
    -- yield: must fail (an ordinary callback error) or be a finding
    local ok, err = pcall(coroutine.yield, YIELD_TOKEN)
    if ok then violation("coroutine.yield inside a callback returned") end
    raise(err)
  elseif k <= 9 and e then
    local what = CB.int(1, 12)
    if what == 1 then invoke("easy", e, "Pause", CB.pick { 0, 1, 4, 5, curl.CURLPAUSE_CONT })
    elseif what == 2 then
      if performing[e] then return end -- would drop the timeout of a blocking Perform
      invoke("easy", e, "Reset")
    elseif what == 3 then invoke("easy", e, "DupHandle")
    elseif what == 4 then invoke("easy", e, "Close")
    elseif what == 5 then invoke("easy", e, "GetInfo", CB.pick { curl.CURLINFO_RESPONSE_CODE, curl.CURLINFO_PRIVATE, curl.CURLINFO_EFFECTIVE_URL, curl.CURLINFO_SIZE_DOWNLOAD_T })
    elseif what == 6 then
      -- (`e` may be any easy, from a hook or finalizer: maybe one Reset
      -- with no time limit)
      if not performing[e] then invoke("easy", e, "SetOpt", curl.CURLOPT_TIMEOUT_MS, CB.int(100, 700)) end
      invoke("easy", e, "Perform")
    elseif what == 7 then invoke("easy", e, "SetOpt", curl.CURLOPT_URL, CB.pick(URLS_GOOD))
    elseif what == 8 then invoke("easy", e, "SetOpt", curl.CURLOPT_WRITEFUNCTION, nil)
    elseif what == 9 then invoke("easy", e, "Upkeep")
    elseif what == 10 and m then invoke("multi", m, "RemoveHandle", e)
    elseif what == 11 and m then invoke("multi", m, "AddHandle", e)
    else invoke("easy", e, "Escape", "a b")
    end
  elseif k <= 13 and m then
    local what = CB.int(1, 11)
    if what == 1 then invoke("multi", m, "SocketAction", curl.CURL_SOCKET_TIMEOUT, 0)
    elseif what == 2 then invoke("multi", m, "InfoRead")
    elseif what == 3 then invoke("multi", m, "Close")
    elseif what == 4 then invoke("multi", m, "GetHandles")
    elseif what == 5 then invoke("multi", m, "Wakeup")
    elseif what == 6 then invoke("multi", m, "Timeout")
    elseif what == 7 then invoke("multi", m, "Perform")
    elseif what == 8 then invoke("multi", m, "Assign", CB.int(0, 40), CB.pick { "x", {}, false })
    elseif what == 9 then
      local o = any_of("easy", CB)
      if o then invoke("multi", m, "AddHandle", o) end
    elseif what == 10 then invoke("multi", m, "SetOpt", curl.CURLMOPT_MAXCONNECTS, CB.int(0, 10))
    else invoke("multi", m, "Wait", 0)
    end
  else
    -- a whole random operation, nested (bounded), drawn from the callbacks' PRNG
    if cbdepth <= 2 and depth <= 6 then
      local saved = R
      R = CB
      run_op(true)
      R = saved
    end
  end
end

-- Decides how a callback behaves this time: nil = do its job, else a
-- function giving its return values.
local function misbehave(rate, ctx)
  if cbdepth > 3 or not CB.chance(rate) then return nil end
  local k = CB.int(1, 10)
  if k <= 3 then
    raise(raise_value())
  elseif k <= 6 then
    return CB.pick(odd_returns)
  else
    mischief(ctx)
    if CB.chance(0.3) then return CB.pick(odd_returns) end
    return nil
  end
end

local function owner_ctx(e)
  local info = e and meta[e]
  return { easy = e, multi = info and info.multi }
end

-- A Lua callback for easy option `name` of easy `e` (e may be nil).
local function easy_callback(name, e)
  local rate = temperament()
  local ctx = owner_ctx(e)
  ctx.multi = nil
  local state = { sent = 0, entries = 0 }
  local function refresh() local info = ctx.easy and meta[ctx.easy]; ctx.multi = info and info.multi end
  local short = name:gsub("^CURLOPT_", "")
  local body
  if name == "CURLOPT_WRITEFUNCTION" or name == "CURLOPT_HEADERFUNCTION" or name == "CURLOPT_INTERLEAVEFUNCTION" then
    body = function(data, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
      if type(data) ~= "string" then violation(short .. " got a " .. type(data)) end
      if CB.chance(0.5) then return true end
      if CB.chance(0.5) then return #data end
      return nil
    end
  elseif name == "CURLOPT_READFUNCTION" then
    body = function(max, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
      if state.sent > 200000 then return "" end
      local n = CB.int(0, math.min(max or 0, 20000))
      if CB.chance(0.2) then return nil end
      state.sent = state.sent + n
      return ("r"):rep(n)
    end
  elseif name == "CURLOPT_XFERINFOFUNCTION" or name == "CURLOPT_PROGRESSFUNCTION" then
    body = function(a, b, c, d, ud)
      refresh()
      local odd = misbehave(rate / 3, ctx)
      if odd then return odd() end
      return CB.pick { nil, 0, false, curl.CURL_PROGRESSFUNC_CONTINUE }
    end
  elseif name == "CURLOPT_DEBUGFUNCTION" then
    body = function(t, data, ud)
      refresh()
      local odd = misbehave(rate / 3, ctx)
      if odd then return odd() end
    end
  elseif name == "CURLOPT_SEEKFUNCTION" then
    body = function(off, origin, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
      state.sent = 0
      return CB.pick { nil, true, curl.CURL_SEEKFUNC_OK, curl.CURL_SEEKFUNC_CANTSEEK }
    end
  elseif name == "CURLOPT_SOCKOPTFUNCTION" then
    body = function(fd, purpose, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
    end
  elseif name == "CURLOPT_OPENSOCKETFUNCTION" then
    body = function(purpose, address, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return CB.pick { false, 999999, -1, "x", 4294967298, {} } end
      if type(address) ~= "table" then violation("OPENSOCKETFUNCTION address is a " .. type(address)) end
    end
  elseif name == "CURLOPT_CLOSESOCKETFUNCTION" then
    body = function(fd, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return CB.pick { nil, "x", 7, {}, true } end
    end
  elseif name == "CURLOPT_TRAILERFUNCTION" then
    body = function(ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then
        local v = CB.pick { false, { 1, 2 }, "x", { {} }, { "No-colon" }, { "\0: x" } }
        if AVOID.trailer_reuse and (v == "x" or (type(v) == "table" and v[1] == "No-colon")) then v = false end
        return v
      end
      if AVOID.trailer_reuse then return CB.pick { nil, {} } end
      return CB.pick { nil, { "X-Trailer: 1" }, {} }
    end
  elseif name == "CURLOPT_HSTSREADFUNCTION" then
    state.entries = 0
    body = function(ud)
      refresh()
      state.entries = state.entries + 1
      if state.entries > 12 then state.entries = 0; return nil end
      local odd = misbehave(rate, ctx)
      if odd then
        return CB.pick { { host = 123 }, {}, "x", 1, true, { host = MEDIUM, expire = "x" },
          { host = "localhost", expire = "garbage", include_subdomains = "yes" }, { host = "a\0b" } }
      end
      if CB.chance(0.5) then state.entries = 0; return nil end
      return { host = CB.pick { "localhost", "127.0.0.1", "example.test" }, include_subdomains = CB.chance(0.5),
               expire = CB.pick { "20991231 00:00:00", "20000101 00:00:00", nil } }
    end
  elseif name == "CURLOPT_HSTSWRITEFUNCTION" then
    body = function(entry, index, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
    end
  elseif name == "CURLOPT_PREREQFUNCTION" then
    body = function(pip, lip, pport, lport, ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
      return CB.pick { nil, true, curl.CURL_PREREQFUNC_OK }
    end
  elseif name == "CURLOPT_RESOLVER_START_FUNCTION" then
    body = function(ud)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
      return CB.pick { nil, false, 0 }
    end
  else
    -- chunk/fnmatch/ssh key functions: not reached with these servers
    body = function(...)
      refresh()
      local odd = misbehave(rate, ctx)
      if odd then return odd() end
    end
  end
  return wrapcb(short, body)
end

------------------------------------------------------------------ easy options
local EASY_OPTS = {}       -- sorted ids of every option libcurl reports
for id, kind in pairs(curl.options.easy_types) do EASY_OPTS[#EASY_OPTS + 1] = id end
table.sort(EASY_OPTS)
local OPT_ALIASES = {}     -- id -> SetOpt_X spellings
for norm, id in pairs(curl.options.easy) do
  OPT_ALIASES[id] = OPT_ALIASES[id] or {}
  table.insert(OPT_ALIASES[id], norm)
end
for _, t in pairs(OPT_ALIASES) do table.sort(t) end
local INFOS = {}
for k, v in pairs(curl) do
  if type(k) == "string" and k:match("^CURLINFO_") and INFONAME[v] == k and v > 0x100000 then INFOS[#INFOS + 1] = v end
end
table.sort(INFOS)
local INFO_ALIASES = {}
for norm, id in pairs(curl.options.info) do INFO_ALIASES[#INFO_ALIASES + 1] = norm end
table.sort(INFO_ALIASES)
local MOPTS = {}
for k, v in pairs(curl) do
  if type(k) == "string" and k:match("^CURLMOPT_") and k ~= "CURLMOPT_LASTENTRY" then MOPTS[#MOPTS + 1] = v end
end
table.sort(MOPTS)
local MOPT_ALIASES = {}     -- id -> SetOpt_X spellings
for norm, id in pairs(curl.options.multi) do
  MOPT_ALIASES[id] = MOPT_ALIASES[id] or {}
  table.insert(MOPT_ALIASES[id], norm)
end
for _, t in pairs(MOPT_ALIASES) do table.sort(t) end

local C = curl
local TIMEOUT_OPTS = { CURLOPT_TIMEOUT = true, CURLOPT_TIMEOUT_MS = true, CURLOPT_CONNECTTIMEOUT = true,
  CURLOPT_CONNECTTIMEOUT_MS = true, CURLOPT_SERVER_RESPONSE_TIMEOUT = true, CURLOPT_FTP_RESPONSE_TIMEOUT = true }
local SENSITIVE = {   -- string options that name hosts or proxies
  CURLOPT_URL = "url", CURLOPT_PROXY = "host", CURLOPT_PRE_PROXY = "host", CURLOPT_DOH_URL = "doh",
  CURLOPT_INTERFACE = "iface", CURLOPT_FTPPORT = "iface", CURLOPT_DNS_SERVERS = "host",
  CURLOPT_DNS_INTERFACE = "iface", CURLOPT_DNS_LOCAL_IP4 = "host", CURLOPT_DNS_LOCAL_IP6 = "host",
  CURLOPT_NOPROXY = "host", CURLOPT_SOCKS5_GSSAPI_SERVICE = "svc", CURLOPT_PROXY_SERVICE_NAME = "svc",
  CURLOPT_SERVICE_NAME = "svc", CURLOPT_SSLENGINE = "engine", CURLOPT_UNIX_SOCKET_PATH = "file",
  CURLOPT_ABSTRACT_UNIX_SOCKET = "file", CURLOPT_DEFAULT_PROTOCOL = "proto",
}

local function safe_string(optname, rng)
  local kind = SENSITIVE[optname]
  if not kind then
    if optname:match("FILE") or optname:match("PATH") or optname:match("CAINFO") or optname:match("CAPATH")
       or optname:match("KNOWNHOSTS") or optname:match("JAR") or optname:match("HSTS$") or optname:match("ALTSVC$")
       or optname:match("SSLCERT$") or optname:match("SSLKEY$") or optname:match("CRL") or optname:match("ISSUER")
       or optname:match("EGD") or optname:match("PINNED") then
      kind = "file"
    end
  end
  if kind == "url" then
    return rng.chance(0.8) and rng.pick(URLS_GOOD) or rng.pick(URLS_BAD)
  elseif kind == "host" then return rng.pick(SAFE_HOSTISH)
  elseif kind == "doh" then return rng.pick { NGINX_HTTPS .. "/1k", FIXTURE .. "/echo", "http://127.0.0.1:" .. GARBAGE, "" }
  elseif kind == "iface" then return rng.pick { "lo", "127.0.0.1", "if!lo", "host!127.0.0.1", "fz-none0", "-", "" }
  elseif kind == "svc" then return rng.pick { "HTTP", "fz", "" }
  elseif kind == "engine" then return rng.pick { "fz-none", "" }
  elseif kind == "proto" then return rng.pick { "http", "https", "file", "nope", "" }
  elseif kind == "file" then return rng.pick(SAFE_FILES)
  end
  return nil
end

local function header_list(rng)
  return rng.pick {
    { "X-Fuzz: 1" }, { "Accept:", "X-A: b", "Expect:" }, {}, { "Host: localhost" },
    { "Transfer-Encoding: chunked" }, { "Content-Length: 5" }, { "Connection: close" }, { ("X-Long: " .. ("v"):rep(9000)) },
  }
end

local function plausible_long(name, rng)
  local s = name
  if TIMEOUT_OPTS[s] then
    if s:match("_MS$") then return rng.int(50, 1500) end
    return rng.int(1, 2)
  end
  if s == "CURLOPT_HTTP_VERSION" then return rng.pick { 0, 1, 2, 3, 4, 5, 30, 31, 99 } end
  if s == "CURLOPT_SSL_VERIFYPEER" or s == "CURLOPT_SSL_VERIFYHOST" or s == "CURLOPT_PROXY_SSL_VERIFYPEER" then return rng.pick { 0, 1, 2, true, false } end
  if s == "CURLOPT_CONNECT_ONLY" then return rng.pick { 0, 1, 2 } end
  if s == "CURLOPT_PORT" or s == "CURLOPT_PROXYPORT" then return rng.pick { 0, tonumber(FPORT), tonumber(HTTP_PORT), 1, 65535, 65536 } end
  if s == "CURLOPT_BUFFERSIZE" or s == "CURLOPT_UPLOAD_BUFFERSIZE" then return rng.pick { 0, 1024, 16384, 100000, 524288 } end
  if s == "CURLOPT_MAXREDIRS" then return rng.pick { -1, 0, 1, 5 } end
  if s == "CURLOPT_HSTS_CTRL" then return rng.pick { 0, 1, 3 } end
  if s == "CURLOPT_ALTSVC_CTRL" then return rng.pick { 0, 8, 16, 24, 32 } end
  if s == "CURLOPT_HTTPAUTH" or s == "CURLOPT_PROXYAUTH" then return rng.pick { 0, 1, 2, 8, -17, -1 } end
  if s == "CURLOPT_IPRESOLVE" then return rng.pick { 0, 1, 2 } end
  if s == "CURLOPT_SSLVERSION" then return rng.pick { 0, 1, 6, 7, 0x70000, 0x60000 } end
  if s == "CURLOPT_MAX_RECV_SPEED_LARGE" or s == "CURLOPT_MAX_SEND_SPEED_LARGE" then return rng.pick { 0, 100000, 1000000 } end
  if s == "CURLOPT_LOW_SPEED_TIME" or s == "CURLOPT_LOW_SPEED_LIMIT" then return rng.pick { 0, 1 } end
  if s == "CURLOPT_LOCALPORT" then return rng.pick { 0, 40000 } end
  if s == "CURLOPT_LOCALPORTRANGE" then return rng.pick { 0, 1, 100 } end
  if s == "CURLOPT_RESUME_FROM" or s == "CURLOPT_RESUME_FROM_LARGE" then return rng.pick { 0, 5, 100000 } end
  if s == "CURLOPT_INFILESIZE" or s == "CURLOPT_INFILESIZE_LARGE" or s == "CURLOPT_POSTFIELDSIZE"
     or s == "CURLOPT_POSTFIELDSIZE_LARGE" then return rng.pick { -1, 0, 3, 100, 5000 } end
  if s == "CURLOPT_MAXFILESIZE" or s == "CURLOPT_MAXFILESIZE_LARGE" then return rng.pick { 0, 10, 100000 } end
  if s == "CURLOPT_PROXYTYPE" then return rng.pick { 0, 1, 2, 4, 5, 6, 7 } end
  if s == "CURLOPT_UPLOAD" or s == "CURLOPT_POST" or s == "CURLOPT_NOBODY" or s == "CURLOPT_HTTPGET" then return rng.pick { 0, 1 } end
  if s == "CURLOPT_PROTOCOLS" or s == "CURLOPT_REDIR_PROTOCOLS" then return rng.pick { 0, 1, 2, 3, -1, 0x7fffffff } end
  if s == "CURLOPT_MAXAGE_CONN" or s == "CURLOPT_MAXLIFETIME_CONN" then return rng.pick { 0, 1, 100 } end
  if s == "CURLOPT_EXPECT_100_TIMEOUT_MS" then return rng.pick { 0, 10, 1000 } end
  if s == "CURLOPT_STREAM_WEIGHT" then return rng.pick { 1, 16, 256, 0, 300 } end
  if s == "CURLOPT_TIMECONDITION" then return rng.pick { 0, 1, 2, 3 } end
  if s == "CURLOPT_TIMEVALUE" or s == "CURLOPT_TIMEVALUE_LARGE" then return rng.pick { 0, 1700000000 } end
  if s == "CURLOPT_RTSP_REQUEST" then return rng.int(0, 12) end
  return rng.pick { 0, 1, 1, 2, true, false, 10, 100 }
end

local function object_value(name, e, rng)
  if name == "CURLOPT_SHARE" then return any_of("share", rng) end
  if name == "CURLOPT_CURLU" then return any_of("url", rng) end
  if name == "CURLOPT_MIMEPOST" then return any_of("mime", rng) end
  if name == "CURLOPT_STREAM_DEPENDS" or name == "CURLOPT_STREAM_DEPENDS_E" then return any_of("easy", rng) end
  if name == "CURLOPT_POSTFIELDS" or name == "CURLOPT_COPYPOSTFIELDS" then
    return rng.pick { "a=1&b=2", "", "bin\0ary", MEDIUM, "x" }
  end
  if name == "CURLOPT_PRIVATE" then return any_value(rng) end
  return any_value(rng)
end

local WRITEFILE
local function cbptr_value(name, rng)
  local k = rng.int(1, 8)
  if k == 1 then return curl.Buffer() end
  if k == 2 then return any_of("buffer", rng) end
  if k == 3 then
    local t = { n = 0 }
    function t:write(d) self.n = self.n + #tostring(d); if CB.chance(0.05) then raise(raise_value()) end; return CB.chance(0.9) end
    function t:read(n) if CB.chance(0.05) then raise(raise_value()) end; return CB.chance(0.7) and "data" or nil end
    return t
  end
  if k == 4 then
    WRITEFILE = WRITEFILE or io.open(TMP .. "/writedata.out", "wb")
    if WRITEFILE:seek("cur") > 10000000 then WRITEFILE:seek("set", 0) end
    return WRITEFILE
  end
  return any_value(rng)
end

-- A value for option `id` of easy `e`: plausible most of the time.
local function option_value(id, e, garbage, rng)
  rng = rng or R
  local name = OPTNAME[id] or "?"
  local kind = curl.options.easy_types[id]
  local v
  if garbage then
    v = any_value(rng)
    if type(v) == "string" then
      local s = safe_string(name, rng)
      if s then v = s end
    end
    -- never let a garbage value remove the time limit of a transfer
    if TIMEOUT_OPTS[name] and (type(v) == "number" or type(v) == "boolean") then v = plausible_long(name, rng) end
    return v
  end
  if kind == "long" or kind == "values" or kind == "off_t" then
    v = plausible_long(name, rng)
  elseif kind == "string" then
    v = safe_string(name, rng)
    if v == nil then
      v = rng.pick { word(rng), "", nil, "Fuzz/1.0", "a=b", "GET", "0-10", "user:pw" }
      if name == "CURLOPT_CUSTOMREQUEST" then v = rng.pick { "GET", "POST", "PUT", "HEAD", "DELETE", "FUZZ" } end
      if name == "CURLOPT_ACCEPT_ENCODING" then v = rng.pick { "", "gzip", "br", "identity", nil } end
      if name == "CURLOPT_CAINFO" or name == "CURLOPT_PROXY_CAINFO" then v = rng.pick { NGINX_CA, NGINX_CA, TMP .. "/missing", nil } end
    end
  elseif kind == "slist" then
    if name == "CURLOPT_RESOLVE" then
      v = rng.pick { { "fuzz.test:" .. FPORT .. ":127.0.0.1" }, { "-fuzz.test:80" }, { "+x.test:443:127.0.0.1" }, {}, { "garbage" } }
    elseif name == "CURLOPT_CONNECT_TO" then
      v = rng.pick { { "::127.0.0.1:" .. FPORT }, { "localhost:" .. HTTPS_PORT .. ":127.0.0.1:" .. HTTPS_PORT }, {}, { "bad" } }
    else
      v = header_list(rng)
    end
  elseif kind == "blob" then
    v = rng.pick { CA_PEM, random_bytes(rng, 64), "", nil }
  elseif kind == "function" then
    v = rng.chance(0.9) and easy_callback(name, e) or nil
  elseif kind == "cbptr" then
    v = cbptr_value(name, rng)
  elseif kind == "object" then
    v = object_value(name, e, rng)
  else
    v = any_value(rng)
  end
  return v
end

------------------------------------------------------------------ avoidance
local function file_exists(p)
  if type(p) ~= "string" then return false end
  local f = io.open(p, "rb")
  if f then f:close(); return true end
  return false
end

-- is `m` (a mime) the mime of `part` or of one of its ancestors?
local function mime_ancestor(m, part)
  local p, guard = part, 0
  while p and guard < 50 do
    guard = guard + 1
    local pi = meta[p]
    if not pi then return false end
    local mm = pi.mime
    if rawequal(mm, m) then return true end
    local mi = mm and meta[mm]
    p = mi and mi.parent
  end
  return false
end

local function easy_setopt_blocked(info, name, v)
  if name == "CURLOPT_CONNECT_ONLY" and AVOID.connect_only_multi and info.multi_ever and v ~= 0 and v ~= false then
    return "connect_only_multi"
  end
  if name == "CURLOPT_FORBID_REUSE" and AVOID.closesocket_reuse and info.closesock_ever and (v == 0 or v == false) then
    return "closesocket_reuse"
  end
  if (name == "CURLOPT_STREAM_DEPENDS" or name == "CURLOPT_STREAM_DEPENDS_E") and AVOID.stream_depends_dup then
    -- allowed; DupHandle/Reset of either easy are then avoided
    return nil
  end
  if name == "CURLOPT_CURLU" and AVOID.curlu_empty_path and meta[v] and meta[v].path_empty then
    return "curlu_empty_path"
  end
  if name == "CURLOPT_TRAILERFUNCTION" and AVOID.trailer_reuse and v ~= nil then
    return "trailer_reuse"
  end
  if name == "CURLOPT_CUSTOMREQUEST" and AVOID.connect_only_head and type(v) == "string" and v:upper() == "HEAD" then
    return "connect_only_head"
  end
  if (name == "CURLOPT_POSTFIELDS" or name == "CURLOPT_COPYPOSTFIELDS" or name == "CURLOPT_POSTFIELDSIZE"
      or name == "CURLOPT_POSTFIELDSIZE_LARGE") and AVOID.body_midtransfer and info.multi then
    return "body_midtransfer"
  end
  if name == "CURLOPT_HTTP_VERSION" and AVOID.h2_socketaction and info.multi then
    return "h2_socketaction"
  end
  if name == "CURLOPT_SHARE" and AVOID.share_hsts_ctrl and meta[v] and meta[v].hsts then
    return "share_hsts_ctrl"
  end
  if name == "CURLOPT_SHARE" and AVOID.ssl_share_leak and meta[v] and meta[v].ssl and (info.ran or info.multi_ever) then
    return "ssl_share_leak"
  end
  if name == "CURLOPT_HSTS_CTRL" and AVOID.hsts_ctrl_file and info.hsts_file
     and not (type(v) == "number" and v == v and v >= 0 and v < 2 ^ 31 and v % 2 == 1) then
    return "hsts_ctrl_file"
  end
  return nil
end

local function resolve_opt(cls, mname, a)
  -- SetOpt(id, v) or SetOpt_X(v) -> id, value
  if mname == "SetOpt" then return a[1], a[2] end
  local x = mname:match("^SetOpt_(.+)$")
  if x then
    local map = cls == "easy" and curl.options.easy or cls == "multi" and curl.options.multi or curl.options.share
    return map[(x:gsub("_", "")):lower()], a[1]
  end
end

-- A known trigger this call would pull (and that we avoid), or nil.
local function blocked(cls, obj, mname, a)
  local info = meta[obj]
  if not info or info.kind ~= cls then return nil end
  if cls == "easy" then
    if (mname == "Escape" or mname == "Unescape") and a[1] == "" and AVOID.escape_empty then return "escape_empty" end
    if mname == "SetOpt" or mname:match("^SetOpt_") then
      local id, v = resolve_opt(cls, mname, a)
      local name = OPTNAME[id]
      if name then return easy_setopt_blocked(info, name, v) end
    end
    if mname == "DupHandle" or mname == "Reset" then
      if AVOID.stream_depends_dup and (info.depends or info.depended) then return "stream_depends_dup" end
    end
    if mname == "DupHandle" and AVOID.hsts_dup and info.hsts_file then return "hsts_dup" end
    if mname == "Reset" and AVOID.cookiefile_reset and info.cookie_file then return "cookiefile_reset" end
    if mname == "Reset" and performing[obj] and (cbdepth > 0 or RX.reentry > 0) then return "hang-guard" end
    if mname == "Perform" and AVOID.connect_only_leak and info.connect_only and info.ran then return "connect_only_leak" end
    if (mname == "Recv" or mname == "Send" or mname == "Upkeep") and AVOID.connect_only_h2 and info.connect_only then
      local ok, scheme = pcall(obj.GetInfo, obj, curl.CURLINFO_SCHEME)
      if not ok or type(scheme) ~= "string" or scheme:lower() ~= "http" then return "connect_only_h2" end
    end
  elseif cls == "multi" then
    if AVOID.loop_multi_closed and info.loop and meta[info.loop] and meta[info.loop].backend ~= "poller"
       and not info.loop.closed then
      if mname == "Close" then return "loop_multi_closed" end
      local id = resolve_opt(cls, mname, a)
      if id == curl.CURLMOPT_SOCKETFUNCTION or id == curl.CURLMOPT_TIMERFUNCTION then return "loop_multi_closed" end
    end
    if mname == "AddHandle" then
      local ei = meta[a[1]]
      if ei and ei.kind == "easy" and AVOID.connect_only_multi and ei.connect_only then return "connect_only_multi" end
    end
  elseif cls == "part" then
    if mname == "FileData" and AVOID.filedata_subparts and info.sub and not file_exists(a[1]) then
      return "filedata_subparts"
    end
    if mname == "SubParts" and AVOID.subparts_root and meta[a[1]] and mime_ancestor(a[1], obj) then
      return "subparts_root"
    end
  elseif cls == "url" then
    if mname == "Set" and a[1] == curl.CURLUPART_PATH and AVOID.curlu_empty_path and info.attached then
      return "curlu_empty_path"
    end
  elseif cls == "share" then
    if AVOID.share_hsts_ctrl and (mname == "SetOpt" or mname == "SetOpt_Share" or mname == "SetOpt_share") then
      local v = mname == "SetOpt" and a[2] or a[1]
      if v == curl.CURL_LOCK_DATA_HSTS then return "share_hsts_ctrl" end
    end
  end
  return nil
end

-- Bookkeeping after a call (for the avoidance rules; conservative).
local function after(cls, obj, mname, a, r)
  local info = meta[obj]
  if not info or info.kind ~= cls then return end
  if cls == "easy" then
    if mname == "SetOpt" or mname:match("^SetOpt_") then
      local id, v = resolve_opt(cls, mname, a)
      local name = OPTNAME[id]
      if name == "CURLOPT_CLOSESOCKETFUNCTION" then info.closesock_ever = true end
      if name == "CURLOPT_CONNECT_ONLY" and v ~= 0 and v ~= false and v ~= nil then info.connect_only = true end
      if name == "CURLOPT_STREAM_DEPENDS" or name == "CURLOPT_STREAM_DEPENDS_E" then
        info.depends = true
        if meta[v] then meta[v].depended = true end
      end
      if name == "CURLOPT_HSTS" and v ~= nil then info.hsts_file = true end
      if name == "CURLOPT_COOKIEFILE" then info.cookie_file = v ~= nil end
      if name == "CURLOPT_CURLU" and meta[v] then meta[v].attached = true end
      if name == "CURLOPT_TIMEOUT_MS" or name == "CURLOPT_TIMEOUT" then info.timeout_set = r[1] end
    elseif mname == "Close" and r[1] then
      info.multi = nil
    elseif mname == "DupHandle" and r[1] and r[2] then
      local i = {}
      RX.hold = RX.hold + 1   -- a finalizer adding a key to info mid-traversal: 'invalid key to next'
      for kk, v in pairs(info) do i[kk] = v end
      RX.hold = RX.hold - 1
      i.multi, i.name = nil, nil
      track(r[2], "easy", i)
      add("easy", r[2])
    end
    if mname == "Perform" then info.ran = true end
  elseif cls == "multi" then
    if mname == "AddHandle" and meta[a[1]] then
      meta[a[1]].multi = obj
      meta[a[1]].multi_ever = true
    elseif mname == "RemoveHandle" and r[1] and meta[a[1]] then
      meta[a[1]].multi = nil
    end
  elseif cls == "mime" then
    if mname == "AddPart" and r[1] and r[2] then track(r[2], "part", { mime = obj }); add("part", r[2]) end
  elseif cls == "part" then
    if mname == "SubParts" and r[1] and meta[a[1]] then
      meta[a[1]].parent = obj
      info.sub = a[1]
    end
  elseif cls == "url" then
    if mname == "Set" and a[1] == curl.CURLUPART_PATH and (a[2] == "" ) then info.path_empty = true end
    if mname == "Dup" and r[1] and r[2] then
      track(r[2], "url", { path_empty = info.path_empty })
      add("url", r[2])
    end
  elseif cls == "share" then
    local v = mname == "SetOpt" and a[2] or a[1]
    if v == curl.CURL_LOCK_DATA_HSTS then info.hsts = true end
    if v == curl.CURL_LOCK_DATA_SSL_SESSION then info.ssl = true end
  end
end

local METHODS = {
  easy = { "SetOpt", "GetInfo", "Perform", "Pause", "Reset", "DupHandle", "Escape", "Unescape", "Upkeep", "Send", "Recv",
    "WsSend", "WsRecv", "WsMeta", "Close" },
  multi = { "SocketAction", "SetOpt", "InfoRead", "Timeout", "AddHandle", "RemoveHandle", "Perform", "Wait", "Poll", "Wakeup", "Assign", "GetHandles", "Close" },
  share = { "SetOpt", "Close" },
  url = { "Set", "Get", "Dup", "Close" },
  mime = { "AddPart", "Close" },
  part = { "Name", "Data", "FileData", "Filename", "Type", "Headers", "Encoder", "SubParts", "DataCallback" },
  poller = { "Watch", "Unwatch", "Wait", "SetTimer", "Dispatch", "Now", "Count", "Fd", "Timeout",
             "pollfd", "events", "timeout", "Close" },
  buffer = { "Take", "Peek", "Len", "Total", "Write", "Clear" },
}
local PROTO = {}   -- class -> method name -> function (taken from live objects)

-- obj:mname(...) with the checks; returns packed results (r[1] = ok) or
-- nil when skipped. `cls` is the class whose method is called (PROTO), so
-- a method of one class may be called on an object of another.
invoke = function(cls, obj, mname, ...)
  local a = pack(...)
  local why = blocked(cls, obj, mname, a)
  if why then
    logline("skip " .. cls .. ":" .. mname .. "(" .. DA(a) .. ") [known: " .. why .. "]")
    return nil
  end
  local f = PROTO[cls] and PROTO[cls][mname]
  local own = meta[obj]
  if own and own.kind == cls and type(obj) == "userdata" then
    f = obj[mname]     -- the object's own (SetOpt_X / GetInfo_X resolved per object)
  end
  if f == nil then f = PROTO[cls] and PROTO[cls].__dyn and PROTO[cls].__dyn[mname] end
  if f == nil then return nil end
  local argdesc = DA(a)
  local names = (mname == "SetOpt" and (cls == "easy" and OPTNAME or cls == "multi" and MOPTNAME))
    or (mname == "GetInfo" and INFONAME)
  if names and names[a[1]] then
    argdesc = names[a[1]] .. (a.n > 1 and (", " .. DA(a, 2)) or "")
  end
  local desc = D(obj) .. ":" .. mname .. "(" .. argdesc .. ")"
  if not own or own.kind ~= cls then desc = cls .. "." .. mname .. "(" .. D(obj) .. (a.n > 0 and ", " or "") .. argdesc .. ")" end
  if mname == "AddHandle" and cls == "multi" and AVOID.h2_socketaction and meta[a[1]] and meta[a[1]].kind == "easy" then
    -- (j): every multi transfer speaks HTTP/1.1
    local ei = meta[a[1]]
    local saved = ei.multi
    ei.multi = nil
    invoke("easy", a[1], "SetOpt", curl.CURLOPT_HTTP_VERSION, curl.CURL_HTTP_VERSION_1_1)
    ei.multi = saved
  end
  local closing_before = closing_multi
  if mname == "Close" and cls == "multi" then closing_multi = depth + 1 end
  -- (restored, not cleared: a nested Perform of the same easy, refused,
  -- must not unmark the outer one)
  local was_performing = type(obj) == "userdata" and performing[obj]
  if mname == "Perform" and cls == "easy" and type(obj) == "userdata" then performing[obj] = true end
  local r = call(desc, f, obj, ...)
  closing_multi = closing_before
  if mname == "Perform" and cls == "easy" and type(obj) == "userdata" then performing[obj] = was_performing or nil end
  after(cls, obj, mname, a, r)
  if mname == "Close" and r[1] then remember_closed(obj) end
  if RX.reentry > 0 and mname == "Reset" and cls == "easy" and r[1] and own and own.kind == "easy" then
    -- the outer code may be between its limit() and a blocking Perform
    invoke("easy", obj, "SetOpt", curl.CURLOPT_TIMEOUT_MS, 700)
  end
  return r
end

------------------------------------------------------------------ constructors
local function new_poller()
  local r = call("curl.Poller()", curl.Poller)
  if r[1] then track(r[2], "poller"); return add("poller", r[2]) end
end

local function new_buffer()
  local r = call("curl.Buffer()", curl.Buffer)
  if r[1] then track(r[2], "buffer"); return add("buffer", r[2]) end
end

-- force a time limit on `e` (every transfer that can block has one)
local function limit(e, ms)
  invoke("easy", e, "SetOpt", curl.CURLOPT_TIMEOUT_MS, ms or R.int(100, 700))
end

local function new_easy()
  local url = R.chance(0.85) and R.pick(URLS_GOOD) or R.pick(URLS_BAD)
  local opts = { URL = url, TimeoutMS = R.int(100, 1000), ConnectTimeoutMS = R.int(100, 500) }
  local k = R.int(1, 10)
  if k <= 5 then opts.WriteFunction = easy_callback("CURLOPT_WRITEFUNCTION", nil)
  elseif k <= 7 then opts.WriteData = R.chance(0.5) and curl.Buffer() or any_of("buffer")
  elseif k == 8 then opts.WriteData = cbptr_value("CURLOPT_WRITEDATA", R) end
  if url:match("^https") then
    if R.chance(0.8) then opts.CAInfo = NGINX_CA elseif R.chance(0.5) then opts.SSL_VerifyPeer = false end
  end
  if R.chance(0.3) then opts.HeaderFunction = easy_callback("CURLOPT_HEADERFUNCTION", nil) end
  if R.chance(0.05) then opts[R.pick { "CURLOPT_NOPE", "No_Such_Option", 123456, "CURLOPT_ECH" }] = 1 end
  if R.chance(0.05) then opts = R.pick { "x", 1, true } end
  local r = call("curl.Easy(" .. D(url) .. ")", curl.Easy, opts)
  if not r[1] then return nil end
  local e = r[2]
  track(e, "easy")
  return add("easy", e)
end

local multi_socket_cb, multi_timer_cb

local function set_mode(m, mode)
  local info = meta[m]
  info.mode = mode
  if mode == "lua" then
    if not info.poller then info.poller = curl.Poller(); track(info.poller, "poller") end
    info.timeout = -1
    invoke("multi", m, "SetOpt", curl.CURLMOPT_SOCKETFUNCTION, multi_socket_cb(m), R.chance(0.2) and any_value() or nil)
    invoke("multi", m, "SetOpt", curl.CURLMOPT_TIMERFUNCTION, multi_timer_cb(m))
  elseif mode == "fast" then
    if not info.poller then info.poller = curl.Poller(); track(info.poller, "poller") end
    invoke("multi", m, "SetOpt_SocketFunction", info.poller)
    invoke("multi", m, "SetOpt_TimerFunction", info.poller)
  else -- perform: no socket/timer functions
    invoke("multi", m, "SetOpt", curl.CURLMOPT_SOCKETFUNCTION, nil)
    invoke("multi", m, "SetOpt", curl.CURLMOPT_TIMERFUNCTION, nil)
  end
end

local function new_multi()
  local opts = nil
  if R.chance(0.3) then opts = { MaxConnects = R.int(0, 5), Pipelining = R.pick { 0, 1, 2 } } end
  if R.chance(0.05) then opts = R.pick { "x", { Nope = 1 }, { MaxConnects = "many" } } end
  local r = call("curl.Multi(" .. D(opts) .. ")", curl.Multi, opts)
  if not r[1] then return nil end
  local m = r[2]
  track(m, "multi", { mode = "none", timeout = -1 })
  add("multi", m)
  set_mode(m, R.pick { "lua", "lua", "fast", "fast", "perform" })
  return m
end

multi_socket_cb = function(m)
  local rate = temperament()
  local wm = setmetatable({ m = m }, { __mode = "v" })   -- the multi must stay collectable
  return wrapcb("socket", function(easy, s, what, ud, socketp)
    local mm = wm.m
    local info = mm and meta[mm]
    if type(s) ~= "number" then violation("socket callback: socket is a " .. type(s)) end
    local odd = misbehave(rate, { multi = mm, easy = easy })
    if odd then return odd() end
    local p = info and info.poller
    if not p then return end
    if what == curl.CURL_POLL_REMOVE then
      call("Po:Unwatch(" .. D(s) .. ")", p.Unwatch, p, s)
    else
      call("Po:Watch(" .. D(s) .. ", " .. D(what) .. ")", p.Watch, p, s, what)
    end
    if CB.chance(0.05) and mm then call("M:Assign (cb)", mm.Assign, mm, s, CB.pick { "v", {}, nil, 1 }) end
  end)
end

multi_timer_cb = function(m)
  local rate = temperament()
  local wm = setmetatable({ m = m }, { __mode = "v" })
  return wrapcb("timer", function(ms, ud)
    local mm = wm.m
    local info = mm and meta[mm]
    if type(ms) ~= "number" then violation("timer callback: ms is a " .. type(ms)) end
    local odd = misbehave(rate, { multi = mm })
    if odd then return odd() end
    if info then info.timeout = ms end
  end)
end

------------------------------------------------------------------ drivers
local function drain(m)
  for _ = 1, 50 do
    local r = invoke("multi", m, "InfoRead")
    if not r or not r[1] then return end
    local msg, result, remaining, e = r[2], r[3], r[4], r[5]
    if msg == curl.CURLMSG_DONE then
      if type(result) ~= "number" then violation("InfoRead result is a " .. type(result)) end
      if e ~= nil and not meta[e] then track(e, "easy"); add("easy", e) end
      if e and DR.chance(0.8) then invoke("multi", m, "RemoveHandle", e) end
    end
    if remaining == 0 or type(remaining) ~= "number" then return end
  end
end

local function prepare_for_multi(m, e)
  local ei, mi = meta[e], meta[m]
  if not ei or ei.kind ~= "easy" then return end
  if AVOID.h2_socketaction then
    local saved = ei.multi
    ei.multi = nil
    invoke("easy", e, "SetOpt", curl.CURLOPT_HTTP_VERSION, curl.CURL_HTTP_VERSION_1_1)
    ei.multi = saved
  end
  if R.chance(0.9) then limit(e) end
end

local function drive(m, ms)
  local info = meta[m]
  if not info then return end
  local deadline = now() + ms
  local mode = info.mode
  if mode == "loop" then return end
  -- a finalizer may run inside set_mode, between the mode and its poller
  if (mode == "lua" or mode == "fast") and not info.poller then return end
  local r = invoke("multi", m, "SocketAction", curl.CURL_SOCKET_TIMEOUT, 0)
  if not r or not r[1] then
    if mode ~= "perform" then return end
  end
  local turns, failures, idle = 0, 0, 0
  while now() < deadline and turns < 400 do
    turns = turns + 1
    local left = math.max(0, deadline - now())
    local running
    if mode == "lua" then
      local p = info.poller
      local wait = info.timeout
      if type(wait) ~= "number" or wait < 0 or wait > left then wait = left end
      wait = floor(math.max(0, math.min(wait, 50)))
      if wait == 0 and idle > 2 then wait = 5 end   -- a stale 0 ms timer: do not spin
      local fired = false
      if DR.chance(0.8) then
        local w = call("Po:Wait(" .. wait .. ")", p.Wait, p, wait)
        if w[1] then
          local it, st = w[2], w[3]
          for _ = 1, 100 do
            local nx
            if DR.chance(0.03) then
              nx = call("iterator(odd)", it, DR.pick { st, any_value(DR), false }, any_value(DR))
            else
              nx = call("iterator", it, st)
            end
            if not nx[1] or nx[2] == nil then break end
            fired = true
            local rr = invoke("multi", m, "SocketAction", nx[2], nx[3])
            if rr and rr[1] then running = rr[2] end
          end
        end
      else
        local w = call("Po:Dispatch(M," .. wait .. ")", p.Dispatch, p, m, wait)
        if w[1] then running = w[2]; fired = true end
      end
      if not fired then
        idle = idle + 1
        local rr = invoke("multi", m, "SocketAction", curl.CURL_SOCKET_TIMEOUT, 0)
        if rr and rr[1] then running = rr[2] end
      else
        idle = 0
      end
    elseif mode == "fast" then
      local p = info.poller
      local w = call("Po:Dispatch(M," .. floor(math.min(left, 50)) .. ")", p.Dispatch, p, m, floor(math.min(left, 50)))
      if w[1] then running = w[2] end
    else
      local rr = invoke("multi", m, "Perform")
      if rr and rr[1] then running = rr[2] end
      if running and running > 0 then
        local w = floor(math.min(left, 30))
        if DR.chance(0.5) then invoke("multi", m, "Wait", w) else invoke("multi", m, "Poll", w, DR.chance(0.1) and { { fd = 0, events = 1 } } or nil) end
      end
    end
    if running ~= nil and type(running) ~= "number" then violation("running count is a " .. type(running)) end
    if running == nil then
      failures = failures + 1
      if failures >= 3 then break end
    end
    drain(m)
    if running == 0 then break end
  end
end

------------------------------------------------------------------ loop helpers
local backends = { "poller" }
local uv, cqueues, uv_ticker
if os.getenv("FUZZ_NO_LOOPS") ~= "1" then
  if pcall(require, "luv") then uv = require "luv"; backends[#backends + 1] = "luv" end
  if pcall(require, "cqueues") then cqueues = require "cqueues"; backends[#backends + 1] = "cqueues" end
else
  backends = {}
end
-- The helpers are required now, not by a first loop_new: that can run in
-- a finalizer during the same module's load (Lua 5.1 and LuaJIT's require
-- then raise "loop or previous error loading module", not the module's
-- doing), and on LuaJIT 2.1.0-beta3 a file first required by a finalizer
-- stays JIT-compiled (a documented gap, not a finding).
local LOOP_MOD = {}
for _, kind in ipairs(backends) do LOOP_MOD[kind] = require("curl.loop." .. kind) end
if #backends > 0 then require "curl.loop.websocket" end -- (loop:WebSocket's own require)
if uv then
  -- keeps uv.run("once") from blocking: libcurl may have neither timer nor socket
  uv_ticker = uv.new_timer()
  uv_ticker:start(10, 10, function() end)
end

local function loop_new()
  if #backends == 0 then return end
  local kind = R.pick(backends)
  local m = R.chance(0.2) and any_of("multi") or nil
  if kind ~= "poller" and AVOID.loop_multi_closed then m = nil end -- it may be closed already
  local r
  if kind == "poller" then
    local lo = R.chance(0.3) and { max_active = R.chance(0.95) and R.int(1, 4) or any_value() } or nil
    r = call("curl.loop.poller.new(" .. D(m) .. ", " .. D(lo) .. ")", function() return LOOP_MOD.poller.new(m, lo) end)
  elseif kind == "luv" then
    r = call("curl.loop.luv.new(" .. D(m) .. ")", function() return LOOP_MOD.luv.new(uv, m) end)
  else
    r = call("curl.loop.cqueues.new(" .. D(m) .. ")", function() return LOOP_MOD.cqueues.new(cqueues.new(), m) end)
  end
  if r[1] then
    local l = r[2]
    track(l, "loop", { backend = kind })
    if kind == "luv" and type(l.backend) == "table" then
      -- an error out of the backend's uv callbacks makes luv exit the
      -- process ("Uncaught Error"): report it with the error instead.
      -- (Not around loop._drain: that raises on a multi closed behind the
      -- loop's back, by design, and loop._act catches it.)
      for _, key in ipairs { "on_ready", "on_timer" } do
        local orig = l.backend[key]
        if type(orig) == "function" then
          l.backend[key] = function(...)
            local ok, e = pcall(orig, ...)
            if not ok then
              violation("curl.loop.luv: an error escapes a uv callback (luv would exit the process): " ..
                tostring(e) .. " " .. D(e) .. "\n" .. debug.traceback())
            end
          end
        end
      end
    end
    add("loop", l)
    if not meta[l.multi] then track(l.multi, "multi", { mode = "loop", loop = l }); add("multi", l.multi)
    else meta[l.multi].mode = "loop"; meta[l.multi].loop = l end
  end
end

-- loop:Close, unless a known trigger
local function loop_close(l, label)
  if AVOID.loop_close_add and type(l) == "table" and (l.active or 0) > 0 then
    logline("skip " .. label .. " [known: loop_close_add]")
    return
  end
  call_opts(true, label, l.Close, l)
end

local function on_done_cb(l)
  local rate = temperament()
  local wl = setmetatable({ l = l }, { __mode = "v" })
  return wrapcb("on_done", function(easy, result, err)
    local odd = misbehave(rate, { easy = easy })
    if odd then return odd() end
    if type(result) ~= "number" then violation("on_done: result is a " .. type(result)) end
    local ll = wl.l
    if ll and CB.chance(0.1) then
      local e = any_of("easy", CB)
      if e and not (AVOID.connect_only_multi and meta[e] and meta[e].connect_only) then
        if AVOID.h2_socketaction then invoke("easy", e, "SetOpt", curl.CURLOPT_HTTP_VERSION, curl.CURL_HTTP_VERSION_1_1) end
        call_opts(true, "L:Add (on_done)", ll.Add, ll, e, { timeout_ms = 300 })
      end
    end
  end)
end

local fetch_args -- (defined with module_op)

-- loop:Fetch's callback: misbehaves like the other callbacks
local function fetch_cb()
  local rate = temperament()
  return wrapcb("fetch", function(r, err)
    local odd = misbehave(rate, {})
    if odd then return odd() end
    if r == nil and getmetatable(err) ~= curl.Error then violation("loop:Fetch callback got " .. D(err)) end
  end)
end

-- Runs `body` as a task of loop `l` (a cqueues-managed coroutine on
-- cqueues, else a coroutine resumed here): what it raises at once must be a
-- good error, and nothing may yield out of the module into it.
local function in_loop_task(l, info, label, what, body)
  if info.backend == "cqueues" then
    call_opts(true, label .. " [cq:wrap]", function() l.backend.cq:wrap(body) end)
    return
  end
  local co = coroutine.create(body)
  local r = call_opts(true, label .. " [resume]", coroutine.resume, co)
  if r[1] and r[2] == false then
    local ok, why = good_error(r[3], 0, true)
    if not ok then violation(info.name .. ":" .. what .. " raised " .. why) end
  elseif r[1] and r[3] == YIELD_TOKEN then
    violation("a callback yielded out of the module (" .. what .. " coroutine got the token)")
  end
end

local function loop_op()
  local l = any_of("loop")
  if not l then return loop_new() end
  local info = meta[l]
  local k = R.int(1, 14)
  if k == 11 and not WS then k = 10 end
  local name = info.name
  if k == 13 then
    -- limits and timers
    local j = R.int(1, 4)
    if j == 1 then
      local n = R.chance(0.9) and R.pick { 1, 2, 5, nil } or any_value()
      call_opts(true, name .. ":SetMaxActive(" .. D(n) .. ")", l.SetMaxActive, l, n)
    elseif j == 2 then
      call_opts(true, name .. ":Queued", l.Queued, l)
    elseif j == 3 then
      local ms = R.chance(0.9) and R.int(0, 200) or any_value()
      local rate = temperament()
      local fn = R.chance(0.95) and wrapcb("after", function()
        local odd = misbehave(rate, {})
        if odd then return odd() end
      end) or any_value()
      local r = call_opts(true, name .. ":After(" .. D(ms) .. ")", l.After, l, ms, fn)
      if r[1] and type(r[2]) == "table" and R.chance(0.3) then
        call_opts(true, "timer:Cancel", r[2].Cancel, r[2])
      end
    else
      local ms = R.chance(0.9) and R.int(0, 100) or any_value()
      in_loop_task(l, info, name .. ":Sleep(" .. D(ms) .. ")", "Sleep", function() l:Sleep(ms) end)
    end
    return
  end
  if k == 14 then k = 12 end
  if k == 12 then
    local url, opts = fetch_args()
    call_opts(true, name .. ":Fetch(" .. D(url) .. ")", l.Fetch, l, url, opts,
      R.chance(0.9) and fetch_cb() or any_value())
    return
  end
  if k <= 3 then
    local e = any_of("easy")
    if not e then return end
    if meta[e] and AVOID.connect_only_multi and meta[e].connect_only then logline("skip L:Add [known: connect_only_multi]"); return end
    if meta[e] then
      prepare_for_multi(l.multi, e)
      meta[e].multi = l.multi; meta[e].multi_ever = true
    end
    local opts = R.chance(0.8) and { on_done = on_done_cb(l), timeout_ms = R.int(100, 1000) } or on_done_cb(l)
    if R.chance(0.05) then opts = any_value() end
    if AVOID.loop_bad_opts and opts ~= nil and type(opts) ~= "table" and type(opts) ~= "function" then
      logline("skip " .. name .. ":Add(" .. D(e) .. ", " .. D(opts) .. ") [known: loop_bad_opts]")
      return
    end
    call_opts(true, name .. ":Add(" .. D(e) .. ")", l.Add, l, e, opts)
  elseif k == 4 then
    local e = any_of("easy")
    call_opts(true, name .. ":Cancel(" .. D(e) .. ")", l.Cancel, l, e)
  elseif k <= 7 then
    if info.backend == "cqueues" and cbdepth > 0 and AVOID.cqueues_nested_run then
      logline("skip " .. name .. ":Run [known: cqueues_nested_run]")
      return
    end
    call_opts(true, name .. ":Run", l.Run, l, { seconds = R.pick { 0.05, 0.1, 0.3 } })
  elseif k == 8 then
    local e = any_of("easy")
    if not e then return end
    if meta[e] and AVOID.connect_only_multi and meta[e].connect_only then return end
    if meta[e] then prepare_for_multi(l.multi, e); meta[e].multi = l.multi; meta[e].multi_ever = true end
    local body = function()
      local ok, res = l:Await(e, { timeout_ms = R.int(100, 800) })
      if ok ~= true and ok ~= false then violation("Await returned " .. D(ok)) end
    end
    in_loop_task(l, info, name .. ":Await(" .. D(e) .. ")", "Await", body)
  elseif k == 9 then
    call_opts(true, name .. ":Active", l.Active, l)
  elseif k == 11 then
    if not WS then return end
    -- a WebSocket in a coroutine: messages, pings, a close, or just left
    local url = R.chance(0.9) and WS .. R.pick { "/echo", "/ping", "/fragments/3/5000", "/close/4001/bye", "/vanish", "/nope" }
      or R.pick(URLS_BAD)
    local opts = R.chance(0.9) and { timeout_ms = R.int(100, 2000) } or any_value()
    local body = function()
      local ws = l:WebSocket(url, opts)
      if not ws then return end
      for _ = 1, R.int(0, 4) do
        local op = R.int(1, 5)
        if op == 1 then ws:Send(R.chance(0.9) and R.pick { "hi", MEDIUM, "" } or any_value(), R.pick { "text", "binary", nil })
        elseif op == 2 then ws:Receive()
        elseif op == 3 then ws:Ping(R.pick { nil, "p" })
        elseif op == 4 then ws:Close(R.chance(0.8) and R.pick { 1000, 4000 } or any_value(), R.pick { nil, "bye" })
        else collectgarbage("collect") end
      end
    end
    in_loop_task(l, info, name .. ":WebSocket(" .. D(url) .. ")", "WebSocket", body)
  else
    loop_close(l, name .. ":Close")
    drop(l)
  end
end

------------------------------------------------------------------ operations
local function pick_easy()
  if R.chance(0.05) and #closed > 0 then return R.pick(closed) end
  return any_of("easy") or new_easy()
end

local function easy_setopt(e, garbage_rate)
  local id
  if R.chance(0.03) then id = R.pick { -1, 0, 999999, 2 ^ 40, "x", 1.5 } else id = R.pick(EASY_OPTS) end
  local garbage = R.chance(garbage_rate or 0.15)
  local v = option_value(id, e, garbage)
  local name = OPTNAME[id]
  local aliases = OPT_ALIASES[id]
  local k = R.int(1, 10)
  if k <= 6 or not aliases then
    if R.chance(0.1) then return invoke("easy", e, "SetOpt", id, v, any_value()) end
    return invoke("easy", e, "SetOpt", id, v)
  end
  -- SetOpt_X spellings: the normalised name, the C name's tail, odd case
  local x = R.pick(aliases)
  if k == 8 and name then x = name:gsub("^CURLOPT_", "") end
  if k == 9 then x = x:upper() end
  if k == 10 then x = R.pick { "NoSuchOption", "ECH", "", "Url_" } end
  return invoke("easy", e, "SetOpt_" .. x, v)
end

local function easy_getinfo(e)
  if R.chance(0.7) then
    local id = R.chance(0.97) and R.pick(INFOS) or R.pick { 0, -1, 0x100000, "x", 2 ^ 40 }
    return invoke("easy", e, "GetInfo", id)
  end
  local x = R.chance(0.95) and R.pick(INFO_ALIASES) or R.pick { "Nope", "TLS_SSL_PTR", "" }
  return invoke("easy", e, "GetInfo_" .. x)
end

local function easy_perform(e)
  if meta[e] and meta[e].kind == "easy" then limit(e, R.int(100, 600)) end
  return invoke("easy", e, "Perform")
end

-- WebSocket calls with plausible or garbage arguments
local WS_FLAGS = { 1, 2, 1 + 4, 2 + 4, 8, 16, 64, 32, 0, 3, 255 }
local function ws_call(e)
  local k = R.int(1, 3)
  if k == 1 then
    invoke("easy", e, "WsSend", R.chance(0.8) and R.pick { "hello", "", "\0\1\2", MEDIUM, BIG } or any_value(),
      R.chance(0.8) and R.pick(WS_FLAGS) or any_value(), R.chance(0.9) and 0 or any_value())
  elseif k == 2 then
    invoke("easy", e, "WsRecv", R.chance(0.8) and R.pick { 1, 100, 65536 } or any_value())
  else
    invoke("easy", e, "WsMeta")
  end
end

local function easy_misc(e)
  local k = R.int(1, WS and 16 or 14)
  if k == 1 then invoke("easy", e, "Pause", R.chance(0.9) and R.pick { 0, 1, 4, 5 } or any_value())
  elseif k == 2 then invoke("easy", e, "Reset")
  elseif k <= 4 then
    invoke("easy", e, "DupHandle")
  elseif k == 5 then invoke("easy", e, "Escape", R.chance(0.7) and R.pick { "a b/c?d", "", "\0\1\255", MEDIUM } or any_value())
  elseif k == 6 then invoke("easy", e, "Unescape", R.chance(0.7) and R.pick { "a%20b", "%00x%zz%", "", "%" } or any_value())
  elseif k == 7 then invoke("easy", e, "Upkeep")
  elseif k == 8 then invoke("easy", e, "Send", R.chance(0.7) and R.pick { "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "", MEDIUM } or any_value())
  elseif k == 9 then invoke("easy", e, "Recv", R.chance(0.7) and R.pick { 1, 100, 65536 } or any_value())
  elseif k == 15 then ws_call(e)
  elseif k == 16 then
    -- a CONNECT_ONLY = 2 WebSocket session: connect, then frames
    if AVOID.connect_only_multi and meta[e] and meta[e].multi_ever then return end
    invoke("easy", e, "SetOpt", curl.CURLOPT_CONNECT_ONLY, 2)
    invoke("easy", e, "SetOpt", curl.CURLOPT_URL, WS .. R.pick { "/echo", "/ping", "/fragments/2/1000", "/vanish", "/close/1000/x" })
    easy_perform(e)
    for _ = 1, R.int(1, 4) do ws_call(e) end
  elseif k == 10 then
    -- a CONNECT_ONLY session: connect, then Send/Recv
    if AVOID.connect_only_multi and meta[e] and meta[e].multi_ever then return end
    invoke("easy", e, "SetOpt", curl.CURLOPT_CONNECT_ONLY, 1)
    invoke("easy", e, "SetOpt", curl.CURLOPT_URL, R.pick { NGINX_HTTP .. "/", FIXTURE .. "/", "http://127.0.0.1:" .. SILENT .. "/" })
    easy_perform(e)
    invoke("easy", e, "Send", "GET /100b HTTP/1.1\r\nHost: x\r\n\r\n")
    invoke("easy", e, "Recv", R.pick { 10, 1000, 100000 })
  elseif k <= 12 then
    -- an upload or a post
    local kind = R.int(1, 4)
    if kind == 1 then
      invoke("easy", e, "SetOpt", curl.CURLOPT_UPLOAD, 1)
      invoke("easy", e, "SetOpt", curl.CURLOPT_READFUNCTION, easy_callback("CURLOPT_READFUNCTION", e))
      invoke("easy", e, "SetOpt", curl.CURLOPT_URL, R.pick { FIXTURE .. "/echo", "file://" .. TMP .. "/upload.out", NGINX_HTTP .. "/up" })
    elseif kind == 2 then
      invoke("easy", e, "SetOpt", curl.CURLOPT_POSTFIELDS, R.pick { "a=1", "bin\0ary", MEDIUM, "" })
      invoke("easy", e, "SetOpt", curl.CURLOPT_URL, FIXTURE .. R.pick { "/echo", "/307", "/redirect/2" })
    elseif kind == 3 then
      invoke("easy", e, "SetOpt", curl.CURLOPT_SEEKFUNCTION, easy_callback("CURLOPT_SEEKFUNCTION", e))
      invoke("easy", e, "SetOpt", curl.CURLOPT_POST, 1)
      invoke("easy", e, "SetOpt", curl.CURLOPT_READFUNCTION, easy_callback("CURLOPT_READFUNCTION", e))
      invoke("easy", e, "SetOpt", curl.CURLOPT_URL, FIXTURE .. R.pick { "/307", "/echo", "/digest/u/p" })
      invoke("easy", e, "SetOpt", curl.CURLOPT_FOLLOWLOCATION, 1)
    else
      local m = any_of("mime")
      if m then invoke("easy", e, "SetOpt", curl.CURLOPT_MIMEPOST, m) end
      invoke("easy", e, "SetOpt", curl.CURLOPT_URL, FIXTURE .. "/echo")
    end
    if R.chance(0.5) then easy_perform(e) end
  elseif k == 13 then
    -- every callback at once
    for _, name in ipairs { "CURLOPT_XFERINFOFUNCTION", "CURLOPT_DEBUGFUNCTION", "CURLOPT_SOCKOPTFUNCTION",
      "CURLOPT_OPENSOCKETFUNCTION", "CURLOPT_PREREQFUNCTION", "CURLOPT_RESOLVER_START_FUNCTION",
      "CURLOPT_HEADERFUNCTION", "CURLOPT_TRAILERFUNCTION", "CURLOPT_PROGRESSFUNCTION" } do
      if R.chance(0.6) then invoke("easy", e, "SetOpt", curl[name], easy_callback(name, e)) end
    end
    if R.chance(0.3) then invoke("easy", e, "SetOpt", curl.CURLOPT_CLOSESOCKETFUNCTION, easy_callback("CURLOPT_CLOSESOCKETFUNCTION", e)) end
    if R.chance(0.5) then invoke("easy", e, "SetOpt", curl.CURLOPT_VERBOSE, 1) end
  else
    invoke("easy", e, "Close")
  end
end

local function hsts_setup(e)
  -- HSTS: a cache file or read/write callbacks, over TLS
  local k = R.int(1, 3)
  invoke("easy", e, "SetOpt", curl.CURLOPT_HSTS_CTRL, R.pick { 1, 1, 3, 0 })
  if k == 1 then invoke("easy", e, "SetOpt", curl.CURLOPT_HSTS, R.pick { TMP .. "/hsts.txt", TMP .. "/hsts-new.txt", nil }) end
  if k >= 2 then
    invoke("easy", e, "SetOpt", curl.CURLOPT_HSTSREADFUNCTION, easy_callback("CURLOPT_HSTSREADFUNCTION", e))
    invoke("easy", e, "SetOpt", curl.CURLOPT_HSTSWRITEFUNCTION, easy_callback("CURLOPT_HSTSWRITEFUNCTION", e))
  end
  invoke("easy", e, "SetOpt", curl.CURLOPT_URL, R.pick { NGINX_HTTPS .. "/hsts/1k", "http://localhost:" .. HTTPS_PORT .. "/hsts/1k" })
  invoke("easy", e, "SetOpt", curl.CURLOPT_CAINFO, NGINX_CA)
end

local function multi_op(m)
  local k = R.int(1, 16)
  if k <= 2 then
    local id = R.chance(0.95) and R.pick(MOPTS) or R.pick { -1, 0, 99999, "x" }
    local name = MOPTNAME[id] or ""
    local v
    if name:match("FUNCTION$") then
      local kk = R.int(1, 6)
      if kk == 1 then v = nil
      elseif kk == 2 then v = meta[m] and meta[m].poller or any_of("poller")
      elseif kk == 3 then v = any_value()
      elseif name == "CURLMOPT_SOCKETFUNCTION" then v = multi_socket_cb(m)
      elseif name == "CURLMOPT_TIMERFUNCTION" then v = multi_timer_cb(m)
      else
        local rate = temperament()
        v = wrapcb("push", function(parent, pushed, headers, ud)
          if pushed and not meta[pushed] then track(pushed, "easy", { multi = m, multi_ever = true }); add("easy", pushed) end
          local odd = misbehave(rate, { easy = parent, multi = m })
          if odd then return odd() end
          return CB.pick { true, false, curl.CURL_PUSH_OK, curl.CURL_PUSH_DENY }
        end)
      end
    elseif name:match("_BL$") then
      v = R.pick { nil, { "127.0.0.1" }, { "x", "y" }, "x", {} }
    elseif name:match("DATA$") then
      v = any_value()
    else
      v = R.chance(0.8) and R.pick { 0, 1, 2, 3, 10, 100, true, false } or any_value()
    end
    if R.chance(0.1) and MOPT_ALIASES[id] then
      invoke("multi", m, "SetOpt_" .. R.pick(MOPT_ALIASES[id]), v)
    else
      invoke("multi", m, "SetOpt", id, v, R.chance(0.1) and any_value() or nil)
    end
  elseif k == 3 then
    if meta[m] and meta[m].mode ~= "loop" then set_mode(m, R.pick { "lua", "fast", "perform" }) end
  elseif k == 4 then invoke("multi", m, "InfoRead")
  elseif k == 5 then invoke("multi", m, "Timeout")
  elseif k == 6 then
    local w = R.chance(0.9) and R.int(0, 20) or R.pick { "x", {}, 0.5, -5 }
    local extra = R.chance(0.2) and R.pick { { { fd = 0, events = 1 } }, { {} }, "x", { { fd = -1, events = 99 } } } or nil
    invoke("multi", m, R.chance(0.5) and "Wait" or "Poll", w, extra)
  elseif k == 7 then invoke("multi", m, "Wakeup")
  elseif k == 8 then invoke("multi", m, "Assign", R.chance(0.8) and R.int(0, 40) or any_value(), any_value())
  elseif k == 9 then invoke("multi", m, "GetHandles")
  elseif k == 10 then invoke("multi", m, "Perform")
  elseif k == 11 then
    invoke("multi", m, "SocketAction", R.chance(0.8) and R.pick { curl.CURL_SOCKET_TIMEOUT, R.int(0, 40) } or any_value(),
      R.chance(0.8) and R.int(0, 7) or any_value())
  elseif k == 12 then
    local e = any_of("easy")
    if e then invoke("multi", m, "RemoveHandle", e) end
  elseif k == 13 then
    invoke("multi", m, "Close")
    if R.chance(0.5) then drop(m) end
  else
    local e = pick_easy()
    if e then prepare_for_multi(m, e); invoke("multi", m, "AddHandle", e) end
  end
end

local function share_op()
  local s = any_of("share")
  if not s or R.chance(0.1) then
    local opts = R.chance(0.5) and { Share = R.pick { curl.CURL_LOCK_DATA_COOKIE, { curl.CURL_LOCK_DATA_DNS, curl.CURL_LOCK_DATA_CONNECT }, curl.CURL_LOCK_DATA_SSL_SESSION } } or nil
    if R.chance(0.05) then opts = any_value() end
    if AVOID.share_hsts_ctrl == nil and R.chance(0.2) then opts = { Share = curl.CURL_LOCK_DATA_HSTS } end
    local r = call("curl.Share(" .. D(opts) .. ")", curl.Share, opts)
    if r[1] then
      track(r[2], "share", { hsts = type(opts) == "table" and opts.Share == curl.CURL_LOCK_DATA_HSTS,
        ssl = type(opts) == "table" and opts.Share == curl.CURL_LOCK_DATA_SSL_SESSION })
      add("share", r[2])
    end
    return
  end
  local k = R.int(1, 8)
  local lock = R.chance(0.9) and R.int(0, 8) or any_value()
  if k <= 3 then invoke("share", s, "SetOpt", curl.CURLSHOPT_SHARE, lock)
  elseif k == 4 then invoke("share", s, "SetOpt", curl.CURLSHOPT_UNSHARE, lock)
  elseif k == 5 then invoke("share", s, R.pick { "SetOpt_Share", "SetOpt_Unshare", "SetOpt_LockFunc", "SetOpt_Nope" }, lock)
  elseif k == 6 then invoke("share", s, "SetOpt", R.pick { curl.CURLSHOPT_LOCKFUNC, curl.CURLSHOPT_UNLOCKFUNC, curl.CURLSHOPT_USERDATA, 0, 99 }, any_value())
  elseif k == 7 then
    local e = any_of("easy")
    if e then invoke("easy", e, "SetOpt", curl.CURLOPT_SHARE, R.chance(0.8) and s or nil) end
  else
    invoke("share", s, "Close")
    if R.chance(0.5) then drop(s) end
  end
end

local URL_PARTS = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
local function url_value(part)
  if part == curl.CURLUPART_URL then
    return R.chance(0.7) and R.pick(URLS_GOOD) or R.pick { "../x?y", "rel%20ative", "", "#frag", "?q", "http://" .. LONG_LABEL }
  elseif part == curl.CURLUPART_HOST then
    -- (a host that is not ASCII: CURLU_PUNYCODE converts it)
    return R.chance(0.9) and R.pick(SAFE_HOSTISH) or "m\195\188nchen.invalid"
  elseif part == curl.CURLUPART_SCHEME then return R.pick { "http", "https", "file", "ftp", "nope", "" }
  elseif part == curl.CURLUPART_PORT then return R.pick { FPORT, HTTP_PORT, "0", "99999", "x", "" }
  end
  return R.chance(0.8) and R.pick { "/size/10", "a=b", "", word(R), "/", "x y" } or any_value()
end

local function url_op()
  local u = any_of("url")
  if not u or R.chance(0.1) then
    local a = R.chance(0.8) and R.pick(URLS_GOOD) or R.pick { nil, "", "http://a b/", "http://" .. LONG_LABEL .. "/", "nope" }
    local flags = R.chance(0.2) and R.pick { 0, curl.constants.CURLU_DEFAULT_SCHEME or 4, curl.constants.CURLU_NON_SUPPORT_SCHEME or 8, "x", -1 } or nil
    if R.chance(0.05) then a = any_value(); if type(a) == "string" then a = "" end end
    local r = call("curl.URL(" .. D(a) .. ", " .. D(flags) .. ")", curl.URL, a, flags)
    if r[1] then track(r[2], "url"); add("url", r[2]) end
    return
  end
  local k = R.int(1, 10)
  if k <= 4 then
    local part = R.chance(0.95) and R.pick(URL_PARTS) or any_value()
    local v = url_value(part)
    local flags = R.chance(0.2) and R.pick { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, "x" } or nil
    invoke("url", u, "Set", part, v, flags)
  elseif k <= 7 then
    invoke("url", u, "Get", R.chance(0.95) and R.pick(URL_PARTS) or any_value(),
      R.chance(0.2) and R.pick { 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 4096, 4096 + 64, 8192 } or nil)
  elseif k == 8 then invoke("url", u, "Dup")
  elseif k == 9 then
    local e = any_of("easy")
    if e then invoke("easy", e, "SetOpt", curl.CURLOPT_CURLU, R.chance(0.8) and u or nil) end
  else
    invoke("url", u, "Close")
    if R.chance(0.5) then drop(u) end
  end
end

local function mime_read_cb()
  local rate = temperament()
  local n = 0
  return wrapcb("mime read", function(max, ud)
    local odd = misbehave(rate, {})
    if odd then return odd() end
    n = n + 1
    if n > 3 then n = 0; return "" end
    return ("m"):rep(math.min(max or 1, 10))
  end)
end
local function mime_seek_cb()
  local rate = temperament()
  return wrapcb("mime seek", function(off, origin, ud)
    local odd = misbehave(rate, {})
    if odd then return odd() end
    return CB.pick { nil, true, curl.CURL_SEEKFUNC_OK, curl.CURL_SEEKFUNC_CANTSEEK }
  end)
end

local function mime_op()
  local k = R.int(1, 20)
  if k <= 2 or #P.mime == 0 then
    local e = R.chance(0.9) and pick_easy() or any_value()
    local r = call("curl.Mime(" .. D(e) .. ")", curl.Mime, e)
    if r[1] then track(r[2], "mime"); add("mime", r[2]) end
    return
  end
  local m = any_of("mime")
  if k <= 5 then
    invoke("mime", m, "AddPart")
    return
  elseif k == 6 then
    invoke("mime", m, "Close")
    if R.chance(0.5) then drop(m) end
    return
  elseif k == 7 then
    local e = any_of("easy")
    if e then invoke("easy", e, "SetOpt", curl.CURLOPT_MIMEPOST, R.chance(0.8) and m or nil) end
    return
  end
  local p = any_of("part")
  if not p then return end
  local which = R.int(1, 12)
  if which == 1 then invoke("part", p, "Name", R.chance(0.8) and R.pick { "field", "", "a\0b", MEDIUM } or any_value())
  elseif which == 2 then invoke("part", p, "Data", R.chance(0.8) and R.pick { "value", "", "bin\0\255", BIG } or any_value())
  elseif which == 3 then invoke("part", p, "FileData", R.chance(0.8) and R.pick(SAFE_FILES) or any_value())
  elseif which == 4 then invoke("part", p, "Filename", R.chance(0.8) and R.pick { "f.txt", "", nil } or any_value())
  elseif which == 5 then invoke("part", p, "Type", R.chance(0.8) and R.pick { "text/plain", "", "multipart/mixed", nil } or any_value())
  elseif which == 6 then invoke("part", p, "Headers", R.chance(0.8) and header_list(R) or any_value())
  elseif which == 7 then invoke("part", p, "Encoder", R.chance(0.8) and R.pick { "binary", "8bit", "7bit", "base64", "quoted-printable", "nope", nil } or any_value())
  elseif which <= 9 then
    local sub = R.chance(0.9) and any_of("mime") or any_value()
    invoke("part", p, "SubParts", sub)
  elseif which <= 11 then
    local size = R.chance(0.8) and R.pick { -1, 0, 5, 30, 1000 } or any_value()
    local read = R.chance(0.9) and mime_read_cb() or any_value()
    local seek = R.chance(0.5) and mime_seek_cb() or nil
    invoke("part", p, "DataCallback", size, read, seek, R.chance(0.3) and any_value() or nil)
  else
    -- a method of a part called with too few / odd arguments
    invoke("part", p, R.pick(METHODS.part))
  end
end

local function poller_op()
  local p = any_of("poller")
  if not p or R.chance(0.1) then return new_poller() end
  local k = R.int(1, 10)
  local fd = R.chance(0.8) and R.int(0, 40) or any_value()
  if k <= 2 then invoke("poller", p, "Watch", fd, R.chance(0.9) and R.int(0, 4) or any_value())
  elseif k == 3 then invoke("poller", p, "Unwatch", fd)
  elseif k == 4 then
    local w = call(D(p) .. ":Wait", p.Wait, p, R.chance(0.9) and R.int(0, 10) or R.pick { "x", {}, 0.5, true })
    if w[1] then
      for _ = 1, 20 do
        local nx = call("iterator", w[2], R.chance(0.9) and w[3] or any_value())
        if not nx[1] or nx[2] == nil then break end
      end
    end
  elseif k == 5 then invoke("poller", p, "SetTimer", R.chance(0.8) and R.int(-1, 30) or any_value())
  elseif k == 6 then
    local m = any_of("multi")
    invoke("poller", p, "Dispatch", R.chance(0.9) and m or any_value(), R.chance(0.9) and R.int(0, 20) or R.pick { "x", 0.5, {} })
  elseif k == 7 then invoke("poller", p, "Now")
  elseif k == 8 then invoke("poller", p, R.pick { "Count", "Fd", "Timeout", "pollfd", "events", "timeout" })
  elseif k == 9 then
    local m = any_of("multi")
    if m then invoke("multi", m, "SetOpt", R.pick { curl.CURLMOPT_SOCKETFUNCTION, curl.CURLMOPT_TIMERFUNCTION }, p) end
  else
    invoke("poller", p, "Close")
    if R.chance(0.5) then drop(p) end
  end
end

local function buffer_op()
  local b = any_of("buffer")
  if not b or R.chance(0.1) then return new_buffer() end
  local k = R.int(1, 8)
  if k == 1 then invoke("buffer", b, "Take")
  elseif k == 2 then invoke("buffer", b, "Peek")
  elseif k == 3 then invoke("buffer", b, "Len")
  elseif k == 4 then invoke("buffer", b, "Total")
  elseif k == 5 then invoke("buffer", b, "Write", R.chance(0.8) and R.pick { "abc", "", "\0", BIG } or any_value())
  elseif k == 6 then invoke("buffer", b, "Clear")
  else
    local e = any_of("easy")
    if e then invoke("easy", e, "SetOpt", R.pick { curl.CURLOPT_WRITEDATA, curl.CURLOPT_HEADERDATA }, b) end
    if e and R.chance(0.5) then invoke("easy", e, "SetOpt", curl.CURLOPT_WRITEFUNCTION, nil) end
  end
end

-- A random method of a random class on a random value, with random arguments.
local function garbage_call()
  local cls = R.pick { "easy", "multi", "share", "url", "mime", "part", "poller", "buffer" }
  local mname = R.pick(METHODS[cls])
  local self
  if R.chance(0.7) then self = any_of(cls) or any_value() else self = any_value() end
  local args = {}
  local n = R.int(0, 4)
  for i = 1, n do args[i] = any_value() end
  -- arguments that would block the process or leave it
  if (mname == "Wait" or mname == "Poll" or mname == "Dispatch") then
    local slot = mname == "Dispatch" and 2 or 1
    local v = args[slot]
    if v == nil or (type(v) == "number" and (v ~= v or v < 0 or v > 50)) then args[slot] = R.int(0, 20) end
    if n < slot then n = slot end
  end
  if cls == "easy" and mname == "Perform" and meta[self] and meta[self].kind == "easy" then limit(self) end
  if cls == "easy" and mname == "SetOpt" then
    local name = OPTNAME[args[1]]
    if name and (TIMEOUT_OPTS[name] or SENSITIVE[name] or (type(args[2]) == "string" and safe_string(name, R))) then
      args[2] = option_value(args[1], self, false)
    end
  end
  if cls == "url" and mname == "Set" and type(args[2]) == "string" then args[2] = url_value(args[1]) end
  if cls == "part" and mname == "FileData" and type(args[1]) == "string" then args[1] = R.pick(SAFE_FILES) end
  if cls == "easy" and mname == "Reset" and performing[self] then return end
  invoke(cls, self, mname, unpack(args, 1, n))
end

-- curl.Fetch / loop:Fetch arguments: mostly plausible, bounded in time
fetch_args = function()
  local url = R.chance(0.8) and R.pick(URLS_GOOD) or R.pick(URLS_BAD)
  if R.chance(0.05) then return any_value(), any_value() end
  local opts = { timeout = R.pick { 0.2, 0.5, 1 } }
  local keys = { "method", "headers", "query", "body", "json", "form", "follow", "auth", "verify", "ca",
                 "output", "progress", "options", "connect_timeout", "bogus", "retries", "retry_delay",
                 "retry_max_delay" }
  for _ = 1, R.int(0, 4) do
    local k = R.pick(keys)
    local v
    if k == "method" then v = R.pick { "GET", "HEAD", "POST", "PUT", "DELETE", "bad method", 5 }
    elseif k == "headers" then v = R.pick { { ["X-A"] = "1" }, { "X-B: 2" }, { 1 }, "x" }
    elseif k == "query" then v = R.pick { { a = 1, b = "x y" }, {}, "q" }
    elseif k == "body" then v = R.pick { "a=1", "", MEDIUM, 5 }
    elseif k == "json" then v = R.pick { { a = 1 }, { 1, 2 }, "s" }
    elseif k == "form" then v = R.pick { { f = "v" }, { up = { file = TMP .. "/small.txt" } }, { up = {} }, 3 }
    elseif k == "follow" then v = R.pick { true, false, 2, -1, "x" }
    elseif k == "auth" then v = R.pick { "u:p", { "u", "p", type = "digest" }, { type = "nope" }, 1 }
    elseif k == "verify" then v = R.pick { false, true, "no" }
    elseif k == "ca" then v = R.pick { NGINX_CA, TMP .. "/missing", 1 }
    elseif k == "output" then v = R.pick { TMP .. "/fetch.out", "/nonexistent/x", 1 }
    elseif k == "progress" then
      local rate = temperament()
      v = R.chance(0.9) and wrapcb("fetch progress", function()
        local odd = misbehave(rate, {})
        if odd then return odd() end
        if CB.chance(0.05) then return true end -- abort
      end) or "f"
    elseif k == "options" then v = R.pick { { UserAgent = "fz" }, { NoSuchOption = 1 }, { FailOnError = true }, 7 }
    elseif k == "retries" then
      v = R.pick { 1, 2, -1, "x" }
      opts.retry_delay = R.pick { 0.01, 0.05 } -- bounded in time
    elseif k == "retry_delay" then v = R.pick { 0, 0.02, -1, 0 / 0, "x" }
    elseif k == "retry_max_delay" then v = R.pick { 0.01, 0.1, -1, {} }
    else v = any_value() end
    opts[k] = v
  end
  -- something other than a table (refused at once); nil or a table of
  -- other keys would run the transfer with no timeout (an ldap:// one to
  -- the fixture server then blocks inside libcurl for good)
  if R.chance(0.05) then
    local v = any_value()
    if type(v) ~= "table" and v ~= nil then opts = v end
  end
  return url, opts
end

local function module_op()
  local k = R.int(1, 10)
  if k == 1 then call("curl.Version()", curl.Version)
  elseif k == 2 then call("curl.VersionInfo()", curl.VersionInfo)
  elseif k == 3 then local v = R.chance(0.8) and R.int(-5, 100) or any_value(); call("curl.EasyStrError(" .. D(v) .. ")", curl.EasyStrError, v)
  elseif k == 4 then local v = R.chance(0.8) and R.int(-5, 15) or any_value(); call("curl.MultiStrError(" .. D(v) .. ")", curl.MultiStrError, v)
  elseif k == 5 then local v = R.chance(0.8) and R.int(-5, 10) or any_value(); call("curl.ShareStrError(" .. D(v) .. ")", curl.ShareStrError, v)
  elseif k == 6 then local v = any_value(); call("curl.Poller(" .. D(v) .. ")", curl.Poller, v)
  elseif k == 7 then local v = any_value(); call("curl.Buffer(" .. D(v) .. ")", curl.Buffer, v)
  elseif k == 8 then
    -- a method called on the wrong class
    local cls = R.pick { "easy", "multi", "share", "url", "mime", "part", "poller", "buffer" }
    local self = any_object() or any_value()
    local mname = R.pick(METHODS[cls])
    local a, b = any_value(), any_value()
    -- never a wait that nothing ends (Wait(-1) blocks by contract)
    if mname == "Wait" or mname == "Poll" then a = R.int(0, 20) end
    if mname == "Dispatch" then b = R.int(0, 20) end
    invoke(cls, self, mname, a, b)
  elseif k == 10 then
    local url, opts = fetch_args()
    call("curl.Fetch(" .. D(url) .. ")", curl.Fetch, url, opts)
  else
    -- tostring of every kind, closed ones too
    local o = any_object() or (#closed > 0 and R.pick(closed))
    if o then call("tostring(" .. D(o) .. ")", tostring, o) end
  end
end

local function gc_op()
  local k = R.int(1, 8)
  if k == 1 then logline("collectgarbage('collect')"); collectgarbage("collect")
  elseif k == 2 then logline("collectgarbage('step')"); collectgarbage("step", R.int(0, 50))
  elseif k <= 5 then
    -- drop a random reference, then maybe collect
    local o = any_object()
    if o then logline("drop " .. D(o)); drop(o) end
    if R.chance(0.3) then logline("collectgarbage('collect')"); collectgarbage("collect") end
  elseif k == 6 then
    local kind = R.pick(KINDS)
    logline("drop all " .. kind)
    P[kind] = {}
    if R.chance(0.5) then collectgarbage("collect"); collectgarbage("collect") end
  elseif k == 7 and LUA54 then
    local mode = R.pick { "generational", "incremental" }
    logline("collectgarbage('" .. mode .. "')")
    collectgarbage(mode)
  else
    if #closed > 0 then logline("forget closed"); closed = {} end
    collectgarbage("collect")
  end
end

local function close_op()
  local kind = R.pick { "easy", "multi", "share", "url", "mime", "poller", "loop" }
  local o = any_of(kind)
  if not o then return end
  if kind == "loop" then loop_close(o, D(o) .. ":Close"); drop(o); return end
  invoke(kind, o, "Close")
  if R.chance(0.5) then drop(o) end
end

local close_var_chunk
if LUA54 then
  close_var_chunk = load("local o = ...; do local x <close> = o end")
end

local function add_op()
  local m = any_of("multi") or new_multi()
  local e = pick_easy()
  if not m or not e then return end
  if meta[m] and meta[m].mode == "loop" then return end
  prepare_for_multi(m, e)
  invoke("multi", m, "AddHandle", e)
  if R.chance(0.5) then drive(m, R.int(5, 80)) end
end

local function drive_op()
  local m = any_of("multi")
  if not m then return end
  local info = meta[m]
  if info and info.mode == "loop" then
    local l = info.loop
    if l and meta[l] and meta[l].backend == "cqueues" and cbdepth > 0 and AVOID.cqueues_nested_run then
      logline("skip " .. D(l) .. ":Run [known: cqueues_nested_run]")
      return
    end
    if l then call_opts(true, D(l) .. ":Run", l.Run, l, { seconds = 0.1 }) end
    return
  end
  drive(m, R.int(5, 150))
end

------------------------------------------------------------------ re-entry
-- Finalizers and debug hooks run Lua code at points the program does not
-- choose: a __gc at any allocation (quite possibly inside a module call,
-- between two of the binding's own steps), a hook at any call, return or
-- instruction count. Three operations make that happen:
--   "fin arm Fn xK (chain G, A ops)": K garbage objects whose finalizer runs
--     A random re-entry actions, and (chain G > 1) arms the next one, G times;
--   "hook Hn set mask=.. count=.. events=E rate=P": a debug hook that, for
--     its next E events, runs a re-entry action with probability P, then
--     removes itself ("hook Hn expired");
--   "gc tune ...": the collector's pace (or 5.4's mode), so finalizers run
--     often and at varied points.
-- A finalizer or hook body is logged as "fin Fn.i.g {" / "hook Hn #j (event) {"
-- ... "}", its module calls nested in between (a crash inside leaves the
-- body's opening line and its calls last in the log).
--
-- How re-entry meets the checks:
--  * Every module call of a body goes through call()/invoke(): its own
--    errors are checked against what was raised since *it* started. The
--    record of raises is only ever appended to inside a body (the reset per
--    top-level operation happens at depth 0, never in a body), so a body
--    can only add values an outer call may legitimately raise; it cannot
--    remove one (no false violation for the interrupted call).
--  * A body runs protected (xpcall); nothing escapes it into the allocation
--    or hook that triggered it. An error that escapes a body is a fuzzer bug.
--  * INTENT (the error a callback is raising on purpose, checked by that
--    callback's handler after the raise) is saved and restored around a
--    body: a body's own callbacks reset it.
--  * closing_multi is cleared for the body and restored after it: invoke()
--    sets it just before the Close's call() raises depth, so a body running
--    in that window (logline allocates) would otherwise see its own nested
--    call's callbacks as "run during multi:Close". The body's own
--    multi:Close calls set it again (the check still holds inside bodies).
--  * the PRNGs: a body draws from its own stream (RE), R/CB/DR restored after.
--  * inside a finalizer collectgarbage is a no-op (see above), a callback
--    never tries to yield (mischief), and an easy that a body Resets gets a
--    time limit back (the outer code may be between limit() and Perform).
RX.RE = Rng(SEED * 5 + 7)   -- the bodies' draws (their timing depends on the collector)
RX.nfin, RX.nhook = 0, 0

-- Runs body() as a finalizer / hook body, protected, with the fuzzer's
-- state saved and restored. Returns nothing.
function RX.reentered(tag, isfin, body)
  if RX.off or RX.reentry >= 2 or RX.hold > 0 then return end
  RX.reentry = RX.reentry + 1
  if isfin then RX.fin_depth = RX.fin_depth + 1 end
  local sR, sCB, sDR = R, CB, DR
  local iv, iset = INTENT.v, INTENT.set
  local scm = closing_multi
  closing_multi = 0
  R, CB, DR = RX.RE, RX.RE, RX.RE
  logline(tag .. " {")
  local ok, err = xpcall(body, function(e)
    if type(e) == "table" and e.fuzzbug then return e end
    return { fuzzbug = tostring(e) .. "\n" .. debug.traceback() }
  end)
  logline("} " .. tag)
  R, CB, DR = sR, sCB, sDR
  INTENT.v, INTENT.set = iv, iset
  closing_multi = scm
  if isfin then RX.fin_depth = RX.fin_depth - 1 end
  RX.reentry = RX.reentry - 1
  if not ok then fuzzbug("in " .. tag .. ": " .. tostring(err and err.fuzzbug or err)) end
end

-- One random module operation on random pooled objects (draws from R = RX.RE).
function RX.action(cheap)
  local k = R.int(1, cheap and 16 or 20)
  if k <= 6 then
    garbage_call()
  elseif k <= 9 then
    local e = any_of("easy")
    if not e then return new_easy() end
    local j = R.int(1, 3)
    if j == 1 then easy_setopt(e) elseif j == 2 then easy_getinfo(e) else easy_misc(e) end
  elseif k <= 12 then
    local e = any_of("easy")
    local ctx = owner_ctx(e)
    if not ctx.multi then ctx.multi = any_of("multi") end
    mischief(ctx)
  elseif k <= 14 then
    local r = call("curl.Easy() (re)", curl.Easy)
    if r[1] and R.chance(0.5) then call("E:Close (re)", r[2].Close, r[2]) end
  elseif k <= 16 then
    module_op()
  elseif k <= 18 then
    local m = any_of("multi")
    if m then multi_op(m) end
  else
    if depth <= 6 then run_op(true) end
  end
end

function RX.make_garbage(fn)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

function RX.arm_op()
  RX.nfin = RX.nfin + 1
  local id = "F" .. RX.nfin
  local n = R.int(1, 8)
  local gens = R.chance(0.4) and R.int(2, 40) or 1
  local actions = R.int(1, 3)
  local cheap = R.chance(0.7)
  logline(("fin arm %s x%d (chain %d, %d ops%s)"):format(id, n, gens, actions, cheap and ", cheap" or ""))
  local function arm(tag, gen)
    RX.make_garbage(function()
      RX.reentered("fin " .. tag .. "." .. gen, true, function()
        for _ = 1, actions do RX.action(cheap) end
      end)
      -- the chain goes on even when this body was skipped (nested too deep)
      if gen < gens and not RX.off then pcall(arm, tag, gen + 1) end
    end)
  end
  for i = 1, n do arm(id .. "." .. i, 1) end
end

function RX.hook_op()
  RX.nhook = RX.nhook + 1
  local id = "H" .. RX.nhook
  local mask = R.pick { "c", "r", "cr", "cr", "r", "" }
  local count = (mask == "" or R.chance(0.2)) and R.int(1, 400) or 0
  local left = R.int(20, 3000)
  local rate = R.pick { 1, 0.5, 0.2, 0.05, 0.01 }
  local cheap = R.chance(0.8)
  local fired = 0
  -- at most this many actions: a hook on every call and return at rate 1
  -- could otherwise run 1,500 actions (seconds each op), and a seed's run
  -- time would swing with timing far past the per-seed timeout
  local max_fired = R.int(10, 250)
  logline(("hook %s set mask=%s count=%d events=%d max=%d rate=%s%s"):format(id, mask, count, left, max_fired,
    tostring(rate), cheap and " cheap" or ""))
  local function hook(event)
    if left <= 0 then debug.sethook(); return end  -- (a thread that inherited it)
    left = left - 1
    if left == 0 or fired >= max_fired then
      left = 0
      debug.sethook()
      logline("hook " .. id .. " expired after " .. fired .. " actions")
      return
    end
    if RX.reentry > 0 or RX.hold > 0 or RX.off or not RX.RE.chance(rate) then return end
    fired = fired + 1
    RX.reentered("hook " .. id .. " #" .. fired .. " (" .. tostring(event) .. ")", false, function()
      RX.action(cheap)
    end)
  end
  debug.sethook(hook, mask, count)
end

function RX.gc_tune_op()
  if LUA54 and R.chance(0.5) then
    if R.chance(0.5) then
      local pause, mul = R.pick { 50, 100, 150, 200 }, R.pick { 100, 200, 400, 1000 }
      logline(("gc tune incremental(%d, %d)"):format(pause, mul))
      collectgarbage("incremental", pause, mul)
    else
      local minor, major = R.pick { 5, 10, 20, 50 }, R.pick { 20, 50, 100 }
      logline(("gc tune generational(%d, %d)"):format(minor, major))
      collectgarbage("generational", minor, major)
    end
    return
  end
  local pause, mul = R.pick { 50, 80, 100, 150, 200 }, R.pick { 100, 200, 400, 1000 }
  logline(("gc tune setpause %d setstepmul %d"):format(pause, mul))
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", mul)
end

-- Runs `body` in a new coroutine; what it raises is a fuzzer bug (the
-- module's errors are caught inside), a yield of the token a violation.
local function op_in_coroutine(body, where)
  local ok, a = coroutine.resume(coroutine.create(body))
  if not ok then
    if type(a) == "table" and a.fuzzbug then fuzzbug(a.fuzzbug) end
    fuzzbug("an operation inside " .. where .. " failed: " .. tostring(a))
  end
  if a == YIELD_TOKEN then violation("a callback yielded out of the module to the coroutine") end
end

ops = {
  { 8, function() new_easy() end },
  { 2, function() new_multi() end },
  { 18, function() local e = pick_easy(); if e then easy_setopt(e) end end },
  { 8, function() local e = pick_easy(); if e then easy_getinfo(e) end end },
  { 5, function() local e = pick_easy(); if e then easy_perform(e) end end },
  { 8, function() local e = pick_easy(); if e then easy_misc(e) end end },
  { 2, function() local e = pick_easy(); if e then hsts_setup(e) end end },
  { 10, add_op },
  { 12, drive_op },
  { 8, function() local m = any_of("multi") or new_multi(); if m then multi_op(m) end end },
  { 3, share_op },
  { 4, url_op },
  { 6, mime_op },
  { 3, poller_op },
  { 3, buffer_op },
  { 5, loop_op },
  { 5, gc_op },
  { 3, close_op },
  { 7, garbage_call },
  { 1, module_op },
  -- an operation inside a coroutine: callbacks then run on that thread
  { 2, function() op_in_coroutine(function() run_op(true) end, "a coroutine") end },
  -- the same under curl._enter (mlua has the coroutine as current: the C
  -- paths serve it, as in curl.loop.cqueues' driver)
  { 2, function()
      op_in_coroutine(function()
        local ok, err
        curl._enter(function() ok, err = pcall(run_op, true) end)
        if not ok then error(err, 0) end
      end, "curl._enter")
    end },
  -- (on every interpreter; on LuaJIT 2.1.0-beta3 see the jit.off above)
  { 3, function() if RX.enabled then RX.arm_op() end end },
  { 2, function() if RX.enabled then RX.hook_op() end end },
  { 1, function() RX.gc_tune_op() end },
  { 1, function()
      if close_var_chunk then
        local o = any_object()
        if o and meta[o] and meta[o].kind ~= "loop" and meta[o].kind ~= "part" and meta[o].kind ~= "buffer"
           and not blocked(meta[o].kind, o, "Close", pack()) then
          call("<close> " .. D(o), close_var_chunk, o)
        end
      end
    end },
}

local op_names = {}
local SLOW_MS = tonumber(os.getenv("FUZZ_SLOW_MS") or "")
run_op = function(nested)
  if not nested then
    -- each top-level operation draws from its own stream: what earlier
    -- operations drew (which depends on timing) does not shift it
    R = Rng(SEED * 1000003 + opno + 1)
  end
  local f = R.weighted(ops)
  if not nested then
    opno = opno + 1
    nraised, raised = 0, {}
  end
  if not VERBOSE_LOG and not nested then logline("op") end
  if SLOW_MS and not nested then
    local t = now()
    f()
    local dt = now() - t
    if dt >= SLOW_MS then io.stderr:write(("FUZZ SLOW op %d: %.0f ms\n"):format(opno, dt)) end
  else
    f()
  end
end

------------------------------------------------------------------ main
for cls, list in pairs(METHODS) do PROTO[cls] = {} end
;(function() -- (a function: the main chunk is at Lua's 200-locals limit)
  local e, m, s, u, po, b = curl.Easy(), curl.Multi(), curl.Share(), curl.URL(), curl.Poller(), curl.Buffer()
  local mi = curl.Mime(e)
  local pa = mi:AddPart()
  local objs = { easy = e, multi = m, share = s, url = u, mime = mi, part = pa, poller = po, buffer = b }
  for cls, list in pairs(METHODS) do
    for _, mname in ipairs(list) do PROTO[cls][mname] = objs[cls][mname] end
  end
  -- SetOpt_X / GetInfo_X of the class, for calls on objects of another kind
  PROTO.easy.__dyn = setmetatable({}, { __index = function(_, k) return e[k] end })
  PROTO.multi.__dyn = setmetatable({}, { __index = function(_, k) return m[k] end })
  PROTO.share.__dyn = setmetatable({}, { __index = function(_, k) return s[k] end })
  PROTO.keep = objs
end)()

io.stderr:write(("fuzz: seed %s, %d calls, %s, avoid: %s\n"):format(tostring(SEED), CALLS,
  type(jit) == "table" and jit.version or _VERSION, os.getenv("FUZZ_AVOID") or "none"))

local t0 = now()
local main_ok, main_err = xpcall(function()
  for _ = 1, 3 do new_easy() end
  new_multi()
  while opno < CALLS do run_op(false) end

  -- the end: close or drop everything in a random order, collect
  opno = opno + 1
  logline("teardown")
  local all = {}
  for _, kind in ipairs(KINDS) do
    for _, o in ipairs(P[kind]) do all[#all + 1] = o end
  end
  for i = #all, 2, -1 do
    local j = R.int(1, i)
    all[i], all[j] = all[j], all[i]
  end
  for _, o in ipairs(all) do
    local info = meta[o]
    if info and R.chance(0.5) then
      if info.kind == "loop" then loop_close(o, info.name .. ":Close")
      elseif info.kind ~= "part" and info.kind ~= "buffer" then invoke(info.kind, o, "Close") end
    end
    if R.chance(0.3) then collectgarbage("step", 5) end
  end
  for _, kind in ipairs(KINDS) do P[kind] = {} end
  all, closed = nil, {}
  debug.sethook()
  collectgarbage("collect")
  collectgarbage("collect")
  collectgarbage("collect")
  -- finalizers still armed would run at lua_close, after the log is closed
  RX.off = true
  if uv_ticker then
    uv_ticker:stop(); uv_ticker:close()
    call_opts(true, "uv.run('nowait')", uv.run, "nowait")   -- loops left open run their callbacks here
  end
  if WRITEFILE then pcall(WRITEFILE.close, WRITEFILE) end
end, function(e)
  if type(e) == "table" and e.fuzzbug then return e.fuzzbug end
  return tostring(e) .. "\n" .. debug.traceback()
end)
if not main_ok then fuzzbug(main_err) end
local secs = (now() - t0) / 1000
io.stderr:write(("FUZZ DONE seed=%s ops=%d calls=%d seconds=%.1f ops/s=%.0f\n"):format(tostring(SEED), opno, ncalls,
  secs, opno / math.max(secs, 0.001)))
logline("done")
if LOG then LOG:close() end
