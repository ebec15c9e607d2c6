-- Ready policy "threshold", specified with the policy test kit only.
local testing = require "uffdlist.testing"

describe("policy threshold (kit)", function()
  local vm
  after_each(function() vm:close() end)

  it("runs no gc until the dynamic entries exceed n", function()
    vm = testing.vm{ policy = "threshold", policy_opts = { n = 3 }, static = 1 }
    local devs = {}
    for i = 1, 3 do devs[i] = vm:hotplug() end
    vm:kill(devs[1])
    assert.equal(0, vm:counters().gcs, vm:dump())
    vm:hotplug()                                 -- the 4th: 4 > 3
    assert.equal(1, vm:counters().gcs, vm:dump())
    assert.same({ devs[1].name }, vm:collected())
  end)

  it("counts from what a gc left: the monitor's count at each registration", function()
    vm = testing.vm{ policy = "threshold", policy_opts = { n = 2 }, static = 1 }
    local a, b = vm:hotplug(), vm:hotplug()
    vm:kill(a)
    vm:kill(b)
    vm:hotplug()                                 -- 3 > 2: gc, 1 left
    assert.same({ a.name, b.name }, vm:collected())
    vm:hotplug()                                 -- 2: no gc
    assert.equal(1, vm:counters().gcs, vm:dump())
    vm:hotplug()                                 -- 3 > 2: gc
    assert.equal(2, vm:counters().gcs, vm:dump())
  end)

  it("is not one round late after a gc: the next hot-plug asks for no empty gc", function()
    -- (it counted in after_batch once, which the monitor calls before the
    -- round's gc: the hot-plug after a gc asked for an empty one)
    vm = testing.vm{ policy = "threshold", policy_opts = { n = 2 } }
    local a, b = vm:hotplug(), vm:hotplug()
    vm:kill(a)
    vm:kill(b)
    vm:hotplug()                                 -- 3 > 2: gc, 1 left
    vm:hotplug()                                 -- 2: no gc
    assert.equal(1, vm:counters().gcs, vm:dump())
    local regs = vm:events("hook", "on_register")
    assert.same({ 1, 2, 3, 2 }, { regs[1].args[1].dynamic_entries,
      regs[2].args[1].dynamic_entries, regs[3].args[1].dynamic_entries,
      regs[4].args[1].dynamic_entries })
    assert.same({ "gc" }, { regs[3].answer, regs[4].answer })
  end)

  it("defaults to n = 8", function()
    vm = testing.vm{ policy = "threshold" }
    for _ = 1, 8 do vm:hotplug() end
    assert.equal(0, vm:counters().gcs)
    vm:hotplug()
    assert.equal(1, vm:counters().gcs)
  end)

  it("does not collect on idle time or faults", function()
    vm = testing.vm{ policy = "threshold", policy_opts = { n = 1 }, static = 1 }
    local d = vm:hotplug()
    vm:kill(d)
    vm:fault("static1")
    vm:idle(60000)
    assert.equal(0, vm:counters().gcs, vm:dump())
  end)
end)
