-- Parallel downloader driven by multi:SocketAction and curl.Poller.
--
--   lua5.4 examples/download.lua [-j N] [-o DIR] [-q] URL...
--   lua5.4 examples/download.lua [-j N] -i urls.txt
--
-- -j N   transfers at once (default 50)
-- -o DIR save each body as DIR/<n>-<last path part> (default: count bytes only)
-- -i F   read URLs from file F, one per line
-- -q     no progress line
-- Prints a progress line while it runs and a summary at the end; exits 1 if
-- any transfer failed.
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local feature = type(jit) == "table" and "luajit" or ("lua" .. table.concat({ _VERSION:match("(%d)%.(%d)") }))
package.cpath = here .. "/build/" .. feature .. "/?.so;" .. package.cpath
local curl = require "curl"

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("*l"))
  p:close()
  return t
end

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

local multi, poller = curl.Multi(), curl.Poller()
local timeout = -1
multi:SetOpt_SocketFunction(function(_, s, what)
  if what == curl.CURL_POLL_REMOVE then poller:Unwatch(s) else poller:Watch(s, what) end
end)
multi:SetOpt_TimerFunction(function(ms) timeout = ms end)

local next_url, active, done, failed, bytes = 1, 0, 0, 0, 0
local codes, errors = {}, {}
local start = now()

local function start_one()
  local n = next_url
  local url = urls[n]
  next_url = n + 1
  local out
  if outdir then
    out = assert(io.open(("%s/%d-%s"):format(outdir, n, url:match("([^/]*)$") ~= "" and url:match("([^/]*)$") or "index"), "wb"))
  end
  local e = curl.Easy {
    URL = url, FollowLocation = true, Private = { n = n, out = out },
    WriteFunction = function(data)
      bytes = bytes + #data
      if out then out:write(data) end
    end,
  }
  multi:AddHandle(e)
  active = active + 1
end

local function fill() while active < parallel and next_url <= #urls do start_one() end end

local last_shown = 0
local function progress(final)
  if quiet then return end
  if not final and done - last_shown < math.max(1, math.floor(#urls / 50)) then return end
  last_shown = done
  local width = 30
  local filled = math.floor(width * done / #urls)
  io.stderr:write(("\r[%s%s] %d/%d done, %d active, %.1f MiB")
    :format(("#"):rep(filled), ("."):rep(width - filled), done, #urls, active, bytes / 1048576))
  if final then io.stderr:write("\n") end
end

local function reap()
  repeat
    local msg, result, remaining, e = multi:InfoRead()
    if msg == curl.CURLMSG_DONE then
      local p = e:GetInfo_Private()
      if p.out then p.out:close() end
      done, active = done + 1, active - 1
      if result == curl.CURLE_OK then
        local code = e:GetInfo_ResponseCode()
        codes[code] = (codes[code] or 0) + 1
      else
        failed = failed + 1
        errors[#errors + 1] = ("%s: %s"):format(urls[p.n], curl.EasyStrError(result))
      end
      multi:RemoveHandle(e)
      e:Close()
      progress(false)
    end
  until remaining == 0
  fill()
end

fill()
local running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)
reap()
while running > 0 or active > 0 do
  local fired = false
  for fd, mask in poller:Wait(timeout) do
    running = multi:SocketAction(fd, mask)
    fired = true
  end
  if not fired then running = multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0) end
  reap()
end
progress(true)
local secs = now() - start
multi:Close()

print(("%d transfers in %.2f s (%.0f/s), %.2f MiB (%.1f MiB/s), %d failed")
  :format(done, secs, done / secs, bytes / 1048576, bytes / 1048576 / secs, failed))
local list = {}
for code, n in pairs(codes) do list[#list + 1] = ("HTTP %d: %d"):format(code, n) end
table.sort(list)
if #list > 0 then print(table.concat(list, ", ")) end
for k = 1, math.min(#errors, 10) do print("error: " .. errors[k]) end
os.exit(failed == 0 and 0 or 1)
