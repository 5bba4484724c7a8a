local H = require "helper"
local curl = H.curl

describe("the module", function()
  it("is this project's build for the running interpreter", function()
    assert.are.equal(H.build_dir .. "/curl.so", H.so_path)
    assert.are.equal("lua-curl-socket", curl._NAME)
    -- the file the native code was loaded from is the one searchpath found
    assert.truthy(curl._PATH:find(H.feature .. "/curl.so", 1, true))
  end)

  it("exports libcurl's constants with libcurl's values", function()
    local expect = {
      CURLE_OK = 0, CURLE_UNSUPPORTED_PROTOCOL = 1, CURLE_COULDNT_CONNECT = 7,
      CURLE_WRITE_ERROR = 23, CURLE_OPERATION_TIMEDOUT = 28,
      CURLE_ABORTED_BY_CALLBACK = 42, CURLE_RECURSIVE_API_CALL = 93,
      CURLM_OK = 0, CURLM_BAD_HANDLE = 1, CURLM_ADDED_ALREADY = 7,
      CURLM_RECURSIVE_API_CALL = 8, CURLM_ABORTED_BY_CALLBACK = 11,
      CURLMSG_NONE = 0, CURLMSG_DONE = 1,
      CURL_POLL_NONE = 0, CURL_POLL_IN = 1, CURL_POLL_OUT = 2, CURL_POLL_INOUT = 3,
      CURL_POLL_REMOVE = 4,
      CURL_CSELECT_IN = 1, CURL_CSELECT_OUT = 2, CURL_CSELECT_ERR = 4,
      CURL_SOCKET_TIMEOUT = -1, CURL_SOCKET_BAD = -1,
      CURLMOPT_SOCKETFUNCTION = 20001, CURLMOPT_SOCKETDATA = 10002,
      CURLMOPT_PIPELINING = 3, CURLMOPT_TIMERFUNCTION = 20004, CURLMOPT_TIMERDATA = 10005,
      CURLMOPT_MAXCONNECTS = 6, CURLMOPT_MAX_TOTAL_CONNECTIONS = 13,
      CURLMOPT_MAX_CONCURRENT_STREAMS = 16,
      CURLOPT_URL = 10002, CURLOPT_WRITEFUNCTION = 20011, CURLOPT_WRITEDATA = 10001,
      CURLOPT_FOLLOWLOCATION = 52, CURLOPT_POSTFIELDS = 10015, CURLOPT_HTTPHEADER = 10023,
      CURLOPT_INFILESIZE_LARGE = 30115, CURLOPT_VERBOSE = 41,
      CURLINFO_RESPONSE_CODE = 0x200002, CURLINFO_EFFECTIVE_URL = 0x100001,
      CURLINFO_TOTAL_TIME = 0x300003, CURLINFO_SIZE_DOWNLOAD_T = 0x600008,
      CURLPAUSE_RECV = 1, CURLPAUSE_SEND = 4, CURLPAUSE_ALL = 5, CURLPAUSE_CONT = 0,
      CURL_WRITEFUNC_PAUSE = 0x10000001, CURL_READFUNC_ABORT = 0x10000000,
      CURL_READFUNC_PAUSE = 0x10000001,
      CURL_HTTP_VERSION_1_1 = 2, CURL_HTTP_VERSION_2_0 = 3,
      CURL_WAIT_POLLIN = 1, CURL_WAIT_POLLPRI = 2, CURL_WAIT_POLLOUT = 4,
      CURLAUTH_BASIC = 1, CURLAUTH_DIGEST = 2,
      CURLPIPE_NOTHING = 0, CURLPIPE_MULTIPLEX = 2,
    }
    for name, value in pairs(expect) do
      assert.are.equal(value, curl[name], name)
    end
  end)

  it("exports every constant family, not a subset", function()
    local count = {}
    for k, v in pairs(curl) do
      if type(v) == "number" then
        local fam = k:match("^(CURL%u*_)") or k:match("^(CURL_%u+)")
        if fam then count[fam] = (count[fam] or 0) + 1 end
      end
    end
    assert.is_true(count.CURLOPT_ > 250, "CURLOPT_ count " .. tostring(count.CURLOPT_))
    assert.is_true(count.CURLE_ > 90)
    assert.is_true(count.CURLINFO_ > 60)
    assert.is_true(count.CURLMOPT_ >= 16)
    assert.is_true(count.CURLM_ >= 12)
    -- every easy option libcurl reports has a constant
    for norm, id in pairs(curl.options.easy) do
      assert.is_number(id, norm)
    end
  end)

  it("reports versions", function()
    assert.truthy(curl.Version():match("^libcurl/%d+%.%d+"))
    local vi = curl.VersionInfo()
    assert.is_string(vi.version)
    assert.is_number(vi.version_num)
    assert.is_table(vi.protocols)
    local has_http = false
    for _, p in ipairs(vi.protocols) do if p == "http" then has_http = true end end
    assert.is_true(has_http)
  end)

  it("translates codes to text", function()
    -- (libcurl 8 spells it "Could not")
    assert.truthy(curl.EasyStrError(curl.CURLE_COULDNT_CONNECT):find("^Could[n' ]+o?t connect to server$"))
    assert.truthy(curl.MultiStrError(curl.CURLM_BAD_HANDLE):lower():find("invalid multi handle"))
    local ok, err = pcall(curl.EasyStrError, "x")
    assert.is_false(ok)
    assert.are.equal("usage", err.kind)
    assert.are.equal("curl.EasyStrError", err.method)
    assert.truthy(err.message:find("#1 'code'", 1, true))
  end)
end)
