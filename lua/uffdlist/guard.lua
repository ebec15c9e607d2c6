--- uffdlist.guard: one policy call, bounded in time and memory.
--
-- `guard.call(g, fn, ...)` runs fn(...) and returns `true, results...`,
-- or `false, message, kind` where kind is
--   "time"   the call ran past g.budget_ms (wall time, CLOCK_MONOTONIC),
--   "memory" the Lua heap went past g.limit bytes,
--   "yield"  fn yielded (it may not: the host's coroutine is not its own),
--   "error"  fn raised (message: a string; an error object that is not a
--            string or number is named by its type, never converted by
--            its own metamethods).
-- Afterwards nothing of the call is left installed: no count hook, no
-- memory cap, strings' methods the host's again.
--
-- How: fn runs in a coroutine of the guard's (a worker, reused while calls
-- return normally), so a yield inside it comes back here instead of
-- passing into the host's coroutine.  A count hook on that coroutine
-- checks the clock and the heap every COUNT VM instructions and raises the
-- stop; uffdlist.sandbox's pcall/xpcall/resume pass the stop on, so the
-- policy cannot swallow it.  The JIT must be off for the policy's code
-- (uffdlist.policy does that): LuaJIT's compiled code skips count hooks.
-- One C call between two checks is bounded by the sandbox (no unbounded C
-- function) and by the allocator cap of uffdlist.core (memcap_arm), which
-- refuses an allocation past g.limit + slack at once.
-- @module uffdlist.guard

local core = require "uffdlist.core"
local sandbox = require "uffdlist.sandbox"

local type, error, tostring = type, error, tostring
local sethook, gethook = debug.sethook, debug.gethook
local s_format = string.format
-- Wall time, not CPU time: what the budget protects is the loop's
-- latency, which a hook that sleeps in the kernel or is descheduled costs
-- as well.
local now_ms = core.monotonic_ms
local co_create, co_resume, co_yield = coroutine.create,
  coroutine.resume, coroutine.yield
local collect = collectgarbage
local memcap_arm, memcap_disarm, memcap_refused = core.memcap_arm,
  core.memcap_disarm, core.memcap_refused

local M = {}

M.COUNT = 1000        -- VM instructions between two checks
M.SLACK = 8 * 1024 * 1024   -- the allocator cap's margin over g.limit

local string_mt = getmetatable("")

-- State of the running call (calls do not nest).
local active = false
local deadline, name, budget, limit, cap, stop, stop_kind

local function memory_message()
  return s_format("policy hook '%s' exceeded its memory cap (%.1f MiB of "
    .. "Lua heap)", name, cap / 1048576)
end

local function stopped()
  if not active then
    return nil
  end
  if not stop and memcap_refused() then
    stop, stop_kind = memory_message(), "memory"
  end
  return stop
end
sandbox.set_stop_check(stopped)

local function on_count()
  if not active then
    return
  end
  if now_ms() > deadline then
    stop, stop_kind = s_format("policy hook '%s' exceeded %g ms", name,
      budget), "time"
    error(stop, 0)
  end
  if limit and collect("count") * 1024 > limit then
    collect("collect")      -- the garbage may be anybody's
    if collect("count") * 1024 > limit then
      stop, stop_kind = memory_message(), "memory"
      error(stop, 0)
    end
  end
end

-- The worker: runs one function per resume, yields a tag and its results.
local TAG = {}
local worker

local function worker_loop(fn, ...)
  -- a tail call: the worker's stack stays flat over its calls
  return worker_loop(co_yield(TAG, fn(...)))
end

local function errstr(e)
  local t = type(e)
  if t == "string" then
    return e
  elseif t == "number" then
    return tostring(e)
  end
  return "(error object of type " .. t .. ")"
end

local function finish(oh, om, oc, saved_index, co, ok, tag, ...)
  -- Everything back first: no later line may run under the cap.
  local refused = memcap_disarm() and limit ~= nil   -- (stale if unarmed)
  string_mt.__index = saved_index
  if type(oh) == "function" then
    sethook(oh, om, oc)
  else
    sethook()
  end
  active = false
  local kind, msg
  if not ok then
    worker = nil        -- dead
    msg = stop or (refused and memory_message()) or errstr(tag)
    kind = stop_kind or (refused and "memory") or "error"
  elseif tag ~= TAG then
    worker = nil        -- suspended inside fn: dropped, never resumed
    msg, kind = s_format("policy hook '%s' yielded (a policy may yield "
      .. "only inside coroutines it created)", name), "yield"
  else
    worker = co
    if not stop then
      return true, ...
    end
    -- a stop caught by code outside the sandbox (a host's table with the
    -- real pcall) still fails the call
    msg, kind = stop, stop_kind
  end
  stop, stop_kind = nil, nil
  return false, msg, kind
end

--- Runs fn(...) bounded.
-- @tparam table g name (for messages), budget_ms (wall time; budget_label
--   the budget the message names, default budget_ms), cap (the bytes the
--   message names, default limit), limit (bytes
--   of Lua heap, optional), strlib (strings' methods during the call,
--   default the sandbox's bounded string library)
-- @tparam function fn
-- @treturn[1] boolean true, then fn's results
-- @return[2] false, message, kind ("time", "memory", "yield", "error")
function M.call(g, fn, ...)
  if active then
    error("uffdlist.guard: a guarded call is already running", 2)
  end
  local co = worker
  if not co then
    co = co_create(worker_loop)
  end
  local oh, om, oc = gethook()
  name, budget, limit = g.name or "?", g.budget_label or g.budget_ms,
    g.limit
  cap = g.cap or limit
  stop, stop_kind = nil, nil
  deadline = now_ms() + g.budget_ms
  active = true
  local saved_index = string_mt.__index
  string_mt.__index = g.strlib or sandbox.default_string
  if limit then
    memcap_arm(limit + M.SLACK)
  end
  -- LuaJIT's hook is global, PUC Lua's per coroutine: set it on co.
  sethook(co, on_count, "", M.COUNT)
  return finish(oh, om, oc, saved_index, co, co_resume(co, fn, ...))
end

--- Whether a guarded call is running (a host's code called from inside
-- one, e.g. a finalizer, sees true).
function M.running()
  return active
end

M.errstr = errstr
return M
