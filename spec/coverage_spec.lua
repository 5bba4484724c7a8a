-- Generated check: every option and info the linked libcurl reports is either
-- handled by the module or listed in docs/reference.md's "Not supported"
-- table with a reason; every method and callback has a reference entry.
local H = require "helper"
local curl = H.curl

local doc = assert(io.open(H.root .. "/docs/reference.md")):read("*a")
local skipped = {}
for name in doc:match("## Not supported(.*)$"):gmatch("\n| (CURL[%w_]+) |") do
  skipped[name] = true
end

-- one constant name per id, preferring the canonical one
local function names_by_id(prefix, ids)
  local out = {}
  for k, v in pairs(curl) do
    if type(k) == "string" and k:sub(1, #prefix) == prefix and ids[v] then
      if not out[v] or skipped[k] or #k < #out[v] then out[v] = k end
    end
  end
  return out
end

local neutral = { long = 0, values = 0, off_t = 0, string = nil, slist = nil, blob = nil,
                  ["function"] = nil, cbptr = nil, object = nil }

describe("coverage of the linked libcurl", function()
  it("lists some skipped names", function()
    assert.is_true(skipped.CURLOPT_STDERR)
    assert.is_true(skipped.CURLINFO_TLS_SSL_PTR)
  end)

  it("handles every easy option or lists it with a reason", function()
    local types = curl.options.easy_types
    local names = names_by_id("CURLOPT_", types)
    local n, refused = 0, 0
    for id, kind in pairs(types) do
      local name = names[id] or ("option " .. id)
      local e = curl.Easy()
      local ok, err = pcall(e.SetOpt, e, id, neutral[kind])
      if not ok and err.kind == "usage" then
        refused = refused + 1
        assert.is_true(skipped[name] == true, name .. " is refused but not listed: " .. err.message)
      else
        assert.is_nil(skipped[name], name .. " is listed as not supported but works")
      end
      n = n + 1
      e:Close()
    end
    assert.is_true(n > 250, "only " .. n .. " options")
    assert.are.equal(10, refused)
  end)

  it("gets every info or lists it with a reason", function()
    local e = curl.Easy { URL = H.url("/size/1"), WriteFunction = function() end }
    e:Perform()
    local ids = {}
    for _, id in pairs(curl.options.info) do ids[id] = true end
    local names = names_by_id("CURLINFO_", ids)
    for id in pairs(ids) do
      local ok, err = pcall(e.GetInfo, e, id)
      local name = names[id]
      if not ok and err.kind == "usage" then
        assert.is_true(skipped[name] == true, name .. " is refused but not listed: " .. err.message)
      else
        assert.is_nil(skipped[name], name .. " is listed as not supported but works")
      end
    end
  end)

  it("documents every method of every class", function()
    local e = curl.Easy()
    local objects = {
      multi = curl.Multi(), easy = e, poller = curl.Poller(), share = curl.Share(),
      url = curl.URL(), mime = curl.Mime(e), part = curl.Mime(e):AddPart(),
      buffer = curl.Buffer(),
    }
    for prefix, obj in pairs(objects) do
      local methods = debug.getmetatable(obj).__index
      local n = 0
      for name in pairs(methods) do
        if type(name) == "string" and not name:match("^SetOpt_") and not name:match("^GetInfo_") then
          n = n + 1
          assert.truthy(doc:find(prefix .. ":" .. name .. "(", 1, true),
            "docs/reference.md has no entry for " .. prefix .. ":" .. name)
        end
      end
      assert.is_true(n >= 2, prefix)
    end
  end)

  it("documents every callback option", function()
    local names = names_by_id("CURLOPT_", curl.options.easy_types)
    for id, kind in pairs(curl.options.easy_types) do
      if kind == "function" then
        local name = names[id]
        local short = name:sub(9)
        assert.is_true(skipped[name] or doc:find("`" .. short .. "`", 1, true) ~= nil,
          name .. " has no callback entry")
      end
    end
  end)
end)
