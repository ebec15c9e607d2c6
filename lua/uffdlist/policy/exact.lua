--- Ready policy "exact": collection that costs O(dead).  On an exit hint
-- (m:register(u, { pid = P }) and the like, doc/monitor-api.md "Exit
-- hints") it answers "gc", so the monitor probes exactly that entry
-- (list:gc{only}); a dead device costs one probe.  The probe, never the
-- hint, decides: a live process that hung up stays.
--
-- Fallback for the dead a hint missed (a uffd registered without one, a
-- reused pid, a probe that said alive until the retries gave up): a full
-- gc when the dynamic entries reach `opts.full_at` (default 64), then
-- whenever they double from where the last full gc began.  Each full gc
-- is paid by the registrations that doubled the list, so the fallback
-- costs at most about 2 probes per registration, and none while the hints
-- keep the list small.  `full_at = 0` turns the fallback off.
-- @usage local p = require("uffdlist.policy").load("exact", { full_at = 128 })
return function(opts)
  local full_at = opts and opts.full_at or 64
  local next_full = full_at
  return {
    on_exit = function(_info)
      return "gc"
    end,
    on_register = function(entry, is_dynamic)
      if is_dynamic and next_full > 0 and entry.dynamic_entries >= next_full
      then
        next_full = 2 * entry.dynamic_entries
        return "gc"
      end
    end,
  }
end
