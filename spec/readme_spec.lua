-- The README's Lua examples, run as written (only the server addresses are
-- replaced): every block with `-->` comments must print exactly those
-- lines, in order. The quick start (Fetch, JSON, multipart, a download
-- with progress, 500 URLs with a queue and retries, coroutines), the
-- SocketAction tour with the Poller, and the same with luv.
local H = require "helper"

local has_json = pcall(require, "cjson") or pcall(require, "dkjson")
local has_luv = pcall(require, "luv")

local function lua_blocks()
  local f = assert(io.open(H.root .. "/README.md"))
  local text = f:read("*a")
  f:close()
  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do
    local want = {}
    for line in code:gmatch("[^\n]*") do
      local w = line:match("%-%-> (.-)%s*$")
      if w then want[#want + 1] = w end
    end
    if #want > 0 then blocks[#blocks + 1] = { code = code, want = want } end
  end
  return blocks
end

local function run_block(code)
  code = code:gsub('package%.cpath = "build/lua54/%?%.so;" %.%. package%.cpath', "")
  code = code:gsub('package%.path = "lua/%?%.lua;" %.%. package%.path', "")
  code = code:gsub('"http://127%.0%.0%.1:8080', ('%q'):format(H.nginx_http):sub(1, -2))
  code = code:gsub('"http://127%.0%.0%.1:8081', ('%q'):format(H.fixture):sub(1, -2))
  local out = {}
  local env = setmetatable({ print = function(...)
    local t = { ... }
    for i = 1, select("#", ...) do t[i] = tostring(t[i]) end
    out[#out + 1] = table.concat(t, " ")
  end }, { __index = _G })
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

  it("has the quick start, the tour and the luv example, each with its output", function()
    assert.is_true(#blocks >= 8, #blocks .. " blocks with --> lines")
    assert.truthy(blocks[1].code:find("curl.Fetch", 1, true))
  end)

  for i, b in ipairs(blocks) do
    local first = table.concat(b.want, " / ")
    local why
    if (b.code:find("json =", 1, true) or b.code:find(":Json()", 1, true)) and not has_json then
      why = "no JSON module for " .. H.feature
    elseif b.code:find('require "luv"', 1, true) and not has_luv then
      why = "no luv for " .. H.feature
    end
    if why then
      pending(("block %d [%s]"):format(i, why))
    else
      it(("block %d prints %s"):format(i, first), function()
        assert.are.same(b.want, run_block(b.code))
      end)
    end
  end
end)
