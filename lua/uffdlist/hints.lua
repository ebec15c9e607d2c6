--- uffdlist.hints: the exit hints of the monitor (doc/monitor-api.md,
-- "Exit hints").
--
-- A hint says that a dynamic entry's process may have exited: its pidfd
-- became readable, or its socket hung up.  It never collects by itself —
-- an exited process's mm may outlive it for a moment, a hang-up may be a
-- clean close by a live process, a pid may have been reused — so a hint
-- only makes the policy's on_exit decide whether to probe exactly that
-- entry (list:gc{only}).  A probe that says alive is retried exit_retries
-- times, exit_retry_ms apart and doubling (never a spin: the wait is cut
-- to the next retry, at least 1 ms), then the entry is left to the
-- policy's normal gc.
--
-- The loop (lua/uffdlist/monitor.lua) calls this module at a few points:
--
--   init(m, report)          in monitor.new: the hint state on m
--   register(m, u, h)        m:register's second argument, checked and
--                            queued with u
--   take(m, u) / settle(m, rec, dyn)   apply_register: the queued hint,
--                            armed for a dynamic entry, else ended
--   sweep(m)                 after a full gc collected something
--   process(m, gc_only)      between batches: on_exit, the probes
--   next_ms(m)               the wait cut to the next retry
--   close(m)                 m:close
--
-- The state stays on the monitor, where uffdlist.testing and
-- m:hint_count read it: m.hints (u -> record while armed, fired or
-- retried), m.nhints, m.nwatched, m.pending_hint (u -> record queued with
-- a register), m.exits / m.nexits (the fired ones; their list changes
-- wait for the end of the round), and the options m.exit_retries and
-- m.exit_retry_ms (set by monitor.new).
--
-- A hint record: { u =, pid =, target = the watched fd or object,
-- events =, owned = a pidfd the monitor opened or was given (closed when
-- the hint ends), source = "pidfd"|"hangup"|"gone", tries =, due = }.
-- @module uffdlist.hints

local ufl = require "uffdlist"
local policy_mod = require "uffdlist.policy"  -- check_int, describe

local type, pcall, tostring, error = type, pcall, tostring, error
local pairs, rawget = pairs, rawget
local math_max, floor = math.max, math.floor

local ESRCH = ufl.errno.ESRCH
local EPOLLIN, EPOLLRDHUP = ufl.EPOLLIN, ufl.EPOLLRDHUP
local MAX_PID = 4194304    -- PID_MAX_LIMIT (include/linux/threads.h)

local M = {}

--- Sets up the hint state on a new monitor.
-- @param m the monitor
-- @tparam function report the monitor's report(m, what, msg, errno)
function M.init(m, report)
  m.hints, m.nhints, m.nwatched = {}, 0, 0
  m.pending_hint = {}
  m.exits, m.nexits = {}, 0
  m.hint_report = report
end

local function unwatch_hint(m, rec)
  if rec.watched then
    rec.watched = false
    m.nwatched = m.nwatched - 1
    local ok, msg, errno = m:unwatch(rec.target)
    if not ok then
      m.hint_report(m, "exit_hint", msg, errno)
    end
  end
  local pf = rec.owned
  if pf then
    rec.owned = nil
    pcall(pf.close, pf)
  end
end

-- Ends a hint: out of the wait context, its pidfd closed, forgotten.
-- Idempotent.
local function forget_hint(m, rec)
  if rec.done then
    return
  end
  rec.done = true
  unwatch_hint(m, rec)
  if m.hints[rec.u] == rec then
    m.hints[rec.u] = nil
    m.nhints = m.nhints - 1
  end
end

local function queue_exit(m, rec)
  local st = m.stats
  st.exit_hints = st.exit_hints + 1
  rec.due = m.clock()
  local n = m.nexits + 1
  m.exits[n], m.nexits = rec, n
end

-- The hint's fd is ready.  Out of the wait context at once: a pidfd of
-- an exited process and a hung-up socket stay readable for ever, and
-- level-triggered epoll would report them every round (a spin).
local function fire(m, rec)
  if rec.fired or rec.done then
    return
  end
  rec.fired = true
  unwatch_hint(m, rec)
  queue_exit(m, rec)
end

-- After list:register took a dynamic entry: watch its hint.
local function arm_hint(m, rec)
  m.hints[rec.u] = rec
  m.nhints = m.nhints + 1
  if rec.source == "gone" then
    rec.fired = true
    return queue_exit(m, rec)
  end
  if m.watches[rec.target] then
    -- another hint's (or the host's own watch): one hint per fd; the fd
    -- stays with whoever watches it
    rec.owned = nil
    m.hint_report(m, "exit_hint", "hint fd already watched: entry "
      .. tostring(rec.u:index()) .. " registered without a hint")
    return forget_hint(m, rec)
  end
  local ok, msg, errno = m:watch(rec.target, function()
    fire(m, rec)
  end, rec.events)
  if not ok then
    m.hint_report(m, "exit_hint", msg, errno)
    return forget_hint(m, rec)
  end
  rec.watched = true
  m.nwatched = m.nwatched + 1
end

local function check_pollable(v, name)
  local t = type(v)
  if not (t == "userdata" or t == "table" or (t == "number" and v >= 0
      and v == floor(v))) then
    error("bad argument #2 to 'register' (" .. name .. " must be an fd or "
      .. "an object with a pollfd method, got " .. policy_mod.describe(v)
      .. ")", 4)
  end
end

-- A checked hint -> a record, or nil (no hint, or the policy has no
-- on_exit hook: then nothing is watched and a pidfd given is closed).
local function make_hint(m, u, pid, pidfd, target, events)
  if pidfd == nil and target == nil and pid == nil then
    return nil
  end
  if not m.policy:has("on_exit") then
    if pidfd ~= nil then
      pcall(pidfd.close, pidfd)
    end
    return nil
  end
  local rec = { u = u, pid = pid, tries = 0 }
  if target ~= nil then
    rec.target, rec.events, rec.source = target, events or EPOLLRDHUP,
      "hangup"
  else
    if pidfd == nil then
      local msg, errno
      pidfd, msg, errno = ufl.pidfd_open(pid)
      if not pidfd then
        if errno == ESRCH then
          -- exited and reaped already (or never was): probe at once
          rec.source = "gone"
          return rec
        end
        m.hint_report(m, "exit_hint", msg, errno)
        return nil
      end
    end
    rec.target, rec.owned, rec.events, rec.source = pidfd, pidfd,
      events or EPOLLIN, "pidfd"
  end
  return rec
end

--- m:register's second argument: checked (raises on a bad argument, as
-- m:register), made a record and queued with u (a hint queued before
-- for u ends).  Called by Monitor:register itself (the error levels
-- name its caller).
-- @param m the monitor
-- @param u the uffd
-- @tparam[opt] table h the hint
function M.register(m, u, h)
  if h == nil then
    return
  end
  if type(h) ~= "table" then
    error("bad argument #2 to 'register' (table or nil expected, got "
      .. type(h) .. ")", 3)
  end
  local pid, pidfd, target, events = rawget(h, "pid"), rawget(h, "pidfd"),
    rawget(h, "hint"), rawget(h, "events")
  for k in pairs(h) do
    if k ~= "pid" and k ~= "pidfd" and k ~= "hint" and k ~= "events" then
      error("bad argument #2 to 'register' (unknown option '"
        .. tostring(k) .. "')", 3)
    end
  end
  if pid ~= nil then
    local ok, msg = policy_mod.check_int(pid, "pid", 1, MAX_PID)
    if not ok then
      error("bad argument #2 to 'register' (" .. msg .. ")", 3)
    end
  end
  if pidfd ~= nil then
    check_pollable(pidfd, "pidfd")
  end
  if target ~= nil then
    check_pollable(target, "hint")
  end
  if events ~= nil then
    local ok, msg = policy_mod.check_int(events, "events", 1, 2147483647)
    if not ok then
      error("bad argument #2 to 'register' (" .. msg .. ")", 3)
    end
  end
  if pidfd ~= nil and target ~= nil then
    error("bad argument #2 to 'register' (pidfd and hint are exclusive)", 3)
  end
  local rec = make_hint(m, u, pid, pidfd, target, events)
  if rec then
    local old = m.pending_hint[u]
    if old then
      forget_hint(m, old)
    end
    m.pending_hint[u] = rec
  end
end

--- The hint queued with u (taken off the queue), or nil.
function M.take(m, u)
  local rec = m.pending_hint[u]
  m.pending_hint[u] = nil
  return rec
end

--- After list:register: a dynamic entry's hint is armed (only a dynamic
-- entry is ever collected: a static one needs no hint); otherwise (a
-- static entry, or a register that failed) the hint ends.
-- @param m the monitor
-- @param rec the record from take, or nil
-- @param dyn whether the entry is dynamic (nil or false: it ends)
function M.settle(m, rec, dyn)
  if not rec then
    return
  end
  if dyn then
    arm_hint(m, rec)
  else
    forget_hint(m, rec)
  end
end

--- After a full gc collected something: hints of entries that left the
-- list end (their pidfds closed) without waiting for them to fire.
function M.sweep(m)
  if m.nhints == 0 then
    return
  end
  for u, rec in pairs(m.hints) do
    if u:is_closed() or not u:index() then
      forget_hint(m, rec)
    end
  end
end

--- Between batches: asks the policy about the fired hints, probes the
-- entries it wants probed, all in one list:gc{only}; requeues the ones
-- still alive for a retry.
-- @param m the monitor
-- @tparam function gc_only gc_only(m, only): the protected list:gc{only}
--   (n, or nil, msg, errno, partial)
-- @treturn number how many the probes collected
function M.process(m, gc_only)
  if m.nexits == 0 then
    return 0
  end
  local now = m.clock()
  local exits, list, st = m.exits, m.list, m.stats
  local only, recs, k, j = {}, {}, 0, 0
  for i = 1, m.nexits do
    local rec = exits[i]
    exits[i] = nil
    local u = rec.u
    local idx = not rec.done and not u:is_closed() and u:index()
    if not idx then
      forget_hint(m, rec)   -- collected, removed, or the hint ended
    elseif rec.due > now then
      j = j + 1
      exits[j] = rec
    else
      local go = true
      if rec.tries == 0 then
        local ns = list:num_static()
        go = m.policy:on_exit(idx, ns ~= nil and idx > ns, rec.pid,
          rec.source, list:len(), st.dynamic)
      end
      if go then
        k = k + 1
        only[k], recs[k] = idx, rec
      else
        st.exit_left = st.exit_left + 1
        forget_hint(m, rec)
      end
    end
  end
  m.nexits = j
  if k == 0 then
    return 0
  end
  local p0 = list:probes()
  local n, msg, errno, partial = gc_only(m, only)
  st.exit_probes = st.exit_probes + (list:probes() - p0)
  local got = n or partial or 0
  st.collected, st.dynamic = st.collected + got, st.dynamic - got
  if not n then
    m.hint_report(m, "gc", msg, errno)
  end
  for i = 1, k do
    local rec = recs[i]
    if rec.u:is_closed() then
      st.exit_collected = st.exit_collected + 1
      forget_hint(m, rec)
    elseif rec.tries >= m.exit_retries then
      st.exit_alive = st.exit_alive + 1
      st.exit_gave_up = st.exit_gave_up + 1
      forget_hint(m, rec)
    else
      st.exit_alive = st.exit_alive + 1
      rec.due = now + m.exit_retry_ms * 2 ^ rec.tries
      rec.tries = rec.tries + 1
      m.nexits = m.nexits + 1
      exits[m.nexits] = rec
    end
  end
  return got
end

--- ms until the next exit retry is due (at least 1), or nil.
function M.next_ms(m)
  if m.nexits == 0 then
    return nil
  end
  local due = math.huge
  for i = 1, m.nexits do
    local d = m.exits[i].due
    if d < due then
      due = d
    end
  end
  return math_max(1, math.ceil(due - m.clock()))
end

--- Ends every hint (armed, fired, queued with a register): m:close.
function M.close(m)
  for _, rec in pairs(m.hints) do
    forget_hint(m, rec)
  end
  for u, rec in pairs(m.pending_hint) do
    m.pending_hint[u] = nil
    forget_hint(m, rec)
  end
  for i = 1, m.nexits do
    m.exits[i] = nil
  end
  m.nexits = 0
end

return M
