-- Issue 7, case 10: a policy growing a table of strings (it took the
-- host past 4 GB in 20 s).  Every hook call adds; one call can add a lot.
local hoard = {}
local function grow()
  local i = #hoard
  while true do
    i = i + 1
    hoard[i] = ("x"):rep(65536) .. i
  end
end
local function double()
  local s = ("y"):rep(1024 * 1024)
  while true do s = s .. s end
end
return {
  on_idle = grow,
  on_timer = double,
  on_fault = function() grow() end,
}
