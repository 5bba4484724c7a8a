---@meta curl.loop.websocket
-- LuaLS definitions of `require "curl.loop.websocket"`
-- (lua/curl/loop/websocket.lua), which `loop:WebSocket` loads.

---WebSockets on a curl.loop (use `loop:WebSocket`).
---@class curl.loop.websocket
local M = {}

---`loop:WebSocket(url, opts)`: from a coroutine, connects and waits for the
---upgrade (libcurl's callback mode, `curl_ws_send`).
---@async
---@param loop curl.loop.Loop
---@param url string
---@param opts? curl.loop.WebSocketOptions
---@return curl.loop.WebSocket? ws
---@return curl.Error? err
function M.open(loop, url, opts) end

return M
