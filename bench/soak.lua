-- Soak: N transfers (default 100,000) on reused easy handles through the
-- Poller's fast form, C at once, with a Lua write function and a
-- GetInfo per transfer. Prints the resident set size after the first
-- 10,000 transfers and at the end, and exits 1 unless every transfer ended
-- CURLE_OK with the right byte count and the two sizes are within LIMIT
-- KiB (default 2048) of each other.
--   lua5.4 bench/soak.lua URL [N] [C] [EXPECTED_BYTES] [BUILD_DIR]
local url = arg[1]
local total = tonumber(arg[2] or 100000)
local conc = tonumber(arg[3] or 50)
local expect = tonumber(arg[4] or 100)
local build = arg[5] or "build/lua54"
local limit = tonumber(os.getenv("LIMIT") or 2048)
package.cpath = build .. "/?.so;" .. package.cpath
local curl = require "curl"

local function rss_kib()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) end
  end
end

local multi, poller = curl.Multi(), curl.Poller()
multi:SetOpt_SocketFunction(poller)
multi:SetOpt_TimerFunction(poller)
local got = {}
local started, done, ok, bad = 0, 0, 0, 0
for _ = 1, math.min(conc, total) do
  local e = curl.Easy { URL = url }
  e:SetOpt_WriteFunction(function(d) got[e] = (got[e] or 0) + #d end)
  multi:AddHandle(e)
  started = started + 1
end
local at10k
multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
while done < total do
  poller:Dispatch(multi, 1000)
  repeat
    local msg, result, remaining, e = multi:InfoRead()
    if msg == curl.CURLMSG_DONE then
      done = done + 1
      if result == curl.CURLE_OK and got[e] == expect and e:GetInfo_ResponseCode() == 200 then
        ok = ok + 1
      else
        bad = bad + 1
      end
      got[e] = 0
      multi:RemoveHandle(e)
      if started < total then started = started + 1; multi:AddHandle(e) end
      if done == math.min(10000, total) then collectgarbage(); at10k = rss_kib() end
    end
  until remaining == 0
end
collectgarbage()
local at_end = rss_kib()
print(("soak: %d transfers, %d ok, %d failed; RSS %d KiB after 10,000, %d KiB after %d"):format(
  total, ok, bad, at10k, at_end, total))
if bad > 0 or at_end - at10k > limit then os.exit(1) end
