-- Ready policy "periodic", specified with the policy test kit only.
local testing = require "uffdlist.testing"

describe("policy periodic (kit)", function()
  local vm
  after_each(function() vm:close() end)

  it("runs a gc every ms milliseconds of the virtual clock", function()
    vm = testing.vm{ policy = "periodic", policy_opts = { ms = 500 }, static = 1 }
    local d = vm:hotplug()
    vm:kill(d)
    vm:idle(499)
    assert.same({}, vm:events("gc"), vm:dump())
    vm:idle(1)
    assert.same({ d.name }, vm:collected())
    vm:idle(1500)
    local at = {}
    for i, g in ipairs(vm:events("gc")) do at[i] = g.at end
    assert.same({ 500, 1000, 1500, 2000 }, at)
  end)

  it("keeps its period while devices are busy", function()
    vm = testing.vm{ policy = "periodic", policy_opts = { ms = 200 }, static = 1 }
    for _ = 1, 5 do
      vm:fault("static1")
      vm:idle(100)
    end
    assert.equal(2, vm:counters().gcs, vm:dump())
    assert.equal(2, #vm:events("hook", "on_timer"))
  end)

  it("defaults to one gc a second", function()
    vm = testing.vm{ policy = "periodic" }
    vm:idle(10000)
    assert.equal(10, vm:counters().gcs)
    for _, h in ipairs(vm:events("hook", "on_timer")) do
      assert.same({ 1 }, h.args)
      assert.equal("gc", h.answer)
    end
  end)
end)
