-- spec/helpers/posix.lua — lua-posix for the specs, or why it is missing.
--
-- Debian 12 builds lua-posix for Lua 5.1-5.3 only.  Where it does not load
-- (Lua 5.4 there), posix.require(name) returns a stand-in whose every field
-- raises posix.missing, and posix.it(it, pend) wraps busted's `it` so that
-- such a raise turns the spec pending with that reason: only the specs that
-- really use lua-posix are skipped, every other one runs.  In a spec file:
--
--   local posix = require "spec.helpers.posix"
--   local unistd = posix.require "posix.unistd"
--   local it = posix.it(it, function(msg) pending(msg) end)
--
-- (`pending` must be looked up in the spec file's environment, inside the
-- running test: that is busted's in-test pending.)  Where lua-posix loads,
-- posix.require is require and posix.it returns `it` unchanged.
local M = {}

local ok, err = pcall(require, "posix.unistd")
if not ok then
  M.missing = ("needs lua-posix, which does not load under %s"
    .. " (Debian 12 builds it for Lua 5.1-5.3 only): %s"):format(_VERSION,
    (tostring(err):match("^[^\n]*")))
  -- Loud, once per run: the pending list says which specs it cost.
  io.stderr:write("\nspec/helpers/posix.lua: ", M.missing, "\n")
end

local stand_in = setmetatable({}, {
  __index = function(_, k) error(M.missing .. " (posix." .. tostring(k) .. ")", 2) end,
})

function M.require(name)
  if M.missing then return stand_in end
  return require(name)
end

function M.it(it, pend)
  if not M.missing then return it end
  return function(name, fn)
    return it(name, function(...)
      local res = { pcall(fn, ...) }
      if res[1] then return end
      local e = res[2]
      if type(e) == "string" and e:find(M.missing, 1, true) then pend(e) end
      error(e, 0)
    end)
  end
end

return M
