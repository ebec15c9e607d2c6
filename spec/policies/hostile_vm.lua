-- The e2e spec's hostile policy (issue 7, "Done when"): run by
-- build/uffdlist-vm --policy FILE among well-behaved VM processes.  It
-- tries what cases 7-12 did, all at once: the args as a live uffd, the
-- stats it is handed, C calls, memory, recursion, yields; and it spins to
-- its budget on every fault.  The VM must still verify every page.
local hoard = {}

local function abuse(x)
  pcall(function() return x:copy(0x10000, ("A"):rep(4096), 4096) end)
  for _ = 1, 16 do pcall(function() return x:dup() end) end
  pcall(function() return x:close() end)
end

return {
  idle_ms = 50,
  on_register = function(entry, dynamic)
    abuse(entry)
    -- 4 MiB more per registration, kept: the memory cap stops it
    for _ = 1, 64 do
      local n = #hoard + 1
      hoard[n] = ("h"):rep(65536) .. n
    end
    pcall(coroutine.yield)
    return dynamic and "gc" or nil
  end,
  on_fault = function(entry, fault)
    abuse(entry)
    abuse(fault)
    while true do end
  end,
  after_batch = function(stats)
    stats.faults, stats.dynamic = nil, "x"
    setmetatable(stats, { __index = function() while true do end end })
    return (("a"):rep(40)):find(".-.-.-.-.-.-.-.-.-b")
  end,
  on_idle = function()
    local function rec(s) return (s:gsub(".", rec)) end
    return rec("ab")
  end,
}
