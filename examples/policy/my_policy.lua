-- my_policy.lua: an example user policy for uffdlist's monitor.
-- Load it with require("uffdlist.policy").load("examples/policy/my_policy.lua").
-- It runs in a sandbox: no io, os.execute, require or debug; its hooks get
-- plain data (doc/monitor-api.md) and each call is bounded in time and
-- memory (doc/security.md).
--
-- Collect dead uffds when more than 4 hot-plugged ones are listed, or
-- after 500 ms without events; serve write faults 4 pages at a time.
return function(opts)
  opts = opts or {}
  local max_dynamic = opts.max_dynamic or 4
  local quiet_ms = opts.idle_ms or 500
  local dynamic, idle_done = 0, false
  return {
    idle_ms = quiet_ms,
    on_register = function(_entry, is_dynamic)
      if is_dynamic then dynamic = dynamic + 1 end
      if dynamic > max_dynamic then return "gc" end
    end,
    after_batch = function(stats)
      dynamic, idle_done = stats.dynamic, false
    end,
    on_idle = function(ms)
      if ms >= quiet_ms and not idle_done then
        idle_done = true
        return "gc"
      end
    end,
    on_fault = function(_entry, fault)
      return fault.write and 4 or 1
    end,
  }
end
