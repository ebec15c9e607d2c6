-- The e2e spec's hoarding policy: run by build/uffdlist-vm --policy FILE.
-- It keeps 24 MiB more per registration and 1 MiB per fault, so it passes
-- its 64 MiB cap early; the monitor must drop it (and its memory) at once,
-- serve on under crosvm, and stay within the cap plus the documented slack.
local hoard = {}
local function keep(mib)
  -- distinct strings: equal ones are one object (interned)
  for _ = 1, mib * 16 do
    local n = #hoard + 1
    hoard[n] = ("h"):rep(65536) .. n
  end
end
return {
  on_register = function(_, dynamic)
    keep(24)
    return dynamic and "gc" or nil
  end,
  on_fault = function()
    keep(1)
    return 1
  end,
}
