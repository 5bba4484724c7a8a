-- Easy callbacks that need a protocol other than HTTP, through real
-- transfers on 127.0.0.1: FTP wildcard matching (CHUNK_BGN, CHUNK_END,
-- FNMATCH) against pyftpdlib, SSH host-key checks (SSH_KEYFUNCTION,
-- SSH_HOSTKEYFUNCTION) against a private OpenSSH sshd, and RTSP interleaved
-- data (INTERLEAVEFUNCTION) against spec/support/rtsp_server.py.
-- A server that cannot start here turns its cases pending, with the reason.
local H = require "helper"
local curl = H.curl

------------------------------------------------------------------ servers

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function succeeds(cmd)
  local r = os.execute(cmd)
  return r == true or r == 0
end

local function sq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local read_all = H.read_text

local function write_file(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local LUA_PID = H.lua_pid
local start_server, stop_servers = H.start_server, H.stop_servers

local function python_with(module)
  for _, py in ipairs { "python3", "/usr/bin/python3" } do
    if succeeds(("%s -c 'import %s' >/dev/null 2>&1"):format(py, module)) then return py end
  end
  return nil
end

local it_if = H.it_if(it, pending)

-- Runs `easy` in a multi driven by SocketAction; returns its CURLcode.
local function run_in_multi(easy)
  local multi = curl.Multi()
  local loop = H.loop(multi)
  multi:AddHandle(easy)
  local done = loop:run { remove = true, seconds = 60 }
  multi:Close()
  assert.are.equal(1, #done)
  assert.are.equal(easy, done[1].easy)
  return done[1].result
end

local function perform_err(e)
  local ok, err = pcall(e.Perform, e)
  assert.is_false(ok, "the transfer should have failed")
  return err
end

-------------------------------------------------------------------- FTP

describe("FTP wildcard callbacks", function()
  local py = python_with("pyftpdlib")
  local pids = {}
  local root = sh("mktemp -d"):gsub("%s+$", "")
  local why, base
  if not py then
    why = "pyftpdlib is not installed (Debian package python3-pyftpdlib)"
  else
    -- two matching files, a matching directory and symlink, one other file
    write_file(root .. "/one.txt", "one")
    write_file(root .. "/two.txt", H.pattern(1000))
    write_file(root .. "/three.dat", "seven!!")
    assert(succeeds(("mkdir %s/sub.txt && ln -s one.txt %s/link.txt && chmod 0640 %s/one.txt")
      :format(sq(root), sq(root), sq(root))))
    local info, reason = start_server(("%s %s/spec/support/ftp_server.py %s %s")
      :format(py, sq(H.root), sq(root), LUA_PID), pids)
    if info then base = "ftp://127.0.0.1:" .. info.PORT .. "/" else why = "FTP server: " .. reason end
  end

  after_each(H.gc)
  teardown(function()
    stop_servers(pids)
    os.execute("rm -rf " .. sq(root))
  end)

  -- A wildcard easy that records what its callbacks see: every CHUNK_BGN
  -- call (info, remains, userdata), the CHUNK_END calls and each file's body.
  local function wildcard(pattern, bgn_result, extra)
    local r = { bgn = {}, ends = 0, bodies = {}, order = {} }
    local current
    local opts = {
      URL = base .. pattern, WildcardMatch = true, Timeout = 60,
      WriteFunction = function(d)
        r.bodies[current] = (r.bodies[current] or "") .. d
      end,
      Chunk_Bgn_Function = function(info, remains, ud)
        r.bgn[info.filename] = { info = info, remains = remains, ud = ud }
        r.order[#r.order + 1] = info.filename
        current = info.filename
        if bgn_result then return bgn_result(info) end
      end,
      Chunk_End_Function = function(ud)
        assert.are.equal("chunk-data", ud)
        r.ends = r.ends + 1
      end,
      Chunk_Data = "chunk-data",
    }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return curl.Easy(opts), r
  end

  it_if(why, "CHUNK_BGN_FUNCTION gets each matching entry's fileinfo and the count left", function()
    local e, r = wildcard("*.txt")
    e:Perform()
    local names = {}
    for name in pairs(r.bgn) do names[#names + 1] = name end
    table.sort(names)
    assert.are.same({ "link.txt", "one.txt", "sub.txt", "two.txt" }, names)

    local one = r.bgn["one.txt"].info
    assert.are.equal(curl.CURLFILETYPE_FILE, one.filetype)
    assert.are.equal(3, one.size)
    assert.are.equal(416, one.perm) -- 0640
    assert.are.equal("rw-r-----", one.strings.perm)
    assert.is_string(one.strings.time)
    assert.is_string(one.strings.user)
    assert.is_string(one.strings.group)
    assert.are.equal(1, one.hardlinks)
    for _, flag in ipairs { "PERM", "SIZE", "HLINKCOUNT" } do
      assert.are.equal(1, math.floor(one.flags / curl["CURLFINFOFLAG_KNOWN_" .. flag]) % 2, flag)
    end
    assert.are.equal("chunk-data", r.bgn["one.txt"].ud)

    local two = r.bgn["two.txt"].info
    assert.are.equal(curl.CURLFILETYPE_FILE, two.filetype)
    assert.are.equal(1000, two.size)
    assert.are.equal(420, two.perm) -- 0644

    local sub = r.bgn["sub.txt"].info
    assert.are.equal(curl.CURLFILETYPE_DIRECTORY, sub.filetype)
    assert.are.equal("rwxr-xr-x", sub.strings.perm)

    for name, b in pairs(r.bgn) do
      if name ~= "link.txt" then assert.is_nil(b.info.strings.target, name) end
    end
    local link = r.bgn["link.txt"].info
    assert.are.equal(curl.CURLFILETYPE_SYMLINK, link.filetype)
    assert.are.equal("one.txt", link.strings.target)

    -- remains counts the offered entry and those after it
    for i, name in ipairs(r.order) do assert.are.equal(5 - i, r.bgn[name].remains) end
    -- only regular files are downloaded; CHUNK_END runs for every entry
    assert.are.same({ ["one.txt"] = "one", ["two.txt"] = H.pattern(1000) }, r.bodies)
    assert.are.equal(4, r.ends)
  end)

  it_if(why, "CHUNK_BGN_FUNCTION's SKIP (or false) skips a file, FAIL ends the transfer", function()
    local e, r = wildcard("*.txt", function(info)
      if info.filename == "one.txt" then return false end
      if info.filename == "two.txt" then return curl.CURL_CHUNK_BGN_FUNC_SKIP end
    end)
    e:Perform()
    assert.are.equal(4, #r.order)
    assert.are.same({}, r.bodies)
    assert.are.equal(4, r.ends)

    local e2, r2 = wildcard("*.txt", function() return curl.CURL_CHUNK_BGN_FUNC_FAIL end)
    local err = perform_err(e2)
    assert.are.equal(curl.CURLE_CHUNK_FAILED, err.code)
    assert.are.equal(1, #r2.order)
    assert.are.same({}, r2.bodies)
  end)

  it_if(why, "an error in CHUNK_BGN_FUNCTION fails the transfer and is raised unchanged", function()
    local t = {}
    local e, r = wildcard("*.txt", function() error(t) end)
    assert.are.equal(t, perform_err(e))
    assert.are.equal(1, #r.order)
    assert.are.same({}, r.bodies)
  end)

  it_if(why, "CHUNK_END_FUNCTION's result is handed to libcurl (7.88 goes on after FAIL)", function()
    local e, r = wildcard("t*.txt", nil, {
      Chunk_End_Function = function() return curl.CURL_CHUNK_END_FUNC_FAIL end })
    local ok, err = pcall(e.Perform, e)
    if curl.VersionInfo().version_num < 0x080000 then
      assert.is_true(ok, tostring(err))
      assert.are.same({ ["two.txt"] = H.pattern(1000) }, r.bodies)
    elseif not ok then
      assert.are.equal(curl.CURLE_CHUNK_FAILED, err.code)
    end
    assert.are.same({ "two.txt" }, r.order)
  end)

  it_if(why, "FNMATCH_FUNCTION decides which names match, in a multi", function()
    local calls = {}
    local e, r = wildcard("*.txt", nil, {
      FnMatch_Function = function(pattern, name, ud)
        calls[#calls + 1] = { pattern, name, ud }
        return name == "two.txt" or name == "three.dat"
      end,
      FnMatch_Data = "fn-data",
    })
    assert.are.equal(curl.CURLE_OK, run_in_multi(e))
    local names = {}
    for _, c in ipairs(calls) do
      assert.are.equal("*.txt", c[1])
      assert.are.equal("fn-data", c[3])
      names[#names + 1] = c[2]
    end
    table.sort(names)
    assert.are.same({ "link.txt", "one.txt", "sub.txt", "three.dat", "two.txt" }, names)
    table.sort(r.order)
    assert.are.same({ "three.dat", "two.txt" }, r.order)
    assert.are.same({ ["three.dat"] = "seven!!", ["two.txt"] = H.pattern(1000) }, r.bodies)
  end)

  it_if(why, "FNMATCH_FUNCTION's FAIL matches nothing; its error is raised unchanged", function()
    local e, r = wildcard("*", nil, {
      FnMatch_Function = function() return curl.CURL_FNMATCHFUNC_FAIL end })
    -- libcurl 7.88 treats FAIL like NOMATCH: an empty list
    assert.are.equal(curl.CURLE_REMOTE_FILE_NOT_FOUND, perform_err(e).code)
    assert.are.same({}, r.order)

    local e2 = wildcard("*", nil, { FnMatch_Function = function() error("no match for you") end })
    local err = perform_err(e2)
    assert.are.equal("string", type(err))
    assert.truthy(err:find("no match for you", 1, true))
  end)
end)

-------------------------------------------------------------------- SSH

-- Pure-arithmetic base64 decoder (no bit library on 5.1).
local function b64decode(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local idx = {}
  for i = 1, 64 do idx[alphabet:sub(i, i)] = i - 1 end
  s = s:gsub("[^%w%+/]", "")
  local out = {}
  for i = 1, #s, 4 do
    local a, b = idx[s:sub(i, i)], idx[s:sub(i + 1, i + 1)]
    local c, d = idx[s:sub(i + 2, i + 2)], idx[s:sub(i + 3, i + 3)]
    local n = a * 262144 + b * 4096 + (c or 0) * 64 + (d or 0)
    out[#out + 1] = string.char(math.floor(n / 65536))
    if c then out[#out + 1] = string.char(math.floor(n / 256) % 256) end
    if d then out[#out + 1] = string.char(n % 256) end
  end
  return table.concat(out)
end

describe("SSH host key callbacks", function()
  local why, dir, port, host_b64, wrong_b64
  local pids = {}
  local vi = curl.VersionInfo()
  local has_sftp = false
  for _, p in ipairs(vi.protocols or {}) do has_sftp = has_sftp or p == "sftp" end
  if not has_sftp then
    why = "libcurl was built without SFTP"
  elseif not (vi.libssh_version or curl.Version()):find("libssh2", 1, true) then
    why = "libcurl's SSH backend is not libssh2"
  else
    local info, reason = start_server(("python3 %s/spec/support/sshd_server.py %s")
      :format(sq(H.root), LUA_PID), pids)
    if info then
      dir, port = info.DIR, info.PORT
      host_b64 = read_all(dir .. "/host_ed25519.pub"):match("^%S+ (%S+)")
      wrong_b64 = read_all(dir .. "/client_ed25519.pub"):match("^%S+ (%S+)")
    else
      why = "sshd: " .. reason
    end
  end
  local why_hostkey = why
  if not why and vi.version_num < 0x075400 then
    why_hostkey = "CURLOPT_SSH_HOSTKEYFUNCTION needs libcurl 7.84"
  end
  local user = sh("id -un"):gsub("%s+$", "")
  local tmpfiles = {}

  after_each(H.gc)
  teardown(function()
    stop_servers(pids)
    for _, f in ipairs(tmpfiles) do os.remove(f) end
  end)

  local function known_hosts(content)
    local p = os.tmpname()
    tmpfiles[#tmpfiles + 1] = p
    write_file(p, content)
    return p
  end

  -- An SFTP download of files/hello.txt, authenticated with the client key.
  local function sftp(extra)
    local chunks = {}
    local opts = {
      URL = ("sftp://127.0.0.1:%s%s/files/hello.txt"):format(port, dir),
      UserName = user,
      SSH_Auth_Types = curl.CURLSSH_AUTH_PUBLICKEY,
      SSH_Private_KeyFile = dir .. "/client_ed25519",
      SSH_Public_KeyFile = dir .. "/client_ed25519.pub",
      ConnectTimeout = 20, Timeout = 60,
      WriteFunction = function(d) chunks[#chunks + 1] = d end,
    }
    for k, v in pairs(extra) do opts[k] = v end
    return curl.Easy(opts), function() return table.concat(chunks) end
  end

  local HELLO = "hello over sftp\n"

  it_if(why, "SSH_KEYFUNCTION sees the known and the offered key; FINE lets the transfer go on", function()
    local seen
    local e, body = sftp {
      SSH_KnownHosts = known_hosts(("[127.0.0.1]:%s ssh-ed25519 %s\n"):format(port, host_b64)),
      SSH_KeyFunction = function(known, found, match, ud)
        seen = { known = known, found = found, match = match, ud = ud }
        return curl.CURLKHSTAT_FINE
      end,
      SSH_KeyData = "key-data",
    }
    e:Perform()
    assert.are.equal(HELLO, body())
    assert.are.equal(curl.CURLKHMATCH_OK, seen.match)
    assert.are.equal("key-data", seen.ud)
    -- the known_hosts key as written there (base64), the server's raw
    assert.are.same({ key = host_b64, keytype = curl.CURLKHTYPE_ED25519 }, seen.known)
    assert.are.same({ key = b64decode(host_b64), keytype = curl.CURLKHTYPE_ED25519 }, seen.found)
  end)

  it_if(why, "SSH_KEYFUNCTION's REJECT of a mismatching key fails with CURLE_PEER_FAILED_VERIFICATION", function()
    local seen
    local e, body = sftp {
      SSH_KnownHosts = known_hosts(("[127.0.0.1]:%s ssh-ed25519 %s\n"):format(port, wrong_b64)),
      SSH_KeyFunction = function(known, found, match)
        seen = { known = known, found = found, match = match }
        return curl.CURLKHSTAT_REJECT
      end,
    }
    assert.are.equal(curl.CURLE_PEER_FAILED_VERIFICATION, perform_err(e).code)
    assert.are.equal("", body())
    assert.are.equal(curl.CURLKHMATCH_MISMATCH, seen.match)
    assert.are.equal(wrong_b64, seen.known.key)
    assert.are.equal(b64decode(host_b64), seen.found.key)
  end)

  it_if(why, "SSH_KEYFUNCTION: a missing host has no known key; FINE_ADD_TO_FILE records it", function()
    local file = known_hosts("")
    local calls = {}
    local e, body = sftp {
      SSH_KnownHosts = file,
      SSH_KeyFunction = function(known, found, match)
        calls[#calls + 1] = { known = known, found = found, match = match }
        return curl.CURLKHSTAT_FINE_ADD_TO_FILE
      end,
    }
    e:Perform()
    assert.are.equal(HELLO, body())
    assert.are.equal(1, #calls)
    assert.are.equal(curl.CURLKHMATCH_MISSING, calls[1].match)
    assert.is_nil(calls[1].known)
    assert.are.equal(curl.CURLKHTYPE_ED25519, calls[1].found.keytype)
    assert.truthy(read_all(file):find("ssh-ed25519 " .. host_b64, 1, true))
  end)

  it_if(why, "SSH_KEYFUNCTION: FINE_REPLACE replaces a mismatching known_hosts key", function()
    local file = known_hosts(("[127.0.0.1]:%s ssh-ed25519 %s\n"):format(port, wrong_b64))
    local match
    local e, body = sftp {
      SSH_KnownHosts = file,
      SSH_KeyFunction = function(_, _, m) match = m; return curl.CURLKHSTAT_FINE_REPLACE end,
    }
    e:Perform()
    assert.are.equal(HELLO, body())
    assert.are.equal(curl.CURLKHMATCH_MISMATCH, match)
    local text = read_all(file)
    assert.truthy(text:find(host_b64, 1, true))
    assert.is_nil(text:find(wrong_b64, 1, true))
  end)

  it_if(why, "an error in SSH_KEYFUNCTION rejects the key and is raised unchanged", function()
    local t = {}
    local e, body = sftp {
      SSH_KnownHosts = known_hosts(("[127.0.0.1]:%s ssh-ed25519 %s\n"):format(port, host_b64)),
      SSH_KeyFunction = function() error(t) end,
    }
    assert.are.equal(t, perform_err(e))
    assert.are.equal("", body())
  end)

  it_if(why_hostkey, "SSH_HOSTKEYFUNCTION gets the raw host key; true accepts it (in a multi)", function()
    local seen
    local e, body = sftp {
      SSH_HostKeyFunction = function(keytype, key, ud)
        seen = { keytype, key, ud }
        return true
      end,
      SSH_HostKeyData = "hk-data",
    }
    assert.are.equal(curl.CURLE_OK, run_in_multi(e))
    assert.are.equal(HELLO, body())
    assert.are.same({ curl.CURLKHTYPE_ED25519, b64decode(host_b64), "hk-data" }, seen)
  end)

  it_if(why_hostkey, "SSH_HOSTKEYFUNCTION returning false or CURLKHMATCH_MISMATCH rejects the host", function()
    for _, answer in ipairs { false, curl.CURLKHMATCH_MISMATCH } do
      local calls = 0
      local e, body = sftp {
        SSH_HostKeyFunction = function() calls = calls + 1; return answer end,
      }
      assert.are.equal(curl.CURLE_PEER_FAILED_VERIFICATION, perform_err(e).code)
      assert.are.equal(1, calls)
      assert.are.equal("", body())
    end
    local e = sftp { SSH_HostKeyFunction = function() return curl.CURLKHMATCH_OK end }
    e:Perform()
  end)

  it_if(why_hostkey, "an error in SSH_HOSTKEYFUNCTION rejects the host and is raised unchanged", function()
    local t = {}
    local e, body = sftp { SSH_HostKeyFunction = function() error(t) end }
    assert.are.equal(t, perform_err(e))
    assert.are.equal("", body())
  end)
end)

------------------------------------------------------------------- RTSP

-- The bytes rtsp_server.py sends as frame i: "$", channel, 16-bit length, payload.
local function rtp_frame(i)
  local bytes = {}
  for j = 0, i * 3000 - 1 do bytes[#bytes + 1] = string.char((i * 37 + j) % 256) end
  local payload = "frame " .. i .. "|" .. table.concat(bytes)
  local n = #payload
  return "$" .. string.char((i - 1) % 2, math.floor(n / 256), n % 256) .. payload
end

describe("RTSP interleaved data", function()
  local why, base
  local pids = {}
  local info, reason = start_server(("python3 %s/spec/support/rtsp_server.py 127.0.0.1 %s")
    :format(sq(H.root), LUA_PID), pids)
  why = H.needs_protocol("rtsp")
  if why then
    info = nil
  elseif info then
    base = "rtsp://127.0.0.1:" .. info.PORT
  else
    why = "RTSP server: " .. reason
  end

  after_each(H.gc)
  teardown(function() stop_servers(pids) end)

  local function perform(e, req, extra)
    e:SetOpt(curl.CURLOPT_RTSP_REQUEST, req)
    for k, v in pairs(extra or {}) do e:SetOpt(k, v) end
    e:Perform()
  end

  -- OPTIONS, DESCRIBE, SETUP and PLAY /media/<k> on `e`; returns the
  -- session id and the DESCRIBE body.
  local function start_session(e, k, body)
    perform(e, curl.CURL_RTSPREQ_OPTIONS)
    assert.are.equal(200, e:GetInfo_Response_Code())
    perform(e, curl.CURL_RTSPREQ_DESCRIBE, { [curl.CURLOPT_RTSP_STREAM_URI] = base .. "/media/" .. k })
    local sdp = body()
    perform(e, curl.CURL_RTSPREQ_SETUP, { [curl.CURLOPT_RTSP_TRANSPORT] = "RTP/AVP/TCP;interleaved=0-1" })
    local sid = e:GetInfo_Rtsp_Session_Id()
    assert.is_string(sid)
    perform(e, curl.CURL_RTSPREQ_PLAY)
    assert.are.equal(200, e:GetInfo_Response_Code())
    return sid, sdp
  end

  -- Asks the server (on a connection of its own) to send the session's
  -- next n frames on the session's connection.
  local function push(sid, n)
    local p = curl.Easy { URL = base, WriteFunction = function() end, Timeout = 30,
      RTSP_Request = curl.CURL_RTSPREQ_OPTIONS,
      RTSP_Stream_URI = ("%s/push/%s/%d"):format(base, sid, n) }
    p:Perform()
    assert.are.equal(200, p:GetInfo_Response_Code())
    p:Close()
  end

  it_if(why, "INTERLEAVEFUNCTION gets every $-frame whole, after PLAY and through RECEIVE", function()
    local frames, chunks = {}, {}
    local e = curl.Easy { URL = base .. "/media/2",
      Timeout = 30,
      WriteFunction = function(d) chunks[#chunks + 1] = d end,
      InterleaveFunction = function(d, ud)
        assert.are.equal("il-data", ud)
        frames[#frames + 1] = d
      end,
      InterleaveData = "il-data" }
    local sid, sdp = start_session(e, 2, function() return table.concat(chunks) end)
    assert.truthy(sdp:find("s=spec fixture\r\n", 1, true))

    -- frames 3..7 are sent only now, after PLAY has returned: RECEIVE reads them
    push(sid, 5)
    local receives, deadline = 0, os.time() + 20
    while #frames < 7 do
      assert(os.time() <= deadline, "RECEIVE deadline passed with " .. #frames .. " frames")
      perform(e, curl.CURL_RTSPREQ_RECEIVE)
      receives = receives + 1
    end
    assert.is_true(receives >= 1)
    assert.are.equal(7, #frames)
    for i = 1, 7 do
      assert.are.equal(rtp_frame(i), frames[i], "frame " .. i)
    end
    perform(e, curl.CURL_RTSPREQ_TEARDOWN)
    assert.are.equal(200, e:GetInfo_Response_Code())
  end)

  it_if(why, "INTERLEAVEFUNCTION returning false fails RECEIVE with CURLE_WRITE_ERROR", function()
    local calls = 0
    local e = curl.Easy { URL = base .. "/media/0",
      Timeout = 30, WriteFunction = function() end,
      InterleaveFunction = function() calls = calls + 1; return false end }
    local sid = start_session(e, 0, function() return "" end)
    push(sid, 1)
    e:SetOpt_RTSP_Request(curl.CURL_RTSPREQ_RECEIVE)
    assert.are.equal(curl.CURLE_WRITE_ERROR, perform_err(e).code)
    assert.are.equal(1, calls)
  end)

  it_if(why, "an error in INTERLEAVEFUNCTION fails the transfer and is raised unchanged", function()
    local t = {}
    local e = curl.Easy { URL = base .. "/media/0",
      Timeout = 30, WriteFunction = function() end,
      InterleaveFunction = function() error(t) end }
    local sid = start_session(e, 0, function() return "" end)
    push(sid, 1)
    e:SetOpt_RTSP_Request(curl.CURL_RTSPREQ_RECEIVE)
    assert.are.equal(t, perform_err(e))
  end)

  it_if(why, "without INTERLEAVEFUNCTION the frames go to WRITEFUNCTION", function()
    local chunks = {}
    local e = curl.Easy { URL = base .. "/media/0",
      Timeout = 30,
      WriteFunction = function(d) chunks[#chunks + 1] = d end }
    local sid = start_session(e, 0, function() return table.concat(chunks) end)
    chunks = {}
    push(sid, 1)
    local deadline = os.time() + 20
    while #table.concat(chunks) < #rtp_frame(1) do
      assert(os.time() <= deadline, "RECEIVE deadline passed")
      perform(e, curl.CURL_RTSPREQ_RECEIVE)
    end
    assert.are.equal(rtp_frame(1), table.concat(chunks))
  end)
end)
