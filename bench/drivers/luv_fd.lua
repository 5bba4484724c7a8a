-- Benchmark driver: as poller.lua, driven by luv through one descriptor:
-- the Poller is the multi's socket and timer function, luv watches its
-- epoll descriptor (poller:Fd()) with one uv poll handle and arms one uv
-- timer from what poller:Dispatch returns; no Lua runs per socket event.
--   usage: lua luv_fd.lua URL N C [BUILD_DIR]
local build = arg[4] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
local curl = require "curl"
local uv = require "luv"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local multi, poller = curl.Multi(), curl.Poller()
multi:SetOpt_MaxConnects(conc)
multi:SetOpt_SocketFunction(poller)
multi:SetOpt_TimerFunction(poller)
local bytes, started, done, ok = 0, 0, 0, 0
local DONE = curl.CURLMSG_DONE
local InfoRead, Dispatch = multi.InfoRead, poller.Dispatch

local poll, timer = uv.new_poll(poller:Fd()), uv.new_timer()
local act
local function arm(ms)
  if ms >= 0 then timer:start(ms, 0, act) else timer:stop() end
end
act = function()
  local _, ms = Dispatch(poller, multi, 0)
  repeat
    local msg, result, remaining, e = InfoRead(multi)
    if msg == DONE then
      done = done + 1
      if result == 0 then ok = ok + 1 end
      multi:RemoveHandle(e)
      if started < total then
        started = started + 1
        multi:AddHandle(e)
        ms = poller:Timeout()
      end
    end
  until remaining == 0
  if done < total then arm(ms) else poll:stop(); timer:stop() end
end
local function on_write(d) bytes = bytes + #d end
for _ = 1, math.min(conc, total) do
  multi:AddHandle(curl.Easy { URL = url, WriteFunction = on_write })
  started = started + 1
end
poll:start("r", act)
arm(poller:Timeout())
uv.run()
poll:close(); timer:close()
print(("ok=%d bytes=%d"):format(ok, bytes))
os.exit(ok == total and 0 or 1)
