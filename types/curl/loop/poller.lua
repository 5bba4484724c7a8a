---@meta curl.loop.poller
-- LuaLS definitions of `require "curl.loop.poller"` (lua/curl/loop/poller.lua).

---curl.loop on the built-in epoll `curl.Poller`, for scripts without an event
---loop of their own.
---@class curl.loop.poller
local M = {}

---A loop whose `Run` waits on a `curl.Poller` and calls `poller:Dispatch`
---(`curl_multi_socket_action` in Rust). `multi`: default a fresh `curl.Multi()`.
---@param multi? curl.Multi
---@param opts? curl.loop.Options
---@return curl.loop.Loop
---@overload fun(opts: curl.loop.Options): curl.loop.Loop
function M.new(multi, opts) end

return M
