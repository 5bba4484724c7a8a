-- A small HTTP client on curl.Fetch:
--   lua examples/fetch.lua [options] URL...
--     -X METHOD        the method (default GET, or POST with -d / -j)
--     -H "Name: value" a request header (repeatable)
--     -d DATA          a body to send; -j JSON a JSON body (needs a JSON module)
--     -o FILE          write the body to FILE (with a progress line on stderr)
--     -r N             retry up to N times on connection errors, 429 and 5xx
--     -i               print the response headers
-- Several URLs are fetched at once on a curl.loop, at most 8 at a time.
local curl = require "curl"

local opts, urls, show_headers = { headers = {} }, {}, false
local i = 1
while arg[i] do
  local a, v = arg[i], arg[i + 1]
  if a == "-X" then opts.method, i = v, i + 1
  elseif a == "-H" then opts.headers[#opts.headers + 1], i = v, i + 1
  elseif a == "-d" then opts.body, i = v, i + 1
  elseif a == "-j" then opts.body, i = v, i + 1; opts.headers[#opts.headers + 1] = "Content-Type: application/json"
  elseif a == "-o" then opts.output, i = v, i + 1
  elseif a == "-r" then opts.retries, opts.retry_delay, i = tonumber(v), 0.5, i + 1
  elseif a == "-i" then show_headers = true
  else urls[#urls + 1] = a end
  i = i + 1
end
if #urls == 0 then
  io.stderr:write("usage: lua examples/fetch.lua [-X M] [-H h] [-d data | -j json] [-o file] [-r n] [-i] URL...\n")
  os.exit(2)
end
if opts.output then
  opts.progress = function(total, now)
    io.stderr:write(("\r%d / %d bytes"):format(now, total))
  end
end

local function show(r)
  if opts.output then io.stderr:write("\n") end
  print(("%s %d (HTTP/%s, %d bytes, %.3f s)"):format(r.url, r.status, r.http_version or "?", r.size,
                                                    r.easy:GetInfo_TotalTime()))
  if show_headers then
    for name, value in pairs(r.headers) do
      print(("  %s: %s"):format(name, type(value) == "table" and table.concat(value, " | ") or value))
    end
  end
  if r.body and not opts.output then io.write(r.body, r.body:sub(-1) == "\n" and "" or "\n") end
end

if #urls == 1 then
  -- one URL: the plain call; a transport failure raises a curl.Error
  local ok, r = pcall(curl.Fetch, urls[1], opts)
  if not ok then io.stderr:write(tostring(r), "\n"); os.exit(1) end
  show(r)
  return
end

local loop = require("curl.loop.poller").new(nil, { max_active = 8 })
local failed = 0
for _, url in ipairs(urls) do
  loop:Fetch(url, opts, function(r, err)
    if r then show(r) else failed = failed + 1; io.stderr:write(tostring(err), "\n") end
  end)
end
loop:Run()
loop:Close()
os.exit(failed == 0 and 0 or 1)
