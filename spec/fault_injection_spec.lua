-- Fault injection: the list stays consistent at EVERY failure point of
-- register and gc.  Failures come from the wait context's syscall seam
-- (ufl.testing.faults: the N-th epoll_ctl or close of the context and of
-- its lists fails) and from a Lua-table checker whose register / is_dead /
-- reset fail at their N-th call (by returning nil, msg, errno, by raising,
-- or by answering a non-boolean).  For each source, N runs 1, 2, ... until
-- the operation succeeds; at each failure point the spec asserts:
--   * the call returned nil, msg, errno (pcall'd: never raised);
--   * entry i is in epoll under index i, for every i (each fake is made
--     ready alone and list:wait(0) reports exactly {i}), nothing else is
--     reported, and entries made ready before the call are reported ready
--     after it under their (new) index;
--   * #list = entries before - collected; main and static entries are never
--     collected;
--   * a uffd is closed only if the checker said dead;
--   * a uffd whose register failed is open, in no list, and can be
--     registered again;
--   * no fd leaked (/proc/self/fd before setup = after closing everything).
-- Fake uffds are pipes (read end adopted, owned, without the uffd check):
-- writing a byte makes one ready, reading it makes it quiet again.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local unistd = posix.require "posix.unistd"
local child = require "spec.helpers.child"

local E = ufl.errno
local unpack = unpack or table.unpack -- 5.1 / 5.2+
local function pack(...) return { n = select("#", ...), ... } end

-- ------------------------------------------------------------------ fakes

-- A fake uffd: { u = owned uffd on the pipe's read end, w = write end,
-- name = "main" | "static1" | "dyn3" ... }.  byu maps uffd -> fake.
local function new_fake(byu, name)
  local r, w = assert(unistd.pipe())
  local u = assert(ufl.adopt(r, { check = false, own = true }))
  local f = { u = u, w = w, name = name }
  byu[u] = f
  return f
end

local function poke(f)
  assert(not f.u:is_closed(), "poke on a closed fake " .. f.name)
  assert.are.equal(1, unistd.write(f.w, "x"))
end

local function drain(f)
  assert(not f.u:is_closed())
  local s = unistd.read(f.u:fd(), 64)
  assert(s and #s >= 1, "fake " .. f.name .. " was not readable")
end

local function close_fake(f)
  if not f.u:is_closed() and not f.u:index() then
    assert(f.u:close())
  end
  if f.w then
    unistd.close(f.w)
    f.w = nil
  end
end

-- ---------------------------------------------------------------- checker

-- A Lua-table checker.  fail = { method = "register"|"is_dead"|"reset",
-- at = N, how = "return"|"raise"|"nonbool" } makes the N-th call of that
-- method (counted from arm()) fail.  dead[u] is what is_dead answers
-- (anything not marked is alive); said_dead[u] records every uffd it ever
-- called dead.
local function new_checker()
  local c = {
    dead = {}, said_dead = {}, registered = {},
    calls = { register = 0, is_dead = 0, reset = 0 },
    failed = nil,   -- the method whose injected failure fired
  }
  function c.arm(fail)
    c.fail = fail
    c.calls = { register = 0, is_dead = 0, reset = 0 }
    c.failed = nil
  end
  local function maybe_fail(method)
    c.calls[method] = c.calls[method] + 1
    local f = c.fail
    if f and f.method == method and f.at == c.calls[method] then
      c.failed = method
      if f.how == "raise" then
        error("injected " .. method .. " failure")
      elseif f.how == "nonbool" then
        return true, "yes"
      end
      return true, nil, "injected " .. method .. " failure", E.ENOMEM
    end
    return false
  end
  function c:register(u)
    local failing, a, b, e = maybe_fail("register")
    if failing then return a, b, e end
    self.registered[u] = true
    return true
  end
  function c:is_dead(u)
    local failing, a, b, e = maybe_fail("is_dead")
    if failing then return a, b, e end
    if self.dead[u] then
      self.said_dead[u] = true
      return true
    end
    return false
  end
  function c.reset()
    local failing, a, b, e = maybe_fail("reset")
    if failing then return a, b, e end
    return true
  end
  return c
end

-- ------------------------------------------------------------ consistency

-- Nothing of the list is ready.
local function assert_quiet(list, out)
  local n = assert(list:wait(0, out))
  assert.are.equal(0, n, "an entry is ready that nobody made ready")
end

-- Every entry i: open, index i, the very uffd of a fake, and in epoll
-- under index i (made ready alone, it is the only one reported).
local function assert_consistent(list, byu, where)
  local out = {}
  assert_quiet(list, out)
  local seen = {}
  for i = 1, #list do
    local u = list:get(i)
    local f = byu[u]
    assert(f, where .. ": entry " .. i .. " is no fake of ours")
    assert(not seen[u], where .. ": a uffd listed twice")
    seen[u] = true
    assert.is_false(u:is_closed())
    assert.are.equal(i, u:index(), where .. ": index of " .. f.name)
    poke(f)
    local n = assert(list:wait(0, out))
    assert.are.same({ i }, { unpack(out, 1, n) },
      where .. ": " .. f.name .. " made ready, expected exactly {" .. i .. "}")
    drain(f)
    assert_quiet(list, out)
  end
  assert.is_nil(list:get(#list + 1))
end

-- The set of indices reported ready, sorted.
local function ready_set(list)
  local out = {}
  local n = assert(list:wait(0, out))
  local r = {}
  for i = 1, n do r[i] = out[i] end
  table.sort(r)
  return r
end

local function range(a, b)
  local r = {}
  for i = a, b do r[#r + 1] = i end
  return r
end

-- Calls f(...) protected: it must not raise; returns its results.
local function noraise(what, f, ...)
  local res = pack(pcall(f, ...))
  assert(res[1], what .. " raised: " .. tostring(res[2]))
  return unpack(res, 2, res.n)
end

local function assert_failure(what, r, msg, errno)
  assert.is_nil(r, what .. " should have failed")
  assert.are.equal("string", type(msg), what .. ": message")
  assert.are.equal("number", type(errno), what .. ": errno")
  assert(errno > 0, what .. ": errno > 0")
end

-- ---------------------------------------------------------------- specs

describe("fault injection", function()
  local fds0

  before_each(function()
    collectgarbage(); collectgarbage()
    fds0 = child.count_fds()
  end)

  after_each(function()
    collectgarbage(); collectgarbage()
    assert.are.equal(fds0, child.count_fds(), "fd leaked")
  end)

  -- --------------------------------------------------------- register

  -- One run of the register sequence: create the list on main, set 2
  -- static devices, register 2 static then 3 dynamic uffds, with the
  -- failure armed.  At the first failure: check everything, disarm, do
  -- the failed step again (it must succeed), finish without faults and
  -- check again.  Returns whether a failure happened.
  local function register_run(arm)
    local byu = {}
    local ck = new_checker()
    local ctx = assert(ufl.waitctx())
    local main = new_fake(byu, "main")
    local fakes = { main }
    for i = 1, 2 do fakes[#fakes + 1] = new_fake(byu, "static" .. i) end
    for i = 1, 3 do fakes[#fakes + 1] = new_fake(byu, "dyn" .. i) end
    arm(ctx, ck)
    local failed, list = false

    local r, msg, errno = noraise("list", ufl.list, main.u, ck, ctx)
    if not r then
      failed = true
      assert_failure("list", r, msg, errno)
      assert.is_false(main.u:is_closed())
      assert.is_nil(main.u:index())
      ufl.testing.no_faults(ctx); ck.arm(nil)
      r = noraise("list again", ufl.list, main.u, ck, ctx)
      assert(r, "list creation after a failure")
    end
    list = r
    assert.is_true(list:set_num_static_devices(2))

    for k = 2, #fakes do
      local f = fakes[k]
      local before = #list
      local dyn, m2, e2 = noraise("register", list.register, list, f.u)
      if dyn == nil then
        assert(not failed, "one failure per run")
        failed = true
        local where = "register of " .. f.name .. " failing"
        assert_failure(where, dyn, m2, e2)
        assert.are.equal(before, #list, where .. ": length changed")
        assert.is_false(f.u:is_closed(), where .. ": uffd closed")
        assert.is_nil(f.u:index(), where .. ": uffd still indexed")
        for j = 1, #fakes do -- nothing was closed
          assert.is_false(fakes[j].u:is_closed())
        end
        assert_consistent(list, byu, where)
        ufl.testing.no_faults(ctx); ck.arm(nil)
        dyn = noraise("register again", list.register, list, f.u)
        assert.is_not_nil(dyn, "register again after a failure")
      end
      assert.are.equal(k > 3, dyn, f.name .. " dynamic?")
      assert.are.equal(k, f.u:index())
    end
    ufl.testing.no_faults(ctx)
    assert.are.equal(#fakes, #list)
    assert_consistent(list, byu, "after the register run")
    for k = 4, #fakes do
      assert.is_true(ck.registered[fakes[k].u] == true,
        "the checker saw dynamic " .. fakes[k].name)
    end
    list:close()
    ctx:close()
    for _, f in ipairs(fakes) do
      assert.is_true(f.u:is_closed())
      close_fake(f)
    end
    return failed
  end

  local function loop_register(name, arm_at)
    local n = 0
    repeat
      n = n + 1
      assert(n < 100, name .. ": never succeeded")
      local failed = register_run(function(ctx, ck) arm_at(n, ctx, ck) end)
    until not failed
    return n - 1 -- failure points seen
  end

  it("register: every epoll_ctl failure point leaves the list consistent", function()
    -- 1 (list creation) + 2 static + 3 dynamic: six epoll_ctl(ADD) calls
    local points = loop_register("ctl", function(n, ctx)
      ufl.testing.faults(ctx, { fail_ctl_at = n })
    end)
    assert.are.equal(6, points)
  end)

  it("register: a failing close cannot break it (register closes nothing)", function()
    local points = loop_register("close", function(n, ctx)
      ufl.testing.faults(ctx, { fail_close_at = n })
    end)
    assert.are.equal(0, points)
  end)

  for _, how in ipairs { "return", "raise" } do
    it("register: every checker register failure point (" .. how .. ") leaves the list consistent", function()
      local points = loop_register("checker register", function(n, _, ck)
        ck.arm { method = "register", at = n, how = how }
      end)
      assert.are.equal(3, points) -- one per dynamic uffd
    end)
  end

  it("register: a checker failure reports the checker's message and errno", function()
    local byu, ck = {}, new_checker()
    local main, d = new_fake(byu, "main"), new_fake(byu, "dyn")
    local list = assert(ufl.list(main.u, ck))
    list:set_num_static_devices(0)
    ck.arm { method = "register", at = 1, how = "return" }
    local r, msg, errno = list:register(d.u)
    assert.is_nil(r)
    assert.are.equal("register: checker register: injected register failure", msg)
    assert.are.equal(E.ENOMEM, errno)
    ck.arm { method = "register", at = 1, how = "raise" }
    r, msg, errno = list:register(d.u)
    assert.is_nil(r)
    assert.matches("^register: checker register: .*injected register failure", msg)
    assert.are.equal(E.EIO, errno)
    assert.is_true(list:register(d.u))
    local ctx = list:waitctx()
    list:close(); ctx:close()
    close_fake(main); close_fake(d)
  end)

  -- --------------------------------------------------------------- gc

  -- The gc scenario: main, 2 static, 8 dynamic (list indices 4..11).
  -- Dead: dynamic 4 (first), 5, 8 and 11 (last), so swap-removal moves
  -- live entries, moves a dead one onto a dead one's place and removes
  -- the last entry.  The checker would also call main and static 2 dead if
  -- asked: they must never be collected.
  local DEAD = { [4] = true, [5] = true, [8] = true, [11] = true }

  local function gc_setup()
    local byu, ck = {}, new_checker()
    local ctx = assert(ufl.waitctx())
    local fakes = { new_fake(byu, "main") }
    local list = assert(ufl.list(fakes[1].u, ck, ctx))
    assert.is_true(list:set_num_static_devices(2))
    for i = 2, 11 do
      local f = new_fake(byu, i <= 3 and ("static" .. (i - 1)) or ("dyn" .. (i - 3)))
      fakes[i] = f
      assert.are.equal(i > 3, list:register(f.u))
    end
    for i in pairs(DEAD) do ck.dead[fakes[i].u] = true end
    ck.dead[fakes[1].u] = true
    ck.dead[fakes[3].u] = true
    return { byu = byu, ck = ck, ctx = ctx, list = list, fakes = fakes }
  end

  local function gc_teardown(s)
    s.list:close()
    s.ctx:close()
    for _, f in ipairs(s.fakes) do
      assert.is_true(f.u:is_closed())
      close_fake(f)
    end
  end

  -- Checks the state after a gc (failed or not) that collected `got`.
  local function gc_check(s, before, got, where)
    local list, fakes, ck = s.list, s.fakes, s.ck
    assert.are.equal(before - got, #list, where .. ": #list")
    local closed = 0
    for i, f in ipairs(fakes) do
      if f.u:is_closed() then
        closed = closed + 1
        assert(i > 3, where .. ": main or static entry " .. f.name .. " collected")
        assert(ck.said_dead[f.u], where .. ": " .. f.name
          .. " closed but the checker never called it dead")
      else
        assert.is_not_nil(f.u:index(), where .. ": open " .. f.name
          .. " not in the list")
      end
    end
    assert.are.equal(got, closed, where .. ": closed uffds vs collected")
    for i = 1, 3 do
      assert.are.equal(fakes[i].u, list:get(i), where .. ": entry " .. i)
    end
    -- Readiness is never lost: every entry was made ready before the gc.
    assert.are.same(range(1, #list), ready_set(list),
      where .. ": entries ready before the gc, by their new indices")
    for i = 1, #list do drain(s.byu[list:get(i)]) end
    assert_consistent(list, s.byu, where)
  end

  -- One gc with the failure armed; returns whether it failed.
  -- gcf(list): the collection to run (default list:gc()), returning
  -- n / nil, msg, errno, collected.
  local function gc_run(arm, expect_log, gcf)
    local s = gc_setup()
    local logs = {}
    s.list:on_log(function(msg, errno) logs[#logs + 1] = { msg, errno } end)
    local before = #s.list
    for _, f in ipairs(s.fakes) do poke(f) end
    arm(s.ctx, s.ck)
    local n, msg, errno, partial = noraise("gc", gcf or s.list.gc, s.list)
    ufl.testing.no_faults(s.ctx)
    s.ck.arm(nil)
    local failed = n == nil
    if failed then
      local where = "gc failing"
      assert_failure(where, n, msg, errno)
      assert.are.equal("number", type(partial), where .. ": 4th value")
      assert.matches("^gc: ", msg)
      gc_check(s, before, partial, where)
      -- Again, without faults: the rest is collected.
      for i = 1, #s.list do poke(s.byu[s.list:get(i)]) end
      local rest = assert(s.list:gc())
      assert.are.equal(4, partial + rest)
    else
      assert.are.equal(4, n)
    end
    gc_check(s, before, 4, "after the gc")
    for i = 1, 11 do
      assert.are.equal(DEAD[i] == true, s.fakes[i].u:is_closed())
    end
    if expect_log then
      assert.are.equal(1, #logs)
      assert.matches("^reset dead uffd checker failed: ", logs[1][1])
      assert.are.equal("number", type(logs[1][2]))
    elseif not failed then
      assert.are.same({}, logs)
    end
    gc_teardown(s)
    return failed
  end

  local function loop_gc(name, arm_at, gcf)
    local n = 0
    repeat
      n = n + 1
      assert(n < 100, name .. ": never succeeded")
      local failed = gc_run(function(ctx, ck) arm_at(n, ctx, ck) end, nil, gcf)
    until not failed
    return n - 1
  end

  it("gc: every epoll_ctl failure point leaves the list consistent", function()
    -- 4 removals (dyn1, then dyn8 moved onto its place, dyn2, then dyn5
    -- which is last by then): a modify of the moved entry and a delete
    -- each, the last one a delete only: 7 calls, 7 failure points.
    local points = loop_gc("ctl", function(n, ctx)
      ufl.testing.faults(ctx, { fail_ctl_at = n })
    end)
    assert.are.equal(7, points)
  end)

  it("gc: a failing close still collects (close(2) releases the fd anyway)", function()
    for n = 1, 5 do
      local failed = gc_run(function(ctx)
        ufl.testing.faults(ctx, { fail_close_at = n })
      end)
      assert.is_false(failed, "gc failed with close failing at " .. n)
    end
  end)

  for _, how in ipairs { "return", "raise", "nonbool" } do
    it("gc: every checker is_dead failure point (" .. how .. ") leaves the list consistent", function()
      local points = loop_gc("is_dead", function(n, _, ck)
        ck.arm { method = "is_dead", at = n, how = how }
      end)
      -- 8 probes: index 4 three times (dyn1, dyn8 moved there, dyn7
      -- moved there), 5 twice (dyn2, dyn6 moved there), 6, 7, 8
      assert.are.equal(8, points)
    end)
  end

  it("gc: the failing checker's message and errno are returned", function()
    local s = gc_setup()
    for _, f in ipairs(s.fakes) do poke(f) end
    s.ck.arm { method = "is_dead", at = 3, how = "return" }
    local n, msg, errno, partial = s.list:gc()
    assert.is_nil(n)
    assert.are.equal("gc: checker is_dead: injected is_dead failure", msg)
    assert.are.equal(E.ENOMEM, errno)
    assert.are.equal(2, partial) -- entries 4 and 5 (the moved 11 is dead)
    s.ck.arm { method = "is_dead", at = 1, how = "nonbool" }
    n, msg, errno = s.list:gc()
    assert.is_nil(n)
    assert.matches("boolean expected", msg)
    assert.are.equal(E.EIO, errno)
    s.ck.arm(nil)
    for i = 1, #s.list do drain(s.byu[s.list:get(i)]) end
    assert.are.equal(2, s.list:gc())
    gc_teardown(s)
  end)

  for _, how in ipairs { "return", "raise" } do
    it("gc: a failing checker reset (" .. how .. ") is logged through on_log; gc succeeds", function()
      local failed = gc_run(function(_, ck)
        ck.arm { method = "reset", at = 1, how = how }
      end, true)
      assert.is_false(failed)
    end)
  end

  it("gc: on_log gets the reset message and errno", function()
    local s = gc_setup()
    local logs = {}
    s.list:on_log(function(msg, errno) logs[#logs + 1] = { msg, errno } end)
    s.ck.arm { method = "reset", at = 1, how = "return" }
    assert.are.equal(4, s.list:gc())
    assert.are.same({ { "reset dead uffd checker failed: injected reset failure",
      E.ENOMEM } }, logs)
    -- an on_log function that raises does not make gc fail
    s.list:on_log(function() error("log handler down") end)
    s.ck.arm { method = "reset", at = 1, how = "return" }
    assert.are.equal(0, s.list:gc())
    gc_teardown(s)
  end)
  -- ------------------------------------- gc{budget}, gc{only}, remove

  -- gc{budget = 1} until the pass is complete; a failing step ends it.
  local function gc_steps(list)
    local total = 0
    repeat
      local n, more, errno, partial = list:gc { budget = 1 }
      if n == nil then return nil, more, errno, total + partial end
      total = total + n
    until not more
    return total
  end

  local function gc_only_all(list)
    local hints = {}
    for i = 1, #list do hints[i] = i end     -- main and static: skipped
    return list:gc { only = hints }
  end

  for name, gcf in pairs { ["gc{budget = 1} steps"] = gc_steps,
                           ["gc{only = every index}"] = gc_only_all } do
    it(name .. ": every epoll_ctl failure point leaves the list consistent", function()
      local points = loop_gc("ctl", function(n, ctx)
        ufl.testing.faults(ctx, { fail_ctl_at = n })
      end, gcf)
      assert(points >= 4, "at least one failure point per collection")
    end)

    it(name .. ": every checker is_dead failure point leaves the list consistent", function()
      local points = loop_gc("is_dead", function(n, _, ck)
        ck.arm { method = "is_dead", at = n, how = "raise" }
      end, gcf)
      assert(points >= 8, "one per probe at least")
    end)

    it(name .. ": a failing close still collects", function()
      for n = 1, 5 do
        assert.is_false(gc_run(function(ctx)
          ufl.testing.faults(ctx, { fail_close_at = n })
        end, nil, gcf))
      end
    end)
  end

  it("gc{budget = 1}: a failing reset is logged, the step succeeds", function()
    assert.is_false(gc_run(function(_, ck)
      ck.arm { method = "reset", at = 1, how = "return" }
    end, true, function(list) return list:gc { budget = 100 } end))
  end)

  -- remove(i) on the gc scenario, every entry made ready first, with the
  -- n-th epoll_ctl failing: a failure leaves the list exactly as it was
  -- (same uffd at every index, same readiness); success hands back the
  -- uffd open and keeps the readiness of the moved entry.  Returns the
  -- number of failure points.
  local function remove_points(i, setup)
    local n = 0
    while true do
      n = n + 1
      assert(n < 20)
      local s = gc_setup()
      if setup then setup(s) end
      for _, f in ipairs(s.fakes) do poke(f) end
      local q = {}
      for k = 1, #s.list do q[k] = s.list:is_quarantined(k) end
      ufl.testing.faults(s.ctx, { fail_ctl_at = n })
      local r, msg, errno = noraise("remove", s.list.remove, s.list, i)
      ufl.testing.no_faults(s.ctx)
      local want = {}
      for k = 1, 11 do if not q[k] then want[#want + 1] = k end end
      if r == nil then
        assert_failure("remove", r, msg, errno)
        assert.matches("^remove: ", msg)
        assert.are.equal(11, #s.list)
        for k = 1, 11 do
          assert.are.equal(s.fakes[k].u, s.list:get(k), "entry " .. k)
          assert.are.equal(q[k], s.list:is_quarantined(k))
        end
        assert.are.same(want, ready_set(s.list), "readiness kept")
      else
        assert.are.equal(s.fakes[i].u, r)
        assert.is_false(r:is_closed())
        assert.is_nil(r:index())
        assert.are.equal(10, #s.list)
        if i < 11 then
          assert.are.equal(s.fakes[11].u, s.list:get(i))
        end
        local w = {}
        for k = 1, 10 do
          if not s.list:is_quarantined(k) then w[#w + 1] = k end
        end
        assert.are.same(w, ready_set(s.list), "readiness after remove")
      end
      for _, f in ipairs(s.fakes) do drain(f) end
      -- (assert_consistent knows no quarantine: the ready sets above
      -- covered those runs)
      local hasq = false
      for k = 1, #s.list do hasq = hasq or s.list:is_quarantined(k) end
      if not hasq then assert_consistent(s.list, s.byu, "after remove") end
      if r then assert(r:close()) end
      gc_teardown(s)
      if r then return n - 1 end
    end
  end

  it("remove: every epoll_ctl failure point leaves the list exactly as it was", function()
    -- MOD of the moved last entry, DEL of entry 5: two points
    assert.are.equal(2, remove_points(5))
  end)

  it("remove: of the last entry (one DEL: one failure point)", function()
    assert.are.equal(1, remove_points(11))
  end)

  it("remove: of a quarantined entry (only the moved entry's MOD can fail)", function()
    assert.are.equal(1, remove_points(5, function(s)
      assert(s.list:quarantine(5))
    end))
  end)

  it("remove: with a quarantined last entry moving in (only the DEL can fail)", function()
    assert.are.equal(1, remove_points(5, function(s)
      assert(s.list:quarantine(11))
    end))
  end)

  it("remove: a failing close cannot matter (remove closes nothing)", function()
    local s = gc_setup()
    ufl.testing.faults(s.ctx, { fail_close_at = 1 })
    local r = assert(s.list:remove(6))
    local _, closes = ufl.testing.fault_counts(s.ctx)
    assert.are.equal(0, closes)
    ufl.testing.no_faults(s.ctx)
    assert.is_false(r:is_closed())
    assert(r:close())
    assert_consistent(s.list, s.byu, "after remove")
    gc_teardown(s)
  end)

  it("quarantine: a failing epoll_ctl DEL leaves the entry in epoll, unquarantined", function()
    local s = gc_setup()
    ufl.testing.faults(s.ctx, { fail_ctl_at = 1 })
    local r, msg, errno = noraise("quarantine", s.list.quarantine, s.list, 2)
    ufl.testing.no_faults(s.ctx)
    assert_failure("quarantine", r, msg, errno)
    assert.are.equal(E.ENOMEM, errno)
    assert.is_false(s.list:is_quarantined(2))
    assert_consistent(s.list, s.byu, "after a failed quarantine")
    assert.is_true(s.list:quarantine(2))
    gc_teardown(s)
  end)
end)
