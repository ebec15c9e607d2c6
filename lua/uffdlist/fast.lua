--- The hot methods over LuaJIT's FFI: `u:copy`, `u:zeropage`, `u:wake`,
-- `u:read_events`, `list:wait` and `list:get` (and `ufl.monotonic_ms`),
-- with the C methods' results, errors and side effects.
--
-- A LuaJIT trace leaves itself to call a C method, which then makes its
-- Lua API calls (checking self and the arguments, pushing the results):
-- that was most of what the binding added to a served fault
-- (bench/README.md).  Here each method checks its arguments in Lua and
-- calls a plain C function of src/lua_fast.c through an FFI function
-- pointer, which a trace calls directly.  Whatever it does not check
-- itself (a wrong type, a value out of range, a closed object, a FORK
-- event, an `out[i]` that is no table yet) goes to the C method, so
-- errors and their messages are the binding's.
--
-- `require "uffdlist"` installs it under LuaJIT (not under PUC Lua, which
-- has no FFI), unless the environment variable `UFFDLIST_FFI` is `0`.
-- @module uffdlist.fast

local ffi = require "ffi"
local bit = require "bit"

local getmetatable, rawget, rawset, type, setmetatable =
  getmetatable, rawget, rawset, type, setmetatable
local band = bit.band

local M = {}

local MAX53 = 2 ^ 53

-- What lufl_checkint accepts, for a number (NaN fails the range test).
local function is_int(v, lo, hi)
  return type(v) == "number" and v >= lo and v <= hi and v % 1 == 0
end

local function is_addr(v)
  return is_int(v, 0, MAX53)
end

-- out[from...] = nil up to the first nil (lufl_truncate).
local function truncate(t, from)
  while rawget(t, from) ~= nil do
    rawset(t, from, nil)
    from = from + 1
  end
end

--- Installs the fast methods in the metatables of core's uffd and list
-- classes (once; again is a no-op).  Returns true, or false when core has
-- no fast entry points.
-- @param core the C module
-- @treturn boolean
function M.install(core)
  local fast = core._fast
  if not fast then
    return false
  end
  if M.slow then
    return true
  end
  -- The classes' metatables (lufl_newclass registers them by name).
  local reg = debug and debug.getregistry and debug.getregistry()
  local UFFD_MT = reg and reg["uffdlist.uffd"]
  local LIST_MT = reg and reg["uffdlist.list"]
  if type(UFFD_MT) ~= "table" or type(LIST_MT) ~= "table" then
    return false
  end
  local U, L = UFFD_MT.__index, LIST_MT.__index
  local SLOW, FILL = fast.SLOW, fast.FILL
  local fail, fill_result, wait_fill = fast.error, fast.fill_result,
    fast.wait_fill

  local copy_addr = ffi.cast(
    "double (*)(void *, uint64_t, uint64_t, uint64_t, uint64_t)",
    fast.copy_addr)
  local copy_str = ffi.cast(
    "double (*)(void *, uint64_t, const char *, uint64_t, uint64_t)",
    fast.copy_str)
  local zeropage = ffi.cast(
    "double (*)(void *, uint64_t, uint64_t, uint64_t)", fast.zeropage)
  local wake = ffi.cast("int (*)(void *, uint64_t, uint64_t)", fast.wake)
  local read = ffi.cast("int (*)(void *, int, double *)", fast.read)
  local read_done = ffi.cast("void (*)(void *)", fast.read_done)
  local list_wait = ffi.cast(
    "int (*)(void *, int, uint32_t *, uint32_t *)", fast.list_wait)
  local list_get = ffi.cast("double (*)(void *, uint64_t)", fast.list_get)
  local monotonic_ms = ffi.cast("double (*)(void)", fast.monotonic_ms)

  local slow = {
    copy = U.copy, zeropage = U.zeropage, wake = U.wake,
    read_events = U.read_events, wait = L.wait, get = L.get,
    monotonic_ms = core.monotonic_ms,
  }
  M.slow = slow
  local c_copy, c_zeropage, c_wake, c_read, c_wait, c_get = slow.copy,
    slow.zeropage, slow.wake, slow.read_events, slow.wait, slow.get

  -- A fill's results: the plain success, else the C method's shape.
  local function filled(what, r, len)
    if r == len then
      return r
    end
    return fill_result(what, r, len)
  end

  function U.copy(self, dst, src, len, mode)
    if getmetatable(self) == UFFD_MT and is_addr(dst)
      and (mode == nil or is_int(mode, 0, 0xffffffff)) then
      local r
      if type(src) == "number" then
        if is_addr(src) and is_addr(len) then
          r = copy_addr(self, dst, src, len, mode or 0)
        end
      elseif type(src) == "string" then
        if len == nil then
          len = #src
        end
        if is_addr(len) and len <= #src then
          r = copy_str(self, dst, src, len, mode or 0)
        end
      end
      if r and r ~= SLOW then
        return filled("copy", r, len)
      end
    end
    return c_copy(self, dst, src, len, mode)
  end

  function U.zeropage(self, start, len, mode)
    if getmetatable(self) == UFFD_MT and is_addr(start) and is_addr(len)
      and (mode == nil or is_int(mode, 0, 0xffffffff)) then
      local r = zeropage(self, start, len, mode or 0)
      if r ~= SLOW then
        return filled("zeropage", r, len)
      end
    end
    return c_zeropage(self, start, len, mode)
  end

  function U.wake(self, start, len)
    if getmetatable(self) == UFFD_MT and is_addr(start) and is_addr(len)
    then
      local r = wake(self, start, len)
      if r == 0 then
        return true
      elseif r ~= SLOW then
        return fail("wake", -r)
      end
    end
    return c_wake(self, start, len)
  end

  -- read_events: the fast read's page faults, VALS doubles each (address,
  -- flags, their low 32 bits, tid or -1: src/lua_fast.c; doubles make no
  -- cdata, even outside a trace).  One array per Lua state: between the
  -- read and the conversion nothing allocates, so no finalizer runs (only
  -- a debug hook of the host's that read events itself could re-enter).
  local VALS = fast.VALS
  local vals = ffi.new("double[?]", VALS * 1024)
  local OTHER = { "address", "flags", "write", "wp", "minor", "tid", "uffd",
    "errno", "from", "to", "len", "start", "stop", "event" }
  local WRITE, WP = core.PAGEFAULT_WRITE, core.PAGEFAULT_WP
  local MINOR = core.PAGEFAULT_MINOR or 0

  -- ev = the page fault at vals[k...], as fill_events sets it (raw, and a
  -- table that held another kind cleared first).
  local function set_pagefault(ev, k)
    if rawget(ev, "kind") ~= "pagefault" then
      for i = 1, #OTHER do
        rawset(ev, OTHER[i], nil)
      end
      rawset(ev, "kind", "pagefault")
    end
    local lo, tid = vals[k + 2], vals[k + 3]
    rawset(ev, "address", vals[k])
    rawset(ev, "flags", vals[k + 1])
    rawset(ev, "write", band(lo, WRITE) ~= 0)
    rawset(ev, "wp", band(lo, WP) ~= 0)
    rawset(ev, "minor", band(lo, MINOR) ~= 0)
    rawset(ev, "tid", tid >= 0 and tid or nil)
  end

  function U.read_events(self, out, max)
    if max == nil then
      max = 16
    end
    if getmetatable(self) ~= UFFD_MT or type(out) ~= "table"
      or not is_int(max, 1, 1024) then
      return c_read(self, out, max)
    end
    local n = read(self, max, vals)
    if n <= 0 then
      if n == 0 then
        truncate(out, 1)
        return 0, out
      elseif n == SLOW then
        return c_read(self, out, max)
      end
      return fail("read_events", -n)
    end
    -- Creating a table may run a collection step, and a finalizer could
    -- read: the C method creates them (and delivers what is pending).
    -- One event (the usual batch) takes no loop: LuaJIT aborts a trace
    -- at a loop that does not loop back ("inner loop in root trace").
    if n == 1 then
      local ev = rawget(out, 1)
      if type(ev) ~= "table" then
        return c_read(self, out, max)
      end
      set_pagefault(ev, 0)
    else
      for j = 1, n do
        if type(rawget(out, j)) ~= "table" then
          return c_read(self, out, max)
        end
      end
      for j = 1, n do
        set_pagefault(rawget(out, j), VALS * (j - 1))
      end
    end
    read_done(self)
    if rawget(out, n + 1) ~= nil then
      truncate(out, n + 1)
    end
    return n, out
  end

  -- t[1..n] = a[0..n-1], then t[n+1...] = nil up to the first nil.  Up
  -- to 4 entries (a wait's usual count) take no loop: a loop here is a
  -- root trace of its own, and its exit, a side trace returning into the
  -- caller's loops, is one LuaJIT cannot compile ("loop unroll limit
  -- reached"): the rest of the caller's round would run interpreted.
  local function put(t, a, n)
    if n > 4 then
      for i = 1, n do
        rawset(t, i, a[i - 1])
      end
    elseif n > 0 then
      rawset(t, 1, a[0])
      if n > 1 then
        rawset(t, 2, a[1])
        if n > 2 then
          rawset(t, 3, a[2])
          if n > 3 then
            rawset(t, 4, a[3])
          end
        end
      end
    end
    if rawget(t, n + 1) ~= nil then
      truncate(t, n + 1)
    end
  end

  local ids = ffi.new("uint32_t[64]")
  local masks = ffi.new("uint32_t[64]")

  function L.wait(self, timeout, out, evs)
    if timeout == nil then
      timeout = -1
    end
    if getmetatable(self) ~= LIST_MT or not is_int(timeout, -1, 2 ^ 31 - 1)
      or (out ~= nil and type(out) ~= "table")
      or (evs ~= nil and type(evs) ~= "table") then
      return c_wait(self, timeout, out, evs)
    end
    if out == nil then
      out = {}
    end
    local n = list_wait(self, timeout, ids, masks)
    if n < 0 then
      if n == FILL then
        return wait_fill(self, out, evs)
      elseif n == SLOW then
        return c_wait(self, timeout, out, evs)
      end
      return fail("wait", -n)
    end
    put(out, ids, n)
    if evs then
      put(evs, masks, n)
    end
    return n, out, evs
  end

  -- The monitor's clock, read every round.
  function core.monotonic_ms()
    return monotonic_ms()
  end

  -- struct ufl_uffd * (a uffd userdata's block) -> the userdata, filled
  -- from the C method; weak: a collected uffd's block may be reused.
  local by_addr = setmetatable({}, { __mode = "v" })

  function L.get(self, i)
    if getmetatable(self) == LIST_MT and is_int(i, 1, MAX53) then
      local p = list_get(self, i)
      if p == 0 then
        return nil
      elseif p ~= 1 then
        local u = by_addr[p]
        if u == nil then
          u = c_get(self, i)
          by_addr[p] = u
        end
        return u
      end
    end
    return c_get(self, i)
  end
  return true
end

return M
