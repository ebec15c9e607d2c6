--- monitor_vm: the demo's memory monitor (run by build/uffdlist-vm).
--
-- Wires the uffdlist binding, the monitor loop (uffdlist.monitor), the
-- policy named by --policy and the simulated VM (the host's module `vm`,
-- examples/vm/vmlib.c): it serves the guest's page faults from the swap
-- file, registers every VM process's uffd, lets the policy collect the
-- dead hot-plugged ones, and checks at the end that every page the VM
-- read was right, no fd leaked and no process was left behind.
--
-- `run(cfg)` returns the exit status: 0 all good, 1 a check failed,
-- 3 the VM hung (its process group was killed).
-- @module monitor_vm

local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local policies = require "uffdlist.policy"
local vm = require "vm"
local json = require "dkjson"

local floor, max, min = math.floor, math.max, math.min
local fmt, byte = string.format, string.byte
local pairs, ipairs, type, tostring, tonumber = pairs, ipairs,
  type, tostring, tonumber
local table_sort, table_concat = table.sort, table.concat

local M = {}

local PROGRESS_S = 0.2      -- at most 5 progress lines a second
local REAP_S = 0.25         -- how often the VM's exit is looked for
local DRAIN_MIN_MS = 300    -- quiet time after the VM is gone
local MAX_ERRORS = 20       -- error messages kept for the summary
local MAX_ROUNDS = 2000     -- gc/registration rounds kept for the report
local RSS_S = 0.1           -- how often RSS is sampled for rss_peak
local DEFAULT_WAIT_MS = 100 -- the monitor's wait without idle_ms

-- ------------------------------------------------------------ small helpers

local function now_ms()
  return vm.now() * 1000
end

-- "threshold:n=2,ms=100" -> "threshold", {n=2, ms=100}; a file that exists
-- is taken whole.
local function parse_policy(spec)
  local f = io.open(spec, "rb")
  if f then
    f:close()
    return spec, {}
  end
  local name, rest = spec:match("^(.-):([%w_]+=.*)$")
  if not name then
    return spec, {}
  end
  local opts = {}
  for k, v in rest:gmatch("([%w_]+)=([^,]*)") do
    opts[k] = tonumber(v) or v
  end
  return name, opts
end

local function percentile(sorted, p)
  local n = #sorted
  if n == 0 then
    return 0
  end
  return sorted[max(1, min(n, floor(p * n + 0.5)))]
end

-- ------------------------------------------------------------------ JSON

-- --json: one JSON object, by dkjson (Debian lua-dkjson, pure Lua, so the
-- host embeds it as bytecode like the other modules: no disk search, no
-- C module to link, which lua-cjson would need).  Keys are sorted at every
-- level, so two runs' reports diff cleanly.
local function collect_keys(v, set)
  if type(v) == "table" then
    for k, x in pairs(v) do
      if type(k) == "string" then
        set[k] = true
      end
      collect_keys(x, set)
    end
  end
  return set
end

local function encode(v)
  local keys = {}
  for k in pairs(collect_keys(v, {})) do
    keys[#keys + 1] = k
  end
  table_sort(keys)
  return json.encode(v, { keyorder = keys })
end

M.json = encode

-- ------------------------------------------------------------ the state

-- Everything one run keeps; `r` is what the summary reports.
local function new_state(cfg)
  local info = vm.info()
  return {
    cfg = cfg, info = info, t0 = vm.now(),
    procs = {},          -- pid -> {kind=, u=, exited=, reported=}
    pending_go = {},     -- {u=, fd=, pid=} waiting for list registration
    latencies = {},      -- ms, event read -> fill done
    errors = {},
    rounds = {},         -- rounds with a dynamic registration or a gc
    r = {
      hello = 0, exits = 0, dyn_dead = 0, killed = 0, mid_fault = 0,
      verified = 0, mismatches = 0, reports = 0, bad_exits = 0,
      served_zero = 0, served_copy = 0, write_faults = 0, errors = 0,
      dead_at_last_gc = 0, dead_at_last_dynreg = 0,
    },
  }
end

local function record_error(s, what, msg, errno)
  local r = s.r
  r.errors = r.errors + 1
  local line = fmt("%s: %s%s", tostring(what), tostring(msg),
    errno and fmt(" (%s)", ufl.errname(errno) or errno) or "")
  if #s.errors < MAX_ERRORS then
    s.errors[#s.errors + 1] = line
  end
  if not s.cfg.quiet then
    io.stderr:write(s.tty and "\r\27[K" or "", "uffdlist-vm: ", line, "\n")
  end
end

-- -------------------------------------------------------------- faults

-- fill(u, addr, len) for m:serve: a hole of the swap file is a zero page
-- (UFFDIO_ZEROPAGE), any other page is copied from the monitor's read-only
-- mapping of the swap file at the same offset (UFFDIO_COPY).  Addresses
-- outside guest memory (none expected) get zero pages.
local function make_fill(s, swap)
  local base, size, page = s.info.base, s.info.size, s.info.page
  local holes, src = s.info.holes, swap:addr()
  return function(u, addr, len)
    local off = addr - base
    if off < 0 or off >= size or byte(holes, floor(off / page) + 1) == 1 then
      return u:zeropage(addr, len)
    end
    return u:copy(addr, src + off, len)
  end
end

-- The pagefault handler: serves through m:serve and times each fault from
-- the read of its batch (m.read_events, stamped below) to the fill's end.
local function make_pagefault(s, fill)
  local lat, base, page, holes = s.latencies, s.info.base, s.info.page,
    s.info.holes
  local r = s.r
  return function(m, u, ev)
    local how = m:serve(u, ev, fill)
    if ev.write then
      r.write_faults = r.write_faults + 1
    end
    if how == "done" or how == "exists" then
      lat[#lat + 1] = now_ms() - s.t_read
      local i = floor((ev.address - base) / page) + 1
      if byte(holes, i) == 1 then
        r.served_zero = r.served_zero + 1
      else
        r.served_copy = r.served_copy + 1
      end
    end
  end
end

local function stamp(s, ...)
  s.t_read = now_ms()
  return ...
end

-- ------------------------------------------------------ control messages

-- A uffd handed over with HELLO: adopted, the guest range registered on
-- it (MISSING mode) before the process is told to go on; the go waits
-- until the list took it (see flush_go).  Registering is refused with
-- ENOMEM (-> ESRCH) when the process is already gone (fs/userfaultfd.c).
local function adopt(s, msg)
  local u, err, errno = ufl.adopt(msg.uffd)
  if not u then
    vm.close(msg.uffd)
    vm.close(msg.reply)
    return record_error(s, "adopt", err, errno)
  end
  local ok
  ok, err, errno = u:register(s.info.base, s.info.size, ufl.REGISTER_MISSING)
  if not ok then
    u:close()
    vm.close(msg.reply)
    return record_error(s, "register guest memory", err, errno)
  end
  return u
end

local function on_hello(s, m, msg)
  s.r.hello = s.r.hello + 1
  -- processes alive at once (main and static included), for make soak
  s.r.peak_alive = max(s.r.peak_alive or 0, s.r.hello - s.r.exits)
  if msg.kind == "main" then
    vm.close(msg.uffd)
    vm.close(msg.reply)
    return record_error(s, "hello", "a second main process " .. msg.pid)
  end
  local u = adopt(s, msg)
  if not u then
    return
  end
  s.procs[msg.pid] = { kind = msg.kind, u = u }
  s.pending_go[#s.pending_go + 1] = { u = u, fd = msg.reply, pid = msg.pid }
  -- The exit hint: the VM's main process forked the device and names its
  -- pid (the monitor watches a pidfd of it when the policy has on_exit).
  -- A wrong pid costs a few probes, never a collection: only the
  -- checker's probe collects (doc/monitor-api.md, "Exit hints").
  m:register(u, { pid = msg.pid })
end

local function on_exit(s, msg)
  local r, p = s.r, s.procs[msg.pid]
  r.exits = r.exits + 1
  if msg.killed then
    r.killed = r.killed + 1
    r.mid_fault = r.mid_fault + (msg.mid_fault and 1 or 0)
  elseif msg.code ~= 0 then
    r.bad_exits = r.bad_exits + 1
    record_error(s, "exit", fmt("process %d: %s %s", msg.pid,
      msg.code and "exit code" or "signal", msg.code or msg.signal))
  end
  if p then
    p.exited = true
    if p.kind == "dynamic" then
      r.dyn_dead = r.dyn_dead + 1
    end
  end
end

local function on_report(s, msg)
  local r = s.r
  r.reports = r.reports + 1
  r.verified = r.verified + msg.verified
  r.mismatches = r.mismatches + msg.mismatches
end

local function on_message(s, m, msg)
  local t = msg.type
  if t == "hello" then
    on_hello(s, m, msg)
  elseif t == "static_done" then
    m:set_num_static_devices(msg.n)
  elseif t == "report" then
    on_report(s, msg)
  elseif t == "exit" then
    on_exit(s, msg)
  elseif t == "done" then
    s.done = true
  elseif t == "eof" then
    s.eof = true
    m:unwatch(vm.control())
  else
    record_error(s, "control", msg.why or t)
  end
end

local function make_on_control(s)
  return function(m)
    while not s.eof do
      local msg, err, errno = vm.read()
      if not msg then
        if err then
          record_error(s, "control", err, errno)
        end
        return
      end
      on_message(s, m, msg)
    end
  end
end

-- GO for each uffd the list took; a uffd the list refused was closed by
-- the monitor: its process gets EOF instead and exits.
local function flush_go(s)
  local pend, j = s.pending_go, 0
  for i = 1, #pend do
    local p = pend[i]
    pend[i] = nil
    if p.u:index() then
      vm.reply_go(p.fd)   -- fails only if the process is gone: no matter
    elseif p.u:is_closed() then
      vm.close(p.fd)
      record_error(s, "register", "uffd of process " .. p.pid .. " refused")
    else
      j = j + 1
      pend[j] = p
    end
  end
end

-- ------------------------------------------------------------- startup

-- Waits for the main process's HELLO; returns its uffd.
local function wait_main(s, deadline)
  while vm.now() < deadline do
    local msg, err, errno = vm.read(100)
    if msg and msg.type == "hello" and msg.kind == "main" then
      s.r.hello = 1
      s.main_reply = msg.reply
      return adopt(s, msg)
    elseif msg then
      return record_error(s, "startup", "expected the main HELLO, got "
        .. msg.type)
    elseif err then
      return record_error(s, "startup", err, errno)
    end
  end
  s.hung = true
end

-- The policy named by --policy: a ready one (with its options) or a file,
-- loaded (a file in a sandbox) by uffdlist.policy.load.
local function load_policy(s)
  local name, popts = parse_policy(s.cfg.policy)
  s.policy_name, s.policy_opts = name, popts
  local p, err = policies.load(name, popts)
  if not p then
    error("policy " .. s.cfg.policy .. ": " .. tostring(err), 0)
  end
  return p
end

local function new_monitor(s, list)
  local m = monitor.new {
    list = list, policy = s.policy, clock = now_ms,
    on_error = function(_, what, msg, errno)
      -- --hostile-device: its quarantine is the expected outcome
      if what == "quarantine" and s.cfg.hostile_device then
        s.r.quarantined = (s.r.quarantined or 0) + 1
        s.r.quarantine_messages = s.r.quarantine_messages or {}
        local q = s.r.quarantine_messages
        q[#q + 1] = tostring(msg)
        return
      end
      record_error(s, what, msg, errno)
    end,
  }
  local fill = make_fill(s, s.swap)
  m.handlers.pagefault = make_pagefault(s, fill)
  m.read_events = function(u, out, maxn)
    return stamp(s, u:read_events(out, maxn))
  end
  local ok, err, errno = m:watch(vm.control(), make_on_control(s))
  if not ok then
    error("watching the control socket: " .. tostring(err) .. " " ..
      tostring(errno))
  end
  return m
end

-- ------------------------------------------------------------ the loop

local function progress(s, m, force)
  if s.cfg.quiet or not s.tty then
    return
  end
  local t = vm.now()
  if not force and t - (s.last_progress or 0) < PROGRESS_S then
    return
  end
  s.last_progress = t
  local st, r = m.stats, s.r
  io.stderr:write(fmt("\r\27[K%5.1fs  faults %d  alive %d  uffds %d  "
    .. "gcs %d  collected %d", t - s.t0, st.faults, r.hello - r.exits
    - (s.main_status and 1 or 0), s.list:len(), st.gcs, st.collected))
end

-- Keeps what the policy did in each round: dynamic registrations, gc,
-- dynamic entries before the gc, dynamic processes known dead then.
local function note_round(s, st, before)
  local c = st.collected - before.collected
  local dynreg = st.dynamic + st.collected - before.dynamic
    - before.collected
  local gc = st.gcs - before.gcs
  if dynreg == 0 and gc == 0 then
    return
  end
  local r = s.r
  if gc > 0 then
    r.dead_at_last_gc = r.dyn_dead
  end
  if dynreg > 0 then
    r.dead_at_last_dynreg = r.dyn_dead
  end
  if #s.rounds < MAX_ROUNDS then
    s.rounds[#s.rounds + 1] = {
      t_ms = floor(now_ms() - s.t0 * 1000), dynreg = dynreg, gc = gc > 0,
      dynamic = st.dynamic + c, collected = c, dead = r.dyn_dead,
    }
  end
end

-- The longest step, over its wait timeout (the policy's idle_ms, else the
-- default): a step may take its timeout, plus the hooks' shared budget,
-- plus its fills.  And the peak RSS, sampled.
local function note_step(s, t0, timeout)
  local r, t = s.r, vm.now()
  local ms = (t - t0) * 1000
  local over = ms - timeout
  if over > (r.step_over_max_ms or -math.huge) then
    r.step_over_max_ms, r.step_max_ms, r.step_max_timeout_ms = over, ms,
      timeout
  end
  if t - (s.last_rss or 0) >= RSS_S then
    s.last_rss = t
    local rss, anon = vm.rss_kb()
    if rss then
      r.rss_peak_kb = max(r.rss_peak_kb or 0, rss)
      r.rss_anon_peak_kb = max(r.rss_anon_peak_kb or 0, anon)
    end
  end
end

local function step(s, m)
  local st = m.stats
  local before = { collected = st.collected, dynamic = st.dynamic,
    gcs = st.gcs }
  local timeout = m.policy.idle_ms or DEFAULT_WAIT_MS
  local t0 = vm.now()
  m:step()
  note_step(s, t0, timeout)
  note_round(s, st, before)
  flush_go(s)
  progress(s, m)
end

-- The VM's main process exit, once it is reaped (orphans are reaped too:
-- the host is their subreaper).
local function reap(s)
  for _, e in ipairs(vm.reap()) do
    if e.main then
      s.main_status = e
    else
      s.r.orphans = (s.r.orphans or 0) + 1
    end
  end
end

local function kill_vm(s)
  s.hung = true
  record_error(s, "timeout", "the VM did not finish: killing its processes")
  for _, e in ipairs(vm.kill_all()) do
    if e.main then
      s.main_status = e
    end
  end
end

local function run_vm(s, m, deadline)
  local next_reap = 0
  while not (s.main_status and (s.done or s.eof)) do
    step(s, m)
    local t = vm.now()
    if s.done or s.eof or t >= next_reap then
      reap(s)
      next_reap = t + REAP_S
    end
    if t >= deadline then
      return kill_vm(s)
    end
  end
end

-- Quiet time after the VM is gone, so time-driven policies act on the
-- dead uffds: at least DRAIN_MIN_MS and 3 periods of the policy.
local function drain(s, m)
  local p = m.policy
  local ms = max(DRAIN_MIN_MS, 3 * (p.idle_ms or 0), 3 * (p.timer_ms or 0))
  local t0, rounds0 = now_ms(), m.stats.rounds
  local stop = t0 + ms
  while now_ms() < stop do
    step(s, m)
  end
  -- with the VM gone the loop must idle, not spin (rounds per second)
  s.r.drain_ms = now_ms() - t0
  s.r.drain_rounds = m.stats.rounds - rounds0
end

-- ------------------------------------------------------------ the end

local function collect_fd_counts(s, m, list)
  local r = s.r
  r.fds_during = vm.count_fds()
  local _, hint_fds = m:hint_count()   -- each watched pidfd is an fd
  r.hint_fds = hint_fds
  -- + the epoll fd, the policy's timerfd, the hints' pidfds, the
  -- monitor's spare fd (lua/uffdlist/device.lua)
  r.fds_during_expected = s.fd_base + list:len() + 1 + (m.timer and 1 or 0)
    + hint_fds + (m.dev.spare and 1 or 0)
  local ctx = list:waitctx()
  m:close()
  list:close()
  ctx:close()
  s.swap:close()
  s.checker:close()
  for _, p in ipairs(s.pending_go) do
    vm.close(p.fd)
  end
  s.pending_go = {}
  collectgarbage("collect")
  collectgarbage("collect")
  r.fds_end = vm.count_fds()
  r.fds_expected = s.fd_base - s.checker_fds
end

local function left_behind(s)
  local n = 0
  for _, p in pairs(s.procs) do
    if not p.exited then
      n = n + 1
    end
  end
  return n
end

local function finish_report(s, m)
  local r, st = s.r, m.stats
  table_sort(s.latencies)
  r.policy, r.policy_opts = s.policy_name, s.policy_opts
  r.faults, r.served = st.faults, r.served_copy + r.served_zero
  r.woken, r.skipped_gone, r.parked = st.woken, st.skipped_gone, st.parked
  r.p50_us = percentile(s.latencies, 0.50) * 1000
  r.p99_us = percentile(s.latencies, 0.99) * 1000
  r.registered, r.collected, r.gcs = st.registered + 1, st.collected, st.gcs
  -- what collection cost: every checker probe of every form of gc
  r.probes = s.list:probes()
  r.probes_per_collected = st.collected > 0 and r.probes / st.collected
    or nil
  r.exit_hints, r.exit_probes = st.exit_hints, st.exit_probes
  r.exit_collected, r.exit_gave_up = st.exit_collected, st.exit_gave_up
  r.dynamic_registered = st.dynamic + st.collected
  r.dynamic_held = st.dynamic
  r.held = s.list:len()
  r.static = s.cfg.static
  r.hotplug = s.cfg.hotplug
  r.main_pid = s.main_pid
  r.main_exit = s.main_status and (s.main_status.code or
    -(s.main_status.signal or 0))
  r.left_behind = left_behind(s)
  r.orphans = r.orphans or 0
  r.children_left = #vm.reap() > 0 or vm.has_children()
  r.hung = s.hung or false
  r.duration_s = vm.now() - s.t0
  r.rounds = s.rounds
  r.error_messages = s.errors
  -- the policy boundary: what the policy cost, and whether it was replaced
  r.policy_final = m.policy.name
  r.hook_budget_ms, r.policy_memory_mb = m.hook_budget_ms, m.policy_memory_mb
  for _, k in ipairs(policies.COUNTERS) do
    r[k] = st[k]
  end
end

-- Every check of the run; the report's `failures` names those that failed.
local function check(s)
  local r, f = s.r, {}
  local function need(ok, what)
    if not ok then
      f[#f + 1] = what
    end
  end
  need(not r.hung, "hung")
  need(r.mismatches == 0, "mismatches")
  need(r.verified > 0, "nothing verified")
  need(r.fds_end == r.fds_expected, "fd leak at the end")
  need(r.fds_during == r.fds_during_expected, "fd count while running")
  need(r.main_exit == 0, "main process exit")
  need(r.bad_exits == 0, "process exits")
  need(r.left_behind == 0 and not r.children_left, "processes left behind")
  need(r.reports == r.exits - r.killed + 1, "reports missing")
  need(r.errors == 0, "errors")
  r.hostile_device = s.cfg.hostile_device
  r.quarantined = r.quarantined or 0
  need(not s.cfg.hostile_device or r.quarantined == 1,
    "the hostile device quarantined once")
  r.failures = f
  r.ok = #f == 0
  return r.ok and 0 or (r.hung and 3 or 1)
end

local function print_summary(s)
  local r = s.r
  local out = io.stdout
  out:write(fmt("uffdlist-vm: policy %s, %d static + %d hot-plugged devices"
    .. " (%d killed, %d of them mid-fault), %d MiB, %.1f s, seed %d\n",
    s.cfg.policy, r.static, r.hotplug, r.killed, r.mid_fault, s.cfg.mem,
    r.duration_s, s.cfg.seed))
  out:write(fmt("faults served: %d of %d (%d writes; %d copied, %d zero pages,"
    .. " %d woken, %d of gone processes); latency p50 %.1f us, p99 %.1f us\n",
    r.served, r.faults, r.write_faults, r.served_copy, r.served_zero, r.woken,
    r.skipped_gone, r.p50_us, r.p99_us))
  out:write(fmt("uffds: %d registered, %d collected, %d still held at the end"
    .. " (%d dynamic); %d gcs\n", r.registered, r.collected, r.held,
    r.dynamic_held, r.gcs))
  out:write(fmt("probes: %d, %s per collected uffd; exit hints: %d fired,"
    .. " %d collected by them, %d given up\n", r.probes,
    r.probes_per_collected and fmt("%.2f", r.probes_per_collected) or "-",
    r.exit_hints, r.exit_collected, r.exit_gave_up))
  out:write(fmt("fds open at the end: %d, expected %d (while running: %d,"
    .. " expected %d)\n", r.fds_end, r.fds_expected, r.fds_during,
    r.fds_during_expected))
  out:write(fmt("processes: %d registered, %d exits reported, main exit %s,"
    .. " %d left behind\n", r.hello, r.exits, tostring(r.main_exit),
    r.left_behind))
  out:write(fmt("verified: %d pages, %d mismatches\n", r.verified,
    r.mismatches))
  out:write(r.ok and "result: ok\n" or
    "result: FAILED (" .. table_concat(r.failures, ", ") .. ")\n")
end

-- ------------------------------------------------------------ run

local function start(s)
  s.policy = load_policy(s)          -- a bad policy stops us before a fork
  local before = vm.count_fds()
  s.checker = assert(ufl.checker())   -- before any fork: the VM inherits it
  s.checker_fds = vm.count_fds() - before  -- its memfd (closed at the end)
  s.swap = assert(ufl.mmap(s.info.swap_fd, s.info.size))
  s.main_pid = assert(vm.start())
  s.fd_base = vm.count_fds()
  s.tty = vm.isatty(2)
  s.r.fds_start = s.fd_base
  collectgarbage("collect")
  s.r.rss_start_kb, s.r.rss_anon_start_kb = vm.rss_kb()
  s.r.lua_start_kb = collectgarbage("count")
end

-- RSS at the end of the run, before anything is closed (VmRSS counts the
-- swap file's pages the fills read; RssAnon is the monitor's own memory).
local function note_rss_end(s)
  collectgarbage("collect")
  s.r.rss_end_kb, s.r.rss_anon_end_kb = vm.rss_kb()
  s.r.lua_end_kb = collectgarbage("count")
end

--- Runs the demo with the host's flags (vm.config()); returns the exit
-- status.
function M.run(cfg)
  local s = new_state(cfg)
  start(s)
  local deadline = s.t0 + cfg.duration + max(5, cfg.duration)
  local u = wait_main(s, deadline)
  if not u then
    vm.kill_all()
    io.stderr:write("uffdlist-vm: the VM's main process did not start: ",
      s.errors[1] or "timeout", "\n")
    return s.hung and 3 or 1
  end
  s.list = assert(ufl.list(u, s.checker))
  local m = new_monitor(s, s.list)
  -- the monitor holds the policy now: a policy it drops (a fallback) and
  -- all its memory go with it
  s.policy = nil
  vm.reply_go(s.main_reply)
  run_vm(s, m, deadline)
  drain(s, m)
  progress(s, m, true)
  if s.tty and not cfg.quiet then
    io.stderr:write("\r\27[K")
  end
  finish_report(s, m)
  note_rss_end(s)
  collect_fd_counts(s, m, s.list)
  local rc = check(s)
  if cfg.json then
    io.stdout:write(encode(s.r), "\n")
  else
    print_summary(s)
  end
  return rc
end

return M
