---@meta curl
-- LuaLS (lua-language-server) definitions of `require "curl"` (lua-curl-socket).
-- docs/reference.md is the reference; docs/editor.md says how to use these
-- files. The per-option fields (`SetOpt_X`, `GetInfo_X`, the constants and
-- the option tables) are generated into curl_options.lua beside this file.

------------------------------------------------------------------ aliases

---A `"Name: value"` list, or for `HTTPHEADER` / `PROXYHEADER` a map
---`{ ["X-A"] = "1", ["X-B"] = { "p", "q" }, Accept = false }` (sorted by
---name; a list repeats the header; `false` removes one libcurl would send).
---@alias curl.HeaderList string[]|table<string, string|string[]|false>

---`WRITEFUNCTION`: nothing or `true` takes all of `data`; a byte count; `false`
---fails (`CURLE_WRITE_ERROR`); `curl.CURL_WRITEFUNC_PAUSE` pauses.
---@alias curl.WriteFunction fun(data: string, userdata: any): integer|boolean|nil
---`HEADERFUNCTION`: one header line, CRLF included; returns as the write function.
---@alias curl.HeaderFunction fun(line: string, userdata: any): integer|boolean|nil
---`INTERLEAVEFUNCTION`: RTSP interleaved data; returns as the write function.
---@alias curl.InterleaveFunction fun(data: string, userdata: any): integer|boolean|nil
---`READFUNCTION`: a string (a longer one is handed out over the next calls);
---`""` or nil: end; `false` or `CURL_READFUNC_ABORT`; `CURL_READFUNC_PAUSE`.
---@alias curl.ReadFunction fun(maxbytes: integer, userdata: any): string|integer|false|nil
---`XFERINFOFUNCTION`: `true` or a non-zero number aborts; `CURL_PROGRESSFUNC_CONTINUE`.
---@alias curl.XferInfoFunction fun(dltotal: integer, dlnow: integer, ultotal: integer, ulnow: integer, userdata: any): boolean|integer|nil
---`PROGRESSFUNCTION`: as the xferinfo function, with numbers.
---@alias curl.ProgressFunction fun(dltotal: number, dlnow: number, ultotal: number, ulnow: number, userdata: any): boolean|number|nil
---`DEBUGFUNCTION` (needs `VERBOSE`): `infotype` is `CURLINFO_TEXT`, `CURLINFO_HEADER_IN`, ...; the return value is ignored.
---@alias curl.DebugFunction fun(infotype: integer, data: string, userdata: any)
---`SEEKFUNCTION`: nothing/`true`/`CURL_SEEKFUNC_OK`; `false`/`CURL_SEEKFUNC_CANTSEEK`; `CURL_SEEKFUNC_FAIL`.
---@alias curl.SeekFunction fun(offset: integer, origin: integer, userdata: any): boolean|integer|nil
---`SOCKOPTFUNCTION`: nothing: OK; `false`/`CURL_SOCKOPT_ERROR`; `CURL_SOCKOPT_ALREADY_CONNECTED`.
---@alias curl.SockOptFunction fun(fd: integer, purpose: integer, userdata: any): boolean|integer|nil
---`OPENSOCKETFUNCTION`: nothing: the module opens the socket as libcurl would;
---a descriptor to use; `false`: refuse (`CURLE_COULDNT_CONNECT`).
---@alias curl.OpenSocketFunction fun(purpose: integer, address: curl.SocketAddress, userdata: any): integer|boolean|nil
---`CLOSESOCKETFUNCTION`: nothing: the module closes `fd` after the call; `false`: you closed it.
---@alias curl.CloseSocketFunction fun(fd: integer, userdata: any): false|nil
---`RESOLVER_START_FUNCTION`: `true` or non-zero aborts the resolve.
---@alias curl.ResolverStartFunction fun(userdata: any): boolean|integer|nil
---`PREREQFUNCTION`: nothing/`true`: OK; `false`/`CURL_PREREQFUNC_ABORT`.
---@alias curl.PrereqFunction fun(primary_ip: string?, local_ip: string?, primary_port: integer, local_port: integer, userdata: any): boolean|integer|nil
---`TRAILERFUNCTION`: an array of `"Name: value"`, or nil; `false` aborts.
---@alias curl.TrailerFunction fun(userdata: any): string[]|false|nil
---`CHUNK_BGN_FUNCTION`: nothing: OK; `false`/`CURL_CHUNK_BGN_FUNC_SKIP`; `CURL_CHUNK_BGN_FUNC_FAIL`.
---@alias curl.ChunkBgnFunction fun(fileinfo: curl.FileInfo, remains: integer, userdata: any): boolean|integer|nil
---`CHUNK_END_FUNCTION`: nothing: OK; `false`/`CURL_CHUNK_END_FUNC_FAIL`.
---@alias curl.ChunkEndFunction fun(userdata: any): boolean|integer|nil
---`FNMATCH_FUNCTION`: `true`/`CURL_FNMATCHFUNC_MATCH`; `false`/`CURL_FNMATCHFUNC_NOMATCH`; `CURL_FNMATCHFUNC_FAIL`.
---@alias curl.FnMatchFunction fun(pattern: string?, string: string?, userdata: any): boolean|integer|nil
---`SSH_KEYFUNCTION`: a `CURLKHSTAT_*` (anything else rejects).
---@alias curl.SshKeyFunction fun(knownkey: curl.SshKey?, foundkey: curl.SshKey?, match: integer, userdata: any): integer
---`SSH_HOSTKEYFUNCTION`: `true`/`CURLKHMATCH_OK`; otherwise mismatch.
---@alias curl.SshHostKeyFunction fun(keytype: integer, key: string, userdata: any): boolean|integer|nil
---`HSTSREADFUNCTION`: one entry per call, nil when done.
---@alias curl.HstsReadFunction fun(userdata: any): curl.HstsEntry|nil
---`HSTSWRITEFUNCTION`: nothing: OK; `false`: fail.
---@alias curl.HstsWriteFunction fun(entry: curl.HstsEntry, index: { index: integer, total: integer }, userdata: any): false|nil

---`CURLMOPT_SOCKETFUNCTION`: `what` is `CURL_POLL_IN/OUT/INOUT/REMOVE`; `easy`
---is nil for a handle libcurl made itself; `socketp` the value given to
---`multi:Assign`. Return nothing.
---@alias curl.SocketFunction fun(easy: curl.Easy?, socket: integer, what: integer, userdata: any, socketp: any)
---`CURLMOPT_TIMERFUNCTION`: -1 deletes the timer; 0 or more: call
---`multi:SocketAction(curl.CURL_SOCKET_TIMEOUT, 0)` after that many ms.
---@alias curl.TimerFunction fun(timeout_ms: integer, userdata: any)
---`CURLMOPT_PUSHFUNCTION`: an HTTP/2 server push; `headers` are `"name:value"`
---strings. `true` (or `curl.CURL_PUSH_OK`) accepts; anything else refuses it.
---@alias curl.PushFunction fun(parent: curl.Easy, pushed: curl.Easy, headers: string[], userdata: any): boolean|integer|nil

---The address given to `OPENSOCKETFUNCTION`.
---@class curl.SocketAddress
---@field family integer
---@field socktype integer
---@field protocol integer
---@field ip string
---@field port integer

---An entry given to `CHUNK_BGN_FUNCTION` (wildcard transfers).
---@class curl.FileInfo
---@field filename string?
---@field filetype integer
---@field time integer
---@field perm integer
---@field uid integer
---@field gid integer
---@field size integer
---@field hardlinks integer
---@field flags integer
---@field strings { time: string?, perm: string?, user: string?, group: string?, target: string? }

---A key given to `SSH_KEYFUNCTION`.
---@class curl.SshKey
---@field key string
---@field keytype integer

---An HSTS cache entry (`HSTSREADFUNCTION` returns them, `HSTSWRITEFUNCTION` gets them).
---@class curl.HstsEntry
---@field host string
---@field include_subdomains boolean?
---@field expire string? `"YYYYMMDD HH:MM:SS"`

---What `curl.VersionInfo()` returns (`curl_version_info(CURLVERSION_NOW)`).
---@class curl.VersionInfoTable
---@field version string
---@field version_num integer
---@field host string
---@field features integer bitmask of `CURL_VERSION_*`
---@field ssl_version string?
---@field libz_version string?
---@field ares string?
---@field libidn string?
---@field libssh_version string?
---@field brotli_version string?
---@field nghttp2_version string?
---@field protocols string[]

---A WebSocket frame's metadata (`easy:WsRecv`, `easy:WsMeta`; `curl_ws_meta`).
---@class curl.WsFrame
---@field age integer
---@field flags integer `CURLWS_*` bits
---@field offset integer of these bytes in the frame
---@field bytesleft integer of the frame after them
---@field len integer

---The iterator of `poller:Wait`: a ready descriptor and its `CURL_CSELECT_*`
---mask per call, nothing after the last.
---@alias curl.PollerIterator fun(): integer?, integer?

---An entry of `multi:Wait` / `multi:Poll`'s `extra` array (`struct curl_waitfd`).
---@class curl.WaitFd
---@field fd integer
---@field events integer `CURL_WAIT_POLLIN|...`
---@field revents? integer set by the call

---A JSON module for `curl.Fetch` (`curl.json`).
---@class curl.JsonModule
---@field encode fun(value: any): string
---@field decode fun(text: string): any

------------------------------------------------------------------ errors

---The errors the binding makes (`curl.Error` is their metatable);
---`tostring(err)` gives all of it on one line. Errors raised by Lua
---callbacks are raised again unchanged, whatever they are.
---@class curl.Error
---@field kind "easy"|"multi"|"share"|"url"|"usage"|"json"
---@field code integer the `CURLE_*` / `CURLM_*` / ... code; -1 for usage errors
---@field name string the code's C name (`"CURLE_COULDNT_CONNECT"`), `"USAGE"` or `"JSON"`
---@field message string libcurl's text plus detail (the error buffer, or the binding's explanation)
---@field method string where it happened (`"easy:Perform"`)
---@field cause any a callback's own error that ended the transfer (`easy:TransferError`)

------------------------------------------------------------------ the module

---`require "curl"`: libcurl around the multi socket interface. Every
---`curl.CURL...` constant of the headers the module was built with is a field
---(curl_options.lua); a name that does not exist raises a usage error.
---@class curl
---@field _NAME string `"lua-curl-socket"`
---@field _VERSION string the module's version (`"0.1.0"`)
---@field _PATH string the file the module was loaded from
---@field constants table<string, integer> every constant, in a plain table: nil where missing (feature tests)
---@field options curl.OptionTables normalised option and info names
---@field Error table the metatable of error values (`getmetatable(err) == curl.Error`)
---@field json curl.JsonModule? the JSON module of Fetch; default lua-cjson, else dkjson
local curl = {}

---The tables behind `SetOpt_X`, `GetInfo_X` and option tables.
---@class curl.OptionTables
---@field easy table<string, integer> normalised name → `CURLOPT_*` id
---@field multi table<string, integer> normalised name → `CURLMOPT_*` id
---@field info table<string, integer> normalised name → `CURLINFO_*` id
---@field share table<string, integer> normalised name → `CURLSHOPT_*` id
---@field easy_types table<integer, "long"|"values"|"off_t"|"string"|"slist"|"blob"|"function"|"cbptr"|"object"> id → kind (`curl_easy_option_next`)

---`curl_multi_init`, then the options of `options` (names ignore case and
---underscores; `CURLMOPT_X` and numeric keys also work).
---@param options? curl.MultiOptions
---@return curl.Multi
function curl.Multi(options) end

---`curl_easy_init`, then the options of `options`
---(`{ URL = "...", WriteFunction = f, FollowLocation = true }`).
---@param options? curl.EasyOptions
---@return curl.Easy
function curl.Easy(options) end

---`curl_share_init`; `options`: `{ Share = curl.CURL_LOCK_DATA_COOKIE }` or
---`{ Share = { lock_data, ... } }`.
---@param options? table<string, integer|integer[]>
---@return curl.Share
function curl.Share(options) end

---`curl_url`, then `curl_url_set(CURLUPART_URL, url, flags)` when `url` is given.
---@param url? string
---@param flags? integer `CURLU_*`
---@return curl.URL
function curl.URL(url, flags) end

---`curl_mime_init(easy)`.
---@param easy curl.Easy
---@return curl.Mime
function curl.Mime(easy) end

---An epoll descriptor watcher for the socket callback (and libcurl's timer).
---@return curl.Poller
function curl.Poller() end

---A byte buffer for `WRITEDATA` / `HEADERDATA` without a callback function:
---each chunk is appended in Rust, with no Lua call.
---@return curl.Buffer
function curl.Buffer() end

---One request, start to end, on a fresh easy (`curl_easy_perform`). A
---transport failure raises a `curl.Error`; an HTTP error status is a response.
---@param url string
---@param opts? curl.FetchOptions
---@return curl.Response
function curl.Fetch(url, opts) end

---`curl_version`.
---@return string
function curl.Version() end

---`curl_version_info(CURLVERSION_NOW)`.
---@return curl.VersionInfoTable
function curl.VersionInfo() end

---`curl_easy_strerror`.
---@param code integer `CURLE_*`
---@return string
function curl.EasyStrError(code) end

---`curl_multi_strerror`.
---@param code integer `CURLM_*`
---@return string
function curl.MultiStrError(code) end

---`curl_share_strerror`.
---@param code integer `CURLSHE_*`
---@return string
function curl.ShareStrError(code) end

---A `curl.Error` of kind `"easy"` (not raised): `name` the code's canonical C
---name, `message` by default `curl_easy_strerror`'s text, `method` by default
---`"curl.EasyError"`.
---@param code integer `CURLE_*`
---@param message? string
---@param method? string
---@return curl.Error
function curl.EasyError(code, message, method) end

---A `curl.Error` of kind `"multi"` (not raised): `name` the code's canonical C
---name, `message` by default `curl_multi_strerror`'s text, `method` by default
---`"curl.MultiError"`.
---@param code integer `CURLM_*`
---@param message? string
---@param method? string
---@return curl.Error
function curl.MultiError(code, message, method) end

------------------------------------------------------------------ Multi

---A multi handle (`CURLM *`). `SetOpt_X` per `CURLMOPT_*`: curl_options.lua.
---@class curl.Multi
local Multi = {}

---`curl_multi_socket_action`. `socket`: a descriptor or
---`curl.CURL_SOCKET_TIMEOUT`; `mask`: 0 (libcurl checks) or an OR of
---`CURL_CSELECT_IN/OUT/ERR`. Returns the number of running transfers.
---@param socket integer
---@param mask? integer
---@return integer running
function Multi:SocketAction(socket, mask) end

---`curl_multi_setopt` for every `CURLMOPT_*` of the linked libcurl; with a
---third argument a callback option's `*DATA` is set too.
---@param opt integer `curl.CURLMOPT_*`
---@param value any
---@param userdata? any
function Multi:SetOpt(opt, value, userdata) end

---`curl_multi_info_read`: `CURLMSG_DONE`, the transfer's `CURLE_*` code, the
---messages still queued and the Easy; `CURLMSG_NONE, 0, 0, nil` when empty.
---@return integer msg
---@return integer result
---@return integer remaining
---@return curl.Easy? easy
function Multi:InfoRead() end

---`curl_multi_timeout`: -1 none, 0 act now.
---@return integer ms
function Multi:Timeout() end

---`curl_multi_add_handle`. The multi keeps the easy alive until it is removed.
---@param easy curl.Easy
function Multi:AddHandle(easy) end

---`curl_multi_remove_handle`.
---@param easy curl.Easy
function Multi:RemoveHandle(easy) end

---`curl_multi_perform`.
---@return integer running
function Multi:Perform() end

---`curl_multi_wait`. `extra`: `{ fd = n, events = CURL_WAIT_POLLIN|... }`
---entries; each gets `revents`.
---@param ms integer
---@param extra? curl.WaitFd[]
---@return integer numfds
function Multi:Wait(ms, extra) end

---`curl_multi_poll`. `extra` as for `Wait`.
---@param ms integer
---@param extra? curl.WaitFd[]
---@return integer numfds
function Multi:Poll(ms, extra) end

---`curl_multi_wakeup`.
function Multi:Wakeup() end

---`curl_multi_assign`: any Lua value (nil clears), handed to the socket
---callback as `socketp`.
---@param socket integer
---@param value any
function Multi:Assign(socket, value) end

---The Easy objects currently added (the module's own list;
---`curl_multi_get_handles` needs libcurl 8.4).
---@return curl.Easy[]
function Multi:GetHandles() end

---Unhooks the callbacks, removes every easy, `curl_multi_cleanup`. Twice is harmless.
function Multi:Close() end

------------------------------------------------------------------ Easy

---An easy handle (`CURL *`). `SetOpt_X` per `CURLOPT_*` and `GetInfo_X` per
---`CURLINFO_*`: curl_options.lua.
---@class curl.Easy
local Easy = {}

---`curl_easy_setopt` for every `CURLOPT_*` the linked libcurl reports,
---converted by the option's type; with a callback option, `userdata` sets
---its `*DATA`. `nil` restores the default of string, list, blob, function
---and object options.
---@param opt integer `curl.CURLOPT_*`
---@param value any
---@param userdata? any
function Easy:SetOpt(opt, value, userdata) end

---`curl_easy_getinfo` for every `CURLINFO_*`, typed by the constant.
---@param info integer `curl.CURLINFO_*`
---@return any
function Easy:GetInfo(info) end

---`curl_easy_perform`. Refused while the easy is in a multi.
function Easy:Perform() end

---`curl_easy_pause` with `CURLPAUSE_*`.
---@param bitmask integer
function Easy:Pause(bitmask) end

---`curl_easy_reset`; also forgets the Lua callbacks, userdata and kept data
---(the share stays, as libcurl's reset keeps it).
function Easy:Reset() end

---`curl_easy_duphandle`: the copy has the same options, Lua callbacks and
---userdata, and is in no multi (a posted mime is not copied).
---@return curl.Easy
function Easy:DupHandle() end

---`curl_easy_escape` (any bytes).
---@param s string
---@return string
function Easy:Escape(s) end

---`curl_easy_unescape` (any bytes, NUL included).
---@param s string
---@return string
function Easy:Unescape(s) end

---`curl_easy_upkeep`.
function Easy:Upkeep() end

---`curl_easy_send` on a `CONNECT_ONLY` connection: bytes sent, 0 when the
---socket is not ready (`CURLE_AGAIN`).
---@param data string
---@return integer sent
function Easy:Send(data) end

---`curl_easy_recv` on a `CONNECT_ONLY` connection: nil when the socket is not
---ready (`CURLE_AGAIN`), `""` when the peer closed.
---@param max integer
---@return string?
function Easy:Recv(max) end

---The `curl.Error` a transfer on this easy that ended with `code` gives, as
---`Perform` would raise it (with the error buffer's detail, and `cause`: a
---callback's own error that ended the transfer). For `InfoRead` results.
---@param code integer `CURLE_*`
---@param method? string default `"easy:TransferError"`
---@return curl.Error
function Easy:TransferError(code, method) end

---`curl_ws_send`: how much of `data` libcurl took (0: not ready,
---`CURLE_AGAIN`). `flags`: `CURLWS_*`, default `CURLWS_TEXT`; `fragsize`
---with `CURLWS_OFFSET`, the whole frame's size.
---@param data string
---@param flags? integer
---@param fragsize? integer
---@return integer sent
function Easy:WsSend(data, flags, fragsize) end

---`curl_ws_recv` into a buffer of `max` bytes (default 65,536): the payload
---and the frame's metadata, or nil when nothing is there (`CURLE_AGAIN`).
---@param max? integer
---@return string? data
---@return curl.WsFrame? meta
function Easy:WsRecv(max) end

---`curl_ws_meta`: inside the write callback of a WebSocket transfer, the
---metadata of the frame the callback is getting; nil elsewhere.
---@return curl.WsFrame?
function Easy:WsMeta() end

---Removes the easy from its multi, then `curl_easy_cleanup`. Twice is harmless.
function Easy:Close() end

------------------------------------------------------------------ Share

---A share handle (`CURLSH *`).
---@class curl.Share
local Share = {}

---`curl_share_setopt` with `CURLSHOPT_SHARE` / `CURLSHOPT_UNSHARE` and a
---`CURL_LOCK_DATA_*` value (`LOCKFUNC`/`UNLOCKFUNC`/`USERDATA` are refused).
---@param opt integer `curl.CURLSHOPT_*`
---@param value integer `curl.CURL_LOCK_DATA_*`
function Share:SetOpt(opt, value) end

---`curl_share_setopt(CURLSHOPT_SHARE, lock_data)`.
---@param lock_data integer `curl.CURL_LOCK_DATA_*`
function Share:SetOpt_Share(lock_data) end

---`curl_share_setopt(CURLSHOPT_UNSHARE, lock_data)`.
---@param lock_data integer `curl.CURL_LOCK_DATA_*`
function Share:SetOpt_Unshare(lock_data) end

---`curl_share_setopt(CURLSHOPT_SHARE, lock_data)` (the C spelling).
---@param lock_data integer `curl.CURL_LOCK_DATA_*`
function Share:SetOpt_SHARE(lock_data) end

---`curl_share_setopt(CURLSHOPT_UNSHARE, lock_data)` (the C spelling).
---@param lock_data integer `curl.CURL_LOCK_DATA_*`
function Share:SetOpt_UNSHARE(lock_data) end

---`curl_share_cleanup`. Refused while an easy uses the share.
function Share:Close() end

------------------------------------------------------------------ URL

---A URL handle (`CURLU *`).
---@class curl.URL
local URL = {}

---`curl_url_set` with `CURLUPART_*` and `CURLU_*` flags; nil clears the part.
---@param part integer
---@param value string?
---@param flags? integer
function URL:Set(part, value, flags) end

---`curl_url_get`: nil when the URL has no such part.
---@param part integer
---@param flags? integer
---@return string?
function URL:Get(part, flags) end

---`curl_url_dup`.
---@return curl.URL
function URL:Dup() end

---`curl_url_cleanup`; refused while an easy uses it (`CURLU`).
function URL:Close() end

------------------------------------------------------------------ Mime

---A mime tree (`curl_mime *`), posted with `MIMEPOST`.
---@class curl.Mime
local Mime = {}

---`curl_mime_addpart`.
---@return curl.MimePart
function Mime:AddPart() end

---`curl_mime_free`; refused while an easy posts it or when it belongs to a part.
function Mime:Close() end

---A part of a mime tree (`curl_mimepart *`). Each method returns the part.
---@class curl.MimePart
local MimePart = {}

---`curl_mime_name`.
---@param s string?
---@return curl.MimePart
function MimePart:Name(s) end

---`curl_mime_filename`.
---@param s string?
---@return curl.MimePart
function MimePart:Filename(s) end

---`curl_mime_type`.
---@param s string?
---@return curl.MimePart
function MimePart:Type(s) end

---`curl_mime_encoder`.
---@param s string?
---@return curl.MimePart
function MimePart:Encoder(s) end

---`curl_mime_filedata`.
---@param path string?
---@return curl.MimePart
function MimePart:FileData(path) end

---`curl_mime_data` (copied, binary safe).
---@param bytes string?
---@return curl.MimePart
function MimePart:Data(bytes) end

---`curl_mime_headers` with an array of `"Name: value"` strings.
---@param headers string[]?
---@return curl.MimePart
function MimePart:Headers(headers) end

---`curl_mime_subparts`: `mime` becomes this part's body and belongs to it.
---@param mime curl.Mime?
---@return curl.MimePart
function MimePart:SubParts(mime) end

---`curl_mime_data_cb`: the body comes from `read(maxbytes, userdata)`
---(returns like `READFUNCTION`); `size` -1 when unknown (chunked).
---@param size integer
---@param read curl.ReadFunction
---@param seek? curl.SeekFunction
---@param userdata? any
---@return curl.MimePart
function MimePart:DataCallback(size, read, seek, userdata) end

------------------------------------------------------------------ Poller

---An epoll descriptor watcher: the socket and timer function of a multi
---(`multi:SetOpt_SOCKETFUNCTION(poller)`), driven by `Dispatch` or `Wait`.
---@class curl.Poller
local Poller = {}

---Watch `fd` for `what` (`CURL_POLL_IN/OUT/INOUT`; `CURL_POLL_REMOVE` un-watches).
---@param fd integer
---@param what integer
function Poller:Watch(fd, what) end

---Forget `fd` (unknown or closed descriptors are fine).
---@param fd integer
function Poller:Unwatch(fd) end

---`for fd, mask in poller:Wait(ms) do multi:SocketAction(fd, mask) end`:
---waits up to `ms` (nil or negative: no limit), then iterates the ready
---descriptors with `CURL_CSELECT_*` masks; ends with
---`curl.CURL_SOCKET_TIMEOUT, 0` when the timer expired.
---@param ms? integer
---@return curl.PollerIterator
---@return curl.Poller
function Poller:Wait(ms) end

---Arms the one-shot timer libcurl's timer callback asks for (-1 disarms).
---@param ms integer
function Poller:SetTimer(ms) end

---One turn in Rust: wait (up to `ms`; nil or negative: no limit), then
---`curl_multi_socket_action` for each ready socket and an expired timer.
---Returns the running count and the ms until libcurl's timer.
---@param multi curl.Multi
---@param ms? integer
---@return integer running
---@return integer timeout_ms
function Poller:Dispatch(multi, ms) end

---The epoll descriptor (readable while any watched descriptor has events).
---@return integer fd
function Poller:Fd() end

---Milliseconds until the timer expires: 0 when due, -1 when none is armed.
---@return integer ms
function Poller:Timeout() end

---cqueues' pollable protocol: `Fd()`.
---@return integer
function Poller:pollfd() end

---cqueues' pollable protocol: `"r"`.
---@return string
function Poller:events() end

---cqueues' pollable protocol: `Timeout()` in seconds, or nil when no timer is armed.
---@return number?
function Poller:timeout() end

---A monotonic clock in milliseconds (with fractions).
---@return number ms
function Poller:Now() end

---Descriptors watched.
---@return integer
function Poller:Count() end

---Closes the epoll descriptor (also done by garbage collection).
function Poller:Close() end

------------------------------------------------------------------ Buffer

---A byte buffer: `easy:SetOpt_WRITEDATA(buf)` (or `HEADERDATA`) without a
---write (header) function takes libcurl's data in Rust.
---@class curl.Buffer
local Buffer = {}

---The bytes held, and empties the buffer.
---@return string
function Buffer:Take() end

---The bytes held, leaving them.
---@return string
function Buffer:Peek() end

---Bytes held now.
---@return integer
function Buffer:Len() end

---Bytes taken in since the buffer was made.
---@return integer
function Buffer:Total() end

---Appends `s` (a buffer is also a file-like object).
---@param s string
function Buffer:Write(s) end

---Empties it (keeping its memory).
function Buffer:Clear() end

------------------------------------------------------------------ Fetch

---The options of `curl.Fetch` and `loop:Fetch` (anything else is a usage error).
---@class curl.FetchOptions
---@field method? string `"GET"`, `"HEAD"` (`NOBODY`), `"POST"`, `"PUT"`, any token (`CUSTOMREQUEST`); default GET, or POST with a body
---@field headers? curl.HeaderList a map `{ ["X-A"] = "1" }` (a list value repeats, `false` removes) or `"Name: value"` lines (`HTTPHEADER`)
---@field query? table<string, string|number|boolean|(string|number)[]> added to the URL, URL-encoded, keys sorted (`true`: the key alone; a list repeats the key)
---@field body? string a string to send (`POSTFIELDS`)
---@field json? any a value encoded as JSON, sent with `Content-Type: application/json`
---@field form? table<string, string|curl.FetchFormPart> multipart (`curl.Mime`, `MIMEPOST`)
---@field timeout? number seconds, fractions allowed (`TIMEOUT_MS`)
---@field connect_timeout? number seconds, fractions allowed (`CONNECTTIMEOUT_MS`)
---@field follow? boolean|integer redirects: followed by default (at most 10); a number sets the limit, `false` turns it off (`FOLLOWLOCATION`, `MAXREDIRS`)
---@field auth? string|curl.FetchAuth `"user:password"` (`USERPWD`), `{ user, password[, type =] }` or `{ bearer = token }`
---@field verify? boolean `false` skips certificate checks (`SSL_VERIFYPEER`, `SSL_VERIFYHOST`)
---@field ca? string a CA file (`CAINFO`)
---@field proxy? string a proxy URL (`PROXY`)
---@field output? string|file*|{ write: fun(self: any, data: string): any } a path or a file: the body streams there
---@field progress? fun(dltotal: integer, dlnow: integer, ultotal: integer, ulnow: integer): boolean? returning `true` aborts (`XFERINFOFUNCTION`)
---@field options? curl.EasyOptions any easy options by name, as for `curl.Easy`
---@field retries? integer how many times to try again after a transient error or a 408, 429 or 5xx response (default 0)
---@field retry_delay? number seconds before the first retry (default 1), doubled for each one after it
---@field retry_max_delay? number the longest wait, in seconds (default 30)

---A part of `FetchOptions.form` given as a table.
---@class curl.FetchFormPart
---@field file? string a file to send (`curl_mime_filedata`)
---@field data? string bytes to send (`curl_mime_data`)
---@field filename? string
---@field type? string

---`FetchOptions.auth` as a table.
---@class curl.FetchAuth
---@field user? string
---@field password? string
---@field [1] string? the user
---@field [2] string? the password
---@field type? "basic"|"digest"|"any"|"anysafe"|"ntlm"|"bearer" (`HTTPAUTH`)
---@field bearer? string a token (`XOAUTH2_BEARER`)

---The response of `curl.Fetch` / `loop:Fetch`.
---@class curl.Response
---@field status integer the final response's status (0 for `file://`)
---@field headers table<string, string|string[]> lower-case name → value of the final response (repeated headers joined with `", "`, `set-cookie` a list)
---@field body string? nil when `output` took it
---@field size integer body bytes
---@field url string the effective URL (`CURLINFO_EFFECTIVE_URL`)
---@field http_version string? `"1.0"`, `"1.1"`, `"2"`, `"3"` (`CURLINFO_HTTP_VERSION`)
---@field easy curl.Easy the easy, open, for any `GetInfo`
local Response = {}

---The body decoded (`curl.json`, lua-cjson or dkjson); a `curl.Error` of kind
---`"json"` when it is not JSON.
---@return any
function Response:Json() end

---The value of a header of the final response (any case).
---@param name string
---@return string|string[]|nil
function Response:Header(name) end

return curl
