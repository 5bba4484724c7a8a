-- A WebSocket echo client on curl.loop: N connections at once, each sends
-- messages and checks what comes back, then closes politely.
--
--   lua5.4 examples/ws_echo.lua [-n N] [-m MESSAGES] ws://HOST:PORT/PATH
--
-- Needs a libcurl with WebSockets: the bundled build (scripts/build.sh
-- --vendored lua54, which this script prefers when it is there), or a
-- system libcurl 8 built with them. The suite's echo server works:
--   /usr/bin/python3 spec/support/ws_server.py   (prints its port; path /echo)
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local feature = type(jit) == "table" and "luajit" or ("lua" .. table.concat({ _VERSION:match("(%d)%.(%d)") }))
package.cpath = here .. "/build/vendored/" .. feature .. "/?.so;" .. here .. "/build/" .. feature .. "/?.so;"
  .. package.cpath
package.path = here .. "/lua/?.lua;" .. package.path
local curl = require "curl"

local n, messages, url = 10, 5, nil
local i = 1
while arg and arg[i] do
  if arg[i] == "-n" then n = assert(tonumber(arg[i + 1]), "-n needs a number"); i = i + 1
  elseif arg[i] == "-m" then messages = assert(tonumber(arg[i + 1]), "-m needs a number"); i = i + 1
  else url = arg[i] end
  i = i + 1
end
if not url then
  io.stderr:write("usage: ws_echo.lua [-n N] [-m MESSAGES] ws://HOST:PORT/PATH\n")
  os.exit(2)
end

local loop = require("curl.loop.poller").new()
local ok_count, failures = 0, {}

for c = 1, n do
  -- each connection is a coroutine: WebSocket, Send and Receive wait in it
  local co = coroutine.create(function()
    local ws, err = loop:WebSocket(url)
    if not ws then failures[#failures + 1] = tostring(err); return end
    for m = 1, messages do
      local text = ("connection %d, message %d"):format(c, m)
      assert(ws:Send(text))
      local back, kind = ws:Receive()
      if back ~= text then
        failures[#failures + 1] = ("connection %d: sent %q, got %s (%s)"):format(c, text, tostring(back), tostring(kind))
        ws:Close(1002, "unexpected echo")
        return
      end
    end
    assert(ws:Close(1000, "done"))
    ok_count = ok_count + 1
  end)
  assert(coroutine.resume(co))
end

loop:Run { seconds = 60 }
loop:Close()
print(("%d of %d connections echoed %d messages each (%s)"):format(ok_count, n, messages, curl.Version()))
for _, f in ipairs(failures) do print("failed: " .. f) end
os.exit(#failures == 0 and 0 or 1)
