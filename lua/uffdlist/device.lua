--- uffdlist.device: the device boundary of the monitor (doc/security.md,
-- "Device processes").
--
-- Device processes are untrusted: whatever one does with its uffd (the
-- open file it shares with us, flags included), its memory or its socket,
-- the loop must not block, spin, grow its fds without a bound or serve
-- another process wrongly.  The loop (lua/uffdlist/monitor.lua) asks this
-- module at a few points:
--
--   admit(m, u)              before list:register: the features check
--   register_error(...)      a list:register failure, said plainly
--   check_ready(m, u, rev)   a ready entry's revents other than EPOLLIN
--   read_failed(m, u, ...)   read_events failed: EMFILE back-off, EINVAL
--   admit_fork(m, u, ev)     a FORK event's new uffd: the per-device cap
--   serve_kind(m, u, ev, a)  a write-protect or minor fault
--   note_exists / note_done  the EEXIST-wake-refault livelock bound
--   end_round(m)            between batches: removals, the spare fd
--
-- An entry that goes bad after registration is quarantined: out of the
-- epoll set's readiness (list:quarantine), reported once through
-- m.on_error (what = "quarantine"), never served again, never silently
-- closed.  A quarantined dynamic entry is removable (m:remove), and gc
-- still collects it once its process died.
-- @module uffdlist.device

local ufl = require "uffdlist"
local policy_mod = require "uffdlist.policy"  -- check_int

local type, pcall, tostring, setmetatable, error = type, pcall, tostring,
  setmetatable, error
local pairs, ipairs = pairs, ipairs
local floor, fmt = math.floor, string.format

local E = ufl.errno
local EPOLLERR, EPOLLHUP = ufl.EPOLLERR, ufl.EPOLLHUP

local M = {}

--- The defaults of monitor.new's `device` options.
M.DEFAULTS = {
  max_forks = 4,          -- live FORK-event uffds per device; excess closed
  max_flag_restores = 8,  -- O_NONBLOCK cleared more often: quarantined
  max_exists = 64,        -- EEXIST+wake in a row on one page: quarantined
  serve_wp = false,       -- serve write-protect faults (WRITEPROTECT clear)
  serve_minor = false,    -- serve minor faults (UFFDIO_CONTINUE)
  features = 0,           -- features a uffd must have enabled to register
}

-- Features whose faults need serve_minor / serve_wp: a uffd with one of
-- them enabled is refused at register unless the monitor serves that kind.
local MINOR_FEATURES = { "FEATURE_MINOR_SHMEM", "FEATURE_MINOR_HUGETLBFS" }
local WP_FEATURES = { "FEATURE_WP_HUGETLBFS_SHMEM", "FEATURE_WP_UNPOPULATED" }

-- bit (a power of two) set in x?  Both are integers below 2^53.
local function has(x, bit)
  return floor(x / bit) % 2 == 1
end

-- need & ~have, bit by bit (5.1 has no bit operators).
local function missing_bits(need, have)
  local out, bit = 0, 1
  while need > 0 do
    if need % 2 == 1 and not has(have, bit) then
      out = out + bit
    end
    need, bit = floor(need / 2), bit * 2
  end
  return out
end

local function weak()
  return setmetatable({}, { __mode = "k" })
end

local function check_opt(o, k, kind)
  local v = o[k]
  if v == nil then
    return M.DEFAULTS[k]
  end
  if kind == "boolean" then
    if type(v) ~= "boolean" then
      error(fmt("bad option device.%s (boolean expected, got %s)", k,
        type(v)), 3)
    end
  else
    local ok, msg = policy_mod.check_int(v, k, 0, 2 ^ 53)
    if not ok then
      error(fmt("bad option device.%s (%s)", k, msg), 3)
    end
  end
  return v
end

--- The device state of a monitor (m.dev).
-- @tparam[opt] table opts see M.DEFAULTS
-- @tparam function report the monitor's report(m, what, msg, errno)
function M.new(opts, report)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad option device (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local d = {
    report = report,
    max_forks = check_opt(opts, "max_forks"),
    max_flag_restores = check_opt(opts, "max_flag_restores"),
    max_exists = check_opt(opts, "max_exists"),
    serve_wp = check_opt(opts, "serve_wp", "boolean"),
    serve_minor = check_opt(opts, "serve_minor", "boolean"),
    features = check_opt(opts, "features"),
    quarantined = weak(),   -- u -> reason
    restores = weak(),      -- u -> times O_NONBLOCK was found cleared
    exists = weak(),        -- u -> { addr =, n = } EEXIST in a row
    root = weak(),          -- fork uffd -> the device entry it came from
    kids = weak(),          -- device uffd -> weak set of its fork uffds
    fork_reported = weak(), -- device uffd -> true once its cap was reported
    to_remove = {},         -- queued m:remove targets (during a round)
    pressure_round = nil,   -- last round with EMFILE/ENFILE
    pressure_reported = false,
  }
  d.refused = {}
  if not d.serve_minor then
    for _, name in ipairs(MINOR_FEATURES) do
      if ufl[name] then d.refused[#d.refused + 1] = { name, ufl[name], "minor" } end
    end
  end
  if not d.serve_wp then
    for _, name in ipairs(WP_FEATURES) do
      if ufl[name] then d.refused[#d.refused + 1] = { name, ufl[name], "write-protect" } end
    end
  end
  -- One fd kept in reserve: released when the monitor runs out of fds, so
  -- a FORK event stuck on EMFILE can still be read (and its fd closed).
  d.spare = ufl.eventfd()
  return d
end

-- "main", "static" or "dynamic" for entry i.
local function role_of(list, i)
  if i == 1 then
    return "main"
  end
  local ok, ns = pcall(list.num_static, list)
  if ok and type(ns) == "number" and i > ns then
    return "dynamic"
  end
  return "static"
end

--- Quarantines u's entry: out of the epoll set (list:quarantine), reported
-- once, never served again.  Returns true the first time.
function M.quarantine(m, u, reason, errno)
  local d = m.dev
  if d.quarantined[u] then
    return false
  end
  local iok, i = pcall(u.index, u)
  if not iok or not i then
    return false
  end
  d.quarantined[u] = reason
  m.stats.quarantined = (m.stats.quarantined or 0) + 1
  m.drop = true   -- the rest of its batch is not served
  local list = m.list
  local msg = fmt("%s entry %d: %s", role_of(list, i), i, reason)
  local ok, q, qmsg = pcall(function() return list:quarantine(i) end)
  if not ok or not q then
    msg = msg .. "; list:quarantine failed: " .. tostring(ok and qmsg or q)
  end
  d.report(m, "quarantine", msg, errno)
  return true
end

--- Whether u was quarantined (its reason, or nil).
function M.is_quarantined(m, u)
  return m.dev.quarantined[u]
end

-- ---------------------------------------------------------- registering

--- Before list:register: does u have what the monitor needs, and nothing
-- it cannot serve?  true, or nil, message, errno.
function M.admit(m, u)
  local d = m.dev
  local ok, f = pcall(u.features, u)
  if not ok then
    return nil, tostring(f), E.EBADF
  end
  local lack = missing_bits(d.features, f)
  if lack ~= 0 then
    return nil, fmt("uffd lacks features 0x%x the monitor needs", lack),
      E.EOPNOTSUPP
  end
  for _, r in ipairs(d.refused) do
    if has(f, r[2]) then
      return nil, fmt("uffd has %s enabled but the monitor does not serve "
        .. "%s faults (device option serve_%s)", r[1], r[3],
        r[3] == "minor" and "minor" or "wp"), E.EOPNOTSUPP
    end
  end
  return true
end

--- list:register's failure, said plainly: EINVAL from the real checker's
-- UFFDIO_REGISTER of its probe page means the page is not mapped there.
function M.register_error(msg, errno)
  if errno == E.EINVAL and msg == "register: " .. "Invalid argument" then
    return "register: checker: probe page not mapped in the device process"
      .. " (exec'd, or not forked from the checker's creator)"
  end
  return msg
end

-- ---------------------------------------------------------- readiness

--- A ready entry whose revents are not just EPOLLIN.  Returns whether to
-- read it (reads never block: uffd:read_events uses RWF_NOWAIT).
-- EPOLLERR: fs/userfaultfd.c, userfaultfd_poll, says so for a uffd that
-- is not O_NONBLOCK (the device cleared it on the file it shares) or has
-- no UFFDIO_API; level-triggered, it would make every wait return at once.
function M.check_ready(m, u, rev)
  local d = m.dev
  if d.quarantined[u] then
    return false
  end
  if has(rev, EPOLLHUP) then
    M.quarantine(m, u, "EPOLLHUP on a userfaultfd")
    return false
  end
  if not has(rev, EPOLLERR) then
    return true
  end
  local r, msg, errno = u:restore_nonblock()
  if r == nil then
    M.quarantine(m, u, "EPOLLERR, and " .. tostring(msg), errno)
    return false
  end
  -- false: set again already (the device flips it) or no UFFDIO_API.
  local n = (d.restores[u] or 0) + 1
  d.restores[u] = n
  if n > d.max_flag_restores then
    M.quarantine(m, u, fmt("EPOLLERR %d times: the device keeps clearing "
      .. "O_NONBLOCK on its uffd (or it has no UFFDIO_API)", n), E.EINVAL)
    return false
  end
  return true
end

--- read_events failed on u: EMFILE/ENFILE (a FORK message could not get
-- its fd and stays queued: fs/userfaultfd.c, userfaultfd_ctx_read) is
-- reported once per episode; the spare fd is released so that one event
-- can be read (its fork uffd is closed); EINVAL (no UFFDIO_API) and EBADF
-- quarantine.  Returns the count of a successful second read, or nil.
function M.read_failed(m, u, buf, msg, errno)
  local d = m.dev
  if errno == E.EMFILE or errno == E.ENFILE then
    m.stats.fd_pressure = (m.stats.fd_pressure or 0) + 1
    d.pressure_round = m.round
    if not d.pressure_reported then
      d.pressure_reported = true
      d.report(m, "fds", fmt("out of fds reading a device's events (%s): "
        .. "its fork uffds are closed until fds are free", tostring(msg)),
        errno)
    end
    if d.spare then
      d.spare:close()
      d.spare = nil
      d.pressure = true     -- admit_fork closes what this read brings
      local n = m.read_events(u, buf, 1)
      if n then
        return n
      end
    end
    M.quarantine(m, u, "out of fds even with the spare fd released: "
      .. tostring(msg), errno)
    return nil
  end
  if errno == E.EINVAL or errno == E.EBADF then
    M.quarantine(m, u, "read_events: " .. tostring(msg), errno)
    return nil
  end
  d.report(m, "read_events", msg, errno)
  return nil
end

local function reopen_spare(d)
  if not d.spare then
    d.spare = ufl.eventfd()
  end
end

-- ---------------------------------------------------------- fork events

local function close_quietly(u)
  pcall(function() if not u:is_closed() and not u:index() then u:close() end end)
end

--- A FORK event's new uffd: admitted (true) or closed (false).  Each
-- device (the entry registered from outside) may have max_forks live fork
-- uffds, its children's and theirs; the excess is closed and reported
-- once per device.  Under fd pressure every fork uffd is closed.
function M.admit_fork(m, parent, ev)
  local nu = ev.uffd
  if not nu then
    return true   -- ev.errno: the handler reports it
  end
  local d, st = m.dev, m.stats
  if d.pressure then
    d.pressure = false
    ev.uffd = nil
    close_quietly(nu)
    if not d.closed then reopen_spare(d) end
    st.forks_refused = (st.forks_refused or 0) + 1
    return false
  end
  if d.quarantined[parent] then
    ev.uffd = nil
    close_quietly(nu)
    st.forks_refused = (st.forks_refused or 0) + 1
    return false
  end
  local root = d.root[parent] or parent
  local kids = d.kids[root]
  if not kids then
    kids = weak()
    d.kids[root] = kids
  end
  local n = 0
  for k in pairs(kids) do
    if k:is_closed() then
      kids[k] = nil
    else
      n = n + 1
    end
  end
  if n >= d.max_forks then
    ev.uffd = nil
    close_quietly(nu)
    st.forks_refused = (st.forks_refused or 0) + 1
    if not d.fork_reported[root] then
      d.fork_reported[root] = true
      local _, i = pcall(root.index, root)
      d.report(m, "fork", fmt("device entry %s has %d live fork uffds "
        .. "(device option max_forks): the excess is closed", tostring(i),
        n), E.EMFILE)
    end
    return false
  end
  kids[nu] = true
  d.root[nu] = root
  return true
end

-- ---------------------------------------------------------- fault kinds

--- A write-protect or minor fault at page addr: served when the monitor
-- is configured for that kind, else the entry is quarantined (serving it
-- as a missing page gives EEXIST, the wake refaults: a livelock).
-- Returns serve's outcome string.
function M.serve_kind(m, u, ev, addr)
  local d, ps = m.dev, m.page_size
  local kind = ev.minor and "minor" or "write-protect"
  local allowed = ev.minor and d.serve_minor or (not ev.minor and d.serve_wp)
  if not allowed then
    M.quarantine(m, u, fmt("%s fault at 0x%x: the monitor does not serve "
      .. "%s faults", kind, addr, kind), E.EOPNOTSUPP)
    return "error"
  end
  local ok, msg, errno
  if ev.minor then
    ok, msg, errno = u:continue(addr, ps)
  else
    ok, msg, errno = u:writeprotect(addr, ps, false)
  end
  if ok then
    m.stats.served_special = (m.stats.served_special or 0) + 1
    return "done"
  elseif errno == E.ESRCH then
    return "gone"
  elseif errno == E.EEXIST then
    u:wake(addr, ps)
    return M.note_exists(m, u, addr) and "error" or "exists"
  end
  d.report(m, kind, msg, errno)
  u:wake(addr, ps)
  return "error"
end

--- After an EEXIST answered by a wake: the same page of the same entry
-- again and again, with nothing filled in between, is a livelock (the
-- thread refaults at once).  true when it passed max_exists and the entry
-- was quarantined.
function M.note_exists(m, u, addr)
  local d = m.dev
  local e = d.exists[u]
  if not e then
    e = { addr = addr, n = 0 }
    d.exists[u] = e
  elseif e.addr ~= addr then
    e.addr, e.n = addr, 0
  end
  e.n = e.n + 1
  if e.n > d.max_exists then
    M.quarantine(m, u, fmt("page 0x%x is present yet faults again and again"
      .. " (%d wakes in a row): a livelock", addr, e.n), E.EEXIST)
    return true
  end
  return false
end

--- A fill done on u: its EEXIST run is over.
function M.note_done(m, u)
  local e = m.dev.exists[u]
  if e then
    e.n = 0
  end
end

-- ---------------------------------------------------------- removal

local function do_remove(m, u)
  local d, list = m.dev, m.list
  if u:is_closed() then
    return nil, "remove: uffd closed already", E.EBADF
  end
  local i = u:index()
  if not i then
    return nil, "remove: uffd not in the list", E.ENOENT
  end
  if role_of(list, i) ~= "dynamic" then
    return nil, "remove: entry " .. i .. " is " .. role_of(list, i)
      .. ": main and static entries are never removed", E.EPERM
  end
  local got, msg, errno = list:remove(i)
  if not got then
    return nil, msg, errno
  end
  got:close()
  d.quarantined[u] = nil
  m.stats.removed = (m.stats.removed or 0) + 1
  m.stats.dynamic = m.stats.dynamic - 1
  return true
end

--- m:remove(u or index): takes a dynamic entry out of the list and closes
-- its uffd (between batches; queued during a round).  Closing the uffd of
-- a live process lets the kernel serve its later faults itself (zero or
-- whatever the shared memory holds): kill the device too.
function M.remove(m, x)
  local u = x
  if type(x) == "number" then
    u = m.list:get(x)
    if not u then
      return nil, "remove: no entry " .. tostring(x), E.ENOENT
    end
  elseif type(x) ~= "userdata" then
    error("bad argument #1 to 'remove' (uffd or index expected, got "
      .. type(x) .. ")", 3)
  end
  if m.busy then
    m.dev.to_remove[#m.dev.to_remove + 1] = u
    return nil, "deferred"
  end
  return do_remove(m, u)
end

--- Between batches: queued removals, the spare fd, the end of an fd
-- pressure episode.
function M.end_round(m)
  local d = m.dev
  local q = d.to_remove
  if #q > 0 then
    d.to_remove = {}
    for _, u in ipairs(q) do
      local ok, msg, errno = do_remove(m, u)
      if not ok then
        d.report(m, "remove", msg, errno)
      end
    end
  end
  d.pressure = false
  if not d.spare and not d.closed then
    reopen_spare(d)
  end
  if d.pressure_reported and d.pressure_round ~= m.round and d.spare then
    d.pressure_reported = false
  end
end

function M.close(m)
  local d = m.dev
  d.closed = true
  if d.spare then
    d.spare:close()
    d.spare = nil
  end
end

return M
