-- A busted spec of my_policy.lua written with uffdlist's policy test kit:
-- no root, no userfaultfd, no VM, a virtual clock.  Run it with
-- `busted examples/policy` (make test runs it too).
local testing = require "uffdlist.testing"

-- my_policy.lua next to this spec, wherever busted runs from
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local POLICY = here .. "my_policy.lua"

describe("my_policy", function()
  local vm
  before_each(function()
    vm = testing.vm{ policy = POLICY, static = 2 }
  end)
  after_each(function() vm:close() end)

  it("collects exactly once after three hot-plugs and one death", function()
    vm:hotplug()
    local b = vm:hotplug()
    vm:hotplug()
    vm:kill(b)
    vm:hotplug()                       -- the 4th: not more than 4 yet
    assert.same({}, vm:collected(), vm:dump())
    vm:hotplug()                       -- the 5th: more than 4 listed: gc
    assert.same({ b.name }, vm:collected(), vm:dump())
    assert.equal(1, vm:counters().gcs, vm:dump())
  end)

  it("serves 4 pages around a write fault and 1 around a read", function()
    local d = vm:hotplug()
    assert.equal(4, vm:fault(d, nil, "write").pages)
    assert.equal(1, vm:fault(d, nil, "read").pages)
    assert.equal(1, vm:fault("static1", nil, { write = false }).pages)
  end)

  it("collects after 500 idle ms, and only once", function()
    local d = vm:hotplug()
    vm:kill(d)
    vm:idle(499)
    assert.equal(0, vm:counters().gcs, vm:dump())
    vm:idle(1)
    assert.same({ d.name }, vm:collected())
    vm:idle(10 * 60 * 1000)            -- ten idle minutes
    assert.equal(1, vm:counters().gcs, vm:dump())
  end)

  it("never fails a hook in the standard lifecycle", function()
    local v = testing.standard_scenario(testing.vm{ policy = POLICY,
      static = false })
    assert.equal(0, v:counters().hook_errors, v:dump())
    assert.is_true(v:counters().gcs > 0)
    v:close()
  end)
end)
