-- Benchmark driver: as poller.lua, through the curl.loop.cqueues helper (the
-- Poller as a cqueues pollable, one driver coroutine in the controller);
-- each transfer's on_done starts the next one on the same easy.
--   usage: lua loop_cqueues.lua URL N C [BUILD_DIR]
local build = arg[4] or "build/lua54"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;" .. package.path
local curl = require "curl"
local url, total, conc = arg[1], tonumber(arg[2]), tonumber(arg[3])

local loop = require("curl.loop.cqueues").new(require("cqueues").new())
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
