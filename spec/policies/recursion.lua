-- Issue 7, case 11: recursion through C functions that segfaults Debian's
-- LuaJIT 2.1-beta3 (plain `luajit -e` too).
local opts = ...
local case = opts and opts.case or "gsub"

local function gsub_rec(s)
  return (s:gsub(".", gsub_rec))
end

local function gsub_table()
  local t = setmetatable({}, { __index = function(t)
    return (("x"):gsub("x", t))
  end })
  return t.y
end

local function resume_rec()
  local co = coroutine.create(resume_rec)
  return coroutine.resume(co)
end

local wrapped
local function wrap_rec()
  return coroutine.wrap(wrap_rec)()
end

local function run()
  if case == "gsub" then
    return gsub_rec("ab")
  elseif case == "gsub_table" then
    return gsub_table()
  elseif case == "resume" then
    return resume_rec()
  elseif case == "wrap" then
    wrapped = coroutine.wrap(function() wrapped() end)
    pcall(wrapped)
    return wrap_rec()
  end
end

return { on_idle = run }
