--- uffdlist.monitor: the memory monitor's loop (doc/monitor-api.md).
--
-- One round (`m:step`): wait on the list's wait context; read at most
-- `batch` events from each ready uffd and dispatch them to the handlers;
-- call the watched fds' functions; retry parked faults; then, between
-- batches, apply the queued list changes (register,
-- set_num_static_devices), call the policy's `after_batch` and run a gc if
-- a hook asked for one.  No list change happens while a batch's indices
-- are in use.
--
-- Faking (for specs): the events source is `m.read_events(u, out, max)`
-- (default `u:read_events(out, max)`, same results), the default fill is
-- `m.fill(u, addr, len)` (default `u:zeropage(addr, len)`) and EEXIST wakes
-- with `m.wake(u, addr, len)` (default `u:wake(addr, len)`).  Replace these
-- fields on a monitor, or pass them to `new`: fake uffds (eventfds) support
-- epoll and close only.
--
-- Time: `m.clock()` gives milliseconds (opts.clock); by default
-- ufl.monotonic_ms (CLOCK_MONOTONIC).  The policy's timer comes from
-- `m.timerfd(ms)` (opts.timerfd; default ufl.timerfd): anything with
-- fd/read/close that the wait context takes.  `m:timeout()` is the wait
-- the next `step()` would do (seconds), for a host (or uffdlist.testing's
-- virtual clock) that waits itself and then calls `step(0)`.
--
-- The policy is behind uffdlist.policy's boundary (`m.policy`): the loop
-- calls its methods with plain values and gets plain decisions back; the
-- guard, the sandbox, the validation of answers and the fallback to
-- crosvm live there (lua/uffdlist/policy.lua, guard.lua, sandbox.lua).
-- The device boundary is lua/uffdlist/device.lua; the exit hints (watch,
-- fire, on_exit, probe, retry) are lua/uffdlist/hints.lua, their state on
-- the monitor (m.hints, m.exits, ...).
--
-- A round that fails anywhere leaves the monitor usable: the calls out of
-- the loop (read_events, fill, wake, handlers, hooks, list changes) are
-- protected one by one and reported; whatever else raises inside a round
-- ends the round (`busy` cleared) and is reported as "round": the next
-- step works.
-- @module uffdlist.monitor

local ufl = require "uffdlist"
local policy_mod = require "uffdlist.policy"
local device = require "uffdlist.device"
local hints = require "uffdlist.hints"

local type, pcall, tostring, error = type, pcall, tostring, error
local pairs, setmetatable = pairs, setmetatable
local math_min, math_max, floor = math.min, math.max,
  math.floor

local ESRCH, EAGAIN = ufl.errno.ESRCH, ufl.errno.EAGAIN
local EPOLLIN = ufl.EPOLLIN
local outcome = ufl.outcome

local DEFAULT_WAIT_MS = 100
local PARKED_WAIT_MS = 1     -- small but never 0: parked faults must not spin
local MAX_EVENTS = 1024      -- read_events' limit

local M = {}
local Monitor = {}
Monitor.__index = Monitor

-- ---------------------------------------------------------------- helpers

local function default_on_error(_m, what, msg, errno)
  io.stderr:write("uffdlist.monitor: ", tostring(what), ": ", tostring(msg),
    errno and (" (errno " .. tostring(errno) .. ")") or "", "\n")
end

-- kind: only for the policy boundary's reports ("error", "time",
-- "memory", "yield", "answer", "disabled").
local function report(self, what, msg, errno, kind)
  self.stats.errors = self.stats.errors + 1
  -- on_error is the host's; if it fails too there is nobody left to tell
  -- but stderr, and the loop must go on.
  local ok, e = pcall(self.on_error, self, what, msg, errno, kind)
  if not ok then
    default_on_error(self, "on_error", e)
  end
end

-- An error value as a string without running a policy's __tostring
-- outside its guard.
local function errstr(e)
  local t = type(e)
  if t == "string" or t == "number" then
    return tostring(e)
  end
  return "(error object of type " .. t .. ")"
end

local function new_stats()
  return {
    faults = 0, served_copy = 0, served_zero = 0, skipped_gone = 0,
    parked = 0, retried = 0, registered = 0, collected = 0, gcs = 0,
    rounds = 0,
    events = { pagefault = 0, remove = 0, fork = 0, remap = 0, unmap = 0 },
    -- beyond the doc's list
    woken = 0, partial = 0, dropped = 0, retry_timeouts = 0,
    prefetched = 0, errors = 0, hook_errors = 0, dynamic = 0,
    -- the policy boundary's (policy.COUNTERS, doc/monitor-api.md)
    hook_calls = 0, hook_overruns = 0, hook_memory = 0, hook_answers = 0,
    hook_skipped = 0, policy_disabled = 0, hook_ms = 0,
    -- exit hints (doc/monitor-api.md, "Exit hints")
    exit_hints = 0, exit_probes = 0, exit_collected = 0, exit_alive = 0,
    exit_gave_up = 0, exit_left = 0,
  }
end

-- ------------------------------------------------------- default handlers

local function default_pagefault(m, u, ev)
  m:serve(u, ev)
end

local function default_fork(m, _u, ev)
  if ev.uffd then
    m:register(ev.uffd)
  else
    report(m, "fork", "fork event without a uffd", ev.errno)
  end
end

local function ignore() end

local DEFAULT_HANDLERS = {
  pagefault = default_pagefault, fork = default_fork,
  remove = ignore, remap = ignore, unmap = ignore,
}

local function zero_fill(u, addr, len)
  return u:zeropage(addr, len)
end

-- A call out of the loop (fill, wake, read_events: host code or a fake)
-- that raises gives nil, "raised: MSG" instead, so no round is left half
-- done.
local function raised(ok, ...)
  if ok then
    return ...
  end
  return nil, "raised: " .. errstr((...))
end

local function protected(f, ...)
  return raised(pcall(f, ...))
end

local function default_read_events(u, out, max)
  return u:read_events(out, max)
end

local function default_wake(u, addr, len)
  return u:wake(addr, len)
end

-- ----------------------------------------------------------- the policy

-- What the boundary reports goes through on_error; it counts into
-- m.stats itself.
local function policy_reporter(self)
  return function(what, msg, kind)
    report(self, what, msg, nil, kind)
  end
end

local function check_opt(opts, name, default, lo, hi)
  local v = opts[name]
  if v == nil then
    return default
  end
  local ok, msg = policy_mod.check_int(v, name, lo, hi)
  if not ok then
    error("bad option '" .. name .. "' to 'new' (" .. msg .. ")", 3)
  end
  return v
end

--- A new monitor.  See doc/monitor-api.md for opts.
-- @tparam table opts list (required), policy (a spec from policy.load, a
--   table, or a name or path for policy.load, with opts.policy_opts),
--   handlers, batch, retry_timeout_ms, hook_budget_ms, policy_memory_mb,
--   policy_max_strikes, policy_max_share, exit_retries, exit_retry_ms,
--   on_error, read_events, fill, wake, clock, timerfd
-- @treturn monitor
function M.new(opts)
  if type(opts) ~= "table" or opts.list == nil then
    error("bad argument #1 to 'new' (table with a list expected)", 2)
  end
  local self = setmetatable({}, Monitor)
  self.list = opts.list
  self.ctx = opts.list:waitctx()
  self.batch = math_max(1, math_min(floor(opts.batch or 64), MAX_EVENTS))
  self.retry_timeout_ms = opts.retry_timeout_ms or 1000
  self.hook_budget_ms = check_opt(opts, "hook_budget_ms", 100, 1, 60000)
  self.policy_memory_mb = check_opt(opts, "policy_memory_mb",
    policy_mod.DEFAULT_MEMORY_MB, 1, 1048576)
  self.policy_max_strikes = check_opt(opts, "policy_max_strikes",
    policy_mod.DEFAULT_MAX_STRIKES, 1, 1000000)
  local share = opts.policy_max_share or policy_mod.DEFAULT_MAX_SHARE
  if type(share) ~= "number" or not (share > 0 and share <= 1) then
    error("bad option 'policy_max_share' to 'new' (a number in (0, 1] "
      .. "expected, got " .. policy_mod.describe(share) .. ")", 2)
  end
  self.policy_max_share = share
  self.exit_retries = check_opt(opts, "exit_retries", 3, 0, 100)
  self.exit_retry_ms = check_opt(opts, "exit_retry_ms", 5, 1, 60000)
  self.on_error = opts.on_error or default_on_error
  self.read_events = opts.read_events or default_read_events
  self.fill = opts.fill or zero_fill
  self.wake = opts.wake or default_wake
  self.page_size = ufl.page_size()
  self.stats = new_stats()
  self.handlers = {}
  for kind, fn in pairs(DEFAULT_HANDLERS) do
    self.handlers[kind] = fn
  end
  for kind, fn in pairs(opts.handlers or {}) do
    self.handlers[kind] = fn
  end
  self.clock = opts.clock or ufl.monotonic_ms
  self.timerfd = opts.timerfd or ufl.timerfd
  self.dev = device.new(opts.device, report)  -- the device boundary
  -- Reused across rounds: nothing on the hot path allocates a table.
  self.ready, self.ready_evs = {}, {}
  self.evbuf, self.evpool, self.evlen, self.npool = {}, {}, 0, 0
  self.parked, self.nparked, self.free_recs = {}, 0, {}
  self.last_read = setmetatable({}, { __mode = "k" })
  self.q_op, self.q_arg, self.nqueued = {}, {}, 0
  self.watches = {}
  hints.init(self, report)  -- exit hints (lua/uffdlist/hints.lua)
  self.round, self.busy, self.want_gc = 0, false, false
  self.last_event = self.clock()
  self:set_policy(opts.policy or "crosvm", opts.policy_opts)
  return self
end

--- Watches the script's own fd or object (command socket, eventfd,
-- timerfd, pidfd) in the loop's wait context: fn(m, fd_or_obj, evmask)
-- is called when it is ready (an error in fn goes to m.on_error).
-- @treturn[1] true
-- @return[2] nil, message, errno (from waitctx:add)
function Monitor:watch(target, fn, events)
  if type(fn) ~= "function" then
    error("bad argument #2 to 'watch' (function expected, got "
      .. type(fn) .. ")", 2)
  end
  -- The token is this table: list:wait reports it as is (only list
  -- entries are reported as integer indices).
  local rec = { target = target, fn = fn, active = true }
  local ok, msg, errno = self.ctx:add(target, rec, events or ufl.EPOLLIN)
  if not ok then
    return nil, msg, errno
  end
  self.watches[target] = rec
  return true
end

--- Stops watching a target given to watch.
-- @treturn[1] true
-- @return[2] nil, message, errno
function Monitor:unwatch(target)
  local rec = self.watches[target]
  if not rec then
    return nil, "unwatch: not watched", ufl.errno.ENOENT
  end
  rec.active = false
  self.watches[target] = nil
  return self.ctx:delete(target)
end

-- ----------------------------------------------------------------- timer

local function on_timer_ready(m, t)
  local n, msg, errno = t:read()
  if not n then
    return report(m, "timerfd", msg, errno)
  end
  if n > 0 and m.policy:on_timer(n) then
    m.want_gc = true
  end
end

local function stop_timer(self)
  if self.timer then
    self:unwatch(self.timer)
    self.timer:close()
  end
  self.timer, self.timer_rec, self.timer_ms = nil, nil, nil
end

-- Arms the policy's timer: a timerfd in the wait context.
local function start_timer(self, ms)
  self.timer_ms = ms
  local t, msg, errno = self.timerfd(ms)
  if not t then
    return report(self, "timerfd", msg, errno)
  end
  local ok, wmsg, werr = self:watch(t, on_timer_ready)
  if not ok then
    t:close()
    return report(self, "timerfd", wmsg, werr)
  end
  self.timer, self.timer_rec = t, self.watches[t]
end

-- The policy's timer follows its timer_ms (after a fallback too).
local function arm_policy_timer(self)
  stop_timer(self)
  local ms = self.policy.timer_ms
  if ms then
    start_timer(self, ms)
  end
end

--- Replaces the policy: a spec from policy.load, a policy table, or a
-- name or path for policy.load (with popts).  A policy that does not load
-- raises (the monitor keeps its old one).
function Monitor:set_policy(p, popts)
  local spec, msg
  if type(p) == "string" then
    popts = popts or {}
    if popts.hook_budget_ms == nil or popts.memory_mb == nil then
      local o = {}
      for k, v in pairs(popts) do o[k] = v end
      o.hook_budget_ms = o.hook_budget_ms or self.hook_budget_ms
      o.memory_mb = o.memory_mb or self.policy_memory_mb
      popts = o
    end
    spec, msg = policy_mod.load(p, popts)
  elseif policy_mod.is_spec(p) then
    spec = p
  elseif type(p) == "table" then
    spec, msg = policy_mod.from_table(p)
  else
    error("bad argument #1 to 'set_policy' (table or string expected, got "
      .. type(p) .. ")", 2)
  end
  if not spec then
    error(msg, 2)
  end
  self.policy = policy_mod.boundary(spec, {
    budget_ms = self.hook_budget_ms, memory_mb = self.policy_memory_mb,
    max_strikes = self.policy_max_strikes,
    max_share = self.policy_max_share,
    report = policy_reporter(self), stats = self.stats,
    on_fallback = function() arm_policy_timer(self) end,
    -- the loop's clock: the policy's share of its time is measured on it
    -- (uffdlist.testing's virtual clock included)
    clock = self.clock,
  })
  arm_policy_timer(self)
end

-- ------------------------------------------------------------ list changes

-- A uffd the list did not take is closed (doc: "and the uffd closed").
local function close_unlisted(u)
  if not u:is_closed() and not u:index() then
    u:close()
  end
end

local function apply_register(self, u)
  local hint = hints.take(self, u)
  local ok, dyn, msg, errno = pcall(device.admit, self, u)
  if ok and dyn then
    ok, dyn, msg, errno = pcall(self.list.register, self.list, u)
  end
  if not ok or dyn == nil then
    report(self, "register", ok and device.register_error(msg, errno)
      or errstr(dyn), ok and errno or nil)
    pcall(close_unlisted, u)
    hints.settle(self, hint, false)
    return
  end
  -- only a dynamic entry is ever collected: a static one needs no hint
  hints.settle(self, hint, dyn)
  local st = self.stats
  st.registered = st.registered + 1
  if dyn then
    st.dynamic = st.dynamic + 1
  end
  local idx = u:index()
  if self.policy:on_register(idx, dyn, self.list:len(), st.dynamic) then
    self.want_gc = true
  end
end

local function apply_static(self, n)
  local ok, set = pcall(self.list.set_num_static_devices, self.list, n)
  if not ok or not set then
    return report(self, "set_num_static_devices", ok and
      "the list's number of static devices was set already" or errstr(set))
  end
  self.policy:on_static_complete(n)
end

-- Applies the queued changes in call order.  Each is taken off the queue
-- before it is applied, so an error in one (reported) leaves no half-done
-- queue behind.
local function apply_queue(self)
  local ops, args = self.q_op, self.q_arg
  local i = 1
  while i <= self.nqueued do
    local op, arg = ops[i], args[i]
    ops[i], args[i] = nil, nil
    local ok, e = pcall(op == "register" and apply_register or apply_static,
      self, arg)
    if not ok then
      report(self, op, errstr(e))
    end
    i = i + 1
  end
  self.nqueued = 0
end

local function enqueue(self, op, arg)
  local n = self.nqueued + 1
  self.q_op[n], self.q_arg[n], self.nqueued = op, arg, n
end

-- Drops parked faults whose uffd a gc closed.
local function purge_closed(self)
  local parked, j = self.parked, 0
  for i = 1, self.nparked do
    local rec = parked[i]
    parked[i] = nil
    if rec.u:is_closed() then
      rec.u, rec.fill = nil, nil
      self.free_recs[#self.free_recs + 1] = rec
    else
      j = j + 1
      parked[j] = rec
    end
  end
  self.nparked = j
end

local function run_gc(self)
  self.want_gc = false
  local st = self.stats
  st.gcs = st.gcs + 1
  local n, msg, errno, partial = protected(self.list.gc, self.list)
  local got = n or partial or 0
  st.collected = st.collected + got
  st.dynamic = st.dynamic - got
  if got > 0 then
    purge_closed(self)
    hints.sweep(self)
  end
  if not n then
    report(self, "gc", msg, errno)
    return nil, msg, errno
  end
  return n
end

-- Between batches: the fired exit hints (lua/uffdlist/hints.lua), their
-- probes in one list:gc{only}.
local function gc_only(self, only)
  return protected(self.list.gc, self.list, { only = only })
end

local function process_exits(self)
  if hints.process(self, gc_only) > 0 then
    purge_closed(self)
  end
end

--- Queues u for list:register; applied between batches (at once outside
-- a round), then policy.on_register(u, is_dynamic).  A failed register is
-- reported through m.on_error and u is closed.
-- @param u the uffd
-- @tparam[opt] table hint an exit hint for a dynamic entry ("Exit hints"
--   in doc/monitor-api.md): { pid = P } (a pidfd the monitor opens),
--   { pidfd = pf } (taken over), { hint = fd_or_obj [, events = mask] }
--   (borrowed; default EPOLLRDHUP: a socket's hang-up), pid with either
--   for the policy's information
function Monitor:register(u, hint)
  if type(u) ~= "userdata" then
    error("bad argument #1 to 'register' (uffd expected, got "
      .. type(u) .. ")", 2)
  end
  if not self.busy then
    self.policy:begin_round()
  end
  hints.register(self, u, hint)
  enqueue(self, "register", u)
  if not self.busy then
    apply_queue(self)
    process_exits(self)
    if self.want_gc then
      run_gc(self)
    end
  end
end

--- Queues list:set_num_static_devices(n), then
-- policy.on_static_complete(n).  A second call raises (as crosvm).
function Monitor:set_num_static_devices(n)
  if type(n) ~= "number" then
    error("bad argument #1 to 'set_num_static_devices' (number expected, got "
      .. type(n) .. ")", 2)
  end
  if self.static_set then
    error("set_num_static_devices called twice", 2)
  end
  self.static_set = true
  enqueue(self, "static", n)
  if not self.busy then
    self.policy:begin_round()
    apply_queue(self)
  end
end

--- Runs a gc now when between batches.
-- @treturn[1] number collected
-- @return[2] nil, message, errno (reported through on_error too)
-- @return[3] nil, "deferred": called during a round; it runs at its end
function Monitor:gc()
  if self.busy then
    self.want_gc = true
    return nil, "deferred"
  end
  return run_gc(self)
end

--- Asks for a gc at the end of the round (or the next one).
function Monitor:request_gc()
  self.want_gc = true
end

-- -------------------------------------------------------------- serving

local DONE, EXISTS, GONE, BUSY, FAILED = "done", "exists", "gone", "parked",
  "error"

-- Fills [addr, addr+len), copying the rest after a partial copy.
-- Returns the outcome, and for BUSY/FAILED the range left, msg, errno.
-- No loop (a partial copy tail-calls for the rest): a loop here would be
-- an inner loop of every trace through serve and dispatch, and LuaJIT
-- aborts those ("inner loop in root trace"), leaving the fault path to
-- the interpreter.  The plain success is tested before ufl.outcome.
local function fill_range(self, fill, u, addr, len)
  local ok, n, msg, errno, count = pcall(fill, u, addr, len)
  if ok and n ~= nil then
    return DONE
  end
  if not ok then
    n, msg, errno, count = nil, "raised: " .. errstr(n), nil, nil
  end
  local how = outcome(n, msg, errno, count)
  if how == "done" then
    return DONE
  elseif how == "partial" then
    self.stats.partial = self.stats.partial + 1
    if count >= len then
      return DONE
    end
    return fill_range(self, fill, u, addr + count, len - count)
  elseif how == "process_gone" then
    return GONE
  elseif how == "page_exists" then
    return EXISTS
  elseif how == "map_changing" then
    return BUSY, addr, len
  end
  return FAILED, addr, len, msg, errno
end

-- EEXIST does not wake the faulting thread.
local function wake(self, u, addr, len)
  local ok, msg, errno = protected(self.wake, u, addr, len)
  if ok then
    self.stats.woken = self.stats.woken + 1
    return EXISTS
  elseif errno == ESRCH then
    return GONE
  end
  report(self, "wake", msg, errno)
  return FAILED
end

-- A fault that could not be filled: its thread is woken so that it
-- retries the access instead of staying blocked for ever — it faults again
-- (a new event) or, if the range is gone (munmap), gets SIGSEGV as it
-- would without userfaultfd.
local function give_up(self, u, addr, len, what, msg, errno)
  report(self, what, msg, errno)
  local ok, wmsg, werr = protected(self.wake, u, addr, len)
  if not ok and werr ~= ESRCH then
    report(self, "wake", wmsg, werr)
  end
  return FAILED
end

local function count_served(self, fill)
  local st = self.stats
  if fill == zero_fill then
    st.served_zero = st.served_zero + 1
  else
    st.served_copy = st.served_copy + 1
  end
end

local function gone(self)
  self.stats.skipped_gone = self.stats.skipped_gone + 1
  self.drop = true   -- the rest of this uffd's batch waits for gc
  return GONE
end

local function park(self, u, addr, len, fill)
  local recs = self.free_recs
  local rec = recs[#recs]
  if rec then
    recs[#recs] = nil
  else
    rec = {}
  end
  rec.u, rec.addr, rec.len, rec.fill = u, addr, len, fill
  rec.deadline = self.clock() + self.retry_timeout_ms
  self.nparked = self.nparked + 1
  self.parked[self.nparked] = rec
  self.stats.parked = self.stats.parked + 1
  return BUSY
end

-- Prefetch: pages after the fault; stops at the first page that cannot be
-- filled now (no parking: nobody waits for these).
local function prefetch(self, fill, u, addr, pages)
  local ps = self.page_size
  for k = 1, pages - 1 do
    local how = fill_range(self, fill, u, addr + k * ps, ps)
    if how == DONE then
      self.stats.prefetched = self.stats.prefetched + 1
    elseif how == GONE then
      return gone(self)
    elseif how ~= EXISTS then
      return
    end
  end
end

-- The policy's prefetch window: plain values in, a validated count out.
local function window(self, u, ev, page)
  local idx = u:index()
  local ns = self.list:num_static()
  return self.policy:on_fault(idx, idx ~= nil and ns ~= nil and idx > ns,
    ev.address, page, ev.write == true, ev.wp == true, ev.minor == true)
end

--- Serves a pagefault event: fill(u, addr, len) (default m.fill) must
-- copy or zero [addr, addr+len) and return its result (n, or
-- nil, msg, errno [, count]).  ESRCH: the rest of this uffd's batch is
-- dropped (it waits for gc); EEXIST: wake; EAGAIN: parked and retried on
-- later rounds; partial copy: the rest is copied.
-- @treturn string "done", "exists", "gone", "parked" or "error"
function Monitor:serve(u, ev, fill)
  fill = fill or self.fill
  local ps = self.page_size
  local addr = ev.address - ev.address % ps
  local pages = self.policy.hooks.on_fault and window(self, u, ev, addr) or 1
  if ev.wp or ev.minor then   -- never a missing page: see device.lua
    return device.serve_kind(self, u, ev, addr)
  end
  local how, a, len, msg, errno = fill_range(self, fill, u, addr, ps)
  if how == DONE then
    count_served(self, fill)
    device.note_done(self, u)
  elseif how == EXISTS then
    how = wake(self, u, addr, ps)
    if how == EXISTS and device.note_exists(self, u, addr) then
      return FAILED
    end
  elseif how == BUSY then
    return park(self, u, a, len, fill)
  elseif how == FAILED then
    return give_up(self, u, a, len, "fill", msg, errno)
  end
  if how == GONE then
    return gone(self)
  end
  if pages > 1 and how ~= FAILED then
    prefetch(self, fill, u, addr, pages)
  end
  return how
end

-- -------------------------------------------------------------- dispatch

local function dispatch(self, u, ev)
  local kind = ev.kind
  local st = self.stats
  local evst = st.events
  evst[kind] = (evst[kind] or 0) + 1
  if kind == "pagefault" then
    st.faults = st.faults + 1
  end
  if kind == "fork" and not device.admit_fork(self, u, ev) then
    return
  end
  local h = self.handlers[kind]
  if h == nil then
    return report(self, "event", "unexpected event " .. tostring(kind))
  end
  local ok, e = pcall(h, self, u, ev)
  if not ok then
    report(self, "handler." .. kind, errstr(e))
  end
end

-- read_events truncates its out table to n: keep every event table ever
-- made in evpool and put them back before the next read, so a longer read
-- later does not allocate new ones.
local function restore_events(self, max)
  local buf, pool = self.evbuf, self.evpool
  for i = self.evlen + 1, math_min(max, self.npool) do
    buf[i] = pool[i]
  end
end

local function keep_events(self, n)
  local buf, pool = self.evbuf, self.evpool
  if n == 1 then   -- no loop for the usual read: see read_and_dispatch
    pool[1] = buf[1]
  else
    for i = 1, n do
      pool[i] = buf[i]
    end
  end
  if n > self.npool then
    self.npool = n
  end
  self.evlen = n
end

-- One event of a batch: after ESRCH the rest is dropped, but fork events.
local function dispatch_one(self, u, ev)
  if not self.drop or ev.kind == "fork" then
    dispatch(self, u, ev)
  else
    self.stats.dropped = self.stats.dropped + 1
  end
  if ev.kind == "fork" then
    ev.uffd = nil   -- handed over; the pool must not keep it alive
  end
end

-- Reads at most `batch` events of u and dispatches them.  After ESRCH the
-- rest is dropped, except fork events: their new uffds are owned and a
-- dropped one would leave a live child without its monitor.
local function read_and_dispatch(self, u)
  if self.dev.quarantined[u] then   -- never read again (device.lua)
    return 0
  end
  self.last_read[u] = self.round
  local max, buf = self.batch, self.evbuf
  restore_events(self, max)
  local n, msg, errno = protected(self.read_events, u, buf, max)
  if type(n) ~= "number" then
    n = nil
    msg = msg or "read_events returned no count"
  end
  if not n then
    n = device.read_failed(self, u, buf, msg, errno)
    if not n then
      return 0
    end
  end
  keep_events(self, n)
  self.drop = false
  -- One event (the usual read) without the loop: a trace entering
  -- read_and_dispatch would abort on leaving the loop ("leaving loop in
  -- root trace"), and the fault path would run in the interpreter.
  if n == 1 then
    dispatch_one(self, u, buf[1])
  else
    for i = 1, n do
      dispatch_one(self, u, buf[i])
    end
  end
  self.drop = false
  return n
end

-- ---------------------------------------------------------------- retry

local function free_rec(self, rec)
  rec.u, rec.fill = nil, nil
  self.free_recs[#self.free_recs + 1] = rec
end

-- true when the parked fault is settled (served, gone, failed, timed out).
local function retry_one(self, rec)
  local u = rec.u
  if u:is_closed() or self.dev.quarantined[u] then
    return true
  end
  self.stats.retried = self.stats.retried + 1
  local how, a, len, msg, errno = fill_range(self, rec.fill, u, rec.addr,
    rec.len)
  if how == DONE then
    count_served(self, rec.fill)
  elseif how == EXISTS then
    wake(self, u, rec.addr, rec.len)
  elseif how == GONE then
    self.stats.skipped_gone = self.stats.skipped_gone + 1
  elseif how == FAILED then
    give_up(self, u, a, len, "fill", msg, errno)
  elseif self.clock() < rec.deadline then
    rec.addr, rec.len = a, len
    return false
  else
    self.stats.retry_timeouts = self.stats.retry_timeouts + 1
    give_up(self, u, a, len, "retry_timeout", string.format(
      "fault at 0x%x: memory map still changing after %g ms", a,
      self.retry_timeout_ms), EAGAIN)
  end
  return true
end

-- Reads the pending events of every uffd with parked faults that was not
-- read this round (a REMOVE must be read for the kernel to finish the
-- change), then retries every parked fault.
local function retry_parked(self)
  local parked = self.parked
  for i = 1, self.nparked do
    local u = parked[i].u
    if not u:is_closed() and self.last_read[u] ~= self.round then
      read_and_dispatch(self, u)
    end
  end
  local j = 0
  for i = 1, self.nparked do
    local rec = parked[i]
    parked[i] = nil
    if retry_one(self, rec) then
      free_rec(self, rec)
    else
      j = j + 1
      parked[j] = rec
    end
  end
  self.nparked = j
end

-- ----------------------------------------------------------------- step

local function wait_timeout(self, timeout)
  if timeout == nil then
    timeout = self.policy.idle_ms or DEFAULT_WAIT_MS
  end
  if self.nparked > 0 and (timeout < 0 or timeout > PARKED_WAIT_MS) then
    timeout = PARKED_WAIT_MS
  end
  local retry = self.nexits > 0 and hints.next_ms(self)
  if retry and (timeout < 0 or timeout > retry) then
    timeout = retry
  end
  return math.ceil(timeout)
end

-- Dispatches the ready sources: uffds first (faults block threads), then
-- the watched fds.  Returns whether any was active (the loop's own timer
-- does not count).
local function dispatch_ready(self, n)
  local ready, evs, list = self.ready, self.ready_evs, self.list
  local active = false
  for i = 1, n do
    local tok = ready[i]
    if type(tok) == "number" then
      local u = list:get(tok)
      if u and not self.dev.quarantined[u]
        and (evs[i] == EPOLLIN or device.check_ready(self, u, evs[i]))
        and read_and_dispatch(self, u) > 0 then
        active = true
      end
    end
  end
  for i = 1, n do
    local rec, ev = ready[i], evs[i]
    -- Emptied as used: the next wait then never truncates a longer tail,
    -- whose loop LuaJIT cannot compile in a side trace ("loop unroll
    -- limit reached"): that exit would fall back to the interpreter.
    ready[i], evs[i] = nil, nil
    if type(rec) == "table" and rec.active then
      if rec ~= self.timer_rec then
        active = true
      end
      local ok, e = pcall(rec.fn, self, rec.target, ev)
      if not ok then
        report(self, "watch", errstr(e))
      end
    end
  end
  return active
end

-- After the batches: list changes, after_batch/on_idle, gc.
local function finish_round(self, active)
  apply_queue(self)
  device.end_round(self)
  local now = self.clock()
  if active then
    self.last_event = now
    if self.policy:after_batch(self.stats) then
      self.want_gc = true
    end
  elseif self.timed_out then
    if self.policy:on_idle(now - self.last_event) then
      self.want_gc = true
    end
  end
  process_exits(self)
  if self.want_gc then
    run_gc(self)
  end
end

-- The part of a round that uses the batch's indices: wait, dispatch,
-- retry.  Returns the number of ready sources and whether any was active.
local function round(self, timeout)
  local n, msg, errno = self.list:wait(timeout, self.ready, self.ready_evs)
  if not n then
    report(self, "wait", msg, errno)
    n = 0
  end
  self.timed_out = n == 0
  local active = n > 0 and dispatch_ready(self, n)
  if self.nparked > 0 then
    retry_parked(self)
  end
  return n, active
end

-- finish_round under pcall: a failure there is reported as the round's.
local function finish_protected(self, active)
  local ok, e = pcall(finish_round, self, active)
  if not ok then
    report(self, "round", errstr(e))
  end
end

-- The start of a round, step's and run's: raises when called from inside
-- one (by `name`, at the caller's caller), else counts it, resets the
-- policy's round budget and returns the wait timeout.
local function start_round(self, timeout_ms, name)
  if self.busy then
    error("monitor:" .. name .. " called from inside a round", 3)
  end
  local timeout = wait_timeout(self, timeout_ms)
  self.round = self.round + 1
  self.stats.rounds = self.stats.rounds + 1
  self.policy:begin_round()
  self.busy = true
  return timeout
end

--- One round.
-- @tparam[opt] number timeout_ms wait at most this long (-1: until ready;
--   default the policy's idle_ms or timer, else 100); 1 ms while faults
--   are parked
-- @treturn number the number of ready sources
function Monitor:step(timeout_ms)
  local timeout = start_round(self, timeout_ms, "step")
  local ok, n, active = pcall(round, self, timeout)
  -- Whatever happened, the round is over.
  self.busy, self.drop = false, false
  if not ok then
    report(self, "round", errstr(n))
    n, active = 0, false
  end
  finish_protected(self, active)
  return n
end

-- One round as step makes it, unprotected, for run: `self.phase` says
-- which of step's protected parts is running ("round", "finish"), so
-- that run reports an error there as step would and goes on.
local function run_step(self)
  local timeout = start_round(self, nil, "run")
  self.phase = "round"
  local _, active = round(self, timeout)
  self.busy, self.drop, self.phase = false, false, "finish"
  finish_round(self, active)
  self.phase = nil
end

local function run_rounds(self, until_fn)
  while not self.stopped and not (until_fn and until_fn(self)) do
    run_step(self)
  end
end

-- After an error in run_step's part `phase`: what step's pcalls do.
local function recover(self, phase, e)
  self.busy, self.drop, self.phase = false, false, nil
  report(self, "round", errstr(e))
  if phase == "round" then
    finish_protected(self, false)
  end
end

--- Loops step until m:stop() or until_fn(m) returns true.  An error of
-- until_fn is raised to the caller.  Raises when called from inside a
-- round (from a handler or a watched fd's function), as step does.
function Monitor:run(until_fn)
  if self.busy then
    error("monitor:run called from inside a round", 2)
  end
  self.stopped = false
  -- The rounds run unprotected inside one pcall, not each in step's: a
  -- LuaJIT trace through a round cannot return into a pcall's frame ("NYI:
  -- return to lower frame"), so every round would end in the interpreter
  -- (bench/README.md).  An error restarts the loop after step's handling.
  while true do
    local ok, e = pcall(run_rounds, self, until_fn)
    if ok then
      return
    end
    local phase = self.phase
    if not phase then
      error(e, 0)
    end
    recover(self, phase, e)
  end
end

--- Makes run return after the current round.
function Monitor:stop()
  self.stopped = true
end

--- Takes a dynamic entry (a uffd or its index) out of the list and closes
-- it, e.g. one quarantined (lua/uffdlist/device.lua); main and static
-- entries are refused.  Between batches; queued during a round.
-- @treturn[1] true
-- @return[2] nil, message, errno (nil, "deferred" during a round)
function Monitor:remove(x)
  return device.remove(self, x)
end

--- Exit hints: how many entries have one (armed, fired or waiting for a
-- retry), and how many are in the wait context now (each of those that
-- came as a pid or a pidfd holds one fd of the monitor).
-- @treturn number hints
-- @treturn number watched
function Monitor:hint_count()
  return self.nhints, self.nwatched
end

--- Number of parked (EAGAIN) faults.
function Monitor:parked_count()
  return self.nparked
end

--- Stops the policy's timer and unwatches every watched fd (the list
-- stays the caller's).
function Monitor:close()
  device.close(self)
  stop_timer(self)
  hints.close(self)
  for target in pairs(self.watches) do
    self:unwatch(target)
  end
end

-- ------------------------------------------------- outer event loops
-- cqueues' pollable triple, so a host's loop (cqueues, luv, its own epoll)
-- drives the monitor instead of m:run(): wait until pollfd() is readable
-- or timeout() seconds passed, then call m:step(0).

--- The fd an outer loop polls for reading: the list's wait context's epoll
-- fd (readable while any uffd, watched fd or the policy timer is).
function Monitor:pollfd()
  return self.ctx:pollfd()
end

--- "r": pollfd() is polled for reading.
function Monitor:events() -- luacheck: no unused args (a pollable's method)
  return "r"
end

--- Seconds an outer loop may wait before the next m:step(0): the wait
-- m:step() itself would do (the policy's idle_ms, else 100 ms; 1 ms while
-- faults are parked), so on_idle and the parked-fault retries still run;
-- nil when step would wait until ready (a table policy's idle_ms < 0).
function Monitor:timeout()
  local ms = wait_timeout(self, nil)
  if ms < 0 then
    return nil
  end
  return ms / 1000
end

M.Monitor = Monitor
return M
