-- The LuaLS definition files (types/): they parse, their types are defined,
-- and they annotate the whole public API: every method docs/reference.md
-- names, every raw method of the built module's classes, the loop helpers,
-- the Fetch options, and a SetOpt_X / GetInfo_X field for every option and
-- info of this build (types/curl_options.lua is what scripts/gen_types.lua
-- prints for it). lua-language-server itself is not needed.
--
-- No servers: this spec finds the build as spec/helper.lua does (CURL_REPO,
-- CURL_BUILD) without loading the helper, which starts them.
local function feature()
  if type(jit) == "table" then return "luajit" end
  local a, b = _VERSION:match("(%d)%.(%d)")
  return "lua" .. a .. b
end
local root = os.getenv("CURL_REPO") or "."
package.cpath = (os.getenv("CURL_BUILD") or (root .. "/build")) .. "/" .. feature() .. "/?.so;" .. package.cpath
package.path = root .. "/lua/?.lua;" .. package.path
local curl = require "curl"

local function read(path)
  local f = assert(io.open(root .. "/" .. path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function normalize(s) return (s:gsub("_", "")):lower() end

local TYPE_FILES = {
  "types/curl.lua", "types/curl_options.lua", "types/curl/loop.lua", "types/curl/loop/poller.lua",
  "types/curl/loop/luv.lua", "types/curl/loop/cqueues.lua", "types/curl/loop/websocket.lua",
}

------------------------------------------------------------------ the annotations

-- classes[name] = { fields = { name = line } }, and the aliases; each
-- `---@class X` binds the `local V = {}` after it, whose `function V:M(`
-- / `function V.M(` are X's methods.
local classes, aliases, lines = {}, {}, {}
do
  for _, path in ipairs(TYPE_FILES) do
    local current, vars = nil, {}
    for line in (read(path) .. "\n"):gmatch("([^\n]*)\n") do
      lines[#lines + 1] = { path = path, text = line }
      local class = line:match("^%-%-%-@class ([%w_%.]+)")
      local alias = line:match("^%-%-%-@alias ([%w_%.]+)")
      if class then
        current = class
        classes[class] = classes[class] or { fields = {} }
      elseif alias then
        aliases[alias] = true
        current = nil
      elseif line:match("^%-%-%-") then
        local field = current and line:match("^%-%-%-@field ([%w_]+)")
        if field then classes[current].fields[field] = line end
      else
        local var = line:match("^local ([%w_]+) = {}")
        if var and current then vars[var] = current end
        local v, m = line:match("^function ([%w_]+)[:%.]([%w_]+)%(")
        if v then
          assert(vars[v], path .. ": " .. line .. " (no ---@class for " .. v .. ")")
          classes[vars[v]].fields[m] = line
        end
        current = nil
      end
    end
  end
end

local function has(class, name)
  return classes[class] ~= nil and classes[class].fields[name] ~= nil
end

-- the normalised option names of a class's SetOpt_X (or GetInfo_X) fields
local function dynamic_names(class, prefix)
  local out = {}
  for name in pairs(classes[class].fields) do
    local tail = name:sub(1, #prefix) == prefix and name:sub(#prefix + 1)
    if tail then out[normalize(tail)] = name end
  end
  return out
end

local doc = read("docs/reference.md")
-- inline code spans of the reference (fenced blocks left out)
local inline = {}
do
  local text = doc:gsub("\n```.-\n```", "\n")
  for span in text:gmatch("`([^`\n]+)`") do inline[#inline + 1] = span end
end

local skipped = {} -- "Not supported"
for name in doc:match("## Not supported(.*)$"):gmatch("\n| (CURL[%w_]+) |") do skipped[name] = true end

-- the doc's object names -> classes
local OBJECTS = {
  multi = "curl.Multi", easy = "curl.Easy", share = "curl.Share", url = "curl.URL", mime = "curl.Mime",
  part = "curl.MimePart", poller = "curl.Poller", buffer = "curl.Buffer", r = "curl.Response",
  response = "curl.Response", loop = "curl.loop.Loop", timer = "curl.loop.Timer",
  ws = "curl.loop.WebSocket",
}

------------------------------------------------------------------ the specs

describe("LuaLS definitions (types/)", function()
  it("parse as Lua", function()
    for _, path in ipairs(TYPE_FILES) do
      local f, err = loadfile(root .. "/" .. path)
      assert.is_truthy(f, err)
    end
  end)

  it("are all listed here and installed by both rockspecs (share/lua/5.x/curl/types/)", function()
    local p = assert(io.popen("cd '" .. root .. "' && find types -name '*.lua'"))
    local found = {}
    for path in p:lines() do found[#found + 1] = path end
    p:close()
    table.sort(found)
    local listed = {}
    for i, path in ipairs(TYPE_FILES) do listed[i] = path end
    table.sort(listed)
    assert.are.same(listed, found)
    local rp = assert(io.popen("cd '" .. root .. "' && ls rockspec/*.rockspec"))
    local n = 0
    for rockspec in rp:lines() do
      n = n + 1
      local env = {}
      local chunk
      if setfenv then
        chunk = assert(loadstring(read(rockspec), rockspec))
        setfenv(chunk, env)
      else
        chunk = assert(load(read(rockspec), rockspec, "t", env))
      end
      chunk()
      local lua = env.build.install.lua
      local want = {}
      for _, path in ipairs(TYPE_FILES) do
        local module = "curl." .. path:gsub("%.lua$", ""):gsub("/", ".")
        want[module] = true
        assert.are.equal(path, lua[module], rockspec .. " does not install " .. path .. " as " .. module)
      end
      for module in pairs(lua) do
        if module:match("^curl%.types%.") then assert.is_true(want[module], rockspec .. ": " .. module) end
      end
    end
    rp:close()
    assert.are.equal(2, n)
  end)

  it("start with ---@meta and its module name", function()
    local want = {
      ["types/curl.lua"] = "curl", ["types/curl_options.lua"] = "_", ["types/curl/loop.lua"] = "curl.loop",
      ["types/curl/loop/poller.lua"] = "curl.loop.poller", ["types/curl/loop/luv.lua"] = "curl.loop.luv",
      ["types/curl/loop/cqueues.lua"] = "curl.loop.cqueues",
      ["types/curl/loop/websocket.lua"] = "curl.loop.websocket",
    }
    for _, path in ipairs(TYPE_FILES) do
      assert.are.equal("---@meta " .. want[path], read(path):match("^[^\n]*"), path)
    end
  end)

  it("use known annotations, balanced brackets, and only defined types", function()
    local tags = { meta = true, class = true, field = true, param = true, ["return"] = true, alias = true,
                   overload = true, async = true }
    local builtin = { ["nil"] = true, any = true, boolean = true, string = true, number = true, integer = true,
                      ["function"] = true, table = true, thread = true, userdata = true, fun = true,
                      ["true"] = true, ["false"] = true, file = true, self = true }
    -- the type expression starting at s[i]: brackets balanced, spaces only
    -- inside them or after "fun(...):"
    local function read_type(s, i)
      local depth, j = 0, i
      while j <= #s do
        local c = s:sub(j, j)
        if c:match("[%(%{<%[]") then
          depth = depth + 1
        elseif c:match("[%)%}>%]]") then
          depth = depth - 1
        elseif c == " " and depth == 0 and s:sub(j - 1, j - 1) ~= ":" then
          break
        end
        j = j + 1
      end
      return s:sub(i, j - 1)
    end
    local function check_type(ty, where)
      local bare = ty:gsub('"[^"]*"', '""')
      for name, after in bare:gmatch("([%a_][%w_%.]*)(%??:?)") do
        if after:sub(-1) ~= ":" then -- not a parameter or field name
          assert.is_true(builtin[name] or classes[name] ~= nil or aliases[name] ~= nil,
            "undefined type '" .. name .. "' in " .. where)
        end
      end
    end
    for _, l in ipairs(lines) do
      local where = l.path .. ": " .. l.text
      local tag, rest = l.text:match("^%-%-%-@(%a+)%s*(.*)$")
      if tag then
        assert.is_true(tags[tag] == true, "unknown annotation in " .. where)
        local _, open = l.text:gsub("[%(%{%[]", "")
        local _, close = l.text:gsub("[%)%}%]]", "")
        assert.are.equal(open, close, "unbalanced brackets in " .. where)
        local ty
        if tag == "field" then
          local name = rest:match("^(%[[^%]]+%]%??)") or rest:match("^([%w_]+%??)")
          assert.is_truthy(name, where)
          ty = read_type(rest, #name + 2)
        elseif tag == "param" then
          local name = rest:match("^([%w_%.]+%??)")
          assert.is_truthy(name, where)
          ty = read_type(rest, #name + 2)
        elseif tag == "return" then
          ty = read_type(rest, 1)
        elseif tag == "alias" then
          ty = rest:match("^[%w_%.]+%s+(.*)$")
        elseif tag == "overload" then
          ty = rest
        end
        if ty then
          assert.is_true(ty ~= "", "no type in " .. where)
          check_type(ty, where)
        end
      end
    end
  end)

  it("annotate every method docs/reference.md names", function()
    local n = 0
    for _, span in ipairs(inline) do
      for obj, method in span:gmatch("([%w_%.]+):([%w_]+)%(") do
        local class = OBJECTS[obj:match("([%w_]+)$")]
        if class then
          n = n + 1
          local opt = method:match("^SetOpt_(.+)$") or method:match("^GetInfo_(.+)$")
          if opt == "X" then
            -- the generic forms: the fields are per option
            assert.is_truthy(next(dynamic_names(class, method:sub(1, -2))), class .. " has no " .. method)
          elseif opt and not has(class, method) then
            -- SetOpt_WriteData: any spelling of an annotated option
            local prefix = method:match("^(%a+_)")
            assert.is_truthy(dynamic_names(class, prefix)[normalize(opt)],
              "types/ has no field for " .. obj .. ":" .. method .. " (" .. class .. ")")
          else
            assert.is_true(has(class, method), "types/ has no annotation for " .. obj .. ":" .. method ..
              " (" .. class .. ")")
          end
        end
      end
      -- the module's functions: curl.Multi(...), curl.Fetch(...)
      local fn = span:match("^curl%.(%u[%w_]*)%(")
      if fn then
        n = n + 1
        assert.is_true(has("curl", fn), "types/ has no annotation for curl." .. fn)
      end
      -- the backends' constructors: poller.new([multi][, opts])
      local backend = span:match("^(%a+)%.new%(")
      if backend then
        n = n + 1
        assert.is_true(has("curl.loop." .. backend, "new"), "types/ has no annotation for " .. backend .. ".new")
      end
    end
    assert.is_true(n > 130, "only " .. n .. " names found in docs/reference.md")
  end)

  it("annotate every raw method of the built module's classes", function()
    local e = curl.Easy()
    local m = curl.Mime(e)
    local objects = {
      ["curl.Multi"] = curl.Multi(), ["curl.Easy"] = e, ["curl.Poller"] = curl.Poller(),
      ["curl.Share"] = curl.Share(), ["curl.URL"] = curl.URL(), ["curl.Mime"] = m,
      ["curl.MimePart"] = m:AddPart(), ["curl.Buffer"] = curl.Buffer(),
    }
    for class, obj in pairs(objects) do
      local n = 0
      for name in pairs(debug.getmetatable(obj).__index) do
        if type(name) == "string" and not name:match("^SetOpt_") and not name:match("^GetInfo_") then
          n = n + 1
          assert.is_true(has(class, name), "types/ has no annotation for " .. class .. ":" .. name)
        end
      end
      assert.is_true(n >= 2, class)
    end
    m:Close()
    e:Close()
  end)

  it("annotate the module's functions and fields", function()
    for k, v in pairs(curl) do
      if type(k) == "string" and not k:match("^_%l") and not k:match("^CURL") and not k:match("^LIBCURL") then
        assert.is_true(has("curl", k), "types/ has no annotation for curl." .. k .. " (" .. type(v) .. ")")
      end
    end
    for _, k in ipairs { "json", "_NAME", "_VERSION", "_PATH", "constants", "options", "Error" } do
      assert.is_true(has("curl", k), "curl." .. k)
    end
    for k in pairs(curl.options) do
      assert.is_true(has("curl.OptionTables", k), "curl.options." .. k)
    end
    for k in pairs(curl.VersionInfo()) do
      assert.is_true(has("curl.VersionInfoTable", k), "curl.VersionInfo()." .. k)
    end
  end)

  it("annotate the errors and the Fetch response", function()
    for _, k in ipairs { "kind", "code", "name", "message", "method", "cause" } do
      assert.is_true(has("curl.Error", k), "curl.Error." .. k)
    end
    for _, k in ipairs { "status", "headers", "body", "size", "url", "http_version", "easy", "Json", "Header" } do
      assert.is_true(has("curl.Response", k), "curl.Response." .. k)
    end
    for k, v in pairs(curl._fetch().Response) do
      if type(v) == "function" and not k:match("^__") then
        assert.is_true(has("curl.Response", k), "curl.Response:" .. k)
      end
    end
  end)

  it("annotate every Fetch option, and only those", function()
    local known = {}
    for name in read("src/fetch.lua"):match("\nlocal KNOWN = (%b{})"):gmatch("([%a_]+) = true") do
      known[name] = true
      assert.is_true(has("curl.FetchOptions", name), "curl.FetchOptions has no " .. name)
    end
    for name in pairs(classes["curl.FetchOptions"].fields) do
      assert.is_true(known[name], "curl.FetchOptions." .. name .. " is not an option of src/fetch.lua")
    end
    -- the reference's option table
    local section = doc:match("\n## Fetch\n(.-)\n## ")
    local n = 0
    for row in section:gmatch("\n| (`[^|]+) |") do
      for name in row:gmatch("`([%a_]+)`") do
        n = n + 1
        assert.is_true(has("curl.FetchOptions", name), "curl.FetchOptions has no " .. name)
      end
    end
    assert.is_true(n >= 19, "only " .. n .. " options in the reference's table")
  end)

  it("annotate the loop helpers", function()
    local Loop = require "curl.loop"
    for k, v in pairs(Loop) do
      if type(v) == "function" and not k:match("^_") then
        assert.is_true(has("curl.loop.Loop", k), "types/ has no annotation for curl.loop.Loop." .. k)
      end
    end
    for _, k in ipairs { "on_error", "max_active", "warn", "multi", "backend" } do
      assert.is_true(has("curl.loop.Loop", k), "curl.loop.Loop." .. k)
    end
    assert.is_true(has("curl.loop.Backend", "poller"))
    local loop = require("curl.loop.poller").new()
    local timer = loop:After(60000, function() end)
    for k in pairs(getmetatable(timer).__index) do
      if not k:match("^_") then
        assert.is_true(has("curl.loop.Timer", k), "types/ has no annotation for timer:" .. k)
      end
    end
    loop:Close()
    -- WebSocket objects and the backends' modules, from their source
    for m in read("lua/curl/loop/websocket.lua"):gmatch("\nfunction WS:(%u[%w_]*)%(") do
      assert.is_true(has("curl.loop.WebSocket", m), "types/ has no annotation for ws:" .. m)
    end
    for _, k in ipairs { "close_code", "close_reason" } do
      assert.is_true(has("curl.loop.WebSocket", k), "curl.loop.WebSocket." .. k)
    end
    for _, b in ipairs { "poller", "luv", "cqueues", "websocket" } do
      local n = 0
      for f in read("lua/curl/loop/" .. b .. ".lua"):gmatch("\nfunction M%.([%w_]+)%(") do
        n = n + 1
        assert.is_true(has("curl.loop." .. b, f), "types/ has no annotation for curl.loop." .. b .. "." .. f)
      end
      assert.is_true(n >= 1, b)
    end
  end)

  describe("types/curl_options.lua", function()
    local gen = assert(loadfile(root .. "/scripts/gen_types.lua"))(curl, root)
    local file = read("types/curl_options.lua")
    -- the build the file was generated from (its header line)
    local same_build = gen:match("\n%-%- libcurl headers [^\n]*") == file:match("\n%-%- libcurl headers [^\n]*")

    it("is what scripts/gen_types.lua prints for this build", function()
      if same_build then
        assert.is_true(gen == file, "types/curl_options.lua is stale: lua5.4 scripts/gen_types.lua > types/curl_options.lua")
      else
        -- another libcurl (the bundled one): each SetOpt_X / GetInfo_X this
        -- build has is in the file with the same type
        local fields = {}
        for name, ty in file:gmatch("\n%-%-%-@field ((%a+_[%w_]+) [^#\n]*)") do fields[name] = ty end
        local n = 0
        for name, ty in gen:gmatch("\n%-%-%-@field ((%a+_[%w_]+) [^#\n]*)") do
          if name:match("^SetOpt_") or name:match("^GetInfo_") then
            n = n + 1
            assert.are.equal(ty, fields[name], name)
          end
        end
        assert.is_true(n > 300)
      end
    end)

    it("has SetOpt_X for every easy option, GetInfo_X for every info, except the refused ones", function()
      local setopt, getinfo = dynamic_names("curl.Easy", "SetOpt_"), dynamic_names("curl.Easy", "GetInfo_")
      local refused = {}
      for name in pairs(skipped) do refused[normalize(name:gsub("^CURL%u*_", ""))] = name end
      for n in pairs(curl.options.easy) do
        if refused[n] and refused[n]:match("^CURLOPT_") then
          assert.is_nil(setopt[n], "a field for the refused option " .. refused[n])
        else
          assert.is_truthy(setopt[n], "no SetOpt_ field for the easy option '" .. n .. "'")
        end
      end
      for n in pairs(curl.options.info) do
        if refused[n] and refused[n]:match("^CURLINFO_") then
          assert.is_nil(getinfo[n], "a field for the refused info " .. refused[n])
        else
          assert.is_truthy(getinfo[n], "no GetInfo_ field for the info '" .. n .. "'")
        end
      end
    end)

    it("has SetOpt_X on curl.Multi for every multi option the module supports", function()
      local setopt = dynamic_names("curl.Multi", "SetOpt_")
      for n, id in pairs(curl.options.multi) do
        if not setopt[n] then
          local m = curl.Multi()
          local ok, err = pcall(m.SetOpt, m, id, nil)
          m:Close()
          assert.is_false(ok, "no SetOpt_ field for the multi option '" .. n .. "'")
          assert.is_truthy(tostring(err.message):find("not supported by this version of the module", 1, true),
            "no SetOpt_ field for the multi option '" .. n .. "': " .. tostring(err))
        end
      end
    end)

    it("has every constant of this build", function()
      for k in pairs(curl.constants) do
        if same_build then assert.is_true(has("curl", k), "no field for curl." .. k) end
      end
      for _, k in ipairs { "CURLOPT_URL", "CURLE_OK", "CURL_POLL_IN", "CURLMSG_DONE", "CURLINFO_RESPONSE_CODE" } do
        assert.is_true(has("curl", k), k)
      end
    end)

    it("types the options by kind", function()
      local easy = classes["curl.Easy"].fields
      local function ty(name) return easy[name]:match("^%-%-%-@field [%w_]+ (.-) #") end
      assert.are.equal("fun(self: curl.Easy, value: integer|boolean)", ty("SetOpt_FOLLOWLOCATION"))
      assert.are.equal("fun(self: curl.Easy, value: string?)", ty("SetOpt_URL"))
      assert.are.equal("fun(self: curl.Easy, value: curl.HeaderList?)", ty("SetOpt_HTTPHEADER"))
      assert.are.equal("fun(self: curl.Easy, value: string[]?)", ty("SetOpt_RESOLVE"))
      assert.are.equal("fun(self: curl.Easy, value: integer)", ty("SetOpt_MAXFILESIZE_LARGE"))
      assert.are.equal("fun(self: curl.Easy, fn: curl.WriteFunction?, userdata?: any)", ty("SetOpt_WRITEFUNCTION"))
      assert.are.equal("fun(self: curl.Easy, value: any)", ty("SetOpt_WRITEDATA"))
      assert.are.equal("fun(self: curl.Easy, value: curl.Share?)", ty("SetOpt_SHARE"))
      assert.are.equal("fun(self: curl.Easy): integer", ty("GetInfo_RESPONSE_CODE"))
      assert.are.equal("fun(self: curl.Easy): number", ty("GetInfo_TOTAL_TIME"))
      assert.are.equal("fun(self: curl.Easy): string?", ty("GetInfo_EFFECTIVE_URL"))
      -- every callback option has its function type
      for name, line in pairs(easy) do
        if name:match("^SetOpt_") and line:match("%(function%)") then
          assert.is_truthy(line:match("fn: curl%.%u%w+Function%?"), line)
        end
      end
    end)
  end)
end)
