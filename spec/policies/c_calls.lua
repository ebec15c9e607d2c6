-- Issue 7, case 9: C calls the count hook cannot stop.  Each hook picks
-- one by the number the spec passes in `...` (opts.case).
local opts = ...
local case = opts and opts.case or "rep"

-- built at load (its own budget), so the hook's budget goes to sort alone
local big = {}
if case == "sort" then
  for i = 1, 200000 do big[i] = -i end
end

local function run()
  if case == "rep" then
    while true do pcall(string.rep, "x", 2 ^ 30) end
  elseif case == "rep_method" then
    while true do local _ = ("x"):rep(2 ^ 30) end
  elseif case == "find" then
    return string.find(("a"):rep(40), ".-.-.-.-.-.-.-.-.-b")
  elseif case == "find_method" then
    return (("a"):rep(40)):find(".-.-.-.-.-.-.-.-.-b")
  elseif case == "gsub" then
    return (("a"):rep(40)):gsub("a*a*a*a*a*a*a*b", "")
  elseif case == "match" then
    return (("a"):rep(5000)):match("a*a*a*b")
  elseif case == "xpcall" then
    return xpcall(function() while true do end end,
      function() while true do end end)
  elseif case == "xpcall_error" then
    return xpcall(function() error("first") end,
      function() while true do end end)
  elseif case == "sort" then
    table.sort(big)
  end
end

return { on_idle = run, seen = { case = case } }
