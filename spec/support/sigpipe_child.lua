-- Child process for crash_regressions_spec: a write callback that writes to
-- a pipe whose reader is gone, run inside easy:Pause (a libcurl call that
-- does not ignore SIGPIPE itself). Prints "survived" unless the signal
-- ends the process. Usage: lua sigpipe_child.lua BUILD_DIR URL
package.cpath = arg[1] .. "/?.so;" .. package.cpath
local curl = require "curl"
local url = arg[2]
local pipe = io.popen("true", "w")
os.execute("sleep 0.2")           -- `true` is gone: writes to the pipe raise SIGPIPE
local paused, wrote = false, nil
local e = curl.Easy { URL = url, WriteFunction = function(d)
  if not paused then paused = true; return curl.CURL_WRITEFUNC_PAUSE end
  wrote = { pipe:write(("x"):rep(65536)) }  -- EPIPE, and a SIGPIPE
  pipe:flush()
end }
local m = curl.Multi()
m:AddHandle(e)
for _ = 1, 200 do
  m:Perform(); m:Wait(10)
  if paused then break end
end
e:Pause(curl.CURLPAUSE_CONT)        -- the buffered data reaches the callback here
print("survived", paused, wrote ~= nil)
