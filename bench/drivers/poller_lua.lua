-- Benchmark driver (callbacks in Lua): N GETs of URL, C at a time, multi:SocketAction with the
-- built-in Poller (libcurl's timer through Poller:SetTimer). Easy handles are
-- reused. Prints "ok=<n> bytes=<n>".   usage: lua poller.lua URL N C
local build = arg[4] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
local curl = require "curl"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local multi, poller = curl.Multi(), curl.Poller()
multi:SetOpt_MaxConnects(conc)
multi:SetOpt_SocketFunction(function(_, fd, what)
  if what == 4 then poller:Unwatch(fd) else poller:Watch(fd, what) end
end)
multi:SetOpt_TimerFunction(function(ms) poller:SetTimer(ms) end)

local bytes = 0
local function on_write(d) bytes = bytes + #d end
local started, done, ok = 0, 0, 0
for _ = 1, math.min(conc, total) do
  multi:AddHandle(curl.Easy { URL = url, WriteFunction = on_write })
  started = started + 1
end
local CURL_SOCKET_TIMEOUT, DONE = curl.CURL_SOCKET_TIMEOUT, curl.CURLMSG_DONE
local SocketAction, InfoRead = multi.SocketAction, multi.InfoRead
SocketAction(multi, CURL_SOCKET_TIMEOUT, 0)
while done < total do
  for fd, mask in poller:Wait(1000) do SocketAction(multi, fd, mask) end
  repeat
    local msg, result, remaining, e = InfoRead(multi)
    if msg == DONE then
      done = done + 1
      if result == 0 then ok = ok + 1 end
      multi:RemoveHandle(e)
      if started < total then started = started + 1; multi:AddHandle(e) end
    end
  until remaining == 0
end
print(("ok=%d bytes=%d"):format(ok, bytes))
os.exit(ok == total and 0 or 1)
