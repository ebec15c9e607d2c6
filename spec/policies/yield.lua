-- Issue 7, case 12: coroutine.yield inside a hook, with the monitor run
-- from a coroutine (as a cqueues host would): the yield went through the
-- guard into the host's coroutine and the count hook stayed installed.
return {
  on_fault = function()
    coroutine.yield("from the policy")
    return 1
  end,
  on_idle = function()
    local ok = pcall(coroutine.yield, "again")
    -- its own coroutine may yield
    local co = coroutine.create(function() coroutine.yield(1) return 2 end)
    local _, a = coroutine.resume(co)
    local _, b = coroutine.resume(co)
    return (a == 1 and b == 2 and not ok) and "gc" or nil
  end,
}
