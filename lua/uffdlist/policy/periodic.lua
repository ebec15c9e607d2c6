--- Ready policy "periodic": gc every opts.ms (default 1000) milliseconds.
-- The loop arms a timerfd with timer_ms and calls on_timer when it fires
-- (several expirations missed while busy still make one gc).
-- @usage local p = require("uffdlist.policy").load("periodic", { ms = 500 })
return function(opts)
  return {
    timer_ms = opts and opts.ms or 1000,
    on_timer = function(_expirations)
      return "gc"
    end,
  }
end
