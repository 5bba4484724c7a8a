-- Build from a checkout, from the repository root:
--   luarocks make rockspec/lua-curl-socket-scm-1.rockspec
-- Needs Rust >= 1.88 (cargo), a C compiler and libcurl's development files
-- (Debian: libcurl4-openssl-dev); the build says which is missing.
-- Released versions have their own rockspec beside this one.
rockspec_format = "3.0"
package = "lua-curl-socket"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-curl-socket/lua-curl-socket.git",
  branch = "main",
}
description = {
  summary = "libcurl for Lua around the multi socket interface (Rust + mlua)",
  detailed = [[
    multi:SocketAction, multi:InfoRead, socket and timer callbacks in Lua,
    easy handles with libcurl's options, a built-in epoll Poller, and errors
    from callbacks re-raised unchanged. Lua 5.1-5.4 and LuaJIT.
  ]],
  homepage = "https://github.com/lua-curl-socket/lua-curl-socket",
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5" }
build = {
  type = "command",
  build_command = [[sh scripts/rock-build.sh "$(LUA)"]],
  install = {
    lib = { curl = ".rock/curl.so" },
    lua = {
      ["curl.loop"] = "lua/curl/loop.lua",
      ["curl.loop.poller"] = "lua/curl/loop/poller.lua",
      ["curl.loop.luv"] = "lua/curl/loop/luv.lua",
      ["curl.loop.cqueues"] = "lua/curl/loop/cqueues.lua",
      ["curl.loop.websocket"] = "lua/curl/loop/websocket.lua",
      ["curl.types.curl"] = "types/curl.lua",
      ["curl.types.curl_options"] = "types/curl_options.lua",
      ["curl.types.curl.loop"] = "types/curl/loop.lua",
      ["curl.types.curl.loop.poller"] = "types/curl/loop/poller.lua",
      ["curl.types.curl.loop.luv"] = "types/curl/loop/luv.lua",
      ["curl.types.curl.loop.cqueues"] = "types/curl/loop/cqueues.lua",
      ["curl.types.curl.loop.websocket"] = "types/curl/loop/websocket.lua",
    },
  },
  copy_directories = { "docs", "examples" },
}
test = {
  type = "command",
  script = "spec/luarocks_test.lua",
}
