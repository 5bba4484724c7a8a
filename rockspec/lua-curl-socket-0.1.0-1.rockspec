-- Release 0.1.0. `make rock` packs it with its sources and the Rust crates
-- they need into lua-curl-socket-0.1.0-1.src.rock, which installs with no
-- network: `luarocks install ./lua-curl-socket-0.1.0-1.src.rock`.
-- Building needs Rust >= 1.88 (cargo), a C compiler and libcurl's
-- development files (Debian: libcurl4-openssl-dev); the build says which is
-- missing. The version matches Cargo.toml and curl._VERSION (make rock checks).
rockspec_format = "3.0"
package = "lua-curl-socket"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/lua-curl-socket/lua-curl-socket.git",
  tag = "v0.1.0",
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
  -- checks cargo, rustc, a C compiler, libcurl's headers and the Lua version,
  -- then builds with the cargo feature for the interpreter luarocks targets
  build_command = [[sh scripts/rock-build.sh "$(LUA)"]],
  install = {
    lib = { curl = ".rock/curl.so" },
    -- event-loop helpers (never curl.lua / curl/init.lua: they would shadow
    -- the native module)
    lua = {
      ["curl.loop"] = "lua/curl/loop.lua",
      ["curl.loop.poller"] = "lua/curl/loop/poller.lua",
      ["curl.loop.luv"] = "lua/curl/loop/luv.lua",
      ["curl.loop.cqueues"] = "lua/curl/loop/cqueues.lua",
      ["curl.loop.websocket"] = "lua/curl/loop/websocket.lua",
      -- LuaLS definitions (docs/editor.md), in share/lua/5.x/curl/types/:
      -- point lua-language-server's workspace.library there
      ["curl.types.curl"] = "types/curl.lua",
      ["curl.types.curl_options"] = "types/curl_options.lua",
      ["curl.types.curl.loop"] = "types/curl/loop.lua",
      ["curl.types.curl.loop.poller"] = "types/curl/loop/poller.lua",
      ["curl.types.curl.loop.luv"] = "types/curl/loop/luv.lua",
      ["curl.types.curl.loop.cqueues"] = "types/curl/loop/cqueues.lua",
      ["curl.types.curl.loop.websocket"] = "types/curl/loop/websocket.lua",
    },
  },
  -- the docs and examples, under the rock's directory in the tree
  -- (luarocks doc lua-curl-socket)
  copy_directories = { "docs", "examples" },
}
test = {
  -- builds the module for luarocks' interpreter if needed, then runs the
  -- busted specs on it (busted must be installed: luarocks install busted)
  type = "command",
  script = "spec/luarocks_test.lua",
}
