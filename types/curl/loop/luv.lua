---@meta curl.loop.luv
-- LuaLS definitions of `require "curl.loop.luv"` (lua/curl/loop/luv.lua).

---curl.loop on luv (libuv, or Neovim's `vim.loop` / `vim.uv`).
---@class curl.loop.luv
local M = {}

---A loop driven by one uv poll handle on `poller:Fd()` and one uv timer
---(`poller:Dispatch`, `curl_multi_socket_action` in Rust). `uv`: the luv
---module (default `require "luv"`); `multi`: default a fresh `curl.Multi()`.
---@param uv? table
---@param multi? curl.Multi
---@param opts? curl.loop.Options
---@return curl.loop.Loop
---@overload fun(uv: table?, opts: curl.loop.Options): curl.loop.Loop
function M.new(uv, multi, opts) end

return M
