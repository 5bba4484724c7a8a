-- Build from a checkout: `luarocks make rockspec/lua-curl-socket-scm-1.rockspec`
-- (run from the repository root). Needs Rust >= 1.88 (cargo) and libcurl's
-- development files (Debian: libcurl4-openssl-dev).
rockspec_format = "3.0"
package = "lua-curl-socket"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built in place with `luarocks make`
}
description = {
  summary = "libcurl for Lua around the multi socket interface (Rust + mlua)",
  detailed = [[
    multi:SocketAction, multi:InfoRead, socket and timer callbacks in Lua,
    easy handles with libcurl's options, a built-in epoll Poller, and errors
    from callbacks re-raised unchanged. Lua 5.1-5.4 and LuaJIT.
  ]],
  license = "MIT",
}
dependencies = { "lua >= 5.1, < 5.5" }
build = {
  type = "command",
  -- One cargo feature per interpreter, named as luarocks-build-rust-mlua names
  -- them (lua51 ... lua54, luajit), picked by asking the interpreter itself.
  build_command = [[
    F=$("$(LUA)" -e 'if jit then print("luajit") else print("lua" .. (_VERSION:match("%d+%.%d+"):gsub("%.", ""))) end') &&
    cargo build --release --locked --features "$F" --target-dir "target/$F" &&
    mkdir -p .rock && cp "target/$F/release/liblcurlsock.so" .rock/curl.so
  ]],
  install = {
    lib = { curl = ".rock/curl.so" },
    -- event-loop helpers (never curl.lua / curl/init.lua: they would shadow
    -- the native module)
    lua = {
      ["curl.loop"] = "lua/curl/loop.lua",
      ["curl.loop.poller"] = "lua/curl/loop/poller.lua",
      ["curl.loop.luv"] = "lua/curl/loop/luv.lua",
      ["curl.loop.cqueues"] = "lua/curl/loop/cqueues.lua",
    },
  },
}
