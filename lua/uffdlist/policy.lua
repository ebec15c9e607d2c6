--- uffdlist.policy: loading policies and bounding their hooks.
--
-- `load(path_or_name, opts)`: a name ("crosvm", "threshold", "periodic",
-- "idle") loads the ready policy `uffdlist.policy.NAME` (trusted: normal
-- environment); a path loads a user file in a sandbox.  Either way the JIT
-- is turned off for the chunk (LuaJIT's compiled code skips count hooks,
-- so a compiled runaway loop could not be stopped) and the chunk, its
-- constructor and later every hook run under `guard`.
--
-- A chunk returns a policy table, or a constructor `function(opts)` that
-- returns one (opts is also the chunk's `...`).
-- @module uffdlist.policy

local type, pairs, pcall, xpcall, error, tostring =
  type, pairs, pcall, xpcall, error, tostring
local rawget, setfenv, loadstring, load = rawget, setfenv, loadstring, load
local sethook, gethook = debug.sethook, debug.gethook
local os_clock = os.clock
local jit = package.loaded.jit

local M = {}

local DEFAULT_BUDGET_MS = 100
local COUNT = 1000   -- VM instructions between two clock checks

-- --------------------------------------------------------------- guard

-- State of the running guard (hooks do not nest: the sandbox cannot reach
-- guard).  `tripped` holds the message once the budget is exceeded, so the
-- sandbox's pcall/xpcall/coroutine.resume can pass it on instead of
-- letting a policy swallow it and spin on.
local deadline, hook_name, hook_budget, tripped

local function on_count()
  if os_clock() > deadline then
    tripped = string.format("policy hook '%s' exceeded %g ms", hook_name,
      hook_budget)
    error(tripped, 0)
  end
end

local function finish(oh, om, oc, ok, ...)
  -- put back a hook the host had (a coverage tool, a debugger)
  if type(oh) == "function" then
    sethook(oh, om, oc)
  else
    sethook()
  end
  tripped = nil
  return ok, ...
end

--- Calls policy[hook_name](...) with a count hook that raises
-- "policy hook 'NAME' exceeded N ms" once os.clock() passes the budget.
-- The hook is removed afterwards, even on error.
-- @treturn boolean ok (true also when the policy has no such hook)
-- @return the hook's results, or its error
function M.guard(policy, name, budget_ms, ...)
  local fn = rawget(policy, name)
  if fn == nil then
    return true
  end
  local oh, om, oc = gethook()
  deadline = os_clock() + budget_ms / 1000
  hook_name, hook_budget, tripped = name, budget_ms, nil
  sethook(on_count, "", COUNT)
  return finish(oh, om, oc, pcall(fn, ...))
end

-- -------------------------------------------------------------- sandbox

local function rethrow_if_tripped(ok, ...)
  if not ok and tripped then
    error(tripped, 0)
  end
  return ok, ...
end

local function safe_pcall(f, ...)
  return rethrow_if_tripped(pcall(f, ...))
end

local function safe_xpcall(f, handler, ...)
  return rethrow_if_tripped(xpcall(f, handler, ...))
end

local function copy(t, except)
  local c = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then
      c[k] = v
    end
  end
  return c
end

-- A fresh environment with only safe globals.  The library tables are
-- copies, so a policy changing them cannot change the host's.
local function sandbox_env()
  local co = copy(coroutine)
  local resume = coroutine.resume
  co.resume = function(c, ...)
    return rethrow_if_tripped(resume(c, ...))
  end
  local env = {
    assert = assert, error = error, ipairs = ipairs, pairs = pairs,
    next = next, pcall = safe_pcall, select = select, tonumber = tonumber,
    tostring = tostring, type = type, unpack = unpack or table.unpack, xpcall = safe_xpcall,
    rawget = rawget, rawset = rawset, rawequal = rawequal,
    setmetatable = setmetatable,
    string = copy(string, { dump = true }), table = copy(table),
    math = copy(math), coroutine = co,
    os = { clock = os.clock, time = os.time, date = os.date },
    _VERSION = _VERSION,
  }
  env._G = env
  return env
end

-- -------------------------------------------------------------- loading

--- Turns the JIT off for f and every function defined inside it.
function M.jit_off(f)
  if jit and type(f) == "function" then
    jit.off(f, true)
  end
  return f
end

--- Prepares a policy table given as is (not loaded): JIT off for its
-- hooks, so the guard's count hook fires in them.
function M.prepare(p)
  for _, v in pairs(p) do
    M.jit_off(v)
  end
  return p
end

-- A ready policy is a module: require finds an embedding host's
-- package.preload copy first, then the installed file.
local function load_ready(name)
  local ok, ctor = pcall(require, "uffdlist.policy." .. name)
  if not ok then
    return nil, "no ready policy '" .. name .. "': " .. tostring(ctor)
  end
  M.jit_off(ctor)
  return function() return ctor end
end

local function load_user(path)
  local f, msg = io.open(path, "rb")
  if not f then
    return nil, msg
  end
  local src = f:read("*a")
  f:close()
  -- Bytecode can break out of any sandbox: source only.
  if src:sub(1, 1) == "\27" then
    return nil, path .. ": binary chunks are not accepted"
  end
  if not setfenv then -- Lua 5.2+: the environment is load's argument
    return load(src, "@" .. path, "t", sandbox_env())
  end
  local chunk, err = loadstring(src, "@" .. path)
  if not chunk then
    return nil, err
  end
  return setfenv(chunk, sandbox_env())
end

local HOOKS = { "on_register", "on_static_complete", "on_fault", "on_idle",
  "after_batch", "on_timer" }
local FIELDS = { "timer_ms", "idle_ms" }

local function validate(p, what)
  if type(p) ~= "table" then
    return nil, what .. ": policy table expected, got " .. type(p)
  end
  for _, h in pairs(HOOKS) do
    local v = rawget(p, h)
    if v ~= nil and type(v) ~= "function" then
      return nil, what .. ": " .. h .. " must be a function"
    end
  end
  for _, f in pairs(FIELDS) do
    local v = rawget(p, f)
    if v ~= nil and (type(v) ~= "number" or v <= 0) then
      return nil, what .. ": " .. f .. " must be a positive number"
    end
  end
  return p
end

-- Runs the chunk, then the constructor it returned, each guarded.
local function construct(chunk, opts, budget, what)
  local ok, p = M.guard({ load = chunk }, "load", budget, opts)
  if ok and type(p) == "function" then
    ok, p = M.guard({ constructor = p }, "constructor", budget, opts)
  end
  if not ok then
    return nil, what .. ": " .. tostring(type(p) == "string" and p or
      "error object of type " .. type(p))
  end
  return validate(p, what)
end

--- Loads a policy.
-- @tparam string path_or_name a ready policy's name, or a file path
-- @tparam[opt] table opts for its constructor; opts.hook_budget_ms bounds
--   running the chunk and the constructor (default 100)
-- @treturn[1] table the policy
-- @return[2] nil, message
function M.load(path_or_name, opts)
  if type(path_or_name) ~= "string" then
    error("bad argument #1 to 'load' (string expected, got "
      .. type(path_or_name) .. ")", 2)
  end
  opts = opts or {}
  local chunk, err
  if path_or_name:match("^[%a_][%w_]*$") then
    chunk, err = load_ready(path_or_name)
  else
    chunk, err = load_user(path_or_name)
  end
  if not chunk then
    return nil, err
  end
  M.jit_off(chunk)
  local p, msg = construct(chunk, opts,
    opts.hook_budget_ms or DEFAULT_BUDGET_MS, path_or_name)
  if not p then
    return nil, msg
  end
  return M.prepare(p)
end

M.sandbox_env = sandbox_env
return M
