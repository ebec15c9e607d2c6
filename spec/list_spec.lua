-- The reference's ten tests (crosvm swap/src/uffd_list.rs), one for one and
-- by name, over eventfd-backed fake uffds and a fake dead checker written in
-- Lua, as the reference fakes them.  Then what the list adds beyond crosvm.
-- Real uffds of real processes: real_kernel_spec.lua.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local unistd = posix.require "posix.unistd"

-- FakeDeadUffdChecker: a Lua table with register/is_dead/reset.  A fake
-- uffd is an owned dup of an eventfd adopted without the uffd check; the
-- eventfd itself stays here to make the fake readable.
local function new_fake_checker()
  local c = { dead = {}, signal = {} }
  function c.register(_self, _u) return true end
  function c.is_dead(self, u) return self.dead[u] == true end
  function c.reset(_self) return true end
  function c:create_fake_uffd()
    local e = assert(ufl.eventfd())
    local u = assert(ufl.adopt(assert(unistd.dup(e:fd())), { check = false }))
    self.signal[u] = e
    return u
  end
  function c:make_readable(u) assert(self.signal[u]:write(1)) end
  function c:mark_as_dead(u) self.dead[u] = true end
  function c:close()
    for _, e in pairs(self.signal) do e:close() end
  end
  return c
end

-- The uffd whose token one 1 ms wait reports; fails unless exactly one.
local function ready_uffd(list)
  local out = {}
  local n = assert(list:wait(1, out))
  assert.are.equal(1, n)
  return list:get(out[1])
end

-- A list over the fake main uffd, with `n` more fake uffds created.
local function fixture(n)
  local ctx = assert(ufl.waitctx())
  local checker = new_fake_checker()
  local main = checker:create_fake_uffd()
  local u = {}
  for i = 1, n do u[i] = checker:create_fake_uffd() end
  local list = assert(ufl.list(main, checker, ctx))
  return list, checker, u, ctx, main
end

local list, checker, ctx
after_each(function()
  if list then list:close() end
  if ctx then ctx:close() end
  if checker then checker:close() end
  list, checker, ctx = nil, nil, nil
end)

describe("uffd list (crosvm's tests)", function()
  it("new_success", function()
    ctx = assert(ufl.waitctx())
    checker = new_fake_checker()
    list = ufl.list(checker:create_fake_uffd(), checker, ctx)
    assert.is_not_nil(list)
  end)

  it("register_success", function()
    local u
    list, checker, u, ctx = fixture(1)
    -- is not dynamic device
    assert.is_false(list:register(u[1]))
  end)

  it("register_dynamic_device", function()
    local u
    list, checker, u, ctx = fixture(3)
    assert.is_false(list:register(u[1])) -- not dynamic
    assert.is_true(list:set_num_static_devices(2))
    assert.is_false(list:register(u[2])) -- not dynamic
    assert.is_true(list:register(u[3]))  -- dynamic
  end)

  it("set_num_static_devices_twice", function()
    list, checker, _, ctx = fixture(0)
    assert.is_true(list:set_num_static_devices(2))
    assert.is_false(list:set_num_static_devices(2))
  end)

  it("register_token", function()
    local u
    list, checker, u, ctx = fixture(3)
    for i = 1, 3 do list:register(u[i]) end
    checker:make_readable(u[2])
    assert.are.equal(u[2], ready_uffd(list))
  end)

  it("gc_dead_uffds_with_all_alive", function()
    local u
    list, checker, u, ctx = fixture(3)
    list:set_num_static_devices(1)
    for i = 1, 3 do list:register(u[i]) end
    assert.are.equal(0, list:gc())
    assert.are.equal(4, list:len())
  end)

  it("gc_dead_uffds_with_dead_static_device", function()
    local u
    list, checker, u, ctx = fixture(3)
    list:set_num_static_devices(2)
    for i = 1, 3 do list:register(u[i]) end
    checker:mark_as_dead(u[2])
    assert.are.equal(0, list:gc())
    assert.are.equal(4, list:len())
  end)

  it("gc_dead_uffds_with_dead_dynamic_device", function()
    local u
    list, checker, u, ctx = fixture(3)
    list:set_num_static_devices(1)
    for i = 1, 3 do list:register(u[i]) end
    checker:mark_as_dead(u[2])
    assert.are.equal(1, list:gc())
    -- UffdList shrinks
    assert.are.equal(3, list:len())
    checker:make_readable(u[3])
    assert.are.equal(u[3], ready_uffd(list))
  end)

  it("gc_dead_uffds_with_dead_dynamic_device_readable_before_gc", function()
    local u
    list, checker, u, ctx = fixture(3)
    list:set_num_static_devices(1)
    for i = 1, 3 do list:register(u[i]) end
    checker:mark_as_dead(u[2])
    checker:make_readable(u[3])
    assert.are.equal(1, list:gc())
    -- UffdList shrinks
    assert.are.equal(3, list:len())
    assert.are.equal(u[3], ready_uffd(list))
  end)

  it("gc_dead_uffds_with_many_dead_dynamic_device", function()
    local u
    list, checker, u, ctx = fixture(5)
    checker:mark_as_dead(u[2])
    checker:mark_as_dead(u[3])
    checker:mark_as_dead(u[5])
    list:set_num_static_devices(0)
    for i = 1, 5 do list:register(u[i]) end
    assert.are.equal(3, list:gc())
    -- UffdList shrinks
    assert.are.equal(3, list:len())
    checker:make_readable(u[4])
    assert.are.equal(u[4], ready_uffd(list))
  end)
end)

describe("uffd list (beyond crosvm)", function()
  it("gc before set_num_static_devices is a no-op, not a crash", function()
    local u
    list, checker, u, ctx = fixture(2)
    for i = 1, 2 do list:register(u[i]) end
    checker:mark_as_dead(u[2])
    assert.are.equal(0, list:gc())
    assert.are.equal(3, list:len())
  end)

  it("gc closes the very object Lua holds and re-indexes the moved one", function()
    local u
    list, checker, u, ctx = fixture(3)
    list:set_num_static_devices(0)
    for i = 1, 3 do list:register(u[i]) end
    checker:mark_as_dead(u[1])
    assert.are.equal(1, list:gc())
    assert.is_true(u[1]:is_closed())
    assert.has_error(function() u[1]:fd() end, "attempt to use a closed uffdlist.uffd")
    assert.are.equal(2, u[3]:index())
    assert.are.equal(u[3], list:get(2))
  end)

  it("main and static entries are never collected", function()
    local u, main
    list, checker, u, ctx, main = fixture(2)
    list:register(u[1])
    list:set_num_static_devices(1)
    list:register(u[2])
    checker:mark_as_dead(main)
    checker:mark_as_dead(u[1])
    checker:mark_as_dead(u[2])
    assert.are.equal(1, list:gc())
    assert.are.equal(2, list:len())
    assert.are.equal(main, list:get(1))
    assert.are.equal(u[1], list:get(2))
  end)

  it("a uffd in a list belongs to it: register twice and close are refused", function()
    local u
    list, checker, u, ctx = fixture(1)
    list:register(u[1])
    assert.has_error(function() list:register(u[1]) end,
      "bad argument #1 to 'register' (uffd already in a list)")
    assert.has_error(function() u[1]:close() end)
    assert.is_false(u[1]:is_closed())
  end)

  it("list:close closes every entry", function()
    local u, main
    list, checker, u, ctx, main = fixture(2)
    for i = 1, 2 do list:register(u[i]) end
    list:close()
    assert.is_true(main:is_closed() and u[1]:is_closed() and u[2]:is_closed())
  end)
end)
