-- Ready policy "idle", specified with the policy test kit only.
local testing = require "uffdlist.testing"

describe("policy idle (kit)", function()
  local vm
  after_each(function() vm:close() end)

  it("collects once after ms without events, and only once", function()
    vm = testing.vm{ policy = "idle", policy_opts = { ms = 300 }, static = 1 }
    local d = vm:hotplug()
    vm:kill(d)
    vm:idle(299)
    assert.equal(0, vm:counters().gcs, vm:dump())
    vm:idle(1)
    assert.same({ d.name }, vm:collected())
    vm:idle(10 * 60 * 1000)
    assert.equal(1, vm:counters().gcs, vm:dump())
  end)

  it("the next event arms it again", function()
    vm = testing.vm{ policy = "idle", policy_opts = { ms = 300 }, static = 1 }
    vm:idle(1000)
    assert.equal(1, vm:counters().gcs)
    vm:fault("static1")
    vm:idle(1000)
    assert.equal(2, vm:counters().gcs, vm:dump())
    local at = {}
    for i, g in ipairs(vm:events("gc")) do at[i] = g.at end
    assert.same({ 300, 1300 }, at)
  end)

  it("a steady stream of events keeps it from collecting", function()
    vm = testing.vm{ policy = "idle", policy_opts = { ms = 300 }, static = 1 }
    for _ = 1, 20 do
      vm:fault("static1")
      vm:idle(250)
    end
    assert.equal(0, vm:counters().gcs, vm:dump())
  end)

  it("waits idle_ms at a time, and defaults to 200 ms", function()
    vm = testing.vm{ policy = "idle" }
    vm:idle(199)
    assert.same({}, vm:events("hook", "on_idle"))
    vm:idle(1)
    assert.same({ 200 }, vm:events("hook", "on_idle")[1].args)
    assert.equal(1, vm:counters().gcs)
  end)
end)
