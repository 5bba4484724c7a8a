-- Benchmark driver: as poller.lua, through a curl.loop helper (BACKEND luv,
-- the default: one uv poll handle on the Poller's descriptor, one uv timer;
-- cqueues: the Poller as a cqueues pollable, one driver coroutine in the
-- controller); each transfer's on_done starts the next one on the same easy.
--   usage: lua loop.lua URL N C [BUILD_DIR [BACKEND]]
local build = arg[4] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;" .. package.path
local curl = require "curl"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local backend = arg[5] or "luv"
local new = require("curl.loop." .. backend).new
local loop
if backend == "cqueues" then loop = new(require("cqueues").new())
elseif backend == "luv" then loop = new(require "luv")
else loop = new() end
loop.multi:SetOpt_MaxConnects(conc)
local bytes, started, done, ok = 0, 0, 0, 0
local function on_write(d) bytes = bytes + #d end
local on_done
on_done = function(e, result)
  done = done + 1
  if result == 0 then ok = ok + 1 end
  if started < total then started = started + 1; loop:Add(e, on_done) end
end
for _ = 1, math.min(conc, total) do
  loop:Add(curl.Easy { URL = url, WriteFunction = on_write }, on_done)
  started = started + 1
end
loop:Run()
loop:Close()
print(("ok=%d bytes=%d"):format(ok, bytes))
os.exit(ok == total and 0 or 1)
