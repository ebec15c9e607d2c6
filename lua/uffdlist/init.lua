--- uffdlist: userfaultfds, an epoll wait context, the dead-uffd checker and
-- crosvm's UffdList, for a VMM's memory monitor.
--
-- `local ufl = require "uffdlist"` gives everything of the C module
-- `uffdlist.core` (see doc/lua-api.md) plus the small helpers below.
-- @module uffdlist

local core = require "uffdlist.core"

local pairs, type = pairs, type

-- LuaJIT: the hot methods over the FFI (uffdlist.fast); UFFDLIST_FFI=0
-- keeps the C methods.  Before the copy below: it replaces
-- core.monotonic_ms too.
if jit and os.getenv("UFFDLIST_FFI") ~= "0" and pcall(require, "ffi") then
  require("uffdlist.fast").install(core)
end

local M = {}
for k, v in pairs(core) do
  M[k] = v
end

--- The C module itself.
M.core = core

--- "uffdlist MAJOR.MINOR.PATCH": the release (the Makefile's VERSION, the
-- C library's and uffdlist.pc's).
M._VERSION = "uffdlist 0.1.0"

-- errno number -> name.  Where two names share a number (EAGAIN and
-- EWOULDBLOCK, EOPNOTSUPP and ENOTSUP, EDEADLK and EDEADLOCK) the first
-- of these is kept.
local preferred = { "EAGAIN", "EOPNOTSUPP", "EDEADLK" }
local errname = {}
for _, name in pairs(preferred) do
  local e = core.errno[name]
  if e then
    errname[e] = name
  end
end
for name, e in pairs(core.errno) do
  if not errname[e] then
    errname[e] = name
  end
end

--- The name of an errno number ("ESRCH"), or nil.
-- @tparam number e
-- @treturn string|nil
function M.errname(e)
  return errname[e]
end

local ESRCH, EEXIST, EAGAIN = core.errno.ESRCH, core.errno.EEXIST,
  core.errno.EAGAIN

--- Names the outcome of a fill call (copy, zeropage, continue), given its
-- results: "done", "process_gone", "page_exists", "partial",
-- "map_changing" or "error".
-- @usage local how = ufl.outcome(u:copy(dst, page))
-- @return string the outcome
-- @return the call's results, unchanged
function M.outcome(n, msg, err, count)
  local how
  if n ~= nil then
    how = "done"
  elseif err == ESRCH then
    how = "process_gone"
  elseif err == EEXIST then
    how = "page_exists"
  elseif err == EAGAIN then
    how = count and "partial" or "map_changing"
  else
    how = "error"
  end
  return how, n, msg, err, count
end

--- Whether v is a closed uffdlist object (false for anything else).
-- @param v
-- @treturn boolean
function M.is_closed(v)
  if type(v) ~= "userdata" then
    return false
  end
  local ok, closed = pcall(function() return v:is_closed() end)
  return ok and closed == true
end

return M
