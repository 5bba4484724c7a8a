-- hiperfifo, in Lua: the shape of libcurl's hiperfifo example on luv.
-- Reads URLs from a named pipe (FIFO), one per line, and fetches each one as
-- soon as it arrives, all of them concurrently through multi:SocketAction
-- (curl.loop.luv: one uv poll handle per socket, one uv timer). Prints a line
-- per finished transfer. A line "quit" on the FIFO stops it once the
-- transfers under way are done.
--
--   lua5.4 examples/hiperfifo.lua [FIFO]        (default: hiper.fifo)
--   echo http://127.0.0.1:8080/1k > hiper.fifo
local here = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
local feature = type(jit) == "table" and "luajit" or ("lua" .. table.concat({ _VERSION:match("(%d)%.(%d)") }))
package.cpath = here .. "/build/" .. feature .. "/?.so;" .. package.cpath
package.path = here .. "/lua/?.lua;" .. package.path
local curl = require "curl"
local uv = require "luv"
local loop = require("curl.loop.luv").new(uv)

local fifo = arg[1] or "hiper.fifo"
if not uv.fs_stat(fifo) then os.execute("mkfifo " .. fifo) end
io.stderr:write(("Now, pipe URLs into %s\n"):format(fifo))

loop.on_error = function(err) io.stderr:write("callback error: " .. tostring(err) .. "\n") end

local fd = assert(uv.fs_open(fifo, "r+", 0)) -- r+: do not see EOF when writers come and go
local pipe = uv.new_pipe(false)
pipe:open(fd)
local pending, stopping = "", false

local function stop()
  if stopping then return end
  stopping = true
  pipe:read_stop()
  pipe:close()
end

local function fetch(url)
  local bytes = 0
  local easy = curl.Easy { URL = url, FollowLocation = true,
    WriteFunction = function(d) bytes = bytes + #d end }
  loop:Add(easy, function(e, result, err)
    if result == curl.CURLE_OK then
      print(("DONE: %s => %d, %d bytes, %.3f s"):format(url, e:GetInfo_ResponseCode(), bytes, e:GetInfo_TotalTime()))
    else
      print(("DONE: %s => error %s"):format(url, err.message))
    end
    e:Close()
  end)
end

pipe:read_start(function(err, chunk)
  assert(not err, err)
  if not chunk then return stop() end
  pending = pending .. chunk
  while true do
    local line, rest = pending:match("^([^\n]*)\n(.*)$")
    if not line then break end
    pending = rest
    line = line:match("^%s*(.-)%s*$")
    if line == "quit" then stop(); break end
    if line ~= "" then fetch(line) end
  end
end)

uv.run()
if loop:Active() > 0 then loop:Run() end
loop:Close()
