-- Spec helper: loads *our* build for the running interpreter, finds (or
-- starts) the loopback servers, and drives multi handles to idle under a
-- deadline. Specs do `local H = require "helper"`.
local H = {}

local function feature()
  if type(jit) == "table" then return "luajit" end
  local a, b = _VERSION:match("(%d)%.(%d)")
  return "lua" .. a .. b
end

H.root = os.getenv("CURL_REPO") or "."
H.feature = feature()
-- CURL_BUILD: the directory of per-interpreter builds (build/vendored for
-- the bundled libcurl), default <root>/build
H.build_dir = (os.getenv("CURL_BUILD") or (H.root .. "/build")) .. "/" .. H.feature
package.cpath = H.build_dir .. "/?.so;" .. package.cpath

-- package.searchpath is missing in Lua 5.1.
function H.searchpath(name, path)
  if package.searchpath then return package.searchpath(name, path) end
  for tmpl in path:gmatch("[^;]+") do
    local f = tmpl:gsub("%?", (name:gsub("%.", "/")))
    local h = io.open(f, "rb")
    if h then h:close(); return f end
  end
  return nil
end

H.so_path = H.searchpath("curl", package.cpath)
local curl = require "curl"
assert(curl._NAME == "lua-curl-socket",
  "require 'curl' did not load this project's module (found " .. tostring(H.so_path) .. ")")
H.curl = curl

------------------------------------------------------------------ the libcurl in use

-- The suite runs on the system libcurl and on the bundled one (feature
-- `vendored`): what one lacks is skipped with its reason (`pending`), and
-- version-gated behaviour is checked on the side that has it.
H.libcurl = curl.VersionInfo()
function H.older_than(num) return H.libcurl.version_num < num end
function H.has_protocol(name)
  for _, p in ipairs(H.libcurl.protocols) do if p == name then return true end end
  return false
end
function H.has_feature(name) -- a CURL_VERSION_<name> bit
  local bit = curl.constants["CURL_VERSION_" .. name]
  return bit ~= nil and math.floor(H.libcurl.features / bit) % 2 == 1
end
-- why a case cannot run on this libcurl, or nil
function H.needs_protocol(name)
  if H.has_protocol(name) then return nil end
  return ("libcurl %s was built without %s"):format(H.libcurl.version, name)
end
function H.needs_feature(name)
  if H.has_feature(name) then return nil end
  return ("libcurl %s was built without %s"):format(H.libcurl.version, name)
end

-- it_if(why_not, name, fn): `it(name, fn)`, or a pending case saying why it
-- cannot run. busted's `it` and `pending` live in each spec file's
-- environment, so a spec makes its own: `local it_if = H.it_if(it, pending)`.
function H.it_if(it_, pending_)
  return function(why_not, name, fn)
    if why_not then
      pending_(name .. " [" .. why_not .. "]")
    else
      it_(name, fn)
    end
  end
end

-- Calls f, which must raise a usage curl.Error (whose message matches
-- `pattern`, if given); returns the error.
function H.usage_error(f, pattern)
  local la = require "luassert"
  local ok, err = pcall(f)
  la.is_false(ok, "expected an error")
  la.are.equal(curl.Error, getmetatable(err), "a curl.Error: " .. tostring(err))
  la.are.equal("usage", err.kind)
  if pattern then la.truthy(err.message:find(pattern), err.message) end
  return err
end

-- The curl.loop backends this interpreter has: the Poller, luv, cqueues.
H.loop_backends = { "poller" }
if pcall(require, "luv") then H.loop_backends[#H.loop_backends + 1] = "luv" end
if pcall(require, "cqueues") then H.loop_backends[#H.loop_backends + 1] = "cqueues" end

-- Runs `f(loop)` as a coroutine the backend can suspend (a cqueues-managed
-- one for cqueues); the loop's Run then drives it.
function H.in_task(name, loop, f)
  if name == "cqueues" then
    loop.backend.cq:wrap(function() f(loop) end)
  else
    local co = coroutine.create(f)
    local ok, err = coroutine.resume(co, loop)
    assert(ok, err)
  end
end

------------------------------------------------------------------ servers

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function sleep(s) os.execute("sleep " .. s) end

-- The Lua process: spec servers exit when it is gone (they poll its pid).
H.lua_pid = sh("echo $PPID"):gsub("%s+$", "")

local function read_text(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end
H.read_text = read_text

local function alive(pid)
  local r = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return r == true or r == 0
end

-- Starts `cmd` in the background (its output in a temporary file) and
-- waits, under a deadline, for a "PORT n" line. Returns a table of the
-- "KEY value" lines it printed, or nil and the reason it gave (a "NO-..."
-- line, or its output when it exited). The server's pid is added to `pids`.
function H.start_server(cmd, pids)
  local out = sh("mktemp"):gsub("%s+$", "")
  local pid = sh(("%s > %s 2>&1 & echo $!"):format(cmd, out)):gsub("%s+$", "")
  pids[#pids + 1] = pid
  local deadline = os.time() + 15
  while os.time() <= deadline do
    local text = read_text(out) or ""
    local why = text:match("NO%-%w+ ([^\n]*)")
    if why then os.remove(out); return nil, why end
    if text:match("PORT %d+\n") then
      os.remove(out)
      local info = { pid = pid }
      for k, v in text:gmatch("(%u+) ([^\n]*)\n") do info[k] = v end
      return info
    end
    if not alive(pid) then
      os.remove(out)
      return nil, "exited: " .. (text:gsub("%s+$", ""):match("([^\n]*)$"))
    end
    sleep(0.05)
  end
  os.remove(out)
  return nil, "no PORT line within 15 s"
end

function H.stop_servers(pids)
  for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
end

--- An object whose finalizer is `f` (a userdata on 5.1 and LuaJIT, where
--- tables have no __gc).
function H.finalized_by(f)
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = f
    return p
  end
  return setmetatable({}, { __gc = f })
end

local cleanup = {}
local function at_exit(f) cleanup[#cleanup + 1] = f end
do
  local function run() for i = #cleanup, 1, -1 do pcall(cleanup[i]) end end
  H._sentinel = H.finalized_by(run)
end

local function start_fixture()
  local tmp = sh("mktemp"):gsub("%s+$", "")
  local ppid = sh("echo $PPID"):gsub("%s+$", "")
  os.execute(("/usr/bin/python3 %s/spec/support/fixture_server.py 127.0.0.1 %s > %s 2>&1 &")
    :format(H.root, ppid, tmp))
  for _ = 1, 100 do
    local f = io.open(tmp)
    local line = f and f:read("*l")
    if f then f:close() end
    local port = line and line:match("PORT (%d+)")
    if port then
      os.remove(tmp)
      return "http://127.0.0.1:" .. port
    end
    sleep(0.05)
  end
  error("fixture server did not start")
end

local function start_nginx()
  local dir = sh("mktemp -d"):gsub("%s+$", "")
  assert(os.execute(("%s/scripts/nginx.sh start %s"):format(H.root, dir)))
  at_exit(function() os.execute(("%s/scripts/nginx.sh stop %s"):format(H.root, dir)) end)
  local env = {}
  for line in io.lines(dir .. "/env") do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then env[k] = v end
  end
  return env
end

H.fixture = os.getenv("CURL_TEST_FIXTURE") or start_fixture()
do
  local http, https, ca = os.getenv("NGINX_HTTP"), os.getenv("NGINX_HTTPS"), os.getenv("NGINX_CA")
  if not http then
    local env = start_nginx()
    http, https, ca = env.NGINX_HTTP, env.NGINX_HTTPS, env.NGINX_CA
  end
  H.nginx_http, H.nginx_https, H.ca = http, https, ca
end

function H.url(path) return H.fixture .. path end

--------------------------------------------------------------------- GC

-- Three full cycles: an object reachable only from a userdata with a
-- finalizer (a handle's user values) is freed one cycle after it.
function H.gc()
  collectgarbage("collect")
  collectgarbage("collect")
  collectgarbage("collect")
end

-- A weak reference: H.collected(ref) after the last strong one is gone.
function H.weak(obj) return setmetatable({ obj }, { __mode = "v" }) end
function H.collected(ref) H.gc(); return ref[1] == nil end

------------------------------------------------------------------ loops

-- Installs Poller-based socket/timer callbacks on `multi` (counting calls)
-- and returns a loop object. `loop:run(opts)` drives SocketAction until no
-- transfer runs and the message queue is empty, or the deadline passes
-- (an error). Finished transfers are collected in `loop.done` as
-- { easy = e, result = code } in completion order; with opts.remove
-- they are removed from the multi as they finish.
function H.loop(multi)
  local L = { poller = curl.Poller(), timeout = -1, done = {},
              socket_calls = 0, timer_calls = 0, watched = {} }
  local poller = L.poller
  multi:SetOpt(curl.CURLMOPT_SOCKETFUNCTION, function(easy, s, what)
    L.socket_calls = L.socket_calls + 1
    if what == curl.CURL_POLL_REMOVE then
      poller:Unwatch(s); L.watched[s] = nil
    else
      poller:Watch(s, what); L.watched[s] = what
    end
  end)
  multi:SetOpt(curl.CURLMOPT_TIMERFUNCTION, function(ms)
    L.timer_calls = L.timer_calls + 1
    L.timeout = ms
  end)

  function L:drain(opts)
    repeat
      local msg, result, remaining, easy = multi:InfoRead()
      if msg == curl.CURLMSG_DONE then
        self.done[#self.done + 1] = { easy = easy, result = result }
        if opts.remove then multi:RemoveHandle(easy) end
        if opts.on_done then opts.on_done(easy, result) end
      end
    until remaining == 0
  end

  function L:run(opts)
    opts = opts or {}
    local deadline = os.time() + (opts.seconds or 20)
    local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
    self:drain(opts)
    while running > 0 do
      if os.time() > deadline then
        error(("loop deadline passed with %d transfers running"):format(running), 2)
      end
      local wait = self.timeout
      if wait < 0 or wait > 200 then wait = 200 end
      local fired = false
      for fd, mask in poller:Wait(wait) do
        running = multi:SocketAction(fd, mask)
        fired = true
      end
      if not fired then running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
      self:drain(opts)
      if opts.until_fn and opts.until_fn() then break end
    end
    self:drain(opts)
    return self.done
  end
  return L
end

-- The body of a fixture /size/N response.
function H.pattern(n)
  local base = "0123456789abcdefghijklmnopqrstuvwxyz\n"
  return (base:rep(math.floor(n / #base) + 1)):sub(1, n)
end

-- The command of the interpreter running the specs (for child processes).
H.lua = ({ lua51 = "lua5.1", lua52 = "lua5.2", lua53 = "lua5.3", lua54 = "lua5.4" })[H.feature] or "luajit"

-- Runs `code` in a child interpreter with this build first on its cpath and
-- `stdin` as its standard input; returns what it wrote to stdout and to
-- stderr.
function H.run_lua(code, stdin)
  local script, input, out, err = os.tmpname(), os.tmpname(), os.tmpname(), os.tmpname()
  local function put(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end
  put(script, ("package.cpath = %q .. package.cpath\n"):format(H.build_dir .. "/?.so;") .. code)
  put(input, stdin or "")
  -- under `timeout`: a child that hangs fails its spec instead of the suite
  os.execute(("timeout -k 5 120 %s %s < %s > %s 2> %s"):format(H.lua, script, input, out, err))
  local stdout, stderr = read_text(out) or "", read_text(err) or ""
  for _, p in ipairs { script, input, out, err } do os.remove(p) end
  return stdout, stderr
end

-- An easy that collects its body into t[1].
function H.collecting_easy(url, extra)
  local chunks = {}
  local opts = { URL = url, WriteFunction = function(d) chunks[#chunks + 1] = d end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local e = curl.Easy(opts)
  return e, function() return table.concat(chunks) end
end

return H
