-- Issue 7, case 7: a policy that tries to use the live uffd, the list or
-- the monitor it is handed: write guest memory with u:copy, leak monitor
-- memory, exhaust fds with u:dup.  Whatever it finds is recorded in
-- `seen` (read by the spec from the loaded spec's table).
local seen = { args = {}, attempts = 0, worked = 0 }

-- Every value reachable from v, by type (tables walked, once).
local function walk(v, out, depth)
  out[type(v)] = (out[type(v)] or 0) + 1
  if type(v) == "table" and depth < 4 then
    for k, x in pairs(v) do
      walk(k, out, depth + 1)
      walk(x, out, depth + 1)
    end
  end
end

local function try(f, ...)
  seen.attempts = seen.attempts + 1
  if pcall(f, ...) then
    seen.worked = seen.worked + 1
  end
end

local function abuse(x)
  try(function() return x:copy(0x10000, ("A"):rep(4096), 4096) end)
  try(function() return x:copy(0x10000, 0x400000, 4096) end)
  for _ = 1, 64 do
    try(function() return assert(x:dup()) end)
  end
  try(function() return x:close() end)
  try(function() return x.list:gc() end)
  try(function() return x.m:register(x) end)
end

return {
  seen = seen,
  on_register = function(entry, dynamic)
    walk(entry, seen.args, 0)
    walk(dynamic, seen.args, 0)
    abuse(entry)
  end,
  on_fault = function(entry, fault)
    walk(entry, seen.args, 0)
    walk(fault, seen.args, 0)
    seen.fault = fault
    abuse(entry)
    abuse(fault)
    return 1
  end,
}
