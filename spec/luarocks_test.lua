-- `luarocks test` (the rockspecs' test section) runs this with luarocks'
-- interpreter, from the repository root: it builds the module for that
-- interpreter (scripts/build.sh; cargo does nothing when it is current),
-- then runs the busted specs in this process. Arguments after `--` go to
-- busted: `luarocks test -- -o TAP --filter=Poller`.
local function feature()
  if type(jit) == "table" then return "luajit" end
  local a, b = _VERSION:match("(%d)%.(%d)")
  return "lua" .. a .. b
end

local function fail(msg)
  io.stderr:write("luarocks test: ", msg, "\n")
  os.exit(1)
end

local f = io.open("spec/helper.lua", "rb")
if not f then fail("run it from the repository root (spec/helper.lua not found)") end
f:close()

local ok = pcall(require, "busted.runner")
if not ok then
  fail("busted is not installed for " .. _VERSION ..
    " (luarocks --lua-version=" .. (_VERSION:match("%d+%.%d+")) .. " install busted," ..
    " or Debian's lua-busted)")
end

local rc = os.execute("scripts/build.sh " .. feature())
if rc ~= true and rc ~= 0 then fail("building the module for " .. feature() .. " failed") end

-- busted reads the global `arg` as its command line
local args = { [0] = "busted" }
for i = 1, select("#", ...) do args[i] = select(i, ...) end
arg = args
require("busted.runner")({ standalone = false })
