--- bench/fault_loop.lua: the Lua side of bench/fault_loop.c (make bench).
--
-- The C driver forks the children, receives their uffds (without taking
-- ownership) and registers the region on each; then it calls one of the
-- functions below with the fds, starts the clock, sends "go" to the
-- children and calls the returned serve().  Both configurations serve the
-- same faults as the raw C loop: UFFDIO_COPY of one source page, here a
-- ufl.mmap_anon mapping.
--
--   prepare_binding(fds, opts) -> serve, close   the loop written directly
--       on the binding: list:wait and u:read_events into reused tables,
--       u:copy(dst, src_addr, len)
--   prepare_monitor(fds, opts) -> serve, close   uffdlist.monitor with its
--       default policy and a copy fill (opts.fill)
--   prepare_monitor_zero(fds, opts) -> serve, close   the same with the
--       monitor's default fill, zeropage
--
-- opts: total (faults to serve), batch (events per read), warmup (faults
-- served before the allocation count starts).  serve() returns the bytes
-- Lua allocated per fault after the warm-up: the GC is stopped from the
-- warm-up on, so collectgarbage("count") only grows by what was allocated.

local ufl = require "uffdlist"
if os.getenv("BENCH_JITOFF") then jit.off() end
if os.getenv("BENCH_JP") then require("jit.p").start(os.getenv("BENCH_JP_MODE") or "Fl", os.getenv("BENCH_JP")) end
if os.getenv("BENCH_JV") then require("jit.v").on(os.getenv("BENCH_JV")) end
local monitor = require "uffdlist.monitor"

local collectgarbage, error, tostring = collectgarbage, error, tostring

local PS = ufl.page_size()
local ESRCH, EEXIST, EAGAIN = ufl.errno.ESRCH, ufl.errno.EEXIST,
  ufl.errno.EAGAIN
local WAIT_MS = 5000

-- The source page: the same contents as the C loop's source.
local src_map = assert(ufl.mmap_anon(PS))
src_map:write(0, string.char(0xA5) .. string.rep("\51", PS - 2) ..
  string.char(0x5A))
local SRC = src_map:addr()

-- Static entries are never probed; this checker is never asked anything.
local alive = {
  register = function() return true end,
  is_dead = function() return false end,
  reset = function() return true end,
}

-- Adopts the fds (owned from here) into a list on a new wait context:
-- main uffd first, the others static.
local function make_list(fds)
  local uffds = {}
  for i = 1, #fds do
    uffds[i] = assert(ufl.adopt(fds[i]))
  end
  local ctx = assert(ufl.waitctx())
  local list = assert(ufl.list(uffds[1], alive, ctx))
  list:set_num_static_devices(#uffds - 1)
  for i = 2, #uffds do
    assert(list:register(uffds[i]) == false)
  end
  return list, ctx
end

local function closer(list, ctx, m)
  return function()
    if m then
      m:close()
    end
    list:close()
    ctx:close()
  end
end

-- Bytes allocated per fault between the two marks.
local function per_fault(kb0, kb1, faults)
  if faults <= 0 then
    return 0
  end
  return (kb1 - kb0) * 1024 / faults
end

-- One page: copy; a partial copy goes on with the rest and EEXIST wakes
-- the thread.  A tail call, not a retry loop: LuaJIT aborts a trace at a
-- loop that does not loop back ("inner loop in root trace", bench/README.md).
local function copy_page(u, addr, len)
  local n, msg, errno, count = u:copy(addr, SRC, len)
  if n then
    return
  elseif errno == EAGAIN and count and count > 0 then
    return copy_page(u, addr + count, len - count)
  elseif errno == EEXIST then
    assert(u:wake(addr, len))
    return
  elseif errno == EAGAIN then
    return copy_page(u, addr, len)
  end
  error("copy at " .. tostring(addr) .. ": " .. tostring(msg)
    .. (errno == ESRCH and " (child gone)" or ""))
end

-- Serves one event; returns the faults served (0 or 1).
local function serve_event(u, ev)
  if ev.kind ~= "pagefault" then
    return 0
  end
  local a = ev.address
  copy_page(u, a - a % PS, PS)
  return 1
end

-- The module keeps the mapping: collected, it would be unmapped under SRC.
local M = { src_map = src_map }

--- The loop on the binding alone.
function M.prepare_binding(fds, opts)
  local list, ctx = make_list(fds)
  local total, batch, warm = opts.total, opts.batch, opts.warmup
  local ready, evs = {}, {}
  -- read_events truncates `evs` to what it read: keep every event table
  -- in `pool` and put them back, so a longer read does not allocate.
  local pool, npool, nlast = {}, 0, 0

  -- Serves evs[j] of u, keeping its table in the pool.
  local function keep_and_serve(u, j)
    local ev = evs[j]
    if pool[j] ~= ev then
      pool[j] = ev
    end
    return serve_event(u, ev)
  end

  local function serve()
    local served, kb0, warm_at = 0, nil, 0
    while served < total do
      if kb0 == nil and served >= warm then
        collectgarbage("stop")
        kb0, warm_at = collectgarbage("count"), served
      end
      local n, msg = list:wait(WAIT_MS, ready)
      if not n or n == 0 then
        error("wait: " .. tostring(msg or "timeout") .. " after "
          .. served .. " faults")
      end
      for i = 1, n do
        local u = list:get(ready[i])
        ready[i] = nil   -- emptied as used: see doc/lua-api.md, "LuaJIT"
        for j = nlast + 1, npool do
          evs[j] = pool[j]
        end
        local m = u:read_events(evs, batch)
        if not m then
          error("read_events failed")
        end
        -- One event, the usual read, without a loop (see copy_page).
        if m == 1 then
          served = served + keep_and_serve(u, 1)
        else
          for j = 1, m do
            served = served + keep_and_serve(u, j)
          end
        end
        if m > npool then
          npool = m
        end
        nlast = m
      end
    end
    local kb1 = collectgarbage("count")
    collectgarbage("restart")
    return per_fault(kb0 or kb1, kb1, served - warm_at)
  end
  return serve, closer(list, ctx)
end

-- The monitor loop with its default policy; fill nil: its default fill
-- (zeropage), else the copy fill.
local function prepare_monitor(fds, opts, fill)
  local list, ctx = make_list(fds)
  local total, warm = opts.total, opts.warmup
  local m = monitor.new{
    list = list,
    batch = opts.batch,
    fill = fill,
    on_error = function(_, what, msg, errno)
      error("monitor: " .. tostring(what) .. ": " .. tostring(msg)
        .. " (errno " .. tostring(errno) .. ")")
    end,
  }
  local st = m.stats
  local kb0, warm_at
  local last_round_faults, idle_rounds = 0, 0

  local function served()
    return st.served_copy + st.served_zero + st.woken
  end

  local function done(mon)
    local s = served()
    if kb0 == nil and s >= warm then
      collectgarbage("stop")
      kb0, warm_at = collectgarbage("count"), s
    end
    if st.rounds > 0 and s == last_round_faults then
      idle_rounds = idle_rounds + 1
      if idle_rounds * 100 > WAIT_MS then
        error("monitor: no fault served for " .. WAIT_MS .. " ms after "
          .. s .. " faults")
      end
    else
      idle_rounds, last_round_faults = 0, s
    end
    return s >= total or st.errors > 0 or mon.stopped
  end

  local function serve()
    m:run(done)
    if st.errors > 0 then
      error("monitor reported " .. st.errors .. " errors")
    end
    local kb1 = collectgarbage("count")
    collectgarbage("restart")
    return per_fault(kb0 or kb1, kb1, served() - (warm_at or 0))
  end
  return serve, closer(list, ctx, m)
end

--- The monitor loop, default policy, copy fill.
function M.prepare_monitor(fds, opts)
  return prepare_monitor(fds, opts, function(u, addr, len)
    return u:copy(addr, SRC, len)
  end)
end

--- The monitor loop, default policy, default (zeropage) fill.
function M.prepare_monitor_zero(fds, opts)
  return prepare_monitor(fds, opts, nil)
end

return M
