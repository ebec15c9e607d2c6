--- uffdlist.policy: the policy boundary (doc/monitor-api.md, doc/security.md).
--
-- A policy is operators' code: a bug or a hostile file costs a reported
-- error and a fallback, never the VM.  This module is everything between
-- the monitor loop and a policy:
--
-- * `load(path_or_name, opts)` and `from_table(t, name)`: a ready policy
--   (a name: `uffdlist.policy.NAME`, trusted, normal environment), a file
--   (a path: sandboxed, uffdlist.sandbox) or a host's table.  The chunk and
--   its constructor run guarded; the JIT is off for every function of it
--   (LuaJIT's compiled code skips count hooks); the hooks and fields are
--   read once, raw (no metamethod runs), and fields are checked: a load
--   error names the field.  The result is a *spec*: a plain record
--   `{ name=, hooks = { on_fault = fn, ... }, idle_ms=, timer_ms=,
--   strlib= }`; later changes to the policy's own table change nothing.
-- * `boundary(spec, opts)`: what the loop calls.  Each method takes plain
--   values, builds the plain data the hook sees (fresh tables: never a
--   live uffd, the list, the monitor or a table the monitor reads back),
--   calls the hook through uffdlist.guard (time and memory bounded, all
--   hooks of one round sharing one budget), validates the answer (a wrong
--   type or an out-of-range value is a reported error and the default
--   decision) and returns the decision as a plain value.  A policy that
--   keeps failing is disabled, once, with one report, and the boundary
--   goes on with the `crosvm` policy.
-- @module uffdlist.policy

local guard = require "uffdlist.guard"
local sandbox = require "uffdlist.sandbox"

local type, pairs, error, tostring, rawget, next, pcall, setmetatable =
  type, pairs, error, tostring, rawget, next, pcall, setmetatable
local setfenv, loadstring, load = setfenv, loadstring, load
local floor = math.floor
local s_format = string.format
local now_ms = require("uffdlist.core").monotonic_ms
local collect = collectgarbage
local jit = package.loaded.jit

local M = {}

M.DEFAULT_BUDGET_MS = 100
M.DEFAULT_MEMORY_MB = 64
M.DEFAULT_MAX_STRIKES = 3
M.DEFAULT_MAX_SHARE = 0.5
M.SHARE_WINDOW_MS = 1000
M.MAX_PREFETCH = 512        -- pages on_fault may ask for
M.MAX_MS = 2147483647       -- epoll_wait's and timerfd's int milliseconds
M.FALLBACK = "crosvm"

--- The hooks a policy may have, in the order of doc/monitor-api.md.
M.HOOKS = { "on_register", "on_static_complete", "on_fault", "on_idle",
  "after_batch", "on_timer", "on_exit" }

-- ------------------------------------------------------------ checking

local function describe(v)
  local t = type(v)
  if t == "number" then
    if v ~= v then
      return "nan"
    end
    return s_format("%.17g", v)
  elseif t == "string" then
    return s_format("%q", #v > 40 and v:sub(1, 40) .. "..." or v)
  elseif t == "boolean" then
    return tostring(v)
  end
  return t
end
M.describe = describe

local function is_int(v, lo, hi)
  return type(v) == "number" and v == v and v == floor(v) and v >= lo
    and v <= hi
end

--- Checks that v is an integer in [lo, hi]; returns v, or nil and
-- "NAME must be an integer in [lo, hi], got V".
function M.check_int(v, name, lo, hi)
  if is_int(v, lo, hi) then
    return v
  end
  return nil, s_format("%s must be an integer in [%d, %d], got %s", name, lo,
    hi, describe(v))
end

-- idle_ms may also be -1: wait until something is ready (never 0: the
-- loop would spin).
local FIELDS = { idle_ms = { 1, M.MAX_MS, -1 }, timer_ms = { 1, M.MAX_MS } }

-- A spec from a policy table: hooks and fields read raw, once.
local function make_spec(p, what, strlib)
  if type(p) ~= "table" then
    return nil, what .. ": policy table expected, got " .. type(p)
  end
  local spec = { name = what, hooks = {}, strlib = strlib, table = p }
  for _, h in pairs(M.HOOKS) do
    local v = rawget(p, h)
    if v ~= nil and type(v) ~= "function" then
      return nil, what .. ": " .. h .. " must be a function, got " .. type(v)
    end
    if v then
      if jit then
        jit.off(v, true)
      end
      spec.hooks[h] = v
    end
  end
  for f, range in pairs(FIELDS) do
    local v = rawget(p, f)
    if v ~= nil then
      local ok, msg = M.check_int(v, f, range[1], range[2])
      if not ok and not (range[3] and v == range[3]) then
        if range[3] then
          msg = msg .. " (or " .. range[3] .. ")"
        end
        return nil, what .. ": " .. msg
      end
      spec[f] = v
    end
  end
  return spec
end

-- ------------------------------------------------------------- loading

local function jit_off(f)
  if jit and type(f) == "function" then
    jit.off(f, true)
  end
  return f
end
M.jit_off = jit_off

-- A ready policy is a module: require finds an embedding host's
-- package.preload copy first, then the installed file.
local function load_ready(name)
  local ok, ctor = pcall(require, "uffdlist.policy." .. name)
  if not ok then
    return nil, "no ready policy '" .. name .. "': " .. tostring(ctor)
  end
  return function() return ctor end
end

local function load_user(path)
  local f, msg = io.open(path, "rb")
  if not f then
    return nil, msg
  end
  local src = f:read("*a")
  f:close()
  -- Bytecode can break out of any sandbox: source only.
  if src:sub(1, 1) == "\27" then
    return nil, path .. ": binary chunks are not accepted"
  end
  local env, strlib = sandbox.env()
  if not setfenv then   -- Lua 5.2+: the environment is load's argument
    local chunk, err = load(src, "@" .. path, "t", env)
    if not chunk then
      return nil, err
    end
    return chunk, strlib
  end
  local chunk, err = loadstring(src, "@" .. path)
  if not chunk then
    return nil, err
  end
  return setfenv(chunk, env), strlib
end

-- Runs the chunk, then the constructor it returned, each guarded.
local function construct(chunk, opts, budget, cap, strlib, what)
  local g = { name = "load", budget_ms = budget, strlib = strlib,
    limit = collect("count") * 1024 + cap, cap = cap }
  local ok, p, kind = guard.call(g, chunk, opts)
  if ok and type(p) == "function" then
    jit_off(p)
    g.name = "constructor"
    ok, p, kind = guard.call(g, p, opts)
  end
  if not ok then
    return nil, what .. ": " .. p, kind
  end
  return make_spec(p, what, strlib)
end

--- Loads a policy.
-- @tparam string path_or_name a ready policy's name, or a file path
-- @tparam[opt] table opts for its constructor (also the chunk's `...`);
--   opts.hook_budget_ms bounds running the chunk and the constructor
--   (default 100), opts.memory_mb their heap growth (default 64)
-- @treturn[1] table the spec
-- @return[2] nil, message
function M.load(path_or_name, opts)
  if type(path_or_name) ~= "string" then
    error("bad argument #1 to 'load' (string expected, got "
      .. type(path_or_name) .. ")", 2)
  end
  opts = opts or {}
  local chunk, strlib
  if path_or_name:match("^[%a_][%w_]*$") then
    chunk, strlib = load_ready(path_or_name)
  else
    chunk, strlib = load_user(path_or_name)
  end
  if not chunk then
    return nil, strlib
  end
  jit_off(chunk)
  local budget, bmsg = M.check_int(opts.hook_budget_ms or
    M.DEFAULT_BUDGET_MS, "hook_budget_ms", 1, 60000)
  local mb, mmsg = M.check_int(opts.memory_mb or M.DEFAULT_MEMORY_MB,
    "memory_mb", 1, 1048576)
  if not (budget and mb) then
    error("bad argument #2 to 'load' (" .. (bmsg or mmsg) .. ")", 2)
  end
  local cap = mb * 1048576
  return construct(chunk, opts, budget, cap,
    type(strlib) == "table" and strlib or nil, path_or_name)
end

--- A spec from a policy table the host gives (trusted code: its own
-- environment; still guarded, JIT off, fields checked).
-- @treturn[1] table the spec
-- @return[2] nil, message
function M.from_table(t, name)
  return make_spec(t, name or "(policy table)")
end

--- Whether v is a spec made by load or from_table.
function M.is_spec(v)
  return type(v) == "table" and type(rawget(v, "hooks")) == "table"
    and type(rawget(v, "name")) == "string"
end

-- ------------------------------------------------------------ boundary

--- What a boundary counts (into opts.stats, e.g. the monitor's stats):
-- hook calls made, failed (errors, overruns, memory, bad answers), over
-- their time budget, over the memory cap, with a bad answer, skipped
-- because the round's budget was spent; policies disabled; CPU ms spent
-- in hooks.
M.COUNTERS = { "hook_calls", "hook_errors", "hook_overruns", "hook_memory",
  "hook_answers", "hook_skipped", "policy_disabled", "hook_ms" }

local Boundary = {}
Boundary.__index = Boundary

-- A plain copy of the monitor's stats (numbers, and the events table).
local function copy_stats(st)
  local c = {}
  for k, v in next, st do
    local t = type(v)
    if t == "number" or t == "boolean" or t == "string" then
      c[k] = v
    elseif t == "table" then
      local sub = {}
      for k2, v2 in next, v do
        if type(v2) == "number" then
          sub[k2] = v2
        end
      end
      c[k] = sub
    end
  end
  return c
end
M.copy_stats = copy_stats

local function gc_answer(r)
  if r == nil or r == false then
    return false
  elseif r == "gc" or r == true then
    return true
  end
  return nil, 'expected "gc", true, false or nil, got ' .. describe(r)
end

local function pages_answer(r)
  if r == nil then
    return 1
  elseif is_int(r, 1, M.MAX_PREFETCH) then
    return r
  end
  return nil, s_format("expected an integer number of pages in [1, %d] or "
    .. "nil, got %s", M.MAX_PREFETCH, describe(r))
end

--- The boundary between a monitor and its policy.
-- @tparam table spec from load or from_table
-- @tparam[opt] table opts
--   budget_ms     wall time of all hook calls of one round (default 100)
--   memory_mb     Lua heap the policy may add to the heap's size now
--                 (default 64)
--   max_strikes   failed calls in a row that disable the policy (3)
--   max_share     share of the loop's wall time the policy may use over
--                 SHARE_WINDOW_MS before it is disabled (0.5)
--   report        function(what, message, kind): hook errors, bad answers,
--                 the disabling ("policy.NAME", "policy.NAME.answer",
--                 "policy")
--   on_fallback   function(boundary) after the switch to crosvm
--   clock         wall milliseconds for max_share (default
--                 uffdlist.monotonic_ms)
--   stats         a table to count into (COUNTERS; default a new one)
-- @treturn boundary
function M.boundary(spec, opts)
  if not M.is_spec(spec) then
    error("bad argument #1 to 'boundary' (policy spec expected, got "
      .. type(spec) .. ")", 2)
  end
  opts = opts or {}
  local b = setmetatable({}, Boundary)
  b.budget_ms = opts.budget_ms or M.DEFAULT_BUDGET_MS
  b.memory = (opts.memory_mb or M.DEFAULT_MEMORY_MB) * 1048576
  b.max_strikes = opts.max_strikes or M.DEFAULT_MAX_STRIKES
  b.max_share = opts.max_share or M.DEFAULT_MAX_SHARE
  b.report = opts.report or function() end
  b.on_fallback = opts.on_fallback
  b.clock = opts.clock or now_ms
  local st = opts.stats or {}
  for _, k in pairs(M.COUNTERS) do
    st[k] = st[k] or 0
  end
  b.stats = st
  b.g = { budget_ms = b.budget_ms }
  b:use(spec)
  return b
end

--- Switches to another spec (the fallback does that).  The memory cap
-- counts from the heap's size now: after a full collection, unless
-- `quick` (the fallback: no pause in the middle of a round; the heap may
-- still hold the old policy's garbage, so the cap is only looser).
function Boundary:use(spec, quick)
  self.spec, self.hooks = spec, spec.hooks
  self.name, self.idle_ms, self.timer_ms = spec.name, spec.idle_ms,
    spec.timer_ms
  self.g.strlib = spec.strlib
  if not quick then
    collect("collect")
  end
  self.limit = collect("count") * 1024 + self.memory
  self.g.limit, self.g.cap = self.limit, self.memory
  self.strikes, self.round_left = 0, self.budget_ms
  self.window_start, self.window_ms = self.clock(), 0
end

--- Whether the policy has hook `name`.
function Boundary:has(name)
  return self.hooks[name] ~= nil
end

--- Starts a round: the hooks of one round share one budget.
function Boundary:begin_round()
  self.round_left = self.budget_ms
end

function Boundary:disable(why)
  local st = self.stats
  st.policy_disabled = st.policy_disabled + 1
  local from = self.name
  if from == M.FALLBACK and self.spec.fallback then
    return   -- the fallback stays, whatever happens to it
  end
  local spec, msg = M.load(M.FALLBACK)
  if not spec then
    spec = { name = M.FALLBACK, hooks = {} }
  end
  spec.fallback = true
  self.report("policy", s_format("policy '%s' disabled: %s; falling back "
    .. "to '%s'", from, why, M.FALLBACK), "disabled", msg)
  self:use(spec, true)
  if self.on_fallback then
    self.on_fallback(self)
  end
end

-- Share of the loop's wall time: checked once a window has passed.
local function check_share(self, hook_ms)
  self.window_ms = self.window_ms + hook_ms
  local now = self.clock()
  local wall = now - self.window_start
  if wall >= M.SHARE_WINDOW_MS then
    local share = self.window_ms / wall
    self.window_start, self.window_ms = now, 0
    if share > self.max_share then
      self:disable(s_format("it used %.0f%% of the loop's time (limit "
        .. "%.0f%%)", share * 100, self.max_share * 100))
      return true
    end
  end
end

M.MAX_MESSAGE = 1000   -- bytes of a hook's error message kept in a report

local function failed(self, name, msg, kind)
  if #msg > M.MAX_MESSAGE then
    msg = msg:sub(1, M.MAX_MESSAGE) .. "... (" .. #msg .. " bytes)"
  end
  local st = self.stats
  st.hook_errors = st.hook_errors + 1
  if kind == "time" then
    st.hook_overruns = st.hook_overruns + 1
  elseif kind == "memory" then
    st.hook_memory = st.hook_memory + 1
  elseif kind == "answer" then
    st.hook_answers = st.hook_answers + 1
  end
  self.report("policy." .. name .. (kind == "answer" and ".answer" or ""),
    msg, kind)
  self.strikes = self.strikes + 1
  if kind == "memory" then
    -- what it holds stays held until it is dropped: at once
    self:disable("it exceeded its memory cap")
  elseif self.strikes >= self.max_strikes then
    self:disable(s_format("%d failed calls in a row (last: %s)",
      self.strikes, msg))
  end
end

-- Calls hook `name` with the plain arguments; returns ok, first result.
local function call(self, name, a, b)
  local fn = self.hooks[name]
  if not fn then
    return false
  end
  local st = self.stats
  if self.round_left <= 0 then
    st.hook_skipped = st.hook_skipped + 1
    return false
  end
  st.hook_calls = st.hook_calls + 1
  local g = self.g
  g.name, g.budget_ms, g.budget_label = name, self.round_left,
    self.budget_ms
  local t0 = now_ms()
  local ok, r, kind = guard.call(g, fn, a, b)
  local hook_ms = now_ms() - t0
  self.round_left = self.round_left - hook_ms
  st.hook_ms = st.hook_ms + hook_ms
  if check_share(self, hook_ms) then
    return false
  end
  if not ok then
    failed(self, name, r, kind)
    return false
  end
  return true, r
end

local function answered(self, name, ok, r, check, default)
  if not ok then
    return default
  end
  local v, msg = check(r)
  if v == nil then
    failed(self, name, "bad answer: " .. msg, "answer")
    return default
  end
  self.strikes = 0
  return v
end

--- After a uffd joined the list.  The hook gets ({ index=, dynamic=,
-- entries=, dynamic_entries= }, dynamic).
-- @treturn boolean whether to gc
function Boundary:on_register(index, dynamic, entries, dynamic_entries)
  if not self.hooks.on_register then
    return false
  end
  local ok, r = call(self, "on_register", { index = index,
    dynamic = dynamic, entries = entries, dynamic_entries = dynamic_entries },
    dynamic)
  return answered(self, "on_register", ok, r, gc_answer, false)
end

--- After set_num_static_devices(n).  The hook gets (n); its answer is
-- ignored.
function Boundary:on_static_complete(n)
  if self.hooks.on_static_complete and call(self, "on_static_complete", n)
  then
    self.strikes = 0
  end
end

--- Before serving a page fault.  The hook gets ({ index=, dynamic= },
-- { address=, page=, kind = "missing"|"wp"|"minor", write=, wp=, minor= }).
-- @treturn number pages to serve from the faulting one (1 ..
--   MAX_PREFETCH)
function Boundary:on_fault(index, dynamic, address, page, write, wp, minor)
  if not self.hooks.on_fault then
    return 1
  end
  local ok, r = call(self, "on_fault", { index = index, dynamic = dynamic },
    { address = address, page = page, write = write, wp = wp, minor = minor,
      kind = wp and "wp" or minor and "minor" or "missing" })
  return answered(self, "on_fault", ok, r, pages_answer, 1)
end

--- When a wait timed out: ms since the last event.
-- @treturn boolean whether to gc
function Boundary:on_idle(ms)
  if not self.hooks.on_idle then
    return false
  end
  local ok, r = call(self, "on_idle", ms)
  return answered(self, "on_idle", ok, r, gc_answer, false)
end

--- After a round with events.  The hook gets a plain copy of the stats.
-- @treturn boolean whether to gc
function Boundary:after_batch(stats)
  if not self.hooks.after_batch then
    return false
  end
  local ok, r = call(self, "after_batch", copy_stats(stats))
  return answered(self, "after_batch", ok, r, gc_answer, false)
end

--- When the policy's timer fired n times.
-- @treturn boolean whether to gc
function Boundary:on_timer(n)
  if not self.hooks.on_timer then
    return false
  end
  local ok, r = call(self, "on_timer", n)
  return answered(self, "on_timer", ok, r, gc_answer, false)
end

--- An exit hint fired for a dynamic entry (its pidfd became readable, its
-- socket hung up, or its pid was gone already).  The hook gets ({ index=,
-- dynamic=, pid=, source = "pidfd"|"hangup"|"gone", entries=,
-- dynamic_entries= }); a hint is not an answer: "gc" makes the monitor
-- probe exactly that entry (list:gc{only}), and only the probe collects.
-- @treturn boolean whether to probe the entry (default false: it is left
--   to the policy's normal gc)
function Boundary:on_exit(index, dynamic, pid, source, entries,
                          dynamic_entries)
  if not self.hooks.on_exit then
    return false
  end
  local ok, r = call(self, "on_exit", { index = index, dynamic = dynamic,
    pid = pid, source = source, entries = entries,
    dynamic_entries = dynamic_entries })
  return answered(self, "on_exit", ok, r, gc_answer, false)
end

-- ------------------------------------------------------------- compat

--- Calls policy[name](...) guarded with a budget and nothing else
-- (kept for callers of the first API).
-- @treturn boolean ok (true also when the policy has no such hook)
-- @return the hook's results, or its error
function M.guard(p, name, budget_ms, ...)
  local fn = rawget(p, name)
  if fn == nil then
    return true
  end
  return guard.call({ name = name, budget_ms = budget_ms }, fn, ...)
end

--- A fresh sandbox environment (uffdlist.sandbox.env).
M.sandbox_env = function() return (sandbox.env()) end
M.Boundary = Boundary
return M
