-- Ready policy "exact", specified with the policy test kit only: exit
-- hints (each hot-plug's fake pidfd, vm:kill fires it) make the monitor
-- probe exactly the dead; a full gc when the dynamic entries reach
-- full_at, then whenever they double, catches what no hint told.
local testing = require "uffdlist.testing"

describe("policy exact (kit)", function()
  local vm
  after_each(function() vm:close() end)

  it("collects exactly the dead, one probe each", function()
    vm = testing.vm{ policy = "exact", static = 2 }
    local devs = {}
    for i = 1, 10 do devs[i] = vm:hotplug() end
    vm:fault(devs[4], nil, "write")
    vm:kill(devs[3])
    vm:kill(devs[7])
    vm:idle(1000)
    vm:kill(devs[1])
    assert.same({ "dev3", "dev7", "dev1" }, vm:collected(), vm:dump())
    local gcs = vm:events("gc")
    assert.equal(3, #gcs)
    for i, name in ipairs{ "dev3", "dev7", "dev1" } do
      assert.same({ { name }, { name }, 1 },
        { gcs[i].only, gcs[i].devices, gcs[i].probes })
    end
    local c = vm:counters()
    assert.same({ 3, 3, 3, 3 }, { c.probes, c.exit_hints, c.exit_probes,
      c.exit_collected })
    assert.equal(7, c.dynamic)
    assert.same({ 7, 7 }, { vm.m:hint_count() })
    for _, i in ipairs{ 2, 4, 5, 6, 8, 9, 10 } do
      assert.is_false(devs[i].uffd:is_closed())
    end
  end)

  it("keeps a live device that hangs up: alive on every probe, then given up", function()
    vm = testing.vm{ policy = "exact", static = 1 }
    local a, b = vm:hotplug(), vm:hotplug()
    vm:hangup(a)
    vm:idle(1000)
    assert.same({}, vm:collected(), vm:dump())
    assert.is_false(a.uffd:is_closed())
    assert.equal(1, vm:fault(a, nil, "write").pages)
    local c = vm:counters()
    assert.same({ 1, 4, 1, 0 }, { c.exit_hints, c.exit_probes,
      c.exit_gave_up, c.exit_collected })
    -- its hint is spent; the other's still armed, and fires on its death
    assert.same({ 1, 1 }, { vm.m:hint_count() })
    vm:kill(b)
    assert.same({ "dev2" }, vm:collected())
  end)

  it("collects a mm that outlives its process at a retry", function()
    vm = testing.vm{ policy = "exact" }
    local d = vm:hotplug()
    vm:kill(d, { linger_ms = 3 })
    assert.same({}, vm:collected())
    vm:idle(10)
    assert.same({ "dev1" }, vm:collected(), vm:dump())
    assert.equal(2, vm:counters().exit_probes)
    assert.equal(5, vm:events("probe")[2].at)
  end)

  it("full_at: a full gc for the dead no hint told of, then at each doubling", function()
    vm = testing.vm{ policy = "exact", policy_opts = { full_at = 4 } }
    local a = vm:hotplug()
    vm:kill(a, { hint = false })               -- its socket never hung up
    vm:hotplug()
    vm:hotplug()
    assert.equal(0, vm:counters().gcs, vm:dump())
    vm:hotplug()                                -- 4 dynamic: full gc
    local g = vm:events("gc")
    assert.same({ 1, { "dev1" }, 4 }, { #g, g[1].devices, g[1].probes })
    assert.is_nil(g[1].only)
    -- the next at 8 (twice the 4 the full gc began with), not at 4 again
    for _ = 1, 4 do vm:hotplug() end
    assert.equal(1, vm:counters().gcs, vm:dump())
    vm:hotplug()                                -- 8 dynamic
    g = vm:events("gc")
    assert.same({ 2, 8 }, { #g, g[2].probes })
  end)

  it("full_at = 0: no full gc ever; a device without a hint stays", function()
    vm = testing.vm{ policy = "exact", policy_opts = { full_at = 0 } }
    local quiet = vm:hotplug{ hint = false }
    vm:kill(quiet)
    for _ = 1, 100 do vm:hotplug() end
    vm:idle(60000)
    assert.equal(0, vm:counters().gcs, vm:dump())
    assert.is_false(quiet.uffd:is_closed())
  end)

  it("a forked child has no hint: left to the full gc", function()
    vm = testing.vm{ policy = "exact", policy_opts = { full_at = 3 } }
    local p = vm:hotplug()
    local c = vm:fork(p)
    vm:kill(c)
    assert.same({}, vm:events("hint"))
    assert.same({}, vm:collected())
    vm:hotplug()                                        -- 3 dynamic: full gc
    assert.same({ "dev2" }, vm:collected(), vm:dump())
    assert.is_nil(vm:events("gc")[1].only)
  end)
end)
