-- Real userfaultfds of real child processes: faults really raised by a
-- child, really served by the parent, deaths really detected by the real
-- checker.  (The fake-uffd specs are in list_spec.lua.)
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local child = require "spec.helpers.child"

local PAGE = ufl.page_size()
local E = ufl.errno

-- Pattern of page i: easy to tell apart and to check.
local function pattern(i) return string.rep(string.char(65 + i % 26), PAGE) end

-- Receives the uffd the child sent, registering `map` on it for MISSING.
local function receive_uffd(c, map)
  local u = assert(ufl.recv(c.sock))
  if map then assert(u:register(map:addr(), map:len())) end
  return u
end

-- The child's side: create a uffd, send it, wait for "go".
local function send_own_uffd(sock, features)
  local u = assert(ufl.create(features))
  assert(u:send(sock))
  return child.await(sock)
end

-- Reads the next pagefault of u, waiting on a wait context.
local function next_fault(u, ctx, out)
  for _ = 1, 200 do
    local n = ctx:wait(50)
    if n > 0 then
      local k = assert(u:read_events(out))
      for i = 1, k do
        if out[i].kind == "pagefault" then return out[i] end
      end
    end
  end
  error("no page fault within 10 s")
end

describe("real kernel", function()
  it("serves a child's faults with copy and zeropage; the child sees the bytes", function()
    local map = assert(ufl.mmap_anon(2 * PAGE, true))
    local c = child.spawn(function(sock)
      if not send_own_uffd(sock) then return false end
      return map:read(0, PAGE) == pattern(0)
         and map:read(PAGE, PAGE) == string.rep("\0", PAGE)
    end)
    local u = receive_uffd(c, map)
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(u, "child"))
    child.signal(c.sock)
    local out = {}
    local ev = next_fault(u, ctx, out)
    assert.are.equal(map:addr(), ev.address - ev.address % PAGE)
    assert.are.equal(PAGE, u:copy(map:addr(), pattern(0)))
    ev = next_fault(u, ctx, out)
    assert.are.equal(map:addr() + PAGE, ev.address - ev.address % PAGE)
    assert.are.equal(PAGE, u:zeropage(map:addr() + PAGE, PAGE))
    assert.are.equal(0, child.reap(c))
    ctx:close(); u:close(); map:close()
  end)

  it("reports 'page exists' for a page already there", function()
    local map = assert(ufl.mmap_anon(PAGE, true))
    local c = child.spawn(function(sock) return send_own_uffd(sock) end)
    local u = receive_uffd(c, map)
    assert.are.equal(PAGE, u:copy(map:addr(), pattern(1)))
    local ok, msg, errno = u:copy(map:addr(), pattern(1))
    assert.is_nil(ok)
    assert.are.equal(E.EEXIST, errno)
    assert.matches("exist", msg)
    child.signal(c.sock)
    assert.are.equal(0, child.reap(c))
    u:close(); map:close()
  end)

  it("reports 'process gone' (ESRCH) once the child exited", function()
    local map = assert(ufl.mmap_anon(PAGE, true))
    local c = child.spawn(function(sock) return send_own_uffd(sock) end)
    local u = receive_uffd(c, map)
    child.signal(c.sock)
    assert.are.equal(0, child.reap(c))
    local ok, msg, errno = u:zeropage(map:addr(), PAGE)
    assert.is_nil(ok)
    assert.are.equal(E.ESRCH, errno)
    assert.matches("gone", msg)
    ok, msg, errno = u:register(map:addr(), PAGE)
    assert.is_nil(ok)
    assert.are.equal(E.ESRCH, errno)
    assert.matches("^register: process gone", msg)
    u:close(); map:close()
  end)

  it("finds a dead child with the real checker and gc closes its uffd", function()
    local checker = assert(ufl.checker()) -- before any fork: children share its page
    local main = assert(ufl.create())
    local list = assert(ufl.list(main, checker))
    assert.is_true(list:set_num_static_devices(0))
    local alive = child.spawn(function(sock) return send_own_uffd(sock) end)
    local dying = child.spawn(function(sock) return send_own_uffd(sock) end)
    local ua, ud = receive_uffd(alive), receive_uffd(dying)
    assert.is_true(list:register(ua))
    assert.is_true(list:register(ud))
    assert.is_false(checker:is_dead(ud))
    assert.are.equal(0, list:gc())
    child.signal(dying.sock)
    assert.are.equal(0, child.reap(dying))
    assert.is_true(checker:is_dead(ud))
    local before = child.count_fds()
    assert.are.equal(1, list:gc())
    assert.are.equal(before - 1, child.count_fds())
    assert.is_true(ud:is_closed())
    assert.are.equal(2, list:len())
    assert.are.equal(ua, list:get(2))
    assert.is_false(ua:is_closed())
    child.signal(alive.sock)
    assert.are.equal(0, child.reap(alive))
    list:close(); checker:close()
    assert.is_true(main:is_closed() and ua:is_closed())
  end)

  it("delivers a fork event with the grandchild's uffd, which serves its faults", function()
    local features = ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_FORK
    local probe = ufl.create(features)
    if not probe then
      pending("UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE")
      return
    end
    probe:close()
    local map = assert(ufl.mmap_anon(PAGE, true))
    local c = child.spawn(function(sock)
      if not send_own_uffd(sock, features) then return false end
      local unistd, wait = posix.require "posix.unistd", posix.require "posix.sys.wait"
      local pid = unistd.fork() -- blocks until the monitor reads the FORK event
      if pid == 0 then
        unistd._exit(map:read(0, PAGE) == pattern(7) and 0 or 1)
      end
      local _, _, status = wait.wait(pid)
      return status == 0
    end)
    local u = receive_uffd(c, map)
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(u, "child"))
    child.signal(c.sock)
    local out, grand = {}, nil
    for _ = 1, 200 do
      if ctx:wait(50) > 0 then
        local n = assert(u:read_events(out))
        for i = 1, n do
          if out[i].kind == "fork" then grand = out[i].uffd end
        end
      end
      if grand then break end
    end
    assert.is_not_nil(grand)
    assert.are.equal("fork", grand:origin())
    assert(ctx:add(grand, "grandchild"))
    local ev = next_fault(grand, ctx, out)
    assert.are.equal(map:addr(), ev.address - ev.address % PAGE)
    assert.are.equal(PAGE, grand:copy(map:addr(), pattern(7)))
    assert.are.equal(0, child.reap(c))
    ctx:close(); grand:close(); u:close(); map:close()
  end)

  it("adopt reads a uffd's features from its fdinfo, checks `features`, "
    .. "and leaves the fd as it was when it refuses", function()
    local fcntl = posix.require "posix.fcntl"
    local u = assert(ufl.create(ufl.FEATURE_MISSING_SHMEM))
    local fd = assert(fcntl.fcntl(u:fd(), fcntl.F_DUPFD, 0)) -- no CLOEXEC
    local a, msg, errno, lack = ufl.adopt(fd, { features = ufl.DEFAULT_FEATURES })
    assert.is_nil(a)
    assert.are.equal(E.EOPNOTSUPP, errno)
    assert.matches("lacks features", msg)
    assert.are.equal(ufl.FEATURE_EVENT_REMOVE, lack)
    assert.are.equal(0, fcntl.fcntl(fd, fcntl.F_GETFD) % 2) -- untouched
    a = assert(ufl.adopt(fd))
    assert.are.equal(ufl.FEATURE_MISSING_SHMEM, a:features())
    assert.are.equal(u:ioctls(), a:ioctls())
    assert.are.equal(1, fcntl.fcntl(fd, fcntl.F_GETFD) % 2)  -- FD_CLOEXEC
    assert.is_false(a:restore_nonblock())
    assert.are.equal(0, fcntl.fcntl(fd, fcntl.F_SETFL, 0))
    assert.is_true(a:restore_nonblock())
    a:close()
    assert.has_error(function() a:restore_nonblock() end,
      "attempt to use a closed uffdlist.uffd")
    assert.has_error(function() ufl.adopt(u:fd(), { features = "x" }) end)
    assert.has_error(function() ufl.recv(u:fd(), { features = -1 }) end)
    assert.has_error(function() ufl.adopt(u:fd(), 5) end)
    u:close()
  end)

  it("refuses to adopt an fd that is not a userfaultfd", function()
    local e = assert(ufl.eventfd())
    local u, msg, errno = ufl.adopt(e:fd())
    assert.is_nil(u)
    assert.are.equal(E.ENOTTY, errno)
    assert.matches("userfaultfd", msg)
    assert.is_true(e:write(1)) -- still open and ours
    e:close()
  end)

  it("reports 'memory map changing' (EAGAIN) while a remove event is pending, then serves", function()
    local map = assert(ufl.mmap_anon(2 * PAGE, true))
    local c = child.spawn(function(sock)
      if not send_own_uffd(sock) then return false end
      map:remove(PAGE, PAGE) -- MADV_REMOVE: blocks until REMOVE is read
      child.signal(sock)
      return map:read(0, PAGE) == pattern(3)
    end)
    local u = receive_uffd(c, map)
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(u, "child"))
    child.signal(c.sock)
    assert.is_true(ctx:wait(5000) > 0) -- the REMOVE event is pending
    local ok, msg, errno, count = u:copy(map:addr(), pattern(3))
    assert.is_nil(ok)
    assert.are.equal(E.EAGAIN, errno)
    assert.is_nil(count)
    assert.matches("chang", msg)
    local out = {}
    local n = assert(u:read_events(out))
    assert.are.equal(1, n)
    assert.are.equal("remove", out[1].kind)
    assert.are.equal(map:addr() + PAGE, out[1].start)
    assert.is_true(child.await(c.sock)) -- madvise returned in the child
    -- EAGAIN may last a moment after the event is read: retry, bounded.
    local done
    for _ = 1, 1000 do
      done, _, errno = u:copy(map:addr(), pattern(3))
      if done or errno ~= E.EAGAIN then break end
      require("posix.time").nanosleep({ tv_sec = 0, tv_nsec = 1000000 })
    end
    assert.are.equal(PAGE, done)
    assert.are.equal(0, child.reap(c))
    ctx:close(); u:close(); map:close()
  end)
end)

describe("hot path", function()
  -- design.md: no allocation inside wait or event reads.  Counted in
  -- bytes of Lua heap with the collector stopped (not timed).
  it("read_events, wait and get allocate nothing once their tables exist", function()
    local u = assert(ufl.create())
    local ctx = assert(ufl.waitctx())
    local list = assert(ufl.list(assert(ufl.create()), { register = function() return true end,
      is_dead = function() return false end, reset = function() return true end }, ctx))
    local out, ready = {}, {}
    local function round()
      u:read_events(out)
      list:wait(0, ready)
      list:get(1)
    end
    -- From an empty trace cache (a full one is flushed at any time).
    if jit then jit.flush() end
    for _ = 1, 100 do round() end
    collectgarbage(); collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 10000 do round() end
    local per_round = (collectgarbage("count") - before) * 1024 / 10000
    collectgarbage("restart")
    assert.is_true(per_round < 1, ("%.1f bytes per round"):format(per_round))
    list:close(); ctx:close(); u:close()
  end)
end)
