-- Benchmark driver: N GETs of URL, C at a time, on the built-in Poller in
-- its fast form: the Poller is the multi's socket and timer function (epoll
-- updated without calling Lua) and poller:Dispatch(multi) runs the
-- SocketAction calls of a loop turn in Rust. Easy handles are reused; one Lua
-- write callback per chunk. Prints "ok=<n> bytes=<n>".
--   usage: lua poller.lua URL N C [BUILD_DIR [GC_MODE]]
-- GC_MODE "generational" (Lua 5.4) is the collector setting the README
-- recommends for bulk bodies: one short-lived string per chunk is what a
-- generational collector is for.
local build = arg[4] or "build/lua54"
if arg[5] then collectgarbage(arg[5]) end
package.cpath = build .. "/?.so;" .. package.cpath
local curl = require "curl"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local multi, poller = curl.Multi(), curl.Poller()
multi:SetOpt_MaxConnects(conc)
multi:SetOpt_SocketFunction(poller)
multi:SetOpt_TimerFunction(poller)

local bytes = 0
local function on_write(d) bytes = bytes + #d end
local started, done, ok = 0, 0, 0
for _ = 1, math.min(conc, total) do
  multi:AddHandle(curl.Easy { URL = url, WriteFunction = on_write })
  started = started + 1
end
local DONE = curl.CURLMSG_DONE
local InfoRead = multi.InfoRead
multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
while done < total do
  poller:Dispatch(multi, 1000)
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
