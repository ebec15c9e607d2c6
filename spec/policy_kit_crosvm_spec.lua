-- Ready policy "crosvm", specified with the policy test kit only.
local testing = require "uffdlist.testing"

describe("policy crosvm (kit)", function()
  local vm
  before_each(function() vm = testing.vm{ policy = "crosvm", static = 2 } end)
  after_each(function() vm:close() end)

  it("runs a gc after each hot-plug, and collects the dead", function()
    local a = vm:hotplug()
    vm:kill(a)
    assert.same({}, vm:collected(), vm:dump())
    vm:hotplug()
    assert.same({ a.name }, vm:collected(), vm:dump())
    assert.equal(2, vm:counters().gcs)
  end)

  it("never collects otherwise: a dead hot-plugged uffd waits for the next hot-plug", function()
    local a, b = vm:hotplug(), vm:hotplug()
    vm:kill(a)
    vm:kill(b)
    vm:fault("static1", nil, "write")
    vm:idle(10 * 60 * 1000)
    assert.equal(2, vm:counters().gcs, vm:dump())
    assert.same({}, vm:collected())
    vm:hotplug()
    assert.same({ a.name, b.name }, vm:collected())
  end)

  it("registering static devices asks for no gc", function()
    assert.equal(0, vm:counters().gcs)
    for _, h in ipairs(vm:events("hook", "on_register")) do
      assert.same({ h.args[1], false }, h.args)
      assert.is_nil(h.answer)
    end
  end)

  it("serves one page per fault", function()
    local d = vm:hotplug()
    assert.equal(1, vm:fault(d, nil, "write").pages)
    assert.equal(1, vm:fault(d, nil, "read").pages)
  end)

  it("has no timer and no idle hook", function()
    vm:idle(5000)
    assert.same({}, vm:events("timer"))
    assert.same({}, vm:events("hook", "on_idle"))
  end)
end)
