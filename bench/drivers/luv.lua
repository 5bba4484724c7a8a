-- Benchmark driver: as poller.lua, driven by luv (one uv poll per socket,
-- one uv timer; poll handles are stopped on CURL_POLL_REMOVE and reused).
--   usage: lua luv.lua URL N C
local build = arg[4] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
local curl = require "curl"
local uv = require "luv"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local multi = curl.Multi()
multi:SetOpt_MaxConnects(conc)
local polls, timer = {}, uv.new_timer()
local bytes, started, done, ok = 0, 0, 0, 0
local DONE = curl.CURLMSG_DONE

local function drain()
  repeat
    local msg, result, remaining, e = multi:InfoRead()
    if msg == DONE then
      done = done + 1
      if result == 0 then ok = ok + 1 end
      multi:RemoveHandle(e)
      if started < total then started = started + 1; multi:AddHandle(e) end
    end
  until remaining == 0
end

local EV = { "r", "w", "rw" }
multi:SetOpt_SocketFunction(function(_, fd, what)
  local p = polls[fd]
  if what == 4 then
    if p then p:stop() end -- kept: reused when libcurl watches this descriptor again
    return
  end
  if not p then
    p = uv.new_socket_poll(fd)
    polls[fd] = p
  end
  p:start(EV[what], function(err, ev)
    local mask = err and 4 or 0
    if ev then
      if ev:find("r", 1, true) then mask = mask + 1 end
      if ev:find("w", 1, true) then mask = mask + 2 end
    end
    multi:SocketAction(fd, mask)
    drain()
  end)
end)
multi:SetOpt_TimerFunction(function(ms)
  timer:stop()
  if ms >= 0 then timer:start(ms, 0, function() multi:SocketAction(-1, 0); drain() end) end
end)
local function on_write(d) bytes = bytes + #d end
for _ = 1, math.min(conc, total) do
  multi:AddHandle(curl.Easy { URL = url, WriteFunction = on_write })
  started = started + 1
end
while done < total do uv.run("once") end
timer:close()
for _, p in pairs(polls) do p:close() end
uv.run("nowait")
print(("ok=%d bytes=%d"):format(ok, bytes))
os.exit(ok == total and 0 or 1)
