-- Scale check: N transfers started at once (default 10,000), all running
-- concurrently, through the Poller (fast form) or luv. Prints the peak number
-- of transfers running at the same time and the outcome; exits 1 unless every
-- transfer ended CURLE_OK with the right byte count.
--   ulimit -n 20000; lua5.4 bench/scale.lua poller|luv URL [N] [EXPECTED_BYTES]
local backend, url = arg[1], arg[2]
local total = tonumber(arg[3] or 10000)
local expect = tonumber(arg[4] or 100)
local build = arg[5] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;" .. package.path
local curl = require "curl"

local multi = curl.Multi()
local ok, bad, peak = 0, 0, 0
local sizes = {}

local function on_done(e, result)
  if result == curl.CURLE_OK and sizes[e] == expect then ok = ok + 1 else bad = bad + 1 end
  sizes[e] = nil
  e:Close()
end

local loop
if backend == "luv" then
  loop = require("curl.loop.luv").new(require "luv", multi)
else
  loop = require("curl.loop.poller").new(multi)
end
local clock = curl.Poller()
local t0 = clock:Now()
for _ = 1, total do
  local e = curl.Easy { URL = url, ConnectTimeout = 60, Timeout = 120 }
  e:SetOpt_WriteFunction(function(d) sizes[e] = (sizes[e] or 0) + #d end)
  loop:Add(e, on_done)
end
-- sockets open at the same time (both backends watch them with a Poller)
local function open_sockets() return loop.backend.poller:Count() end
local deadline = t0 + 300000
while loop:Active() > 0 do
  loop.backend:step(100)
  loop:_raise()
  local n = open_sockets()
  if n > peak then peak = n end
  if clock:Now() > deadline then break end
end
local secs = (clock:Now() - t0) / 1000
loop:Close()
print(("%s: %d transfers, %d ok, %d failed, peak %d sockets open at once, %.1f s")
  :format(backend, total, ok, bad, peak, secs))
os.exit(ok == total and 0 or 1)
