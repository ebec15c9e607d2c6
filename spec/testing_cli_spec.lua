-- `uffdlist-policy check FILE`: the real command, run as a process on a
-- good policy file and on broken ones.
local LUA = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local BIN = "bin/uffdlist-policy"

local files = require "spec.helpers.files"
local tmpfile = files.write_tmp

local function slurp(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("*a")
  f:close()
  os.remove(path)
  return s
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs the command; returns its exit status, stdout, stderr.
local function run(args, prefix, bin)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = (prefix or "") .. LUA .. " " .. (bin or BIN) .. " " .. args ..
    " >" .. out .. " 2>" .. err .. "; echo $?"
  local p = assert(io.popen(cmd, "r"))
  local status = tonumber(p:read("*a"):match("%d+"))
  p:close()
  return status, slurp(out), slurp(err)
end

describe("uffdlist-policy check", function()
  local paths = {}
  local function policy(src)
    local p = tmpfile(src)
    paths[#paths + 1] = p
    return p
  end
  after_each(function()
    for _, p in ipairs(paths) do os.remove(p) end
    paths = {}
  end)

  it("passes a good policy and prints its decisions", function()
    local status, out, err = run("check examples/policy/my_policy.lua")
    assert.equal(0, status, out .. err)
    assert.equal("", err)
    assert.matches("static setup complete: 2 devices", out)
    assert.matches("dev1 write fault %(missing%) at 0x%x+: 4 pages served", out)
    assert.matches("hook on_idle%(500%) %-> gc", out)
    assert.matches("gc collected 1: dev2", out)
    assert.matches("gc collected 2: dev1, dev4", out)
    -- the exit hints: a policy without on_exit watches none
    assert.matches("hangup: dev3, alive %(no exit hint watched%)", out)
    assert.matches("\nOK examples/policy/my_policy.lua: 2 gcs collected 3, "
      .. "5 faults served 14 pages, 0 errors\n$", out)
  end)

  it("hands KEY=VALUE pairs to the policy's constructor", function()
    local status, out = run("check examples/policy/my_policy.lua idle_ms=100 max_dynamic=1")
    assert.equal(0, status, out)
    assert.matches("hook on_idle%(100%) %-> gc", out)
    assert.matches("hook on_register%(.-%) %[dev2%] %-> gc", out)
  end)

  it("fails a file with a syntax error: load error, exit 1", function()
    local p = policy("return { on_idle = function() end")
    local status, out, err = run("check " .. q(p))
    assert.equal(1, status)
    assert.matches(p:gsub("%p", "%%%0") .. ": load error: .*:1: .*expected", err)
    assert.matches("FAIL .*: the policy did not load", out)
  end)

  it("fails a file with a bad field: load error naming it, exit 1", function()
    local p = policy("return { idle_ms = 'soon', on_idle = function() end }")
    local status, out, err = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("load error: .*idle_ms", err)
  end)

  it("fails a file that is not a policy (a hook that is no function)", function()
    local p = policy("return { on_fault = 4 }")
    local status, _, err = run("check " .. q(p))
    assert.equal(1, status)
    assert.matches("on_fault must be a function", err)
  end)

  it("fails a policy whose hook raises: the decisions, then the errors, exit 1", function()
    local p = policy([[
      return { on_register = function(_, dynamic)
        if dynamic then error("cannot count") end
      end } ]])
    local status, out = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("HOOK_ERROR policy.on_register: .*cannot count", out)
    assert.matches("hook on_register%(.-%) %[dev1%] %-> ERROR .*cannot count", out)
    -- three failed calls in a row: the policy is disabled, crosvm goes on
    assert.matches("FALLBACK policy: policy '.-' disabled: 3 failed calls in a row", out)
    assert.matches("the monitor's policy is now crosvm", out)
    assert.matches("\nFAIL .*: 3 hook errors %(0 time overruns, 0 memory overruns, "
      .. "0 bad answers%), 1 fallback\n$", out)
  end)

  it("runs the scenario's exit hints through on_exit: exact probes the dead alone", function()
    local status, out, err = run("check lua/uffdlist/policy/exact.lua")
    assert.equal(0, status, out .. err)
    assert.matches("death: dev2 %(its exit hint fires%)", out)
    assert.matches("exit hint of dev2 %(pidfd, pid %d+%) %-> probe", out)
    assert.matches("hook on_exit%(.-source=pidfd.-%) %[dev2%] %-> gc", out)
    assert.matches("gc{only = dev2} collected 1: dev2 %(1 probe%)", out)
    assert.matches("probe 1 of dev4: collected", out)
    -- dev3 hung up and lives: probed, retried, given up, kept
    assert.matches("hangup: dev3, alive %(its exit hint fires%)", out)
    assert.matches("probe 1 of dev3: alive, retry in 5 ms", out)
    assert.matches("probe 4 of dev3: alive, hint given up", out)
    assert.matches("\nOK lua/uffdlist/policy/exact.lua: 7 gcs collected 3, ", out)
  end)

  it("fails a policy whose on_exit raises: caught at the scenario's exit hints, exit 1", function()
    local p = policy([[
      return { on_exit = function(info)
        if info.dynamic then error("no exit for you") end
      end } ]])
    local status, out = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("HOOK_ERROR policy.on_exit: .*no exit for you", out)
    assert.matches("hook on_exit%(.-%) %[dev2%] %-> ERROR .*no exit for you", out)
    assert.matches("exit hint of dev2 %(pidfd, pid %d+%) %-> left to the policy's gc", out)
    assert.matches("\nFAIL .*: 3 hook errors %(0 time overruns, 0 memory overruns, "
      .. "0 bad answers%), 1 fallback\n$", out)
  end)

  it("fails a policy whose hook runs past its budget", function()
    local p = policy([[
      local spun = false
      return { on_fault = function()
        if not spun then spun = true while true do end end
        return 1
      end } ]])
    local status, out = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("BUDGET policy.on_fault: policy hook 'on_fault' exceeded 100 ms", out)
    assert.matches("1 hook error %(1 time overrun, 0 memory overruns", out)
  end)

  it("fails a policy past its memory cap, and one answering nonsense", function()
    local p = policy([[
      local keep = {}
      return { on_fault = function()
        for i = 1, 1e7 do keep[i] = { i } end
      end } ]])
    local status, out = run("check --memory-mb=1 " .. q(p))
    assert.equal(1, status, out)
    assert.matches("MEMORY policy.on_fault: .*memory cap", out)
    assert.matches("1 memory overrun", out)
    p = policy("return { on_fault = function() return -1 end }")
    status, out = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("BAD_ANSWER policy.on_fault.answer: bad answer", out)
    assert.matches("3 bad answers%), 1 fallback\n$", out)
  end)

  it("fails a policy that breaks out of its sandbox", function()
    local p = policy("return { on_idle = function() os.execute('true') end }")
    local status, out = run("check " .. q(p))
    assert.equal(1, status, out)
    assert.matches("HOOK_ERROR policy.on_idle", out)
  end)

  it("runs the policy with the monitor's options given as --options", function()
    local p = policy([[
      return { on_fault = function() local t = os.clock() while os.clock() - t < 0.03 do end end } ]])
    local status, out = run("check --hook-budget-ms=10 --max-strikes=5 " .. q(p))
    assert.equal(1, status, out)
    assert.matches("exceeded 10 ms", out)
    assert.matches("disabled: 5 failed calls in a row", out)
    -- (the hooks' share of the loop's time is wall time: --max-share=1,
    -- so that a loaded machine cannot make this run fail)
    status, out = run("check --hook-budget-ms=1000 --max-share=1 " .. q(p))
    assert.equal(0, status, out)
  end)

  it("exits 2 on bad usage", function()
    local status, _, err = run("")
    assert.equal(2, status)
    assert.matches("usage: uffdlist%-policy check %[%-%-hook%-budget%-ms=N%]", err)
    status, _, err = run("lint x.lua")
    assert.equal(2, status)
    assert.matches("unknown command 'lint'", err)
    status, _, err = run("check")
    assert.equal(2, status)
    assert.matches("a policy file expected", err)
    status, _, err = run("check examples/policy/my_policy.lua oops")
    assert.equal(2, status)
    assert.matches("bad option 'oops'", err)
    status, _, err = run("check --memory=5 examples/policy/my_policy.lua")
    assert.equal(2, status)
    assert.matches("bad option '%-%-memory=5'", err)
  end)

  it("runs from a source tree without LUA_PATH #luajit", function()
    local here = io.popen("pwd"):read("*l")
    local status, out, err = run("check " .. q(here .. "/examples/policy/my_policy.lua"),
      "cd /tmp && env -u LUA_PATH -u LUA_CPATH ", q(here .. "/" .. BIN))
    assert.equal(0, status, out .. err)
    assert.matches("\nOK ", out)
  end)
end)
