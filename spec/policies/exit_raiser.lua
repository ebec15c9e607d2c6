-- A policy whose on_exit fails every way the boundary knows: raises, spins
-- past its budget, answers garbage.  Each call costs a report and the
-- default decision (the entry is left to the normal gc); three in a row
-- disable the policy (crosvm takes over).
local calls = 0
return {
  on_exit = function(info)
    calls = calls + 1
    if calls == 1 then
      error("on_exit down for entry " .. info.index)
    elseif calls == 2 then
      while true do end
    end
    return { "gc" }
  end,
}
