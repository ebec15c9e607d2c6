-- The kit's decisions are production's: one event sequence played twice,
-- by uffdlist.testing over fakes and by a monitor serving the real uffds
-- of real child processes (real faults, real deaths, the real checker),
-- recorded by testing.observe; the decisions (hook calls and answers,
-- registrations, gcs and what they collected, pages served per fault)
-- are the same.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local testing = require "uffdlist.testing"
local child = require "spec.helpers.child"
local posix = require "spec.helpers.posix"
local unistd = posix.require "posix.unistd"
local poll = posix.require "posix.poll"
local it = posix.it(it, function(msg) pending(msg) end)

local PS = ufl.page_size()
local NPAGES = 16   -- every prefetch window stays inside
local POLICY = "examples/policy/my_policy.lua"
local OPTS = { max_dynamic = 2, idle_ms = 100 }

-- The script: static devices, hot-plugs, faults (device, "read"|"write",
-- page), deaths, idle spans (one wait of idle_ms each).
local SCRIPT = {
  { "static" },
  { "hotplug" }, { "hotplug" }, { "hotplug" },
  { "fault", "static1", "write", 0 },
  { "fault", "dev1", "read", 0 },
  { "fault", "dev1", "write", 5 },
  { "fault", "dev3", "read", 2 },
  { "kill", "dev2" },
  { "hotplug" },
  { "kill", "dev1" },
  { "idle" },
  { "fault", "dev3", "write", 6 },
  { "fault", "static1", "read", 4 },
  { "kill", "dev4" },
  { "idle" },
  { "idle" },
}

-- With exit hints: the real monitor watches a pidfd of each hot-plugged
-- child (m:register(u, { pid = P })), which fires when it exits; the kit
-- gives each hot-plug a fake pidfd that vm:kill fires.  exact probes
-- exactly the dead; full_at = 4 makes one full gc too.
local HINTED = {
  { "static" },
  { "hotplug" }, { "hotplug" }, { "hotplug" },
  { "fault", "dev1", "write", 0 },
  { "kill", "dev2" },
  { "hotplug" },
  { "fault", "dev3", "read", 1 },
  { "hotplug" },
  { "kill", "dev1" },
  { "idle" },
  { "fault", "dev4", "write", 3 },
  { "kill", "dev5" },
  { "idle" },
}

-- A device process: its own anonymous memory registered on its own uffd,
-- which it sends; then it touches one page per command ("w" or "r" and
-- the page number) and answers "k" once the access returned; "q" exits.
local function device(sock)
  local map = assert(ufl.mmap_anon(NPAGES * PS))
  local u = assert(ufl.create())
  assert(u:register(map:addr(), map:len()))
  assert(u:send(sock))
  while true do
    local cmd = unistd.read(sock, 2)
    if not cmd or #cmd < 2 then return false end
    local op, page = cmd:sub(1, 1), cmd:byte(2)
    if op == "q" then return true end
    if op == "w" then
      map:write(page * PS, "x")
    else
      map:read(page * PS, 1)
    end
    assert(unistd.write(sock, "k") == 1)
  end
end

local function run_kit(policy, opts, script)
  local vm = testing.vm{ policy = policy, policy_opts = opts, static = false,
    policy_max_strikes = 2 }
  for _, s in ipairs(script or SCRIPT) do
    local op = s[1]
    if op == "static" then
      vm:static(1)
    elseif op == "hotplug" then
      vm:hotplug()
    elseif op == "fault" then
      local d = vm:device(s[2])
      vm:fault(d, d.base + s[4] * PS, s[3])
    elseif op == "kill" then
      vm:kill(s[2])
    elseif op == "idle" then
      vm:idle(OPTS.idle_ms)
    end
  end
  return vm
end

describe("uffdlist.testing against real uffds of real children", function()
  local checker, main, list, m, kids, errors

  local function can_create()
    local u = ufl.create()
    if not u then return false end
    u:close()
    return true
  end

  after_each(function()
    for _, c in ipairs(kids or {}) do
      if not child.try_reap(c) then child.kill(c) end
    end
    if m then m:close() end
    if list then
      local ctx = list:waitctx()
      list:close()
      ctx:close()
    end
    if checker then checker:close() end
    m, list, checker, main, kids = nil, nil, nil, nil, nil
  end)

  -- Plays SCRIPT on a monitor serving real children; returns its recorder
  -- and the reports of its on_error.
  local function run_real(policy, opts, script, hinted)
    kids, errors = {}, {}
    checker = assert(ufl.checker())     -- before any fork
    main = assert(ufl.create())
    list = assert(ufl.list(main, checker))
    m = monitor.new{ list = list, policy = policy, policy_opts = opts,
      policy_max_strikes = 2,
      on_error = function(_, what, msg) errors[#errors + 1] = what .. ": " .. msg end }
    local rec = testing.observe(m)
    local by_name, nstatic, nhot = {}, 0, 0

    -- A device's uffd arrives on its socket, watched by the loop as a
    -- host (examples/vm) watches its control socket.
    local function spawn(static)
      local c = child.spawn(device)
      kids[#kids + 1] = c
      local name
      if static then
        nstatic = nstatic + 1
        name = "static" .. nstatic
      else
        nhot = nhot + 1
        name = "dev" .. nhot
      end
      by_name[name] = c
      assert(m:watch(c.sock, function(mm, fd)
        local u = assert(ufl.recv(fd))
        mm:unwatch(fd)
        c.u = u
        rec:name(u, name)
        mm:register(u, hinted and not static and { pid = c.pid } or nil)
        if static then mm:set_num_static_devices(1) end
      end))
      assert.equal(1, m:step(5000))
      assert.is_not_nil(c.u, name .. " handed over its uffd")
    end

    for _, s in ipairs(script or SCRIPT) do
      local op = s[1]
      if op == "static" then
        spawn(true)
      elseif op == "hotplug" then
        spawn(false)
      elseif op == "fault" then
        local c = by_name[s[2]]
        assert.equal(2, unistd.write(c.sock, s[3]:sub(1, 1) .. string.char(s[4])))
        assert.equal(1, m:step(5000))              -- the fault's round
        assert.equal(1, poll.rpoll(c.sock, 5000))
        assert.equal("k", unistd.read(c.sock, 1))
      elseif op == "kill" then
        local c = by_name[s[2]]
        assert.equal(2, unistd.write(c.sock, "q\0"))
        assert.equal(0, child.reap(c))
        if hinted then
          assert.equal(1, m:step(5000))              -- its pidfd's round
        end
      elseif op == "idle" then
        assert.equal(0, m:step())                  -- one wait of idle_ms
      end
    end

    return rec, errors
  end

  local function same_decisions(policy, opts, script, hinted)
    local kit = run_kit(policy, opts, script)
    local kit_decisions, kit_dump = kit:decisions(), kit:dump()
    kit:close()
    local rec, errs = run_real(policy, opts, script, hinted)
    assert.same(kit_decisions, rec:decisions(),
      "kit:\n" .. kit_dump .. "\nreal:\n" .. rec:dump())
    return rec, errs
  end

  local function need_uffd()
    if can_create() then return true end
    pending("creating a userfaultfd needs /dev/userfaultfd or "
      .. "vm.unprivileged_userfaultfd=1")
  end

  it("makes the same decisions for one event sequence", function()
    if not need_uffd() then return end
    local rec, errs = same_decisions(POLICY, OPTS)
    assert.same({}, errs)
    -- and the sequence did decide things
    assert.same({ "dev2", "dev1", "dev4" }, rec:collected())
    assert.equal(4, rec:events("fault")[1].pages)
  end)

  it("makes the same decisions with exit hints (real pidfds of real children)", function()
    if not need_uffd() then return end
    local why = child.pidfd_missing()
    if why then return pending(why) end
    local rec, errs = same_decisions("exact", { full_at = 4 }, HINTED, true)
    assert.same({}, errs)
    -- and the hints did decide: each dead one probed alone, one probe each
    assert.same({ "dev2", "dev1", "dev5" }, rec:collected())
    local only = {}
    for _, g in ipairs(rec:events("gc")) do
      only[#only + 1] = g.only and g.only[1] .. ":" .. g.probes or "full:" .. g.probes
    end
    assert.same({ "dev2:1", "full:4", "dev1:1", "dev5:1" }, only)
    assert.equal(3, #rec:events("hint"))
    assert.equal(3, m.stats.exit_collected)
  end)

  it("makes the same decisions when the policy fails and falls back to crosvm", function()
    if not need_uffd() then return end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    -- fails from the 4th fault on; an on_idle answer between resets the
    -- count of failures in a row: the 3rd failure, the 2nd in a row,
    -- disables it
    f:write([[
      local faults = 0
      return { idle_ms = 100,
        on_fault = function(entry, fault)
          faults = faults + 1
          if faults >= 4 then error("lost count") end
          return fault.write and 2 or 1
        end,
        on_idle = function() return "gc" end } ]])
    f:close()
    finally(function() os.remove(path) end)
    local rec = same_decisions(path, nil)
    assert.equal(3, #rec:events("hook_error"))
    assert.equal(1, #rec:events("fallback"))
    assert.equal("crosvm", rec:events("policy")[1].name)
  end)
end)
