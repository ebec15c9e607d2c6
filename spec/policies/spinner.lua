-- Issue 7, case 15: a policy that spins up to its budget on every call:
-- stopped each time but never disabled, fault service dropped ~50x.
local function spin() while true do end end
return {
  on_fault = spin,
  on_register = spin,
  after_batch = spin,
  on_idle = spin,
}
