--- Ready policy "threshold": gc when the dynamic entries exceed opts.n
-- (default 8).  The count is the monitor's, given with each registration
-- (entry.dynamic_entries: the dynamic entries in the list with this one,
-- after every gc so far), so the registration after a gc counts from
-- what that gc left.
-- @usage local p = require("uffdlist.policy").load("threshold", { n = 4 })
return function(opts)
  local n = opts and opts.n or 8
  return {
    on_register = function(entry)
      if entry.dynamic_entries > n then
        return "gc"
      end
    end,
  }
end
