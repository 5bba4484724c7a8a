-- Parallel downloader on curl.loop.poller (the built-in epoll Poller driving
-- multi:SocketAction), with a progress bar and a summary.
--
--   lua5.4 examples/download.lua [-j N] [-o DIR] [-q] URL...
--   lua5.4 examples/download.lua [-j N] -i urls.txt
--
-- -j N   transfers at once (default 50)
-- -o DIR save each body as DIR/<n>-<last path part> (default: count bytes only)
-- -i F   read URLs from file F, one per line
-- -q     no progress bar
-- Exits 1 if any transfer failed.
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local feature = type(jit) == "table" and "luajit" or ("lua" .. table.concat({ _VERSION:match("(%d)%.(%d)") }))
package.cpath = here .. "/build/" .. feature .. "/?.so;" .. package.cpath
package.path = here .. "/lua/?.lua;" .. package.path
local curl = require "curl"
local Loop = require "curl.loop.poller"

-- arguments
local urls, parallel, outdir, quiet = {}, 50, nil, false
local i = 1
while arg and arg[i] do
  local a = arg[i]
  if a == "-j" then parallel = assert(tonumber(arg[i + 1]), "-j needs a number"); i = i + 1
  elseif a == "-o" then outdir = arg[i + 1]; i = i + 1
  elseif a == "-q" then quiet = true
  elseif a == "-i" then
    for line in io.lines(arg[i + 1]) do
      if line:match("%S") then urls[#urls + 1] = line:match("^%s*(.-)%s*$") end
    end
    i = i + 1
  else urls[#urls + 1] = a end
  i = i + 1
end
if #urls == 0 then
  io.stderr:write("usage: download.lua [-j N] [-o DIR] [-q] URL... | -i FILE\n")
  os.exit(2)
end

local loop = Loop.new()
local clock = curl.Poller() -- only for its monotonic clock
local start = clock:Now()
local next_url, done, failed, bytes = 1, 0, 0, 0
local codes, errors = {}, {}

local function fmt_bytes(n)
  if n >= 1048576 then return ("%.1f MiB"):format(n / 1048576) end
  if n >= 1024 then return ("%.1f KiB"):format(n / 1024) end
  return n .. " B"
end

local last_draw = -1e9
local function progress(final)
  if quiet then return end
  local now = clock:Now()
  if not final and now - last_draw < 100 then return end -- 10 frames a second
  last_draw = now
  local secs = math.max((now - start) / 1000, 1e-3)
  local width = 30
  local filled = math.floor(width * done / #urls)
  io.stderr:write(("\r[%s%s] %d/%d done, %d running, %s, %s/s, %.0f transfers/s  ")
    :format(("#"):rep(filled), ("."):rep(width - filled), done, #urls, loop:Active(),
            fmt_bytes(bytes), fmt_bytes(bytes / secs), done / secs))
  if final then io.stderr:write("\n") end
end

local start_one
local function on_done(e, result, err)
  local p = e:GetInfo_Private()
  if p.out then p.out:close() end
  done = done + 1
  if result == curl.CURLE_OK then
    local code = e:GetInfo_ResponseCode()
    codes[code] = (codes[code] or 0) + 1
  else
    failed = failed + 1
    errors[#errors + 1] = ("%s: %s"):format(urls[p.n], err and err.message or result)
  end
  e:Close()
  progress(false)
  if next_url <= #urls then start_one() end
end

function start_one()
  local n = next_url
  local url = urls[n]
  next_url = n + 1
  local out
  if outdir then
    local name = url:match("([^/]*)$")
    out = assert(io.open(("%s/%d-%s"):format(outdir, n, name ~= "" and name or "index"), "wb"))
  end
  loop:Add(curl.Easy {
    URL = url, FollowLocation = true, Private = { n = n, out = out },
    WriteFunction = function(data)
      bytes = bytes + #data
      if out then out:write(data) end
    end,
  }, on_done)
end

for _ = 1, math.min(parallel, #urls) do start_one() end
while loop:Active() > 0 do
  loop:Run { seconds = 3600 }
end
progress(true)
local secs = (clock:Now() - start) / 1000
loop:Close()

print(("%d transfers in %.2f s (%.0f/s), %s (%s/s), %d failed")
  :format(done, secs, done / secs, fmt_bytes(bytes), fmt_bytes(bytes / secs), failed))
local list = {}
for code, n in pairs(codes) do list[#list + 1] = ("HTTP %d: %d"):format(code, n) end
table.sort(list)
if #list > 0 then print(table.concat(list, ", ")) end
for k = 1, math.min(#errors, 10) do print("error: " .. errors[k]) end
os.exit(failed == 0 and 0 or 1)
