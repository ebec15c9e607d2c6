--- Ready policy "idle": gc once after opts.ms (default 200) milliseconds
-- without events; the next event arms it again.  idle_ms makes the loop's
-- wait time out when the quiet period is over.
-- @usage local p = require("uffdlist.policy").load("idle", { ms = 100 })
return function(opts)
  local ms = opts and opts.ms or 200
  local done = false
  return {
    idle_ms = ms,
    on_idle = function(quiet_ms)
      if quiet_ms >= ms and not done then
        done = true
        return "gc"
      end
    end,
    after_batch = function(_stats)
      done = false
    end,
  }
end
