--- Ready policy "crosvm": what crosvm's monitor does.  A gc runs after a
-- round in which a dynamic (hot-plugged) uffd was registered, and never
-- otherwise: a dead hot-plugged uffd stays in the list, silent, until the
-- next hot-plug.
-- @usage local p = require("uffdlist.policy").load("crosvm")
return function(_opts)
  return {
    on_register = function(_entry, is_dynamic)
      if is_dynamic then
        return "gc"
      end
    end,
  }
end
