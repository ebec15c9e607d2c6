-- The reference's ten tests (crosvm swap/src/uffd_list.rs), one for one and
-- by name, over eventfd-backed fake uffds and a fake dead checker written in
-- Lua, as the reference fakes them.  Then what the list adds beyond crosvm.
-- Real uffds of real processes: real_kernel_spec.lua.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local memcap = require "spec.helpers.memcap"
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
local _ -- the fixture's unused results
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
  it("a register refused by epoll (the fd already watched) reports the errno and changes nothing, with the real checker", function()
    local ck = assert(ufl.checker())
    local ctx2 = assert(ufl.waitctx())
    local l = assert(ufl.list(assert(ufl.create()), ck, ctx2))
    l:set_num_static_devices(1)
    local u = assert(ufl.create())
    assert.is_true(ctx2:add(u:fd(), "user"))  -- same file, same fd
    local ok, msg, errno = l:register(u)
    assert.is_nil(ok)
    assert.matches("^register: ", msg)
    assert.are.equal(17, errno)               -- EEXIST (fs/eventpoll.c)
    assert.are.equal(1, l:len())
    assert.is_true(ctx2:delete(u:fd()))
    assert.is_false(l:register(u))            -- static: registers now
    assert.are.equal(2, l:len())
    l:close(); ctx2:close(); ck:close()
  end)

  -- A user fd of the ctx closed without ctx:delete left epoll with its
  -- file; when the kernel gives its number to a list entry, the old record
  -- must go, or a delete/modify by that number would act on the entry.
  it("an entry taking the number of a user fd closed without delete drops the fd's old record", function()
    local c = new_fake_checker()
    local ctx2 = assert(ufl.waitctx())
    local keep = assert(ufl.eventfd())          -- a user fd that stays
    assert.is_true(ctx2:add(keep, "keep"))
    -- A fake uffd (new_fake_checker's kind) at the number of a user fd
    -- just closed; its eventfd is made first, so it holds another number.
    local function reused_uffd(tok)
      local e = assert(ufl.eventfd())
      local old = assert(ufl.eventfd())
      local n = old:fd()
      assert.is_true(ctx2:add(n, tok))
      assert.is_true(old:close())               -- no ctx2:delete
      assert.are_not.equal(n, e:fd())
      assert(unistd.dup2(e:fd(), n))
      local u = assert(ufl.adopt(n, { check = false }))
      c.signal[u] = e
      return u, n
    end
    local main, n1 = reused_uffd("old main")
    local l = assert(ufl.list(main, c, ctx2))
    l:set_num_static_devices(0)
    local dyn, n2 = reused_uffd("old dynamic")
    assert.is_true(l:register(dyn))
    for _, n in ipairs({ n1, n2 }) do
      local ok, _, errno = ctx2:delete(n)
      assert.is_nil(ok)
      assert.are.equal(2, errno)                -- ENOENT
    end
    c:make_readable(dyn)
    local out = {}
    assert.are.equal(1, l:wait(100, out))
    assert.are.equal(dyn, l:get(out[1]))
    assert.is_true(ctx2:delete(keep))           -- the other record is intact
    l:close(); ctx2:close(); keep:close(); c:close()
  end)

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

-- ---------------------------------------------------------------------
-- remove, quarantine, gc{budget}, gc{only}
-- ---------------------------------------------------------------------

-- The indices one wait(0) reports, sorted (and the evs table's masks).
local function ready(l, evs)
  local out = {}
  local n = assert(l:wait(0, out, evs))
  local r = {}
  for i = 1, n do r[i] = out[i] end
  table.sort(r)
  return r
end

local function drain(c, u)
  c.signal[u]:read()
end

-- Every entry i: index i; made readable alone it is reported as exactly
-- {i}, or (quarantined) not at all.
local function assert_consistent(l, c)
  assert.are.same({}, ready(l))
  for i = 1, #l do
    local u = l:get(i)
    assert.are.equal(i, u:index())
    c:make_readable(u)
    if l:is_quarantined(i) then
      assert.are.same({}, ready(l), "quarantined entry " .. i .. " reported")
    else
      assert.are.same({ i }, ready(l), "entry " .. i)
    end
    drain(c, u)
  end
end

-- main + n dynamic entries (no static devices)
local function dynamic(n)
  local l, c, u, x, main = fixture(n)
  assert.is_true(l:set_num_static_devices(0))
  for i = 1, n do assert.is_true(l:register(u[i])) end
  return l, c, u, x, main
end

describe("list:remove", function()
  it("hands back the very uffd, open and in no list: the caller closes it", function()
    local u
    list, checker, u, ctx = dynamic(3)
    local fd = u[1]:fd()
    local r = list:remove(2)
    assert.are.equal(u[1], r)
    assert.is_false(r:is_closed())
    assert.are.equal(fd, r:fd())
    assert.is_nil(r:index())
    assert.are.equal(3, #list)
    assert.are.equal(u[3], list:get(2))     -- swap-removed
    assert_consistent(list, checker)
    checker:make_readable(r)                -- out of epoll
    assert.are.same({}, ready(list))
    assert.is_true(r:close())               -- no longer refused
    assert.is_true(r:is_closed())
  end)

  it("refuses main and static entries with EPERM, and every entry before set_num_static_devices", function()
    local u, main
    list, checker, u, ctx, main = fixture(3)
    for i = 1, 3 do list:register(u[i]) end
    local r, msg, errno = list:remove(4)
    assert.is_nil(r)
    assert.matches("not removable", msg)
    assert.are.equal(ufl.errno.EPERM or 1, errno)
    list:set_num_static_devices(1)
    for _, i in ipairs { 1, 2 } do
      r, msg, errno = list:remove(i)
      assert.is_nil(r)
      assert.matches("not removable", msg)
      assert.are.equal(1, errno)
    end
    assert.are.equal(4, #list)
    assert.are.equal(main, list:get(1))
    assert_consistent(list, checker)
    assert.are.equal(u[3], list:remove(4))
    u[3]:close()
  end)

  it("raises on a bad index", function()
    list, checker, _, ctx = dynamic(2)
    assert.has_error(function() list:remove(4) end,
      "bad argument #1 to 'remove' (index 4 out of range (list has 3 entries))")
    assert.has_error(function() list:remove(0) end)
    assert.has_error(function() list:remove(1.5) end)
    assert.has_error(function() list:remove("2") end)
    assert.are.equal(3, #list)
  end)

  it("removes the last entry", function()
    local u
    list, checker, u, ctx = dynamic(2)
    assert.are.equal(u[2], list:remove(3))
    assert.are.equal(2, #list)
    assert.are.equal(u[1], list:remove(2))
    assert.are.equal(1, #list)
    assert_consistent(list, checker)
    u[1]:close(); u[2]:close()
  end)

  it("a ready entry removed is no longer reported; the ready entry moved into the hole keeps its readiness", function()
    local u
    list, checker, u, ctx = dynamic(3)
    checker:make_readable(u[1])
    checker:make_readable(u[3])
    assert.are.same({ 2, 4 }, ready(list))
    assert.are.equal(u[1], list:remove(2))
    assert.are.same({ 2 }, ready(list))     -- u[3], under its new index
    assert.are.equal(u[3], list:get(2))
    drain(checker, u[3]); drain(checker, u[1])
    assert_consistent(list, checker)
    u[1]:close()
  end)

  it("after a gc, and of an entry gc moved", function()
    local u
    list, checker, u, ctx = dynamic(4)
    checker:mark_as_dead(u[1])
    checker:make_readable(u[4])
    assert.are.equal(1, list:gc())
    assert.are.equal(u[4], list:get(2))    -- moved into the hole
    assert.are.equal(u[4], list:remove(2))
    assert.are.equal(u[3], list:get(2))
    assert.are.same({}, ready(list))
    assert_consistent(list, checker)
    u[4]:close()
  end)

  it("is refused from inside the list's own checker (busy), and so are quarantine and gc steps", function()
    list, checker, _, ctx = dynamic(2)
    local errs = {}
    checker.is_dead = function()
      errs[1] = select(2, pcall(list.remove, list, 2))
      errs[2] = select(2, pcall(list.quarantine, list, 2))
      errs[3] = select(2, pcall(list.gc, list, { budget = 1 }))
      errs[4] = select(2, pcall(list.gc, list, { only = { 2 } }))
      return false
    end
    assert.are.equal(0, list:gc())
    for i = 1, 4 do assert.matches("is busy", errs[i]) end
    assert.are.equal(3, #list)
    assert.is_false(list:is_quarantined(2))
    assert_consistent(list, checker)
  end)
end)

describe("list:quarantine", function()
  it("a readable entry is no longer reported by wait; it stays listed, same index, still the list's", function()
    local u
    list, checker, u, ctx = dynamic(3)
    checker:make_readable(u[2])
    assert.are.same({ 3 }, ready(list))
    assert.is_true(list:quarantine(3))
    assert.is_true(list:is_quarantined(3))
    assert.is_false(list:is_quarantined(2))
    assert.are.same({}, ready(list))
    assert.are.equal(u[2], list:get(3))
    assert.are.equal(3, u[2]:index())
    assert.has_error(function() u[2]:close() end)
    assert.is_true(list:quarantine(3))      -- idempotent
    drain(checker, u[2])
    assert_consistent(list, checker)
  end)

  it("works on main and static entries (never removable, so quarantine is how they are silenced)", function()
    local u
    list, checker, u, ctx = fixture(2)
    list:register(u[1])
    list:set_num_static_devices(1)
    list:register(u[2])
    assert.is_true(list:quarantine(1))
    assert.is_true(list:quarantine(2))
    checker:make_readable(list:get(1))
    checker:make_readable(u[1])
    assert.are.same({}, ready(list))
    drain(checker, list:get(1)); drain(checker, u[1])
    assert_consistent(list, checker)
  end)

  it("silences an entry that reports EPOLLERR (which an empty event mask would not)", function()
    list, checker, _, ctx = dynamic(1)
    local r, w = assert(unistd.pipe())
    local bad = assert(ufl.adopt(w, { check = false }))
    assert.is_true(list:register(bad))
    unistd.close(r)                          -- the write end: EPOLLERR
    local evs = {}
    assert.are.same({ 3 }, ready(list, evs))
    assert(evs[1] % (2 * ufl.EPOLLERR) >= ufl.EPOLLERR, "EPOLLERR in revents")
    assert.is_true(list:quarantine(3))
    assert.are.same({}, ready(list, evs))
    assert.is_nil(evs[1])
  end)

  it("quarantine then gc: the dead one is collected, the alive one stays quarantined", function()
    local u
    list, checker, u, ctx = dynamic(3)
    assert.is_true(list:quarantine(2))
    assert.is_true(list:quarantine(3))
    checker:mark_as_dead(u[1])
    assert.are.equal(1, list:gc())
    assert.is_true(u[1]:is_closed())
    assert.are.equal(u[3], list:get(2))     -- moved: not quarantined
    assert.is_false(list:is_quarantined(2))
    assert.are.equal(u[2], list:get(3))
    assert.is_true(list:is_quarantined(3))
    assert_consistent(list, checker)
  end)

  it("a quarantined entry moved into a hole is not put back in epoll", function()
    local u
    list, checker, u, ctx = dynamic(3)
    assert.is_true(list:quarantine(4))
    checker:make_readable(u[3])
    checker:mark_as_dead(u[1])
    assert.are.equal(1, list:gc())
    assert.are.equal(u[3], list:get(2))
    assert.is_true(list:is_quarantined(2))
    assert.are.same({}, ready(list))
    drain(checker, u[3])
    assert_consistent(list, checker)
  end)

  it("a removed quarantined entry comes back unquarantined, in no epoll set", function()
    local u
    list, checker, u, ctx = dynamic(2)
    assert.is_true(list:quarantine(2))
    local r = list:remove(2)
    assert.are.equal(u[1], r)
    assert.is_true(ctx:add(r, "mine"))      -- the caller may watch it
    checker:make_readable(r)
    local out = {}
    assert.are.equal(1, ctx:wait(0, out))
    assert.are.equal("mine", out[1])
    assert.is_true(ctx:delete(r))
    r:close()
    assert_consistent(list, checker)
  end)

  it("raises on a bad index; is_quarantined too", function()
    list, checker, _, ctx = dynamic(1)
    assert.has_error(function() list:quarantine(3) end)
    assert.has_error(function() list:is_quarantined(0) end)
    assert.has_error(function() list:is_quarantined(3) end)
  end)
end)

describe("list:wait revents", function()
  it("fills evs[i] with the ready entry's epoll flags (numbers), reusing the tables", function()
    local u
    list, checker, u, ctx = dynamic(2)
    checker:make_readable(u[2])
    local out, evs = { 9, 9, 9 }, { 9, 9, 9 }
    local n, o, e = list:wait(0, out, evs)
    assert.are.equal(1, n)
    assert.are.equal(out, o)
    assert.are.equal(evs, e)
    assert.are.same({ 3 }, out)
    assert.are.same({ ufl.EPOLLIN }, evs)
  end)

  it("allocates nothing per call once its tables are warm (indices and masks are numbers)", function()
    local u
    list, checker, u, ctx = dynamic(3)
    checker:make_readable(u[1])
    checker:make_readable(u[3])
    local out, evs = {}, {}
    local function waits(k)
      for _ = 1, k do
        local n = list:wait(0, out, evs)
        if n ~= 2 then error("wait reported " .. n) end
      end
    end
    -- Warm: the tables, and LuaJIT's traces of this very loop, its exits
    -- included (a trace is a GC object: one compiled while counting would
    -- count).  Flushed first: after the whole suite the trace cache may be
    -- full, and a full cache is flushed (and recompiled) at any time.
    if jit then jit.flush() end
    for _ = 1, 30 do waits(100) end
    collectgarbage(); collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    waits(10000)
    -- Per wait, as the other allocation counts: any allocation made per
    -- call is 16 bytes or more, where one trace compiled meanwhile (seen
    -- once under ASan after the whole suite: 3 KiB) is 0.3 bytes a wait.
    local per_wait = (collectgarbage("count") - before) * 1024 / 10000
    collectgarbage("restart")
    assert(per_wait < 1, ("%.2f bytes per wait"):format(per_wait))
  end)
end)

describe("list:gc{budget = N}", function()
  it("probes at most N entries a call and resumes where it stopped; more is false once the pass is complete", function()
    local u
    list, checker, u, ctx = dynamic(6)
    local probes = 0
    local is_dead = checker.is_dead
    checker.is_dead = function(self, x) probes = probes + 1; return is_dead(self, x) end
    checker:mark_as_dead(u[2])
    checker:mark_as_dead(u[6])
    local total, calls, more = 0, 0, true
    while more do
      local before = probes
      local n
      n, more = list:gc { budget = 1 }
      assert.are.equal(1, probes - before)
      total = total + n
      calls = calls + 1
      assert_consistent(list, checker)
      assert(calls <= 6)
    end
    assert.are.equal(6, calls)
    assert.are.equal(2, total)
    assert.is_true(u[2]:is_closed() and u[6]:is_closed())
    -- a call after a complete pass starts a new one
    local before = probes
    local n, m = list:gc { budget = 100 }
    assert.are.equal(0, n)
    assert.is_false(m)
    assert.are.equal(4, probes - before)
  end)

  it("budget 1 across registers and removes between steps: nothing present for the whole pass is skipped", function()
    local u
    list, checker, u, ctx = fixture(10)
    list:set_num_static_devices(0)
    for i = 1, 6 do assert.is_true(list:register(u[i])) end
    assert.are.same({ 0, true }, { list:gc { budget = 1 } })   -- probes u[6]
    for i = 1, 5 do checker:mark_as_dead(u[i]) end
    assert.is_true(list:register(u[7]))
    local r1 = list:remove(3)               -- u[2]; u[7] moves into 3
    assert.are.equal(u[2], r1)
    local n, more, total
    more, total = true, 0
    local steps = 0
    while more do
      n, more = list:gc { budget = 1 }
      assert.is_number(n)
      total = total + n
      steps = steps + 1
      if steps == 1 then assert.is_true(list:register(u[8])) end
      if steps == 2 then
        local r2 = list:remove(#list)
        assert.is_false(r2:is_closed())
        r2:close()
      end
      assert_consistent(list, checker)
      assert(steps < 20)
    end
    for _, i in ipairs { 1, 3, 4, 5 } do
      assert.is_true(u[i]:is_closed(), "u[" .. i .. "] was there all pass long")
    end
    assert.are.equal(4, total)
    r1:close()
  end)

  it("returns collected, more; a failing step returns nil, msg, errno, collected and is retried", function()
    local u
    list, checker, u, ctx = dynamic(3)
    checker:mark_as_dead(u[3])
    local calls = 0
    local is_dead = checker.is_dead
    checker.is_dead = function(self, x)
      calls = calls + 1
      if calls == 2 then return nil, "boom", ufl.errno.EIO end
      return is_dead(self, x)
    end
    local n, more = list:gc { budget = 2 }  -- u[3] dead, then boom on u[2]
    assert.is_nil(n)
    assert.are.equal("gc: checker is_dead: boom", more)
    assert.is_true(u[3]:is_closed())
    assert.are.same({ 0, false }, { list:gc { budget = 5 } })
    assert.are.equal(4, calls)              -- u[2] again, then u[1]
    assert_consistent(list, checker)
  end)

  it("a full gc between steps ends the pass; gc() keeps its single return value", function()
    list, checker, _, ctx = dynamic(3)
    assert.are.same({ 0, true }, { list:gc { budget = 1 } })
    local res = { list:gc() }
    assert.are.same({ 0 }, res)
    assert.are.same({ 0, false }, { list:gc { budget = 3 } })
  end)

  it("raises on bad options", function()
    list, checker, _, ctx = dynamic(1)
    assert.has_error(function() list:gc { budget = 0 } end,
      "bad argument #1 to 'gc' (budget: integer >= 1 expected, got 0)")
    assert.has_error(function() list:gc { budget = 1.5 } end)
    assert.has_error(function() list:gc { budget = "1" } end)
    assert.has_error(function() list:gc { budjet = 1 } end,
      "bad argument #1 to 'gc' (unknown option budjet (budget or only expected))")
    assert.has_error(function() list:gc { budget = 1, only = {} } end)
    assert.has_error(function() list:gc(5) end)
  end)
end)

describe("list:gc{only = {i, ...}}", function()
  it("probes just the entries named", function()
    local u
    list, checker, u, ctx = dynamic(4)
    local probed = {}
    local is_dead = checker.is_dead
    checker.is_dead = function(self, x) probed[#probed + 1] = x; return is_dead(self, x) end
    checker:mark_as_dead(u[1])
    checker:mark_as_dead(u[3])
    assert.are.equal(1, list:gc { only = { 4 } })
    assert.are.same({ u[3] }, probed)
    assert.is_true(u[3]:is_closed())
    assert.is_false(u[1]:is_closed())      -- dead, but not hinted
    assert.are.equal(0, list:gc { only = { 3 } })  -- alive: kept
    assert.is_false(list:get(3):is_closed())
    assert_consistent(list, checker)
  end)

  it("indices name the list as it was at the call: a hinted entry moved by an earlier collection is still found; "
    .. "duplicates, main and static are skipped", function()
    local u, main
    list, checker, u, ctx, main = fixture(5)
    list:register(u[1])
    list:set_num_static_devices(1)
    for i = 2, 5 do list:register(u[i]) end  -- dynamic: 3..6
    local probed = 0
    local is_dead = checker.is_dead
    checker.is_dead = function(self, x) probed = probed + 1; return is_dead(self, x) end
    checker:mark_as_dead(main)
    checker:mark_as_dead(u[1])
    checker:mark_as_dead(u[2])               -- index 3
    checker:mark_as_dead(u[5])               -- index 6, the last: moves into 3
    checker:make_readable(u[4])
    assert.are.equal(2, list:gc { only = { 3, 6, 6, 1, 2, 3, 4 } })
    assert.are.equal(3, probed)              -- u[2], u[5], u[3]
    assert.is_true(u[2]:is_closed() and u[5]:is_closed())
    assert.are.equal(main, list:get(1))
    assert.are.equal(u[1], list:get(2))
    assert.are.same({ 3 }, ready(list))      -- u[4], moved into 3
    assert.are.equal(u[4], list:get(3))
    drain(checker, u[4])
    assert_consistent(list, checker)
  end)

  it("a hint never collects by itself: only the checker's answer does", function()
    local u
    list, checker, u, ctx = dynamic(2)
    assert.are.equal(0, list:gc { only = { 2, 3 } })
    assert.is_false(u[1]:is_closed() or u[2]:is_closed())
    assert.are.equal(3, #list)
  end)

  it("an empty hint list probes nothing; bad hints raise before anything is probed", function()
    list, checker, _, ctx = dynamic(2)
    local probed = 0
    checker.is_dead = function() probed = probed + 1; return true end
    assert.are.equal(0, list:gc { only = {} })
    assert.has_error(function() list:gc { only = { 2, 4 } } end,
      "bad argument #1 to 'gc' (only[2]: index 4 out of range (list has 3 entries))")
    assert.has_error(function() list:gc { only = { 2, "3" } } end)
    assert.has_error(function() list:gc { only = { 0 } } end)
    assert.has_error(function() list:gc { only = 2 } end)
    assert.are.equal(0, probed)
    assert.are.equal(3, #list)
  end)
end)

describe("one list per uffd, whatever a checker callback does", function()
  it("a register callback that puts the uffd into a second list is refused; both lists stay as they were", function()
    local u
    list, checker, u, ctx = fixture(2)
    local c2 = new_fake_checker()
    local ctx2 = assert(ufl.waitctx())
    local list2 = assert(ufl.list(c2:create_fake_uffd(), c2, ctx2))
    list:set_num_static_devices(0)
    local inner_ok, inner_err
    checker.register = function(_, x)
      inner_ok, inner_err = pcall(list2.register, list2, x)
      return true
    end
    assert.is_true(list:register(u[1]))
    assert.is_false(inner_ok)
    assert.matches("uffd already in a list", inner_err)
    assert.are.equal(1, #list2)
    assert.are.equal(2, u[1]:index())
    -- propagating the refusal fails the outer register: u[2] is nobody's
    checker.register = function(_, x) return list2:register(x) end
    local r, msg = list:register(u[2])
    assert.is_nil(r)
    assert.matches("^register: checker register: .*uffd already in a list", msg)
    assert.is_nil(u[2]:index())
    assert.are.equal(2, #list)
    assert.are.equal(1, #list2)
    -- and it can go into list2 now, properly
    assert.is_false(list2:register(u[2]))
    -- gc of either list never touches the other's uffds
    checker:mark_as_dead(u[1])
    assert.are.equal(1, list:gc())
    list2:set_num_static_devices(0)
    assert.are.equal(0, list2:gc())
    list2:close(); ctx2:close(); c2:close()
  end)

  it("a register callback cannot close the uffd being registered", function()
    local u
    list, checker, u, ctx = fixture(1)
    list:set_num_static_devices(0)
    local ok, err
    checker.register = function(_, x) ok, err = pcall(x.close, x); return true end
    assert.is_true(list:register(u[1]))
    assert.is_false(ok)
    assert.matches("belongs to a list", err)
    assert.is_false(u[1]:is_closed())
  end)
end)

describe("remove, quarantine, gc options: closed lists and collected uffds", function()
  it("raise on a closed list", function()
    list, checker, _, ctx = dynamic(1)
    list:close()
    for _, f in ipairs {
      function() list:remove(2) end,
      function() list:quarantine(1) end,
      function() list:is_quarantined(1) end,
      function() list:gc { budget = 1 } end,
      function() list:gc { only = { 1 } } end,
    } do
      assert.has_error(f, "attempt to use a closed uffdlist.list")
    end
  end)

  it("a removed uffd dropped by Lua is closed by its __gc (the caller's now)", function()
    local child = require "spec.helpers.child"
    list, checker, _, ctx = dynamic(0)
    local e = assert(ufl.eventfd())
    do -- u only in the list afterwards
      local u = assert(ufl.adopt(assert(unistd.dup(e:fd())), { check = false }))
      assert.is_true(list:register(u))
    end
    collectgarbage(); collectgarbage()
    local before = child.count_fds()
    -- result dropped at once (in its own frame: no stack slot keeps it)
    assert.is_true((function() return list:remove(2) ~= nil end)())
    collectgarbage(); collectgarbage()
    assert.are.equal(before - 1, child.count_fds())
    assert.are.equal(1, #list)
    e:close()
  end)
end)

-- The list holds every entry's userdata itself (src/lua_list.c, ANCHORS):
-- an entry nobody else holds stays alive and is the very object get, wait
-- and the checker's callbacks hand out; an entry let go is the caller's
-- (remove) or closed (gc, close), and nothing of it stays in the list.
describe("the list holds its entries", function()
  local function weak() return setmetatable({}, { __mode = "k" }) end
  local function full_gc() collectgarbage(); collectgarbage() end
  local function loose_uffd(e) -- in no table of the spec's
    return assert(ufl.adopt(assert(unistd.dup(e:fd())), { check = false }))
  end

  it("an entry only the list holds stays open: the same object through get, wait, callbacks", function()
    list, checker, _, ctx = dynamic(0)
    local e = assert(ufl.eventfd())
    local seen = weak()
    checker.register = function(_, u) seen[u] = "register"; return true end
    checker.is_dead = function(_, u) seen[u] = "is_dead"; return false end
    for _ = 1, 3 do assert.is_true(list:register(loose_uffd(e))) end
    full_gc()
    assert.is_true(e:write(1))
    local out = {}
    assert.are.equal(3, list:wait(0, out))   -- main's eventfd is not e's
    table.sort(out)
    assert.are.same({ 2, 3, 4 }, out)
    for i = 2, 4 do
      local u = list:get(i)
      assert.is_false(u:is_closed())
      assert.are.equal(i, u:index())
      assert.are.equal("register", seen[u])
    end
    assert.are.equal(0, list:gc())
    for i = 2, 4 do assert.are.equal("is_dead", seen[list:get(i)]) end
    e:close()
  end)

  it("entries let go by remove, gc and close are collectable, and register/remove cycles hold nothing more", function()
    list, checker, _, ctx = dynamic(0)
    local e = assert(ufl.eventfd())
    local gone = weak()
    local function cycle(track)
      local u = loose_uffd(e)
      if track then gone[u] = true end
      assert.is_true(list:register(u))
      list:remove(#list):close()
    end
    for _ = 1, 100 do cycle(true) end
    full_gc()
    assert.is_nil(next(gone))
    local kb = collectgarbage("count")
    for _ = 1, 2000 do cycle(false) end
    full_gc()
    assert.is_true(collectgarbage("count") - kb < 4, "held more after 2000 cycles")
    -- gc: the collected one is closed and let go; the moved one is kept
    do -- the dead one is held by the list alone
      local dead = loose_uffd(e)
      gone[dead] = true
      assert.is_true(list:register(dead))
      assert.is_true(list:register(loose_uffd(e)))
    end
    checker.is_dead = function(_, u) return gone[u] == true end
    full_gc()
    assert.are.equal(1, list:gc())
    full_gc()
    assert.is_nil(next(gone))
    local kept = list:get(2)
    assert.is_false(kept:is_closed())
    assert.are.equal(2, kept:index())
    -- close: every entry closed and let go
    gone[kept] = true
    kept = nil -- luacheck: ignore
    list:close()
    full_gc()
    assert.is_nil(next(gone))
    e:close()
  end)

  it("a register that runs out of memory raises and changes nothing; the uffd registers afterwards", function()
    list, checker, _, ctx = fixture(0)
    assert.is_true(list:set_num_static_devices(100))
    local e = assert(ufl.eventfd())
    local us = {}
    for i = 1, 40 do us[i] = loose_uffd(e) end
    local failed, err
    for i = 1, 40 do
      local ok, r = memcap.pcall(list.register, list, us[i])
      if not ok then failed, err = i, r; break end
      assert.is_false(r)
    end
    assert.is_not_nil(failed, "no register needed memory")
    assert.matches("not enough memory", tostring(err))
    assert.are.equal(failed, #list)   -- the main uffd and those before
    assert.is_nil(us[failed]:index())
    assert.is_false(us[failed]:is_closed())
    assert.is_false(list:register(us[failed]))
    for i = failed + 1, 40 do assert.is_false(list:register(us[i])) end
    assert.are.equal(41, #list)
    for i = 2, 41 do assert.are.equal(us[i - 1], list:get(i)) end
    e:close()
  end)

  it("a refused register holds nothing: the uffd is the caller's, and get never hands it out", function()
    list, checker, _, ctx = dynamic(0)
    local e = assert(ufl.eventfd())
    local gone = weak()
    checker.register = function() return nil, "refused", 1 end
    do
      local u = loose_uffd(e)
      gone[u] = true
      local r, msg = list:register(u)
      assert.is_nil(r)
      assert.matches("refused", msg)
      assert.is_nil(u:index())
    end
    full_gc()
    assert.is_nil(next(gone))
    assert.are.equal(1, #list)
    assert.is_nil(list:get(2))
    e:close()
  end)
end)
