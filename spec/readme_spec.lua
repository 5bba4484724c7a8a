-- The README's tour code blocks, run as written (only the server address is
-- replaced): 200 transfers to nginx through SocketAction with the Poller,
-- and again with luv; each must end CURLE_OK with the right byte count.
local H = require "helper"

local function lua_blocks()
  local f = assert(io.open(H.root .. "/README.md"))
  local text = f:read("*a")
  f:close()
  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end
  return blocks
end

local function run_block(code)
  code = code:gsub('package%.cpath = "build/lua54/%?%.so;" %.%. package%.cpath', "")
  code = code:gsub('"http://127%.0%.0%.1:8080/1k"', ('%q'):format(H.nginx_http .. "/1k"))
  code = code:gsub('"http://127%.0%.0%.1:8081/echo"', ('%q'):format(H.url("/echo")))
  code = code:gsub('package%.path = "lua/%?%.lua;" %.%. package%.path', "")
  local out = {}
  local env = setmetatable({ print = function(...) out[#out + 1] = table.concat({ ... }, " ") end },
                           { __index = _G })
  local chunk
  if setfenv then
    chunk = assert(loadstring(code, "=README"))
    setfenv(chunk, env)
  else
    chunk = assert(load(code, "=README", "t", env))
  end
  chunk()
  return out
end

describe("README", function()
  local blocks = lua_blocks()

  it("has the tour and the luv example", function()
    assert.is_true(#blocks >= 3)
  end)

  -- the blocks in order: the quick start, the tour, the luv example
  it("quick start: Fetch, a POST of JSON, a loop with coroutines", function()
    assert.truthy(blocks[1]:find("curl.Fetch", 1, true))
    local out = run_block(blocks[1])
    assert.are.same({ "200 application/octet-stream 1024", "got 3 of 3" }, out)
  end)

  it("tour: 200 transfers through SocketAction and the Poller", function()
    local out = run_block(blocks[2])
    assert.are.same({ "200 transfers ok, " .. (200 * 1024) .. " bytes" }, out)
  end)

  it("luv example: 200 transfers through uv polls and a uv timer", function()
    if not pcall(require, "luv") then return pending("no luv for " .. H.feature) end
    local out = run_block(blocks[3])
    assert.are.same({ "200 transfers ok, " .. (200 * 1024) .. " bytes" }, out)
  end)
end)
