---@meta curl.loop
-- LuaLS definitions of `require "curl.loop"` (lua/curl/loop.lua): the
-- loop-independent part of the event-loop helpers. A loop comes from a
-- backend's `new`: `curl.loop.poller`, `curl.loop.luv`, `curl.loop.cqueues`.

---`on_done(easy, result, err)`: `result` the transfer's `CURLE_*` code, `err`
---a `curl.Error` unless `result` is `CURLE_OK`.
---@alias curl.loop.OnDone fun(easy: curl.Easy, result: integer, err: curl.Error?)

---The last argument of every backend's `new`.
---@class curl.loop.Options
---@field max_active? integer at most that many transfers at once, the rest queued

---The second argument of `loop:Add` and `loop:Await` as a table.
---@class curl.loop.AddOptions
---@field on_done? curl.loop.OnDone runs when the transfer ends
---@field timeout_ms? integer `CURLOPT_TIMEOUT_MS` for that transfer

---The argument of `loop:Run`.
---@class curl.loop.RunOptions
---@field seconds? number a deadline: `Run` raises `CURLE_OPERATION_TIMEDOUT` when it passes

---The options of `loop:WebSocket`.
---@class curl.loop.WebSocketOptions
---@field options? curl.EasyOptions easy options by name (`{ CAInfo = ..., HttpHeader = {...} }`)
---@field timeout_ms? integer `CURLOPT_CONNECTTIMEOUT_MS`

---What a backend gives the loop (its other members are the backend's own).
---@class curl.loop.Backend
---@field poller curl.Poller the multi's socket and timer function, driven with `poller:Dispatch(multi, 0)`

---A curl.Multi attached to an event loop: completion callbacks, coroutines
---that wait for their transfer, timeouts, a queue, timers, Fetch and
---WebSockets. Driven by `poller:Dispatch` (`curl_multi_socket_action` in Rust).
---@class curl.loop.Loop
---@field multi curl.Multi the multi (its socket and timer hooks belong to the loop)
---@field backend curl.loop.Backend the backend (`loop.backend.poller` is its curl.Poller)
---@field on_error? fun(err: any) receives errors of callbacks instead of `Run` (needed with your own `uv.run()` / `cq:loop()`)
---@field max_active? integer the limit on transfers at once (nil: none); `SetMaxActive` also starts queued ones
---@field warn? boolean `false`: no line on stderr when a loop with transfers is collected without having run
local Loop = {}

---Makes a loop on `backend` (usually called by a backend's `new`); `multi`
---default a fresh `curl.Multi()`.
---@param backend table
---@param multi? curl.Multi
---@param opts? curl.loop.Options
---@return curl.loop.Loop
---@overload fun(backend: table, opts: curl.loop.Options): curl.loop.Loop
function Loop.new(backend, multi, opts) end

---A `curl.Error` for a `CURLE_*` code (`curl.EasyError`).
---@param code integer
---@param message? string
---@param method? string
---@return curl.Error
function Loop.easy_error(code, message, method) end

---A usage `curl.Error` (kind `"usage"`, code -1).
---@param method string
---@param message string
---@return curl.Error
function Loop.usage_error(method, message) end

---The `curl.Error` of a transfer that ended with `code` (`easy:TransferError`).
---@param easy curl.Easy
---@param code integer
---@return curl.Error
function Loop.transfer_error(easy, code) end

---Starts a transfer (`curl_multi_add_handle`; queued beyond `max_active`).
---`on_done(easy, result, err)` runs when it ends. From inside a libcurl call
---it is deferred until that call returns.
---@param easy curl.Easy
---@param on_done? curl.loop.OnDone|curl.loop.AddOptions
function Loop:Add(easy, on_done) end

---From a coroutine: starts the transfer and waits for it while others run;
---`true, easy` or `false, err`.
---@async
---@param easy curl.Easy
---@param opts? curl.loop.OnDone|curl.loop.AddOptions
---@return boolean ok
---@return curl.Easy|curl.Error easy_or_err
function Loop:Await(easy, opts) end

---Stops a transfer (`curl_multi_remove_handle`) or drops a queued one; its
---`on_done` gets `CURLE_ABORTED_BY_CALLBACK` with the message `"cancelled"`.
---@param easy curl.Easy
function Loop:Cancel(easy) end

---Drives the loop (`poller:Dispatch`, `curl_multi_socket_action`) until no
---transfer, timer or (cqueues) task is left; raises the errors of callbacks.
---Does not nest.
---@param opts? curl.loop.RunOptions
function Loop:Run(opts) end

---Cancels what runs (`on_done` gets `CURLE_ABORTED_BY_CALLBACK`), closes the
---multi (`curl_multi_cleanup`) and the backend's handles. Twice is harmless.
function Loop:Close() end

---`curl.Fetch` on this loop: in a coroutine without `callback`, waits and
---returns the response (or raises the `curl.Error`); with
---`callback(response, err)`, starts the request and returns at once.
---@param url string
---@param opts? curl.FetchOptions
---@param callback? fun(response: curl.Response?, err: curl.Error?)
---@return curl.Response?
function Loop:Fetch(url, opts, callback) end

---From a coroutine: a WebSocket (libcurl's callback mode, `curl_ws_send`),
---or nil and a `curl.Error` when the connection or the upgrade failed.
---@async
---@param url string
---@param opts? curl.loop.WebSocketOptions
---@return curl.loop.WebSocket? ws
---@return curl.Error? err
function Loop:WebSocket(url, opts) end

---Transfers running.
---@return integer
function Loop:Active() end

---Transfers queued by `max_active`, not started yet.
---@return integer
function Loop:Queued() end

---At most `n` transfers at once (nil: no limit); raising it starts queued
---transfers at once.
---@param n integer?
function Loop:SetMaxActive(n) end

---Runs `fn()` once from the loop, `ms` milliseconds from now.
---@param ms number
---@param fn fun()
---@return curl.loop.Timer
function Loop:After(ms, fn) end

---From a coroutine: waits `ms` milliseconds while the loop runs everything else.
---@async
---@param ms number
function Loop:Sleep(ms) end

---A timer of `loop:After`.
---@class curl.loop.Timer
local Timer = {}

---Drops the timer: its function will not run (no effect once it ran).
function Timer:Cancel() end

---A WebSocket of `loop:WebSocket`, for coroutines.
---@class curl.loop.WebSocket
---@field close_code integer? the close code of the server's close frame
---@field close_reason string? the reason of the server's close frame
local WebSocket = {}

---One message (`curl_ws_send`; default text); waits (in a coroutine) while
---libcurl cannot take all of it. `true`, or nil and a `curl.Error`.
---@param data string
---@param kind? "text"|"binary"
---@return true? ok
---@return curl.Error? err
function WebSocket:Send(data, kind) end

---Waits until a whole message is there: the message and `"text"` or
---`"binary"`; `nil, nil` after the server's close frame, `nil, err` when the
---connection failed.
---@async
---@return string? message
---@return "text"|"binary"|curl.Error|nil kind_or_err
function WebSocket:Receive() end

---A ping (`curl_ws_send` with `CURLWS_PING`; the pong is not reported).
---@param data? string
---@return true? ok
---@return curl.Error? err
function WebSocket:Ping(data) end

---Sends a close frame (`CURLWS_CLOSE`; code 1000 by default) and waits for
---the connection to end; outside a coroutine it cancels the transfer at once.
---@param code? integer 1000 to 4999
---@param reason? string at most 123 bytes
---@return true? ok
---@return curl.Error? err
function WebSocket:Close(code, reason) end

---The `curl.Easy` underneath (for `GetInfo`).
---@return curl.Easy
function WebSocket:Easy() end

return Loop
