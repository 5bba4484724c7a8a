---@meta curl.loop.cqueues
-- LuaLS definitions of `require "curl.loop.cqueues"` (lua/curl/loop/cqueues.lua).

---curl.loop on a cqueues controller.
---@class curl.loop.cqueues
local M = {}

---A loop whose driver (a task of `cq`) waits on the `curl.Poller` as a
---pollable and calls `poller:Dispatch` (`curl_multi_socket_action` in Rust).
---`cq`: a cqueues controller (default `cqueues.new()`); `multi`: default a
---fresh `curl.Multi()`.
---@param cq? table
---@param multi? curl.Multi
---@param opts? curl.loop.Options
---@return curl.loop.Loop
---@overload fun(cq: table?, opts: curl.loop.Options): curl.loop.Loop
function M.new(cq, multi, opts) end

return M
