--- uffdlist.testing: a test kit for lifecycle policies (doc/testing-policies.md).
--
-- `testing.vm{ policy = "my_policy.lua" }` builds the monitor of
-- uffdlist.monitor — its own code, loading the policy exactly as
-- production does — over fakes: fake uffds (eventfds; no userfaultfd, no
-- privilege), a Lua-table dead checker that calls a device dead once the
-- script killed it, fake memory that remembers which pages were filled,
-- and a virtual clock that also drives the policy's timer and the
-- retries of exit hints; each hot-plug is registered with a fake exit
-- hint (an eventfd as its pidfd, or as its socket's hang-up) that the
-- kit makes readable on its death, so on_exit, list:gc{only} and the
-- retries are the monitor's own.  A script then plays a VM's lifecycle
-- (static devices, hot-plugs, deaths, hang-ups, faults, idle time) and
-- every decision of the monitor lands in `vm.trace`, plain data a spec
-- asserts on; `vm:dump()` is the trace as text for a failing spec.
--
-- `testing.observe(m)` records the same trace from any monitor, a real one
-- serving real uffds included (the kit uses it on its own monitor).
--
-- How the kit runs the loop: like a host polling the list's fd itself.
-- Whatever a scripted action made ready (a fault queued on a fake uffd,
-- a uffd handed over on the kit's control fd, an exit hint, a timer) is
-- handled at once
-- by `m:step(0)`, in zero virtual time.  Time passes only in `vm:idle`:
-- the monitor is in its wait (`m:timeout()` seconds long, from the end of
-- its last round); the wait ends when it times out (a timed-out round:
-- on_idle), or earlier when the policy's timer fires.  Hot-plugged uffds and the static
-- setup reach the monitor through a watched fd, as in examples/vm: inside
-- a round, like a uffd received on a device socket.
-- @module uffdlist.testing

local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local policy_mod = require "uffdlist.policy"

local type, next, pairs, ipairs, tostring, tonumber, error, pcall, select =
  type, next, pairs, ipairs, tostring, tonumber, error, pcall, select
local setmetatable, rawget, rawset = setmetatable, rawget, rawset
local floor, huge = math.floor, math.huge
local fmt, concat = string.format, table.concat
local unpack = unpack or table.unpack -- luacheck: ignore

local ESRCH, EEXIST, EAGAIN = ufl.errno.ESRCH, ufl.errno.EEXIST,
  ufl.errno.EAGAIN

local M = {}

-- The hooks a policy may have.
local HOOKS = policy_mod.HOOKS

-- Flags of a pagefault message (linux/userfaultfd.h).
local FLAG_WRITE, FLAG_WP, FLAG_MINOR = 1, 2, 4

local BASE = 0x7f0000000000     -- first device's fake guest memory
local SPAN = 0x100000000        -- 4 GiB of address space per device

local MAX_ROUNDS = 1000000      -- per call: a loop that never settles
local FAKE_PID = 1000           -- device n's made-up pid: FAKE_PID + n

-- ------------------------------------------------------------ plain data

-- A copy of v made of numbers, strings, booleans and fresh tables (depth
-- levels deep), without running a metamethod: `next` is raw.  A userdata
-- the recorder knows is named ("dev1"); anything else becomes "<type>".
local function plain(names, v, depth)
  local t = type(v)
  if t == "nil" or t == "number" or t == "string" or t == "boolean" then
    return v
  elseif t == "userdata" and names[v] then
    return names[v]
  elseif t == "table" and depth > 0 then
    local c, n = {}, 0
    local k, x = next(v)
    while k ~= nil and n < 64 do
      local kt = type(k)
      if kt == "string" or kt == "number" then
        c[k] = plain(names, x, depth - 1)
      end
      n = n + 1
      k, x = next(v, k)
    end
    return c
  end
  return "<" .. t .. ">"
end

local function pack(...)
  return { n = select("#", ...), ... }
end

local function plain_args(names, ...)
  local n = select("#", ...)
  local args = {}
  for i = 1, n do
    args[i] = plain(names, (select(i, ...)), 2)
  end
  return args, n
end

-- ------------------------------------------------------------- recorder

local Recorder = {}
Recorder.__index = Recorder

local function add(self, rec)
  rec.at = self.clock()
  local n = #self.trace + 1
  rec.seq = n
  self.trace[n] = rec
  return rec
end

-- Names a uffd for the trace: the name given, else main/staticN/devN by
-- the order the list took them.
function Recorder:name(u, name)
  if name then
    self.names[u] = name
  end
  return self.names[u]
end

local function auto_name(self, u, dynamic)
  local nm = self.names[u]
  if nm then
    return nm
  end
  local key = dynamic and "dev" or "static"
  self.auto[key] = (self.auto[key] or 0) + 1
  nm = key .. self.auto[key]
  self.names[u] = nm
  return nm
end

local function finish_hook(self, rec, ok, ...)
  if ok then
    rec.answer = plain(self.names, (...), 2)
    return ...
  end
  rec.error = type((...)) == "string" and (...) or "<error object>"
  error((...), 0)
end

-- A hook that records its call and answer, then is the policy's hook.
local function wrap_hook(self, name, fn)
  local w = function(...)
    local args = plain_args(self.names, ...)
    local rec = add(self, { event = "hook", hook = name, args = args })
    local a1 = args[1]
    if type(a1) == "table" and type(a1.index) == "number" and self.rl then
      local ok, u = pcall(self.rl.get, self.rl, a1.index)
      rec.device = ok and u and self.names[u] or nil
    end
    self.counts.hook_calls = self.counts.hook_calls + 1
    self.last_hook[name] = rec
    return finish_hook(self, rec, pcall(fn, ...))
  end
  self.wrappers[w] = true
  return policy_mod.jit_off(w)
end

-- The table the monitor calls the policy's hooks from: the boundary's
-- hooks (uffdlist.policy.boundary), or the policy table itself.
local function hooks_of(p)
  if type(p) ~= "table" then
    return nil
  end
  local h = rawget(p, "hooks")
  if type(h) == "table" then
    return h
  end
  return p
end

-- The boundary's on_exit (what the monitor calls when an exit hint
-- fired): a "hint" record, then the hook's own record, then the decision
-- (probe: the monitor probes the entry; else it is left to the normal gc).
local function wrap_exit(self, p)
  if type(p) ~= "table" or self.exit_wrapped[p] then
    return
  end
  local orig = p.on_exit
  if type(orig) ~= "function" then
    return
  end
  self.exit_wrapped[p] = true
  rawset(p, "on_exit", function(b, index, dynamic, pid, source, ...)
    local dev
    if type(index) == "number" and self.rl then
      local ok, u = pcall(self.rl.get, self.rl, index)
      dev = ok and u and self.names[u] or nil
    end
    local rec = add(self, { event = "hint", device = dev or "?",
      index = index, source = source, pid = pid })
    local go = orig(b, index, dynamic, pid, source, ...)
    rec.probe = go == true
    return go
  end)
end

-- Wraps the hooks of the monitor's current policy; again after the
-- monitor replaced them (a fallback, set_policy): a "policy" event.
local function wrap_policy(self)
  local p = self.m.policy
  wrap_exit(self, p)
  local hooks = hooks_of(p)
  if hooks == nil or hooks == self.hooks then
    return
  end
  if self.hooks ~= nil then
    local nm = rawget(p, "name")
    add(self, { event = "policy", what = "replaced",
      name = type(nm) == "string" and nm or "?" })
    self.counts.policy_changes = self.counts.policy_changes + 1
  end
  self.hooks = hooks
  for _, h in ipairs(HOOKS) do
    local fn = rawget(hooks, h)
    if type(fn) == "function" and not self.wrappers[fn] then
      rawset(hooks, h, wrap_hook(self, h, fn))
    end
  end
  -- a boundary switching to its fallback inside a round: wrap at once
  local of = rawget(p, "on_fallback")
  if p ~= self.policy and type(p) == "table" and rawget(p, "hooks") then
    rawset(p, "on_fallback", function(...)
      if of then
        of(...)
      end
      wrap_policy(self)
    end)
  end
  self.policy = p
end

-- The list's methods that change nothing (every one the monitor calls:
-- wait, waitctx, get, len, num_static, probes; and the rest of the
-- binding's); any other call is recorded as a "list" event.
local READ_ONLY = { get = true, wait = true, waitctx = true, entries = true,
  len = true, main_uffd = true, num_static = true, probes = true,
  is_quarantined = true, pollfd = true, events = true, timeout = true,
  is_closed = true, on_log = true }

-- gc's options as plain data: only = the names of the entries at those
-- indices (taken before the gc: it moves indices), budget = N.  Also the
-- uffds of `only`, for the probe records.
local function gc_options(self, real, opts)
  if type(opts) ~= "table" then
    return nil
  end
  local o = {}
  local only, budget = rawget(opts, "only"), rawget(opts, "budget")
  local us
  if type(only) == "table" then
    o.only, us = {}, {}
    local i = 1
    while i <= 4096 and rawget(only, i) ~= nil do
      local ok, u = pcall(real.get, real, rawget(only, i))
      o.only[i] = ok and u and self.names[u] or "?"
      us[i] = ok and u or false
      i = i + 1
    end
  end
  if type(budget) == "number" then
    o.budget = budget
  end
  return o, us
end

-- After a gc{only}: one "probe" record per entry probed.  Whether an
-- alive one is retried is the monitor's hint record's (m.hints[u].tries,
-- read before the monitor updates it) against m.exit_retries; the retry
-- comes exit_retry_ms * 2^tries later (doc/monitor-api.md, "Exit hints").
local function record_probes(self, names, us)
  local m = self.m
  local hints = type(m.hints) == "table" and m.hints or {}
  for i = 1, #names do
    local u = us[i]
    if u then
      local h = hints[u]
      local tries = h and tonumber(h.tries) or 0
      local rec = { event = "probe", device = names[i], try = tries + 1 }
      if u:is_closed() then
        rec.outcome = "collected"
      elseif h and tries < (m.exit_retries or 0) then
        rec.outcome = "alive"
        rec.retry_in = floor((m.exit_retry_ms or 0) * 2 ^ tries)
      elseif h then
        rec.outcome = "gave_up"
      else
        rec.outcome = "alive"
      end
      add(self, rec)
    end
  end
end

-- A proxy of the list that records register, set_num_static_devices, gc
-- and any other changing call, and forwards everything.
local function list_proxy(self, real)
  local methods = {}
  function methods.register(_, u, ...)
    local dyn, msg, errno = real:register(u, ...)
    if dyn ~= nil then
      local nm = auto_name(self, u, dyn)
      add(self, { event = "register", device = nm, index = u:index(),
        dynamic = dyn })
    end
    return dyn, msg, errno
  end
  function methods.set_num_static_devices(_, n, ...)
    local ok = real:set_num_static_devices(n, ...)
    if ok then
      add(self, { event = "static_complete", n = n })
    end
    return ok
  end
  -- gc, gc{only = {i, ...}}, gc{budget = N}: the options go to the list
  -- as given; the record names them, the devices collected and the
  -- checker's probes it took.
  function methods.gc(_, opts)
    local before = real:entries()
    local p0 = real:probes()
    local o, us = gc_options(self, real, opts)
    local r = pack(real:gc(opts))
    local n = r[1]
    local partial = not n and r[4] or nil
    local gone = {}
    for _, u in ipairs(before) do
      if u:is_closed() then
        gone[#gone + 1] = self.names[u] or "?"
        if self.on_collect then
          self.on_collect(u)
        end
      end
    end
    table.sort(gone)
    local rec = add(self, { event = "gc", collected = n or partial or 0,
      devices = gone, probes = real:probes() - p0 })
    if o then
      rec.only, rec.budget = o.only, o.budget
      if o.budget and n then
        rec.more = r[2] == true
      end
    end
    if not n then
      rec.error = r[2]
    end
    local c = self.counts
    c.gcs = c.gcs + 1
    c.collected = c.collected + rec.collected
    c.probes = c.probes + rec.probes
    for _, nm in ipairs(gone) do
      self.collected_names[#self.collected_names + 1] = nm
    end
    if us then
      record_probes(self, o.only, us)
    end
    return unpack(r, 1, r.n)
  end
  return setmetatable(methods, { __index = function(_, k)
    local f = real[k]
    if type(f) ~= "function" then
      return f
    end
    if READ_ONLY[k] then
      return function(_, ...) return f(real, ...) end
    end
    return function(_, ...)
      local args = plain_args(self.names, ...)
      -- an entry's index: its device's name too
      local i = args[1]
      local dev
      if type(i) == "number" then
        local ok, u = pcall(real.get, real, i)
        dev = ok and u and self.names[u] or nil
      end
      add(self, { event = "list", op = k, args = args, device = dev })
      return f(real, ...)
    end
  end })
end

local function fault_kind(ev)
  if ev.minor then
    return "minor"
  elseif ev.wp then
    return "wp"
  end
  return "missing"
end

-- A fault's outcome, from its first fill (as serve names them).
local OUTCOME = { done = "done", partial = "done", page_exists = "exists",
  process_gone = "gone", map_changing = "parked", error = "error" }

local function record_fill(self, u, addr, len, how, count)
  local rec = self.serving[u]
  if not rec then
    return
  end
  local ps = self.page_size
  local f = { offset = floor((addr - rec.page) / ps), pages = floor(len / ps),
    outcome = how }
  rec.fills[#rec.fills + 1] = f
  if rec.outcome == nil then
    rec.outcome = OUTCOME[how]
  end
  local done = how == "done" and len or how == "partial" and count or 0
  if type(done) == "number" and done > 0 then
    local pages = floor(done / ps)
    rec.pages = rec.pages + pages
    self.counts.pages_served = self.counts.pages_served + pages
  end
end

-- What the monitor reported, as a trace event: "hook_error" (a hook
-- raised), "budget" (it ran past its time), "memory" (past its memory
-- cap), "bad_answer" (an answer the boundary refused), "fallback" (the
-- policy disabled, crosvm from now on), else "error".
local function classify_error(self, what, msg, errno)
  local rec = { event = "error", what = what, msg = msg, errno = errno }
  local w = type(what) == "string" and what or ""
  local m = type(msg) == "string" and msg or ""
  local c = self.counts
  local answer = w:match("^policy%.([%w_]+)%.answer$")
  local h = answer or w:match("^policy%.([%w_]+)$")
  if h then
    rec.hook = h
    c.hook_errors = c.hook_errors + 1
    if answer then
      rec.event = "bad_answer"
      c.bad_answers = c.bad_answers + 1
    elseif m:find("memory cap", 1, true) then
      rec.event = "memory"
      c.memory_overruns = c.memory_overruns + 1
    elseif m:find("exceeded", 1, true) then
      rec.event = "budget"
      c.budget_overruns = c.budget_overruns + 1
    else
      rec.event = "hook_error"
    end
    local last = self.last_hook[h]
    if last and last.error == nil and (last.answer == nil or
        rec.event == "bad_answer") then
      last.error = m
    end
  elseif w == "policy" and m:find("disabled", 1, true) then
    rec.event = "fallback"
    c.fallbacks = c.fallbacks + 1
  end
  c.errors = c.errors + 1
  return add(self, rec)
end

-- Makes self a recorder of m (see observe).
local function attach(self, m, opts)
  self.m, self.trace, self.auto, self.wrappers = m, {}, {}, {}
  self.exit_wrapped = setmetatable({}, { __mode = "k" })
  self.names = self.names or {}
  self.last_hook = {}
  self.serving = setmetatable({}, { __mode = "k" })
  self.collected_names = {}
  self.page_size = ufl.page_size()
  self.clock = opts.clock or m.clock
  self.counts = { hook_calls = 0, hook_errors = 0, budget_overruns = 0,
    memory_overruns = 0, bad_answers = 0, fallbacks = 0, policy_changes = 0,
    errors = 0, gcs = 0, collected = 0, pages_served = 0, faults = 0,
    wakes = 0, timers = 0, probes = 0 }
  for u, nm in pairs(opts.names or {}) do
    self.names[u] = nm
  end
  local main = m.list:main_uffd()
  if main and not self.names[main] then
    self.names[main] = "main"
  end
  self.rl = m.list
  m.list = list_proxy(self, m.list)

  local fill = m.fill
  m.fill = function(u, addr, len)
    local r = { fill(u, addr, len) }
    local how = ufl.outcome(r[1], r[2], r[3], r[4])
    record_fill(self, u, addr, len, how, r[4])
    return unpack(r, 1, 4)
  end
  local wake = m.wake
  m.wake = function(u, addr, len)
    self.counts.wakes = self.counts.wakes + 1
    local rec = self.serving[u]
    if rec then
      rec.woken = (rec.woken or 0) + 1
    end
    return wake(u, addr, len)
  end
  local on_error = m.on_error
  m.on_error = function(mm, what, msg, errno)
    classify_error(self, what, msg, errno)
    if opts.on_error then
      return opts.on_error(mm, what, msg, errno)
    elseif opts.quiet == false then
      return on_error(mm, what, msg, errno)
    end
  end
  local pagefault = m.handlers.pagefault
  m.handlers.pagefault = function(mm, u, ev)
    local addr = ev.address
    local rec = add(self, { event = "fault", device = self.names[u] or "?",
      address = addr, page = addr - addr % self.page_size,
      write = ev.write == true, kind = fault_kind(ev), pages = 0,
      fills = {} })
    self.counts.faults = self.counts.faults + 1
    self.serving[u] = rec
    return pagefault(mm, u, ev)
  end
  wrap_policy(self)
  return self
end

--- Records the decisions of monitor m into a trace: its list (a proxy
-- replaces m.list), m.fill, m.wake, m.on_error (opts.on_error called after;
-- m's own only with opts.quiet == false),
-- m.handlers.pagefault and the policy's hooks are wrapped; nothing else
-- of what it does changes.
-- @tparam monitor m
-- @tparam[opt] table opts clock (default m.clock), names ({[uffd]=name})
-- @treturn recorder r: r.trace, r:counters(), r:decisions(), r:dump()
function M.observe(m, opts)
  if type(m) ~= "table" or m.list == nil then
    error("bad argument #1 to 'observe' (monitor expected, got "
      .. type(m) .. ")", 2)
  end
  return attach(setmetatable({}, Recorder), m, opts or {})
end

--- The recorder's counters and a copy of the monitor's stats, one flat
-- table: gcs, collected, probes, faults, pages_served, wakes, timers,
-- hook_calls, hook_errors, budget_overruns, memory_overruns, bad_answers,
-- fallbacks, policy_changes, errors (the recorder's win over m.stats'
-- of the same name), hints and hints_watched (m:hint_count()), and the
-- other m.stats numbers (registered, dynamic, rounds, exit_hints, ...).
function Recorder:counters()
  local c = {}
  for k, v in pairs(self.m.stats) do
    if type(v) == "number" then
      c[k] = v
    end
  end
  for k, v in pairs(self.counts) do
    c[k] = v
  end
  if type(self.m.hint_count) == "function" then
    c.hints, c.hints_watched = self.m:hint_count()
  end
  return c
end

--- Names of the devices gc collected, in the order collected.
function Recorder:collected()
  local c = {}
  for i, nm in ipairs(self.collected_names) do
    c[i] = nm
  end
  return c
end

--- The trace records of one event kind ("gc", "fault", "hook", ...), or
-- the hook calls of one hook when kind is "hook" and hook is given.
function Recorder:events(kind, hook)
  local out = {}
  for _, r in ipairs(self.trace) do
    if r.event == kind and (hook == nil or r.hook == hook) then
      out[#out + 1] = r
    end
  end
  return out
end

local DECISIONS = { register = true, static_complete = true, gc = true,
  fault = true, hook = true, error = true, hook_error = true, budget = true,
  memory = true, bad_answer = true, fallback = true, policy = true,
  list = true, hint = true, probe = true }

--- The decisions alone, without times or addresses (what must be the same
-- for one event sequence, whatever the memory or the clock): register,
-- static_complete, gc, fault (pages served, fills as page offsets), hook
-- (args and answer), errors, policy changes, other list changes, exit
-- hints and their probes (a pid is "<pid>": the kit's are made up).
function Recorder:decisions()
  local out = {}
  for _, r in ipairs(self.trace) do
    if DECISIONS[r.event] then
      local d = {}
      for k, v in pairs(r) do
        if k ~= "at" and k ~= "seq" and k ~= "address" and k ~= "page" then
          d[k] = v
        end
      end
      if r.event == "hook" and r.hook == "on_fault" and d.args then
        d.args = { d.args[1], "<fault>" }
      elseif r.event == "hook" and r.hook == "after_batch" then
        d.args = { "<stats>" }
      elseif r.event == "hook" and r.hook == "on_idle" then
        d.args = { "<ms>" }
      elseif r.event == "hook" and r.hook == "on_exit" and d.args and
          type(d.args[1]) == "table" then
        local info = {}
        for k, v in pairs(d.args[1]) do
          info[k] = v
        end
        info.pid = info.pid ~= nil and "<pid>" or nil
        d.args = { info }
      elseif r.event == "hint" and d.pid ~= nil then
        d.pid = "<pid>"
      end
      out[#out + 1] = d
    end
  end
  return out
end

-- ------------------------------------------------------------------ dump

local function show(v)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" and v % 1 == 0 and v >= 0x10000 and v < 2 ^ 53 then
    return fmt("0x%x", v)
  elseif t ~= "table" then
    return tostring(v)
  end
  local parts = {}
  for i = 1, #v do
    parts[i] = show(v[i])
  end
  local keys = {}
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > #v or k % 1 ~= 0 then
      keys[#keys + 1] = tostring(k)
    end
  end
  table.sort(keys)
  if #keys > 6 then
    parts[#parts + 1] = #keys .. " fields"
  else
    for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. "=" .. show(v[k])
    end
  end
  return "{" .. concat(parts, ", ") .. "}"
end

local function describe(r)
  local e = r.event
  if e == "register" then
    return fmt("%s registered at index %s (%s)", r.device, tostring(r.index),
      r.dynamic and "dynamic" or "static")
  elseif e == "static_complete" then
    return fmt("static setup complete: %d devices", r.n)
  elseif e == "gc" then
    local how = r.only and "{only = " .. concat(r.only, ", ") .. "}" or
      r.budget and fmt("{budget = %d}", r.budget) or ""
    return fmt("gc%s collected %d%s (%d probe%s%s)%s", how, r.collected,
      #r.devices > 0 and ": " .. concat(r.devices, ", ") or "",
      r.probes or 0, r.probes == 1 and "" or "s",
      r.more and ", more to do" or "",
      r.error and " (failed: " .. tostring(r.error) .. ")" or "")
  elseif e == "hint" then
    return fmt("exit hint of %s (%s%s) -> %s", r.device, tostring(r.source),
      r.pid and ", pid " .. tostring(r.pid) or "",
      r.probe and "probe" or "left to the policy's gc")
  elseif e == "probe" then
    return fmt("probe %d of %s: %s", r.try, r.device,
      r.outcome == "alive" and r.retry_in and
        fmt("alive, retry in %d ms", r.retry_in) or
      r.outcome == "gave_up" and "alive, hint given up" or
      tostring(r.outcome))
  elseif e == "death" then
    return fmt("death: %s%s%s", r.device,
      r.hint and " (its exit hint fires)" or "",
      r.linger_ms and fmt(" (its mm lingers %g ms)", r.linger_ms) or "")
  elseif e == "hangup" then
    return fmt("hangup: %s, alive (%s)", r.device,
      r.hint and "its exit hint fires" or "no exit hint watched")
  elseif e == "fault" then
    local fills = {}
    for i, f in ipairs(r.fills) do
      fills[i] = fmt("%+d%s", f.offset, f.outcome == "done" and "" or
        " " .. f.outcome)
    end
    return fmt("%s %s fault (%s) at %s: %d page%s served [%s]%s -> %s",
      r.device, r.write and "write" or "read", r.kind, show(r.address), r.pages,
      r.pages == 1 and "" or "s", concat(fills, " "),
      r.woken and " woken" or "", tostring(r.outcome))
  elseif e == "hook" then
    local args = {}
    for i, a in ipairs(r.args) do
      args[i] = show(a)
    end
    return fmt("hook %s(%s)%s -> %s", r.hook, concat(args, ", "),
      r.device and " [" .. r.device .. "]" or "",
      r.error and "ERROR " .. r.error or show(r.answer))
  elseif e == "error" or e == "hook_error" or e == "budget"
      or e == "memory" or e == "bad_answer" or e == "fallback" then
    return fmt("%s %s: %s%s", e:upper(), tostring(r.what), tostring(r.msg),
      r.errno and " (errno " .. r.errno .. ")" or "")
  elseif e == "policy" then
    return "the monitor's policy is now " .. tostring(r.name)
  elseif e == "list" then
    local args = {}
    for i, a in ipairs(r.args or {}) do
      args[i] = show(a)
    end
    return fmt("list:%s(%s)%s", r.op, concat(args, ", "),
      r.device and " [" .. r.device .. "]" or "")
  elseif e == "fork" then
    return fmt("fork: %s forks %s", r.parent, r.device)
  elseif e == "hotplug" then
    return fmt("hotplug: %s%s", r.device,
      r.hint and " (exit hint: " .. r.hint .. ")" or "")
  elseif e == "idle" then
    return fmt("idle %g ms", r.ms)
  elseif e == "timer" then
    return fmt("timer fires (every %g ms)", r.period)
  elseif e == "static" then
    return fmt("%d static devices hand over their uffds", r.n)
  elseif e == "push" then
    return fmt("%s: %s event queued", r.device, r.kind)
  end
  return show(r)
end

--- The trace as text, one line per record: virtual ms, then what
-- happened; the counters at the end.  For a failing spec:
-- `assert.equal(1, vm:counters().gcs, vm:dump())`.
function Recorder:dump()
  local lines = {}
  for i, r in ipairs(self.trace) do
    local indent = (r.event == "hotplug" or r.event == "death" or
      r.event == "fork" or
      r.event == "idle" or r.event == "static" or r.event == "push" or
      r.event == "hangup") and "" or "    "
    lines[i] = fmt("%8s ms  %s%s", tostring(r.at), indent, describe(r))
  end
  local c = self:counters()
  local keys = {}
  for k in pairs(c) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local cs = {}
  for _, k in ipairs(keys) do
    if c[k] ~= 0 then
      cs[#cs + 1] = k .. "=" .. c[k]
    end
  end
  lines[#lines + 1] = "counters: " .. concat(cs, " ")
  return concat(lines, "\n") .. "\n"
end

-- -------------------------------------------------------------- the kit

local Vm = setmetatable({}, { __index = Recorder })
Vm.__index = Vm

-- A fake uffd: an eventfd adopted as a uffd that does not own it (epoll
-- and close only); events come from a queue through m.read_events.
--
-- A hot-plugged device may have an exit hint (hint = "pidfd" or
-- "hangup"): an eventfd the kit writes to when the device dies (or hangs
-- up), registered as { pidfd = ev, pid = P } (the monitor takes it over
-- and closes it, as a real pidfd) or { hint = ev, events = EPOLLIN, pid =
-- P } (borrowed, as a socket: the kit closes it).  P is made up.
local function new_device(self, name, dynamic, hint)
  local ev = assert(ufl.eventfd())
  local u = assert(ufl.adopt(ev:fd(), { check = false, own = false }))
  self.ndevices = self.ndevices + 1
  local d = { name = name, uffd = u, dynamic = dynamic, dead = false,
    base = BASE + (self.ndevices - 1) * SPAN }
  if hint then
    d.hint, d.hint_fd = hint, assert(ufl.eventfd())
    d.pid = FAKE_PID + self.ndevices
    self.hint_fds[#self.hint_fds + 1] = d.hint_fd
  end
  self.dev_ev[u], self.dev_of[u], self.queue[u] = ev, d, { first = 1, last = 0 }
  self.present[u], self.busy[u] = {}, {}
  self.devices[name] = d
  self.names[u] = name
  return d
end

-- As uffd:read_events: out[1..n] (its tables reused), n <= max; the fd
-- stays readable while events remain.
local function read_events(self, u, out, max)
  local q = self.queue[u]
  local n = 0
  while q and n < max and q.first <= q.last do
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
  if q and q.first > q.last and not u:is_closed() then
    self.dev_ev[u]:read()
  end
  return n, out
end

-- The fake memory: a fill succeeds on a missing page (then present),
-- meets EEXIST on a present one, EAGAIN on a page whose memory map is
-- changing (vm:fault's busy_ms), ESRCH once the device is dead.
local function fake_fill(self, u, addr, len)
  local d = self.dev_of[u]
  if d == nil or d.dead then
    return nil, "fill: process gone", ESRCH
  end
  local ps, present = self.page_size, self.present[u]
  local first = addr - addr % ps
  if present[first] then
    return nil, "fill: page exists", EEXIST
  end
  local busy = self.busy[u][first]
  if busy then
    if self.now < busy then
      return nil, "fill: memory map changing", EAGAIN
    end
    self.busy[u][first] = nil
  end
  for a = first, addr + len - 1, ps do
    present[a] = true
  end
  return len
end

local function fake_wake(self, u)
  local d = self.dev_of[u]
  if d == nil or d.dead then
    return nil, "wake: process gone", ESRCH
  end
  return true
end

-- The policy's timer: an eventfd (read gives the expirations, as a
-- timerfd's) that the virtual clock writes to.
local function fake_timerfd(self, ms)
  local ev, msg, errno = ufl.eventfd()
  if not ev then
    return nil, msg, errno
  end
  self.timers[#self.timers + 1] = { ev = ev, period = ms, due = self.now + ms }
  return ev
end

local function next_due(self)
  local due, live = huge, {}
  for _, t in ipairs(self.timers) do
    if not t.ev:is_closed() then
      live[#live + 1] = t
      if t.due < due then
        due = t.due
      end
    end
  end
  self.timers = live
  return due
end

-- Host actions (register a uffd, set the static count, exit hints) run
-- from the control fd's watch, inside a round as a received uffd would.
local function on_control(self)
  self.control:read()
  local acts = self.actions
  self.actions = {}
  for _, a in ipairs(acts) do
    a(self.m)
  end
end

local function host_action(self, fn)
  self.actions[#self.actions + 1] = fn
  self.control:write(1)
end

local function ready_now(self)
  return self.real_list:wait(0, self.scratch, self.scratch_evs) > 0
end

local function step(self)
  wrap_policy(self)
  self.rounds = self.rounds + 1
  if self.rounds > MAX_ROUNDS then
    error("uffdlist.testing: more than " .. MAX_ROUNDS ..
      " rounds in one call (the loop does not settle)", 3)
  end
  self.m:step(0)
  self.wait_start = self.now
  wrap_policy(self)
end

-- Runs rounds while anything is ready now (zero virtual time).
local function settle(self)
  while ready_now(self) do
    step(self)
  end
end

local function begin(self)
  self.rounds = 0
  if self.closed then
    error("uffdlist.testing: the vm is closed", 3)
  end
end

local function device_of(self, dev, argn, fname)
  local d = type(dev) == "string" and self.devices[dev] or
    type(dev) == "table" and self.devices[dev.name] == dev and dev
  if not d then
    error(fmt("bad argument #%d to '%s' (device of this vm expected, got %s)",
      argn, fname, type(dev) == "string" and "'" .. dev .. "'" or type(dev)),
      3)
  end
  return d
end

--- Hands over n static devices' uffds (static1..staticN), then completes
-- the static setup (set_num_static_devices(n)); once per vm.
-- @treturn table the devices
function Vm:static(n)
  begin(self)
  if type(n) ~= "number" or n < 0 or n % 1 ~= 0 then
    error("bad argument #1 to 'static' (non-negative integer expected)", 2)
  end
  if self.static_done then
    error("static: the static setup is complete already", 2)
  end
  self.static_done = true
  add(self, { event = "static", n = n })
  local ds = {}
  for i = 1, n do
    local d = new_device(self, "static" .. i, false)
    ds[i] = d
    host_action(self, function(m) m:register(d.uffd) end)
  end
  host_action(self, function(m) m:set_num_static_devices(n) end)
  settle(self)
  return ds
end

local HINT_FORMS = { pidfd = true, hangup = true }

local function check_hint_form(v, argn, fname)
  if v ~= false and not HINT_FORMS[v] then
    error(fmt("bad %s to '%s' (hint: \"pidfd\", \"hangup\" or false "
      .. "expected, got %s)", argn and "argument #" .. argn or
      "option 'hints'", fname, type(v) == "string" and "'" .. v .. "'" or
      type(v)), 3)
  end
  return v
end

-- What m:register gets as the device's exit hint.
local function hint_arg(d)
  if d.hint == "pidfd" then
    return { pidfd = d.hint_fd, pid = d.pid }
  elseif d.hint == "hangup" then
    return { hint = d.hint_fd, events = ufl.EPOLLIN, pid = d.pid }
  end
  return nil
end

-- Makes the device's exit hint readable (as its pidfd on the exit, its
-- socket on a hang-up); false when there is none to write to (the
-- monitor closed a pidfd it did not watch: a policy without on_exit).
local function fire_hint(d)
  local ev = d.hint_fd
  if ev and not ev:is_closed() then
    ev:write(1)
    return true
  end
  return false
end

--- A hot-plugged process hands over its uffd (named name, default devN),
-- with an exit hint (opts.hint: "pidfd", the default, or "hangup", as
-- the vm's hints option; false: none).
-- @treturn table the device: name, uffd, dynamic, dead, base (address of
--   its fake memory), hint, pid (made up)
function Vm:hotplug(name, opts)
  begin(self)
  if type(name) == "table" and opts == nil then
    name, opts = nil, name
  end
  if name ~= nil and (type(name) ~= "string" or self.devices[name]) then
    error("bad argument #1 to 'hotplug' (new device name expected)", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'hotplug' (table or nil expected, got "
      .. type(opts) .. ")", 2)
  end
  local hint = self.hints
  if opts and opts.hint ~= nil then
    hint = check_hint_form(opts.hint, 2, "hotplug")
  end
  self.nhot = self.nhot + 1
  local d = new_device(self, name or ("dev" .. self.nhot), true, hint)
  add(self, { event = "hotplug", device = d.name, hint = d.hint })
  host_action(self, function(m) m:register(d.uffd, hint_arg(d)) end)
  settle(self)
  return d
end

--- The device's process dies: its uffd goes silent and the checker calls
-- it dead from now on (opts.linger_ms: only that many ms later — an
-- exited process's mm may outlive it a moment, and the probes of its exit
-- hint say alive until then).  Its exit hint, if it has one, fires (a
-- pidfd always does on the exit); opts.hint = false: it does not (a
-- socket shared with another process never hangs up); opts.hint = true:
-- it must (raises for a device without one).
function Vm:kill(dev, opts)
  begin(self)
  local d = device_of(self, dev, 1, "kill")
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'kill' (table or nil expected, got "
      .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local linger = opts.linger_ms
  if linger ~= nil and (type(linger) ~= "number" or linger < 0 or
      linger ~= linger or linger == huge) then
    error("bad argument #2 to 'kill' (linger_ms: non-negative number)", 2)
  end
  if opts.hint == true and not d.hint then
    error(fmt("kill: %s has no exit hint (registered without one)", d.name),
      2)
  end
  d.dead = true
  if self.dead[d.uffd] == nil then
    self.dead[d.uffd] = self.now + (linger or 0)
  end
  local fired = opts.hint ~= false and d.hint ~= nil and fire_hint(d)
  add(self, { event = "death", device = d.name, hint = fired or nil,
    linger_ms = linger })
  settle(self)
end

--- The device's exit hint fires while its process lives on: a socket
-- closed by a live device, a pid that named another process.  The
-- monitor's probes say alive; it retries (exit_retries, exit_retry_ms on
-- the virtual clock: vm:idle) and gives up, the device kept and served.
function Vm:hangup(dev)
  begin(self)
  local d = device_of(self, dev, 1, "hangup")
  if not d.hint then
    error(fmt("hangup: %s has no exit hint (registered without one)",
      d.name), 2)
  end
  add(self, { event = "hangup", device = d.name, hint = fire_hint(d) })
  settle(self)
end

local function push(self, d, ev, record)
  if ev.kind == "remove" and ev.start and ev.stop then
    local present = self.present[d.uffd]
    for a in pairs(present) do
      if a >= ev.start and a < ev.stop then
        present[a] = nil
      end
    end
  end
  if record then
    add(self, { event = "push", device = d.name, kind = ev.kind })
  end
  local q, c = self.queue[d.uffd], {}
  for k, v in pairs(ev) do
    c[k] = v
  end
  q.last = q.last + 1
  q[q.last] = c
  if self.dev_ev[d.uffd] and not d.uffd:is_closed() then
    self.dev_ev[d.uffd]:write(1)
  end
  settle(self)
end

--- Queues a raw uffd event for the device (e.g. {kind="remove",
-- start=, stop=}) and lets the monitor handle it.
function Vm:event(dev, ev)
  begin(self)
  local d = device_of(self, dev, 1, "event")
  if type(ev) ~= "table" or type(ev.kind) ~= "string" then
    error("bad argument #2 to 'event' (event table with a kind expected)", 2)
  end
  push(self, d, ev, true)
end

--- The device's process forks (UFFD_FEATURE_EVENT_FORK): a fork event
-- on its uffd carries the child's new uffd, which the monitor's fork
-- handler registers (default: m:register).
-- @treturn table the child device (named name, default devN)
function Vm:fork(dev, name)
  begin(self)
  local parent = device_of(self, dev, 1, "fork")
  if name ~= nil and (type(name) ~= "string" or self.devices[name]) then
    error("bad argument #2 to 'fork' (new device name expected)", 2)
  end
  self.nhot = self.nhot + 1
  local d = new_device(self, name or ("dev" .. self.nhot), true)
  d.parent = parent.name
  add(self, { event = "fork", device = d.name, parent = parent.name })
  push(self, parent, { kind = "fork", uffd = d.uffd }, false)
  return d
end

--- A page fault of the device at addr (default: its next fresh page);
-- opts.write (or opts = "write"), opts.kind ("missing", "wp", "minor"),
-- opts.busy_ms (the page's memory map is changing for that long: fills
-- meet EAGAIN, the monitor parks the fault and retries it as time
-- passes, vm:idle).
-- @treturn table the fault's trace record: pages (served), fills
--   ({offset=, pages=, outcome=}, offsets in pages from the fault's page),
--   outcome ("done", "exists", "gone", "parked", "error"), woken
function Vm:fault(dev, addr, opts)
  local d = device_of(self, dev, 1, "fault")
  if opts == "write" or opts == "read" then
    opts = { write = opts == "write" }
  end
  opts = opts or {}
  if addr == nil then
    local present = self.present[d.uffd]
    repeat
      d.next_page = (d.next_page or 0) + 1
      addr = d.base + (d.next_page - 1) * self.page_size
    until not present[addr]
  elseif type(addr) ~= "number" then
    error("bad argument #2 to 'fault' (address expected, got "
      .. type(addr) .. ")", 2)
  end
  local kind = opts.kind or "missing"
  if kind ~= "missing" and kind ~= "wp" and kind ~= "minor" then
    error("bad argument #3 to 'fault' (kind 'missing', 'wp' or 'minor')", 2)
  end
  local flags = (opts.write and FLAG_WRITE or 0) +
    (kind == "wp" and FLAG_WP or 0) + (kind == "minor" and FLAG_MINOR or 0)
  begin(self)
  if opts.busy_ms ~= nil then
    if type(opts.busy_ms) ~= "number" or opts.busy_ms < 0 then
      error("bad argument #3 to 'fault' (busy_ms: non-negative number)", 2)
    end
    self.busy[d.uffd][addr - addr % self.page_size] = self.now + opts.busy_ms
  end
  local before = #self.trace
  push(self, d, { kind = "pagefault", address = addr, flags = flags,
    write = opts.write == true, wp = kind == "wp", minor = kind == "minor" },
    false)
  for i = #self.trace, before + 1, -1 do
    local r = self.trace[i]
    if r.event == "fault" and r.device == d.name and r.address == addr then
      return r
    end
  end
  return nil
end

--- ms of virtual time pass without an event from any device: the monitor
-- waits m:timeout() (seconds) at a time from the end of its last round (each
-- wait that times out is a round that calls on_idle), and the policy's
-- timer fires on its period.  idle(0) runs nothing.
function Vm:idle(ms)
  begin(self)
  if type(ms) ~= "number" or ms < 0 or ms ~= ms or ms == huge then
    error("bad argument #1 to 'idle' (non-negative number of ms expected)",
      2)
  end
  add(self, { event = "idle", ms = ms })
  local target = self.now + ms
  while true do
    settle(self)
    -- seconds (the pollable protocol), nil: until ready
    local t = self.m:timeout()
    local wait_end = t == nil and huge or
      self.wait_start + math.max(floor(t * 1000 + 0.5), 1)
    local due = next_due(self)
    local nxt = math.min(wait_end, due, target)
    if nxt > self.now then
      self.now = nxt
    end
    local fired = false
    for _, tm in ipairs(self.timers) do
      if tm.due <= self.now then
        add(self, { event = "timer", period = tm.period })
        self.counts.timers = self.counts.timers + 1
        tm.ev:write(1)
        tm.due = tm.due + tm.period
        fired = true
      end
    end
    if fired or self.now >= wait_end then
      step(self)
    elseif self.now >= target then
      break
    end
  end
end
Vm.advance = Vm.idle

--- The virtual time in ms (0 at the start).
function Vm:time()
  return self.now
end

--- A device by name.
function Vm:device(name)
  return self.devices[name]
end

-- After m:close (which ends every hint, closing the pidfds it owns).
local function close_hint_fds(self)
  for _, ev in ipairs(self.hint_fds) do
    if not ev:is_closed() then
      ev:close()
    end
  end
  self.hint_fds = {}
end

-- Closes the list (with its waitctx) and every fake fd: the devices'
-- uffds the list no longer holds, their eventfds, timers, hint fds.
local function close_fakes(self, list)
  local ctx = list:waitctx()
  list:close()
  ctx:close()
  for u, ev in pairs(self.dev_ev) do
    if not u:is_closed() then
      u:close()
    end
    ev:close()
  end
  for _, t in ipairs(self.timers) do
    t.ev:close()
  end
  close_hint_fds(self)
end

--- Closes the monitor, the list and every fake fd.
function Vm:close()
  if self.closed then
    return
  end
  self.closed = true
  self.m:close()
  self.control:close()
  close_fakes(self, self.real_list)
end

-- testing.vm's own options; the fakes' seams are the kit's.
local KIT_OPTS = { static = true, on_error = true, list = true, clock = true,
  read_events = true, fill = true, wake = true, timerfd = true,
  hints = true }

--- A fake VM running the real monitor with the given policy.
-- @tparam[opt] table opts policy (a ready policy's name, a file path or a
--   table, as monitor.new takes it; default "crosvm"), policy_opts,
--   static (number of static devices handed over and the static setup
--   completed at once, default 0; false: call vm:static(n) yourself),
--   on_error (called after the trace records the error; default silent);
--   any other option is monitor.new's (hook_budget_ms, policy_memory_mb,
--   policy_max_strikes, policy_max_share, batch, retry_timeout_ms,
--   handlers, ...)
-- @treturn vm (raises the load error if the policy does not load)
function M.vm(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'vm' (table expected, got " .. type(opts) ..
      ")", 2)
  end
  local hints = "pidfd"
  if opts.hints ~= nil then
    hints = check_hint_form(opts.hints, nil, "vm")
  end
  local self = { now = 0, wait_start = 0, ndevices = 0, nhot = 0,
    devices = {}, dev_ev = {}, dev_of = {}, queue = {},
    present = {}, busy = {}, dead = {}, timers = {}, actions = {}, scratch = {},
    scratch_evs = {}, rounds = 0, names = {}, hints = hints, hint_fds = {} }
  local main = new_device(self, "main", false)
  -- dead: u -> the virtual ms from which the checker calls it dead
  local checker = {
    register = function() return true end,
    is_dead = function(_, u)
      local t = self.dead[u]
      return t ~= nil and self.now >= t
    end,
    reset = function() return true end,
  }
  local list = assert(ufl.list(main.uffd, checker))
  self.real_list = list
  -- The monitor's own options pass through (device options too, whatever
  -- monitor.new takes); the kit's fakes replace these.
  local mopts = {}
  for k, v in pairs(opts) do
    if not KIT_OPTS[k] then
      mopts[k] = v
    end
  end
  mopts.list = list
  mopts.clock = function() return self.now end
  mopts.read_events = function(u, out, max)
    return read_events(self, u, out, max)
  end
  mopts.fill = function(u, addr, len) return fake_fill(self, u, addr, len) end
  mopts.wake = function(u, addr, len) return fake_wake(self, u, addr, len) end
  mopts.timerfd = function(ms) return fake_timerfd(self, ms) end
  mopts.on_error = function() end
  local ok, m = pcall(monitor.new, mopts)
  if not ok then
    close_fakes(self, list)
    -- monitor.new raised it with its own position in front
    error((tostring(m):gsub("^[^\n]-monitor%.lua:%d+: ", "")), 2)
  end
  setmetatable(self, Vm)
  attach(self, m, { on_error = opts.on_error })
  self.on_collect = function(u)
    local ev = self.dev_ev[u]
    if ev then
      ev:close()
      self.dev_ev[u] = nil
    end
  end
  self.control = assert(ufl.eventfd())
  assert(m:watch(self.control, function() on_control(self) end))
  if opts.static ~= false then
    self:static(opts.static or 0)
  end
  return self
end

--- Loads a policy as the monitor does (uffdlist.policy.load).
-- @treturn[1] table the policy
-- @return[2] nil, message
function M.load(path_or_name, opts)
  return policy_mod.load(path_or_name, opts)
end

-- --------------------------------------------------------- the checker

--- The standard lifecycle `uffdlist-policy check` runs: 2 static devices
-- and the static setup; 3 hot-plugs (each with an exit hint, a pidfd);
-- a read and a write fault on static1 and on dev1; dev2 dies (its hint
-- fires), a 4th hot-plug; idle for the span; dev1 and dev4 die (their
-- hints fire), dev3 hangs up and lives on (its hint fires: the probes say
-- alive), a write fault on dev3; idle for the span again.  The span is
-- 3 × the policy's idle_ms or timer_ms, at least 1 s, at most 60 s.
-- @tparam vm vm a vm made with static = false
function M.standard_scenario(vm)
  local p = vm.m.policy
  local period = math.max(rawget(p, "idle_ms") or 0,
    rawget(p, "timer_ms") or 0)
  local span = math.min(math.max(3 * (tonumber(period) or 0), 1000), 60000)
  vm:static(2)
  vm:hotplug()
  vm:hotplug()
  vm:hotplug()
  vm:fault("static1", nil, "read")
  vm:fault("static1", nil, "write")
  vm:fault("dev1", nil, "read")
  vm:fault("dev1", nil, "write")
  vm:kill("dev2")
  vm:hotplug()
  vm:idle(span)
  vm:kill("dev1")
  vm:kill("dev4")
  vm:hangup("dev3")
  vm:fault("dev3", nil, "write")
  vm:idle(span)
  return vm
end

--- Loads the policy at path, runs the standard scenario over it.
-- @tparam string path
-- @tparam[opt] table popts the constructor's opts
-- @tparam[opt] table vmopts more options of testing.vm (hook_budget_ms,
--   policy_memory_mb, policy_max_strikes, policy_max_share)
-- @treturn[1] vm the vm after the scenario (vm:counters().hook_errors > 0
--   when a hook failed)
-- @return[2] nil, load error message
function M.check(path, popts, vmopts)
  local o = { policy = path, policy_opts = popts, static = false }
  for k, v in pairs(vmopts or {}) do
    o[k] = v
  end
  local ok, vm = pcall(M.vm, o)
  if not ok then
    return nil, tostring(vm)
  end
  local sok, err = pcall(M.standard_scenario, vm)
  if not sok then
    vm:close()
    return nil, "scenario: " .. tostring(err)
  end
  return vm
end

return M
