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
H.build_dir = H.root .. "/build/" .. H.feature
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

------------------------------------------------------------------ servers

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function sleep(s) os.execute("sleep " .. s) end

local cleanup = {}
local function at_exit(f) cleanup[#cleanup + 1] = f end
do
  local function run() for i = #cleanup, 1, -1 do pcall(cleanup[i]) end end
  if newproxy then
    local p = newproxy(true)
    getmetatable(p).__gc = run
    H._sentinel = p
  else
    H._sentinel = setmetatable({}, { __gc = run })
  end
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

-- An easy that collects its body into t[1].
function H.collecting_easy(url, extra)
  local chunks = {}
  local opts = { URL = url, WriteFunction = function(d) chunks[#chunks + 1] = d end }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local e = curl.Easy(opts)
  return e, function() return table.concat(chunks) end
end

return H
