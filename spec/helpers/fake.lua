--- Fakes for monitor and policy specs, after the reference's
-- FakeDeadUffdChecker: fake uffds are eventfds (ufl.eventfd) adopted with
-- {check=false, own=false}.  They support epoll and close only; their events come
-- from a Lua queue through `world.read_events`, which a monitor takes as
-- its events source (m.read_events).
--
--   local fake = require "helpers.fake"
--   local w = fake.new()
--   local main = w:uffd()
--   local list = ufl.list(main, w.checker)
--   w:push(u, { kind = "pagefault", address = 0x10000 })  -- u readable
--   w:mark_dead(u)
--   local m = monitor.new{ list = list, read_events = w.read_events }

local ufl = require "uffdlist"

local M = {}
local World = {}
World.__index = World

-- ------------------------------------------------------------ signals

-- A readable-on-demand fd: poke() makes it readable, drain() not.
local Signal = {}
Signal.__index = Signal

local function new_signal()
  local s = setmetatable({ readable = false }, Signal)
  s.ev = assert(ufl.eventfd())
  return s
end

function Signal:fd()
  return self.ev:fd()
end

function Signal:poke()
  if not self.readable then
    self.readable = true
    assert(self.ev:write(1))
  end
end

-- Only while the fd is still ours: after a list closed the fake uffd, its
-- number may belong to another file.
function Signal:drain(still_open)
  if self.readable and still_open then
    self.readable = false
    self.ev:read()
  end
end

-- Closes the eventfd; behind a fake uffd (s.uffd set), which borrows it,
-- only once that uffd is closed.
function Signal:close()
  if self.closed then
    return
  end
  local u = self.uffd
  if not u or u:is_closed() then
    self.closed = true
    self.ev:close()
  end
end

--- A readable-on-demand fd for watch specs: s:fd(), s:poke(), s:drain(true),
-- s:close().
M.signal = new_signal

-- --------------------------------------------------------------- world

--- A fake world: a checker, fake uffds and their event queues.
function M.new()
  local self = setmetatable({
    dead = setmetatable({}, { __mode = "k" }),
    queues = {},      -- u -> { first=, last=, [i] = event }
    signals = {},     -- u -> signal
    all = {},         -- every fake uffd, in creation order
    registered = {},  -- uffds the checker's register saw
    resets = 0,
  }, World)
  -- The checker: any table with register/is_dead/reset methods.
  self.checker = {
    register = function(_, u)
      self.registered[#self.registered + 1] = u
      return true
    end,
    is_dead = function(_, u)
      return self.dead[u] == true
    end,
    reset = function()
      self.resets = self.resets + 1
      return true
    end,
  }
  self.read_events = function(u, out, max)
    return self:_read(u, out, max)
  end
  return self
end

--- A new fake uffd (epoll and close only).
function World:uffd()
  local s = new_signal()
  local u = assert(ufl.adopt(s:fd(), { check = false, own = false }))
  s.uffd = u
  self.signals[u] = s
  self.queues[u] = { first = 1, last = 0 }
  self.all[#self.all + 1] = u
  return u
end

--- n new fake uffds registered through monitor m as static devices, then
-- m:set_num_static_devices(n).
function World:static_uffds(m, n)
  local us = {}
  for i = 1, n do
    us[i] = self:uffd()
    m:register(us[i])
  end
  m:set_num_static_devices(n)
  return us
end

--- The checker will call u dead.
function World:mark_dead(u)
  self.dead[u] = true
end

--- Makes u ready in epoll (without queueing an event).
function World:make_readable(u)
  self.signals[u]:poke()
end

--- Queues an event (a copy of ev) for u and makes u readable.
function World:push(u, ev)
  local q = self.queues[u]
  local copy = {}
  for k, v in pairs(ev) do
    copy[k] = v
  end
  q.last = q.last + 1
  q[q.last] = copy
  self:make_readable(u)
end

--- Queues n page faults at base, base + page, ...
function World:push_faults(u, n, base, write)
  local ps = ufl.page_size()
  for i = 0, n - 1 do
    self:push(u, { kind = "pagefault", address = base + i * ps,
      write = write or false, flags = 0 })
  end
end

--- Number of events still queued for u.
function World:pending(u)
  local q = self.queues[u]
  return q.last - q.first + 1
end

-- As uffd:read_events: fills out[1..n] (reusing its tables), n <= max;
-- u stays readable while events remain, like a real uffd.
function World:_read(u, out, max)
  local q = self.queues[u]
  local n = 0
  while n < max and q.first <= q.last do
    n = n + 1
    local t = out[n] or {}
    for k in pairs(t) do
      t[k] = nil
    end
    for k, v in pairs(q[q.first]) do
      t[k] = v
    end
    out[n] = t
    q[q.first] = nil
    q.first = q.first + 1
  end
  for i = n + 1, #out do
    out[i] = nil
  end
  if q.first > q.last then
    self.signals[u]:drain(not u:is_closed())
  end
  return n, out
end

--- Closes the fake uffds no list holds, and the fds behind them (close
-- lists first: a listed uffd's fd is left to its list).
function World:close()
  if self.closed then
    return
  end
  self.closed = true
  for _, u in ipairs(self.all) do
    if not u:is_closed() and not u:index() then
      u:close()
    end
    self.signals[u]:close()
  end
end

return M
