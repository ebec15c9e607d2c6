--- uffdlist.sandbox: the environment a policy file runs in (doc/security.md).
--
-- A policy is operators' code: well meant, fallible.  Its chunk runs with
-- a fresh environment holding only what cannot hurt the monitor:
--
-- * no io, os.execute/exit/remove/getenv, require, package, debug, ffi,
--   jit, load/loadstring/dofile, getmetatable, collectgarbage, newproxy,
--   print, math.randomseed, string.dump;
-- * no unbounded C call.  The count hook of uffdlist.guard stops Lua code,
--   never a C function that runs long, so every C function offered either
--   runs in time bounded by its arguments' size (and the memory cap bounds
--   those), or is wrapped here:
--   - string.rep: result at most MAX_STRING bytes;
--   - find/match/gmatch/gsub: Lua patterns backtrack; a call whose worst
--     case (subject length + 1) ^ (quantifiers + 1) * pattern length is
--     above MAX_MATCH_STEPS is refused (plain finds count as 0
--     quantifiers); patterns at most MAX_PATTERN bytes;
--   - gsub with a function or table replacement calls back into Lua from
--     C: LuaJIT 2.1-beta3 segfaults when that recurses into gsub, so a
--     gsub inside a gsub's replacement is refused;
--   - coroutine.resume nests C calls: at most MAX_RESUME_DEPTH coroutines
--     deep (LuaJIT 2.1-beta3 segfaults on deep resume recursion);
--     coroutine.wrap is built on that resume; coroutine.yield works only
--     inside coroutines the policy created, so a hook never yields
--     through the guard into the host;
--   - table.sort: at most MAX_SORT elements; table.move (5.3+) and
--     table.insert/remove at a position: at most MAX_MOVE;
--   - pcall/xpcall/coroutine.resume pass on the guard's stop (time or
--     memory) instead of letting the policy swallow it; xpcall's handler
--     runs after the stack is unwound, as a plain (bounded) call;
--   - setmetatable refuses a metatable with __gc (Lua 5.2+ would run it
--     later, in the host's code, outside every bound).
-- * strings' methods: every string shares one metatable whose __index is
--   the host's string table.  The guard points that __index at the
--   policy's bounded string table while a policy's code runs and puts the
--   host's back afterwards, so `("x"):rep(2^30)` meets the same bounds.
--
-- The library tables are copies: a policy changing them changes only its
-- own.
-- @module uffdlist.sandbox

local type, error, select, tostring, pairs = type, error, select, tostring,
  pairs
local pcall, setmetatable, rawget = pcall, setmetatable, rawget
local unpack = unpack or table.unpack  -- luacheck: ignore 143
local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running,
  coroutine.status
-- Locals, never methods: while a policy runs, strings' methods are its
-- own (bounded, and changeable by it) string table.
local s_rep, s_find, s_match, s_gmatch, s_gsub, s_byte, s_format =
  string.rep, string.find, string.match, string.gmatch, string.gsub,
  string.byte, string.format
local t_sort = table.sort

local M = {}

M.MAX_STRING = 16 * 1024 * 1024   -- bytes of one string.rep result
M.MAX_MATCH_STEPS = 1e7            -- worst-case matcher steps of one call
M.MAX_PATTERN = 256                -- bytes of one pattern
M.MAX_RESUME_DEPTH = 64            -- coroutines resumed inside each other
M.MAX_SORT = 100000                -- elements table.sort orders
M.MAX_MOVE = 1000000               -- elements one table.move copies

-- ------------------------------------------------------ the guard's stop

-- uffdlist.guard sets this to a function returning the stop message (time
-- or memory) once a call was stopped, nil otherwise; the wrappers below
-- re-raise it so a policy cannot catch it and go on.
local stopped = function() return nil end

--- Installs the function that says whether the running call was stopped
-- (uffdlist.guard does).
function M.set_stop_check(f)
  stopped = f
end

local function pass_stop(ok, ...)
  if not ok then
    local why = stopped()
    if why then
      error(why, 0)
    end
  end
  return ok, ...
end

local function safe_pcall(f, ...)
  return pass_stop(pcall(f, ...))
end

-- The handler runs after pcall returned: a plain Lua call the count hook
-- reaches (LuaJIT runs a real xpcall handler without calling hooks).
local function handled(handler, ok, ...)
  if ok then
    return true, ...
  end
  local why = stopped()
  if why then
    error(why, 0)
  end
  return false, select(2, pass_stop(pcall(handler, (...))))
end

local function safe_xpcall(f, handler, ...)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'xpcall' (function expected, got "
      .. type(handler) .. ")", 2)
  end
  return handled(handler, pcall(f, ...))
end

-- ------------------------------------------------------------- strings

local function check_num(v, i, name)
  if type(v) ~= "number" then
    error(s_format("bad argument #%d to '%s' (number expected, got %s)", i,
      name, type(v)), 3)
  end
end

local function check_str(v, i, name)
  local t = type(v)
  if t == "number" then
    return tostring(v)
  elseif t ~= "string" then
    error(s_format("bad argument #%d to '%s' (string expected, got %s)", i,
      name, t), 3)
  end
  return v
end

local function bounded_rep(s, n, sep)
  s = check_str(s, 1, "rep")
  check_num(n, 2, "rep")
  local len = n >= 1 and #s * n + (sep and #tostring(sep) * (n - 1) or 0)
    or 0
  if len > M.MAX_STRING then
    error(s_format("string.rep: result of %.0f bytes is over the policy "
      .. "limit of %d", len, M.MAX_STRING), 2)
  end
  if sep == nil then
    return s_rep(s, n)
  end
  return s_rep(s, n, sep)
end

-- Quantifiers of a Lua pattern: * + - each multiply the worst case by the
-- subject's length, ? by 2, %b by the length too (it scans).
local SPECIALS = "[%^%$%*%+%?%.%(%)%[%]%%%-]"

local function pattern_cost(subject_len, p, plain)
  local m = #p
  if m > M.MAX_PATTERN then
    return math.huge
  end
  -- floats: Lua 5.3's integers would wrap around on a long pattern
  local n1 = subject_len + 1.0
  if plain or not s_find(p, SPECIALS) then
    return n1 * (m + 1)
  end
  local factor, i = 1.0, 1
  if s_byte(p, 1) == 94 then   -- "^": anchored, one start position
    factor, i = 1 / n1, 2
  end
  while i <= m do
    local c = s_byte(p, i)
    if c == 37 then              -- "%"
      if s_byte(p, i + 1) == 98 then   -- %bxy
        factor = factor * n1
        i = i + 4
      else
        i = i + 2
      end
    elseif c == 42 or c == 43 or c == 45 then   -- * + -
      factor = factor * n1
      i = i + 1
    elseif c == 63 then          -- ?
      factor = factor * 2
      i = i + 1
    else
      i = i + 1
    end
  end
  -- every start position (one when anchored), times n1 per quantifier,
  -- times the pattern's length
  return n1 * factor * (m + 1)
end

local function check_pattern(name, s, p, plain)
  s = check_str(s, 1, name)
  p = check_str(p, 2, name)
  local cost = pattern_cost(#s, p, plain)
  if cost > M.MAX_MATCH_STEPS then
    error(s_format("string.%s: pattern too costly for the policy sandbox "
      .. "(worst case %.3g steps over %d bytes; limit %.3g; a pattern at "
      .. "most %d bytes)", name, cost, #s, M.MAX_MATCH_STEPS,
      M.MAX_PATTERN), 3)
  end
  return s, p
end

local function bounded_find(s, p, init, plain)
  s, p = check_pattern("find", s, p, plain)
  return s_find(s, p, init, plain)
end

local function bounded_match(s, p, init)
  s, p = check_pattern("match", s, p)
  return s_match(s, p, init)
end

local function bounded_gmatch(s, p)
  s, p = check_pattern("gmatch", s, p)
  return s_gmatch(s, p)
end

local in_gsub = false

local function gsub_failed(ok, ...)
  in_gsub = false
  if not ok then
    error((...), 0)
  end
  return ...
end

local function bounded_gsub(s, p, repl, n)
  s, p = check_pattern("gsub", s, p)
  local rt = type(repl)
  if rt ~= "function" and rt ~= "table" then
    return s_gsub(s, p, repl, n)
  end
  if in_gsub then
    error("string.gsub: called from inside a gsub replacement (refused: "
      .. "this LuaJIT crashes on that recursion)", 2)
  end
  in_gsub = true
  return gsub_failed(pcall(s_gsub, s, p, repl, n))
end

-- A fresh bounded string library.
local function string_lib()
  local lib = {}
  for k, v in pairs(string) do
    lib[k] = v
  end
  lib.dump = nil
  lib.rep, lib.find, lib.match, lib.gmatch, lib.gsub =
    bounded_rep, bounded_find, bounded_match, bounded_gmatch, bounded_gsub
  return lib
end

-- ----------------------------------------------------------- coroutines

local depth = 0

local function resumed(ok, ...)
  depth = depth - 1
  return pass_stop(ok, ...)
end

local function coroutine_lib()
  local mine = setmetatable({}, { __mode = "k" })
  local lib = {}
  for k, v in pairs(coroutine) do
    lib[k] = v
  end
  lib.create = function(f)
    local co = co_create(f)
    mine[co] = true
    return co
  end
  lib.resume = function(co, ...)
    if depth >= M.MAX_RESUME_DEPTH then
      return false, "coroutine.resume: more than " .. M.MAX_RESUME_DEPTH
        .. " coroutines deep"
    end
    depth = depth + 1
    return resumed(co_resume(co, ...))
  end
  lib.yield = function(...)
    local co = co_running()
    if not (co and mine[co]) then
      error("coroutine.yield: a policy may yield only from a coroutine "
        .. "it created", 2)
    end
    return co_yield(...)
  end
  local resume = lib.resume
  lib.wrap = function(f)
    local co = lib.create(f)
    return function(...)
      local function unwrap(ok, ...)
        if not ok then
          error((...), 0)
        end
        return ...
      end
      return unwrap(resume(co, ...))
    end
  end
  lib.status = co_status
  lib.running = co_running
  return lib
end

-- ---------------------------------------------------------------- table

local function table_lib()
  local lib = {}
  for k, v in pairs(table) do
    lib[k] = v
  end
  lib.sort = function(t, cmp)
    if type(t) == "table" and #t > M.MAX_SORT then
      error("table.sort: more than " .. M.MAX_SORT .. " elements", 2)
    end
    return t_sort(t, cmp)
  end
  -- insert/remove at a position shift the rest in C: not on huge tables
  local insert, remove = lib.insert, lib.remove
  lib.insert = function(t, ...)
    if select("#", ...) >= 2 and type(t) == "table" and #t > M.MAX_MOVE then
      error("table.insert: a position in more than " .. M.MAX_MOVE
        .. " elements", 2)
    end
    return insert(t, ...)
  end
  lib.remove = function(t, ...)
    if select("#", ...) >= 1 and type(t) == "table" and #t > M.MAX_MOVE then
      error("table.remove: a position in more than " .. M.MAX_MOVE
        .. " elements", 2)
    end
    return remove(t, ...)
  end
  local move = lib.move   -- 5.3+: a C loop over the range, however sparse
  if move then
    lib.move = function(a1, f, e, t, a2)
      if type(f) == "number" and type(e) == "number" and e - f >= M.MAX_MOVE
      then
        error("table.move: more than " .. M.MAX_MOVE .. " elements", 2)
      end
      return move(a1, f, e, t, a2)
    end
  end
  return lib
end

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: a policy's metatable may not have __gc", 2)
  end
  return setmetatable(t, mt)
end

-- ------------------------------------------------------------------ env

--- A fresh environment for one policy chunk, and its bounded string
-- library (the one the guard gives strings' methods while the policy
-- runs).
-- @treturn table env
-- @treturn table the bounded string library (env.string)
function M.env()
  local math_lib = {}
  for k, v in pairs(math) do
    math_lib[k] = v
  end
  math_lib.randomseed = nil   -- the host's random state
  local str = string_lib()
  local env = {
    assert = assert, error = error, ipairs = ipairs, pairs = pairs,
    next = next, pcall = safe_pcall, select = select, tonumber = tonumber,
    tostring = tostring, type = type, unpack = unpack, xpcall = safe_xpcall,
    rawget = rawget, rawset = rawset, rawequal = rawequal,
    setmetatable = safe_setmetatable,
    string = str, table = table_lib(), math = math_lib,
    coroutine = coroutine_lib(),
    os = { clock = os.clock, time = os.time, date = os.date },
    _VERSION = _VERSION,
  }
  env._G = env
  return env, str
end

--- The bounded string library for code that is not a sandboxed file
-- (ready policies, tables the host gives): strings' methods during a
-- guarded call.
M.default_string = string_lib()

M.pattern_cost = pattern_cost
return M
