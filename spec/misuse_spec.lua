-- Every easy option, given every Lua type it does not take, is a usage error
-- naming the method and the option, and leaves the handle as it was.
local H = require "helper"
local curl = H.curl

local wrong = {
  long = { "x", {}, function() end, 1.5, "nil" },
  values = { "x", {}, function() end, 1.5, "nil" },
  off_t = { true, "x", {}, function() end, 1.5, "nil" },
  string = { {}, function() end, true },
  blob = { {}, function() end, true, 7 },
  slist = { "x", 1, true, function() end, { "ok", {} } },
  ["function"] = { "x", 1, {}, true },
  object = { "x", 1, {}, function() end, true },
  cbptr = {},
}

-- Object options with their own value types.
local special = {
  CURLOPT_POSTFIELDS = "string", CURLOPT_COPYPOSTFIELDS = "string",
  CURLOPT_PRIVATE = "cbptr",
}

local function describe_value(v)
  if v == "nil" then return "nil" end
  return type(v)
end

describe("misuse of every option", function()
  after_each(H.gc)

  it("gives usage errors and changes nothing", function()
    local names = {}
    for k, id in pairs(curl) do
      if type(k) == "string" and k:match("^CURLOPT_") and curl.options.easy_types[id] then
        -- one name per id (aliases share it); prefer the one 'special' knows
        if not names[id] or special[k] then names[id] = k end
      end
    end
    local got = {}
    local e = curl.Easy { URL = H.url("/size/321"), WriteFunction = function(d) got[#got + 1] = d end,
      HttpHeader = { "X-Keep: 1" } }
    local checked = 0
    for id, name in pairs(names) do
      local kind = special[name] or curl.options.easy_types[id]
      for _, v in ipairs(wrong[kind] or {}) do
        local value = v
        if v == "nil" then value = nil end
        local ok, err = pcall(e.SetOpt, e, id, value)
        if ok then
          error(("%s (%s) accepted a %s"):format(name, kind, describe_value(v)))
        end
        assert.are.equal("usage", err.kind, name .. " " .. tostring(err))
        assert.are.equal("easy:SetOpt", err.method)
        assert.truthy(err.message:find("CURLOPT_", 1, true), name .. ": " .. err.message)
        checked = checked + 1
      end
    end
    assert.is_true(checked > 1000, "checked " .. checked)
    -- the handle is as it was: same URL, same callback, same headers
    e:Perform()
    assert.are.equal(H.pattern(321), table.concat(got))
    assert.are.equal(200, e:GetInfo_ResponseCode())
  end)

  it("multi options too", function()
    local m = curl.Multi()
    for k, id in pairs(curl) do
      local n = type(k) == "string" and k:match("^CURLMOPT_(.+)$")
      if n and n ~= "LASTENTRY" then
        local ok, err = pcall(m.SetOpt, m, id, {})
        if n == "SOCKETDATA" or n == "TIMERDATA" or n == "PUSHDATA" or n:match("_BL$") then
          -- any Lua value is userdata; the block lists take arrays
        else
          assert.is_false(ok, k)
          assert.are.equal("usage", err.kind, k)
        end
      end
    end
    assert.are.equal(-1, m:Timeout())
  end)
end)

describe("misspellings and near misses say what was meant", function()
  local usage_error = H.usage_error

  it("an unknown curl.CURL constant is a usage error with a did-you-mean; curl.constants tests", function()
    local err = usage_error(function() return curl.CURLOPT_FOLLOWLOCATON end,
                            "did you mean CURLOPT_FOLLOWLOCATION%?")
    assert.are.equal("curl.CURLOPT_FOLLOWLOCATON", err.method)
    usage_error(function() return curl.CURLE_OPERATION_TIMEOUT end, "did you mean CURLE_OPERATION_TIMEDOUT%?")
    usage_error(function() return curl.CURLXYZZY_NOTHING_LIKE_IT end, "curl%.constants%.CURLXYZZY")
    assert.is_nil(curl.constants.CURLOPT_FOLLOWLOCATON)
    assert.are.equal(curl.CURLOPT_URL, curl.constants.CURLOPT_URL)
    assert.is_nil(curl.not_a_constant) -- other names stay plain nil
  end)

  it("unknown SetOpt_X, GetInfo_X and option-table names get a did-you-mean", function()
    local e = curl.Easy()
    usage_error(function() e:SetOpt_FollowLocaton(true) end, "did you mean CURLOPT_FOLLOWLOCATION%?")
    usage_error(function() e:GetInfo_ResponseCod() end, "did you mean CURLINFO_RESPONSE_CODE%?")
    usage_error(function() curl.Easy { FollowLocaton = true } end, "did you mean CURLOPT_FOLLOWLOCATION%?")
    usage_error(function() curl.Multi():SetOpt_MaxConects(3) end, "did you mean CURLMOPT_MAXCONNECTS%?")
    e:Close()
  end)

  it("a fraction for an integer option is refused, naming the _MS option for seconds", function()
    local e = curl.Easy()
    usage_error(function() e:SetOpt_Timeout(1.5) end, "use CURLOPT_TIMEOUT_MS, in milliseconds %(1500%)")
    usage_error(function() e:SetOpt(curl.CURLOPT_CONNECTTIMEOUT, 0.25) end, "CURLOPT_CONNECTTIMEOUT_MS.*%(250%)")
    local err = usage_error(function() e:SetOpt_MaxRedirs(2.5) end, "got the fraction 2%.5")
    assert.is_nil(err.message:find("_MS", 1, true))
    e:SetOpt_Timeout(2) -- whole seconds are fine
    e:Close()
  end)
end)
