-- curl.loop.cqueues: curl.loop on a cqueues controller. One driver coroutine
-- in the controller polls libcurl's sockets and timer; Await uses a cqueues
-- condition, so it works inside cqueues-managed coroutines.
--   local loop = require("curl.loop.cqueues").new(cq[, multi])
-- Drive it with loop:Run() (steps the controller until idle) or with your own
-- cq:loop(); with your own loop, set loop.on_error to receive callback errors.
local curl = require "curl"
local Loop = require "curl.loop"
local cqueues = require "cqueues"
local condition = require "cqueues.condition"

local B = {}
B.__index = B

-- A pollable for cqueues.poll: descriptor and "r"/"w"/"rw".
local Pollable = {}
Pollable.__index = Pollable
function Pollable:pollfd() return self.fd end
function Pollable:events() return self.ev end

local EVENTS = { [curl.CURL_POLL_IN] = "r", [curl.CURL_POLL_OUT] = "w", [curl.CURL_POLL_INOUT] = "rw" }

function B:watch(fd, what)
  local p = self.sockets[fd]
  if not p then
    p = setmetatable({ fd = fd }, Pollable)
    self.sockets[fd] = p
  end
  p.ev = EVENTS[what] or "rw"
  self.changed:signal()
end

function B:unwatch(fd)
  if self.sockets[fd] then
    self.sockets[fd] = nil
    cqueues.cancel(fd) -- forget pending polls on a descriptor about to close
    self.changed:signal()
  end
end

function B:timer(ms)
  self.deadline = ms >= 0 and (cqueues.monotime() + ms / 1000) or nil
  self.changed:signal()
end

function B:now() return cqueues.monotime() * 1000 end

-- cqueues.poll takes the pollables and a timeout as arguments.
local unpack = table.unpack or unpack

local function drive(self)
  local loop = self.loop
  while not self.closed do
    local list = {}
    for _, p in pairs(self.sockets) do list[#list + 1] = p end
    local timeout
    if self.deadline then timeout = math.max(0, self.deadline - cqueues.monotime()) end
    list[#list + 1] = self.changed
    if timeout then list[#list + 1] = timeout end
    local ready = { cqueues.poll(unpack(list)) }
    for _, r in ipairs(ready) do
      if r ~= self.changed and getmetatable(r) == Pollable and self.sockets[r.fd] == r then
        -- cqueues tells which object is ready, not in which direction: let
        -- libcurl find out (mask 0)
        loop:_socket(r.fd, 0)
      end
    end
    if self.deadline and cqueues.monotime() >= self.deadline then
      self.deadline = nil
      loop:_timeout()
    end
  end
end

function B:step(ms)
  local ok, err = self.cq:step(ms and ms / 1000 or nil)
  if not ok then error(err, 0) end
end

-- Tasks of the controller besides our driver.
function B:pending() return self.cq:count() > 1 end

function B:await(loop, easy, opts)
  local co, main = coroutine.running()
  if co == nil or main then
    error(Loop.usage_error("loop:Await", "must be called from inside a coroutine of the cqueues controller"), 3)
  end
  local done = condition.new()
  local result, err
  local o = {}
  for k, v in pairs(type(opts) == "function" and { on_done = opts } or opts or {}) do o[k] = v end
  local user_done = o.on_done
  o.on_done = function(e, code, er)
    if user_done then
      local ok, e2 = pcall(user_done, e, code, er)
      if not ok then loop:_error(e2) end
    end
    result, err = code, er
    done:signal()
  end
  loop:Add(easy, o)
  while result == nil do done:wait() end
  if result == curl.CURLE_OK then return true, easy end
  return false, err
end

function B:close()
  self.closed = true
  self.changed:signal()
end

local M = {}

function M.new(cq, multi)
  cq = cq or cqueues.new()
  local b = setmetatable({ cq = cq, sockets = {}, changed = condition.new() }, B)
  local loop = Loop.new(b, multi)
  b.loop = loop
  cq:wrap(function() drive(b) end)
  return loop
end

return M
