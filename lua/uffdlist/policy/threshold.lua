--- Ready policy "threshold": gc when the dynamic entries exceed opts.n
-- (default 8).  Registering counts them; after each round with events the
-- count is taken again from the monitor's stats (gc lowers it).
-- @usage local p = require("uffdlist.policy").load("threshold", { n = 4 })
return function(opts)
  local n = opts and opts.n or 8
  local dynamic = 0
  return {
    on_register = function(_entry, is_dynamic)
      if is_dynamic then
        dynamic = dynamic + 1
      end
      if dynamic > n then
        return "gc"
      end
    end,
    after_batch = function(stats)
      dynamic = stats.dynamic
    end,
  }
end
