-- Issue 7, case 8: a policy that breaks the stats table it is handed
-- (s.faults = nil made the host exit with an arithmetic error) and puts
-- metatables with endless metamethods on everything it gets and returns.
local function spin() while true do end end
local MT = { __index = spin, __newindex = spin, __tostring = spin,
  __len = spin, __eq = spin, __concat = spin, __call = spin }

local function endless()
  return setmetatable({}, MT)
end

return {
  after_batch = function(s)
    s.faults, s.served_zero, s.events, s.dynamic = nil, "x", nil, -1
    setmetatable(s, MT)
    return endless()           -- a bad answer, with metamethods
  end,
  on_register = function(entry)
    setmetatable(entry, MT)
    error(endless())           -- an error object with metamethods
  end,
  on_fault = function(_, fault)
    setmetatable(fault, MT)
    return endless()
  end,
}
