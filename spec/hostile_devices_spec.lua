-- Hostile devices: real child processes that misbehave towards the memory
-- monitor (uffdlist.monitor over a real list with the real dead checker).
-- Each case asserts a clear error or correct handling, that no fd leaks,
-- and that the monitor still serves a well-behaved device afterwards.
--
-- The test process's own uffd is only ever the list's main entry; every
-- dynamic entry is a child's uffd (the real checker refuses our own with
-- EDEADLK).  The checker is created in before_each, before any fork, so
-- every child has its probe page.
--
-- Some children need a fault pending while their main thread does
-- something else: Lua has no threads, so those children start POSIX
-- threads through LuaJIT's FFI whose start routine is libc's strlen(3) on
-- a registered page — the thread faults there and stays blocked until the
-- monitor serves it; its result (strlen) tells which bytes it saw.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local child = require "spec.helpers.child"
local posix = require "spec.helpers.posix" -- the file is #luajit: only loaded elsewhere
local unistd = posix.require "posix.unistd"
local fcntl = posix.require "posix.fcntl"
local wait = posix.require "posix.sys.wait"
local signal = posix.require "posix.signal"
local poll = posix.require "posix.poll"
-- LuaJIT's FFI starts the device threads; the whole file is tagged #luajit
-- so PUC Lua (make test-lua51) loads it without running it.
local has_ffi, ffi = pcall(require, "ffi")

for _, decl in ipairs(has_ffi and {
  "typedef unsigned long uffdlist_spec_pthread_t;",
  "int pthread_create(uffdlist_spec_pthread_t *, const void *, void *(*)(void *), void *);",
  "int pthread_join(uffdlist_spec_pthread_t, void **);",
  "size_t strlen(const char *);",
  "long syscall(long, ...);",
  "int ioctl(int, unsigned long, ...);",
  "struct uffdlist_spec_uffdio_api { uint64_t api, features, ioctls; };",
} or {}) do
  pcall(ffi.cdef, decl) -- already declared when another spec file did
end

local PAGE = ufl.page_size()
local E = ufl.errno
local WAIT_MS = 10000 -- bound of every wait for a child

-- Under valgrind (tools/check.sh sets UFFDLIST_UNDER_VALGRIND) a child's
-- threads run one at a time, and a thread blocked on a uffd fault inside
-- a load keeps the others from running: the specs whose device needs a
-- second thread to run while one is blocked cannot work there.
-- tools/check.sh leaves them out of its valgrind run by this tag.
local function it_threads(name, fn) return it(name .. " #threads", fn) end

-- Page i of a device with tag t: one letter repeated.
local pattern_cache = {}
local function pattern(t, i)
  local c = string.char(65 + (t * 7 + i) % 26)
  local p = pattern_cache[c]
  if not p then
    p = string.rep(c, PAGE)
    pattern_cache[c] = p
  end
  return p
end

-- A page strlen(3) stops on at its last byte: PAGE - 1 letters, then NUL.
local STR_PAGE = string.rep("s", PAGE - 1) .. "\0"

-- Starts a thread running strlen(addr) (it faults on addr's page).
local function start_strlen_thread(addr)
  local th = ffi.new("uffdlist_spec_pthread_t[1]")
  local fn = ffi.cast("void *(*)(void *)", ffi.C.strlen)
  assert(ffi.C.pthread_create(th, nil, fn, ffi.cast("void *", addr)) == 0)
  return th
end

local function join_strlen_thread(th)
  local ret = ffi.new("void *[1]")
  assert(ffi.C.pthread_join(th[0], ret) == 0)
  return tonumber(ffi.cast("uintptr_t", ret[0]))
end

-- A uffd made by hand (x86-64 numbers: SYS_userfaultfd 323, UFFDIO_API
-- _IOWR(0xAA, 0x3F, struct uffdio_api)): `flags` for userfaultfd(2)
-- (0: neither O_CLOEXEC nor O_NONBLOCK), UFFDIO_API with `features`
-- unless features is nil.  Returns the fd.
local function raw_uffd(flags, features)
  local fd = tonumber(ffi.C.syscall(323, ffi.cast("long", flags)))
  if fd < 0 then -- unprivileged: UFFD_USER_MODE_ONLY (1)
    fd = tonumber(ffi.C.syscall(323, ffi.cast("long", flags + 1)))
  end
  assert(fd >= 0, "userfaultfd(2) failed")
  if features then
    local a = ffi.new("struct uffdlist_spec_uffdio_api")
    a.api, a.features = 0xAA, features
    assert(ffi.C.ioctl(fd, ffi.cast("unsigned long", 0xc018aa3f), a) == 0,
      "UFFDIO_API failed")
  end
  return fd
end

-- Whether userfaultfd(2) itself can be called here (valgrind, for one,
-- does not know the syscall: it answers ENOSYS).
local function raw_uffd_works()
  if not has_ffi then return false end
  local ok, fd = pcall(raw_uffd, 0x80000 + 0x800, nil) -- O_CLOEXEC|O_NONBLOCK
  if ok then require("posix.unistd").close(fd) end
  return ok
end

-- Whether a flag bit (a power of two) is set.
local function has_bit(x, bit) return math.floor(x / bit) % 2 == 1 end

-- The 4 bytes of a C int (little-endian, x86-64).
local function int_bytes(n)
  return string.char(n % 256, math.floor(n / 256) % 256,
    math.floor(n / 65536) % 256, math.floor(n / 16777216) % 256)
end

describe("hostile devices #luajit", function()
  local fds0, checker, main, list, m, errors, regions, maps, kids

  -- ------------------------------------------------------------ children

  local function spawn(fn)
    local c = child.spawn(fn)
    kids[#kids + 1] = c
    return c
  end

  -- Non-blocking reap (helpers/child.lua); true once reaped.  Sets
  -- c.exit_how ("exited"|"killed"...) and c.exit_code (status or signal).
  local function try_reap(c)
    if c.exit_how then return true end
    local code, how, sig = child.try_reap(c)
    if code then
      c.exit_how, c.exit_code = "exited", code
    elseif how then
      c.exit_how, c.exit_code = how, sig
    end
    return c.exit_how ~= nil
  end

  -- Steps the monitor until cond() holds; fails after WAIT_MS.
  local function step_until(cond, what)
    local deadline = ufl.monotonic_ms() + WAIT_MS
    while not cond() do
      assert(ufl.monotonic_ms() < deadline, "timed out waiting for " .. what)
      m:step(10)
    end
  end

  -- Serves faults until the child exits; returns how, status.
  local function await_exit(c)
    step_until(function() return try_reap(c) end, "child " .. c.pid .. " to exit")
    return c.exit_how, c.exit_code
  end

  -- Reads one byte the child sent (bounded).
  local function await_child(c)
    assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS), "child did not answer")
    return child.await(c.sock)
  end

  -- A shared anonymous mapping made before forking; its pages are filled
  -- by content(i) (nil: zero pages) when a child faults on them.
  local function region(npages, content)
    local map = assert(ufl.mmap_anon(npages * PAGE, true))
    maps[#maps + 1] = map
    regions[#regions + 1] = { addr = map:addr(), len = map:len(),
      content = content, faults = 0 }
    return map, regions[#regions]
  end

  local function region_of(addr)
    for _, r in ipairs(regions) do
      if addr >= r.addr and addr < r.addr + r.len then return r end
    end
  end

  -- The monitor's fill: the region's content, else a zero page (also for
  -- faults outside the regions: under valgrind a child's exit-time leak
  -- scan touches every page it has, the checker's probe page included).
  local function fill(u, addr, len)
    local r = region_of(addr)
    local data = r and r.content and r.content((addr - r.addr) / PAGE)
    if data then
      return u:copy(addr, data, len)
    end
    return u:zeropage(addr, len)
  end

  -- The default pagefault handler: counts the faults of each region.
  local function count_and_serve(mm, u, ev)
    local r = region_of(ev.address)
    if r then r.faults = r.faults + 1 end
    return mm:serve(u, ev)
  end

  -- The child's side of a device: a uffd with `map` registered, sent.
  local function send_uffd(sock, map, features)
    local u = assert(ufl.create(features))
    assert(u:register(map:addr(), map:len()))
    assert(u:send(sock))
    return u
  end

  -- A well-behaved device: on "go" it reads its pages and checks them.
  local good_tags = 0
  local function good_device(npages)
    good_tags = good_tags + 1
    local tag = good_tags
    local map, reg = region(npages, function(i) return pattern(tag, i) end)
    local c = spawn(function(sock)
      send_uffd(sock, map)
      if not child.await(sock) then return false end
      for i = 0, npages - 1 do
        if map:read(i * PAGE, PAGE) ~= pattern(tag, i) then return false end
      end
      return true
    end)
    c.u = assert(ufl.recv(c.sock))
    c.region = reg
    return c
  end

  -- Registers a good device, lets it run and asserts its faults were
  -- served and its bytes right; then gc collects it.
  local function assert_still_serves()
    local npages = 4
    local c = good_device(npages)
    local reg = m.stats.registered
    m:register(c.u)
    assert.are.equal(reg + 1, m.stats.registered)
    assert.is_not_nil(c.u:index())
    child.signal(c.sock)
    local how, status = await_exit(c)
    assert.are.same({ "exited", 0 }, { how, status })
    assert.are.equal(npages, c.region.faults)
    local collected = m.stats.collected
    m:gc()
    assert.are.equal(collected + 1, m.stats.collected)
    assert.is_true(c.u:is_closed())
  end

  -- ------------------------------------------------------ setup, teardown

  before_each(function()
    collectgarbage(); collectgarbage()
    fds0 = child.count_fds()
    kids, regions, maps, errors = {}, {}, {}, {}
    checker = assert(ufl.checker())   -- before any fork
    main = assert(ufl.create())
    list = assert(ufl.list(main, checker))
    m = monitor.new {
      list = list, policy = {}, batch = 4, fill = fill,
      clock = ufl.monotonic_ms,
      on_error = function(_, what, msg, errno)
        errors[#errors + 1] = { what = what, msg = msg, errno = errno }
      end,
    }
    m.handlers.pagefault = count_and_serve
    m:set_num_static_devices(0)
  end)

  after_each(function()
    for _, c in ipairs(kids) do
      if not try_reap(c) then child.kill(c) end
    end
    m:close()
    local ctx = list:waitctx()
    list:close()
    ctx:close()
    checker:close()
    for _, map in ipairs(maps) do map:close() end
    collectgarbage(); collectgarbage()
    assert.are.equal(fds0, child.count_fds(), "fd leaked")
  end)

  -- ------------------------------------------------------ wrong fds sent

  it("a device sending an eventfd, a pipe or /dev/null instead of a uffd: recv says ENOTTY and keeps no fd", function()
    local makers = {
      eventfd = function() return assert(ufl.eventfd()):fd() end,
      pipe = function() return (assert(unistd.pipe())) end,
      devnull = function() return assert(fcntl.open("/dev/null", fcntl.O_RDONLY)) end,
    }
    for kind, make in pairs(makers) do
      local c = spawn(function(sock)
        local fake = assert(ufl.adopt(make(), { check = false, own = false }))
        assert(fake:send(sock))
        return true
      end)
      assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
      local n0 = child.count_fds()
      local u, msg, errno = ufl.recv(c.sock)
      assert.is_nil(u, kind)
      assert.are.equal(E.ENOTTY, errno, kind)
      assert.matches("userfaultfd", msg)
      assert.are.equal(n0, child.count_fds(), kind .. ": received fd kept")
      assert.are.same({ "exited", 0 }, { await_exit(c) })
    end
    assert.are.same({}, errors)
    assert_still_serves()
  end)

  it("a device sending garbage bytes without an fd: EBADMSG, no fd; "
    .. "a uffd sent after them still arrives and is served", function()
    local GARBAGE = "garbage!"
    local map = region(2, function(i) return pattern(9, i) end)
    local c = spawn(function(sock)
      assert.are.equal(#GARBAGE, unistd.write(sock, GARBAGE))
      send_uffd(sock, map)
      if not child.await(sock) then return false end
      return map:read(0, PAGE) == pattern(9, 0)
        and map:read(PAGE, PAGE) == pattern(9, 1)
    end)
    local n0 = child.count_fds()
    -- recv reads one byte per message: each garbage byte is one EBADMSG
    -- (a monitor would drop such a connection on the first).
    local bad, u, msg, errno = 0
    repeat
      assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
      u, msg, errno = ufl.recv(c.sock)
      if not u then
        assert.are.equal(E.EBADMSG, errno)
        assert.are.equal("string", type(msg))
        assert.are.equal(n0, child.count_fds())
        bad = bad + 1
      end
    until u or bad > #GARBAGE
    assert(bad >= 1 and bad <= #GARBAGE, "EBADMSG count " .. bad)
    assert.is_not_nil(u, "the uffd sent after the garbage")
    assert.is_true(ufl.is_userfaultfd(u:fd()))
    m:register(u)
    assert.is_true(u:index() ~= nil)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert.is_true(u:is_closed())
    assert_still_serves()
  end)

  it("a device closing its socket before sending: ECONNRESET, every time", function()
    local c = spawn(function() return true end)
    assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS)) -- EOF
    local n0 = child.count_fds()
    for _ = 1, 2 do
      local u, msg, errno = ufl.recv(c.sock)
      assert.is_nil(u)
      assert.are.equal(E.ECONNRESET, errno)
      assert.are.equal("string", type(msg))
    end
    assert.are.equal(n0, child.count_fds())
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert_still_serves()
  end)

  it("a device sending an fd number as plain bytes: EBADMSG; the number is never taken as an fd", function()
    -- The number is that of our main uffd, open here; the child closes its
    -- own copy first, so what it sends is a closed fd's number.
    local n = main:fd()
    local c = spawn(function(sock)
      assert(unistd.close(n))
      assert.are.equal(4, unistd.write(sock, int_bytes(n)))
      return true
    end)
    local n0 = child.count_fds()
    local bad = 0
    while true do
      assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
      local u, _, errno = ufl.recv(c.sock)
      if errno ~= E.EBADMSG then
        assert.is_nil(u)
        assert.are.equal(E.ECONNRESET, errno) -- the bytes are used up
        break
      end
      bad = bad + 1
      assert(bad <= 4)
    end
    assert(bad >= 1)
    assert.are.equal(n0, child.count_fds())
    assert.is_false(main:is_closed())
    assert.is_true(ufl.is_userfaultfd(n)) -- ours, untouched
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert_still_serves()
  end)

  -- ------------------------------------------------------ dead devices

  it("a device SIGKILLed before its uffd is registered: register reports the process gone, nothing leaks", function()
    local n0 = child.count_fds()
    local c = spawn(function(sock)
      assert(ufl.create():send(sock))
      child.await(sock) -- blocks until killed
      return true
    end)
    local u = assert(ufl.recv(c.sock))
    signal.kill(c.pid, signal.SIGKILL)
    step_until(function() return try_reap(c) end, "the killed child")
    assert.are.same({ "killed", signal.SIGKILL }, { c.exit_how, c.exit_code })
    -- Real behaviour: a dynamic entry is first registered with the real
    -- checker, whose UFFDIO_REGISTER of its probe page needs the uffd's
    -- mm; the process is gone (exit released its mm before it became a
    -- zombie), so the kernel says ENOMEM, reported as ESRCH (fs/
    -- userfaultfd.c: mmget_not_zero() fails).  The uffd is never listed,
    -- so there is nothing for a later gc to collect; it stays the caller's.
    local len = #list
    local r, msg, errno = list:register(u)
    assert.is_nil(r)
    assert.are.equal(E.ESRCH, errno)
    assert.are.equal("register: process gone", msg)
    assert.are.equal(len, #list)
    assert.is_false(u:is_closed())
    assert.is_nil(u:index())
    -- Through the monitor: the error goes to on_error and the uffd is
    -- closed (doc/monitor-api.md: m:register).
    local reg = m.stats.registered
    m:register(u)
    assert.are.equal(reg, m.stats.registered)
    assert.are.equal(1, #errors)
    assert.are.equal("register", errors[1].what)
    assert.are.equal(E.ESRCH, errors[1].errno)
    assert.is_true(u:is_closed())
    assert.are.equal(0, m:gc())
    assert.are.equal(len, #list)
    assert.are.equal(n0, child.count_fds())
    errors[1] = nil
    assert_still_serves()
  end)

  it("a device SIGKILLed after its uffd was registered: the next gc collects it", function()
    local n0 = child.count_fds()
    local c = spawn(function(sock)
      assert(ufl.create():send(sock))
      child.await(sock)
      return true
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    assert.are.equal(2, u:index())
    assert.are.equal(0, m:gc())
    signal.kill(c.pid, signal.SIGKILL)
    step_until(function() return try_reap(c) end, "the killed child")
    assert.is_true(checker:is_dead(u))
    assert.are.equal(1, m:gc())
    assert.is_true(u:is_closed())
    assert.are.equal(1, #list)
    assert.are.equal(n0, child.count_fds())
    assert.are.same({}, errors)
    assert_still_serves()
  end)

  -- ------------------------------------------------------ fault storm

  it_threads("a device faulting in a tight loop does not starve another (batch 4)", function()
    -- A: 16 threads, each walking its own 1024 pages with strlen: every
    -- page is a fault, served with letters (no NUL) so the walk goes on,
    -- up to 16 faults pending at once.  Once B is done, A's pages are
    -- zero pages: each walk ends at its next fault — except the first page
    -- of each walk, always letters.  (It was not: on a loaded machine a
    -- thread could be scheduled for its first access only after B was
    -- done, saw a zero page at once, strlen 0, and A exited 1: the 3
    -- failures in 46 runs.  Each walk now ends after at least one page.)
    local T, P, K = 16, 1024, 32
    local b_done = false
    local amap = assert(ufl.mmap_anon(T * P * PAGE, false))
    maps[#maps + 1] = amap
    regions[#regions + 1] = { addr = amap:addr(), len = amap:len(),
      faults = 0,
      content = function(i)
        return (not b_done or i % P == 0) and pattern(0, 0) or nil
      end }
    local bmap = region(K, function(i) return pattern(5, i) end)
    local a = spawn(function(sock)
      send_uffd(sock, amap)
      if not child.await(sock) then return false end
      local th = {}
      for t = 0, T - 1 do
        th[t] = start_strlen_thread(amap:addr() + t * P * PAGE)
      end
      local ok = true
      for t = 0, T - 1 do
        local n = join_strlen_thread(th[t])
        ok = ok and n % PAGE == 0 and n > 0 -- stopped at a zero page's start
      end
      return ok
    end)
    local b = spawn(function(sock)
      send_uffd(sock, bmap)
      if not child.await(sock) then return false end
      for i = 0, K - 1 do
        if bmap:read(i * PAGE, PAGE) ~= pattern(5, i) then return false end
      end
      return true
    end)
    local ua, ub = assert(ufl.recv(a.sock)), assert(ufl.recv(b.sock))
    m:register(ua)
    m:register(ub)
    -- Faults per round of each device.
    local per_round = { [ua] = {}, [ub] = {} }
    local served = { [ua] = 0, [ub] = 0 }
    m.handlers.pagefault = function(mm, u, ev)
      local r = mm.stats.rounds
      local t = per_round[u]
      t[r] = (t[r] or 0) + 1
      local how = mm:serve(u, ev)
      assert(how == "done", "serve: " .. tostring(how))
      served[u] = served[u] + 1
    end
    child.signal(a.sock)
    step_until(function() return served[ua] >= 100 end, "A's storm")
    child.signal(b.sock)
    -- Faults of u not read yet: the "pending:" line of its fdinfo
    -- (fs/userfaultfd.c, userfaultfd_show_fdinfo).
    local function unread(u)
      local f = assert(io.open("/proc/self/fdinfo/" .. u:fd()))
      local n = tonumber(f:read("*a"):match("pending:%s*(%d+)"))
      f:close()
      return n
    end
    local late, full_rounds, a_during_b = 0, 0, 0
    step_until(function()
      -- A full batch of A waits before each round (bounded: A's woken
      -- threads must be scheduled to fault again; on a loaded machine
      -- that can take a while, and then A gave less than a batch in every
      -- round B was served: the other flake of this spec).
      local t0 = ufl.monotonic_ms()
      while unread(ua) < m.batch and ufl.monotonic_ms() - t0 < 2000 do
        require("posix.time").nanosleep({ tv_sec = 0, tv_nsec = 200000 })
      end
      -- B's fault already pending before the round must be served in it.
      local pending = poll.rpoll(ub:fd(), 0) == 1
      local before, a_before = served[ub], served[ua]
      local r = m.stats.rounds + 1
      m:step(10)
      if pending and served[ub] == before then late = late + 1 end
      if served[ub] > before and per_round[ua][r] == m.batch then
        full_rounds = full_rounds + 1
      end
      a_during_b = a_during_b + served[ua] - a_before
      return served[ub] == K
    end, "B's faults")
    b_done = true
    assert.are.equal(0, late, "rounds in which B's pending fault was not served")
    assert(full_rounds >= 1, "B was never served in a round where A gave a full batch")
    assert(a_during_b >= K, "A did not keep faulting while B was served")
    for _, n in pairs(per_round[ua]) do
      assert(n <= 4, "more than batch events of A in one round")
    end
    assert.are.same({ "exited", 0 }, { await_exit(b) })
    assert.are.same({ "exited", 0 }, { await_exit(a) })
    assert(served[ua] < T * P, "A's walks ended early")
    assert.are.equal(0, m.stats.parked)
    assert.are.same({}, errors)
    assert.are.equal(2, m:gc())
  end)

  -- ---------------------------------------- map changes while faults wait

  -- A device whose thread faults on page 0 of `map`; when the monitor
  -- has read that fault, the device's main thread runs change(map) (which
  -- blocks until the monitor reads the event it raises), then tells the
  -- monitor and joins the thread; then runs after(map, strlen_result).
  local function changing_device(map, features, change, after)
    return spawn(function(sock)
      send_uffd(sock, map, features)
      if not child.await(sock) then return false end
      local th = start_strlen_thread(map:addr())
      if not child.await(sock) then return false end -- "change now"
      change(map)
      child.signal(sock)                              -- "changed"
      return after(map, join_strlen_thread(th))
    end)
  end

  -- The pagefault handler for those devices: on the first fault of u, has
  -- the device change its map, waits (bounded) until the event it raises
  -- is pending, then serves the fault, which must park (EAGAIN).
  local function park_first_fault(c, u, log)
    local first = true
    m.handlers.pagefault = function(mm, fu, ev)
      if fu == u and first then
        first = false
        child.signal(c.sock)
        assert(poll.rpoll(u:fd(), WAIT_MS) == 1, "no event after the change")
        log.first = mm:serve(fu, ev)
      else
        count_and_serve(mm, fu, ev)
      end
    end
  end

  it_threads("a device removing memory (MADV_REMOVE) while its fault is "
    .. "pending: parked, retried after REMOVE, right bytes", function()
    local map = region(4, function(i) return i == 0 and STR_PAGE or pattern(3, i) end)
    local c = changing_device(map, nil,
      function(mp) assert(mp:remove(2 * PAGE, 2 * PAGE)) end,
      function(mp, n)
        return n == PAGE - 1 and mp:read(2 * PAGE, PAGE) == pattern(3, 2)
      end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    local log = {}
    park_first_fault(c, u, log)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.equal("parked", log.first)
    assert(m.stats.parked >= 1, "parked")
    assert(m.stats.retried >= 1, "retried")
    assert.are.equal(1, m.stats.events.remove)
    assert.are.equal(0, m.stats.retry_timeouts)
    assert.are.equal(0, m:parked_count())
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  it("a fill tried while a REMOVE is pending is parked by m:serve and done once REMOVE is read", function()
    -- The brief's single-threaded variant: nothing faults; the monitor
    -- fills page 0 ahead of time while the device sits in madvise.
    local map, reg = region(2, function(i) return pattern(4, i) end)
    local c = spawn(function(sock)
      send_uffd(sock, map)
      if not child.await(sock) then return false end
      assert(map:remove(PAGE, PAGE)) -- blocks until REMOVE is read
      child.signal(sock)
      if not child.await(sock) then return false end
      return map:read(0, PAGE) == pattern(4, 0)
        and map:read(PAGE, PAGE) == pattern(4, 1)
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    child.signal(c.sock)
    assert(poll.rpoll(u:fd(), WAIT_MS) == 1, "REMOVE pending")
    assert.are.equal("parked", m:serve(u, { address = map:addr() }))
    assert.are.equal(1, m:parked_count())
    step_until(function() return m:parked_count() == 0 end, "the parked fill")
    assert(m.stats.parked >= 1 and m.stats.retried >= 1)
    assert.are.equal(1, m.stats.events.remove)
    assert.is_true(await_child(c))    -- madvise returned
    child.signal(c.sock)              -- now read
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.equal(1, reg.faults) -- page 1 only: page 0 was there
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  it_threads("a device unmapping memory while its fault is pending: a clear "
    .. "error (ENOENT) after UNMAP, its thread woken, the monitor serves the rest", function()
    local map = region(4, function(i) return i == 0 and STR_PAGE or pattern(2, i) end)
    local features = ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_UNMAP
    local c = changing_device(map, features,
      function(mp) mp:close() end,   -- munmap: blocks until UNMAP is read
      function() return true end)    -- never reached: see below
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    local log = {}
    park_first_fault(c, u, log)
    child.signal(c.sock)
    step_until(function() return #errors > 0 end, "the fill error")
    assert.are.equal("parked", log.first)
    assert.are.equal(1, m.stats.events.unmap)
    assert.are.equal(1, #errors)
    assert.are.equal("fill", errors[1].what)
    assert.are.equal(E.ENOENT, errors[1].errno)
    assert.are.equal(0, m:parked_count())
    assert.is_true(await_child(c)) -- munmap returned in the device
    -- The monitor woke the faulting thread after the failed fill: it
    -- retries its access to memory that is gone and the device dies of
    -- SIGSEGV, as any process touching unmapped memory does.
    local how, status = await_exit(c)
    if (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) then
      -- AddressSanitizer's SEGV handler reports it and exits with 1
      assert.are.same({ "exited", 1 }, { how, status })
    else
      assert.are.same({ "killed", signal.SIGSEGV }, { how, status })
    end
    errors[1] = nil
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)
  -- ------------------------------------------ issue 7: devices untrusted

  -- A new monitor over the same list, with device options.
  local function remonitor(dev)
    m:close()
    m = monitor.new {
      list = list, policy = {}, batch = 4, fill = fill,
      clock = ufl.monotonic_ms, device = dev,
      on_error = function(_, what, msg, errno)
        errors[#errors + 1] = { what = what, msg = msg, errno = errno }
      end,
    }
    m.handlers.pagefault = count_and_serve
  end

  -- list:quarantine comes with the list's remove/quarantine operations.
  local function needs_quarantine()
    if list.quarantine == nil then
      pending("needs list:quarantine (the list helper's branch)")
      return true
    end
  end

  local function errors_of(what)
    local out = {}
    for _, e in ipairs(errors) do
      if e.what == what then out[#out + 1] = e end
    end
    return out
  end

  -- n rounds of m:step(ms): how many found something ready, and how many
  -- took longer than ms plus a generous slack (a blocked read takes 3 s).
  local function idle_rounds(n, ms)
    local busy, slow = 0, 0
    for _ = 1, n do
      local t0 = ufl.monotonic_ms()
      if m:step(ms) > 0 then busy = busy + 1 end
      if ufl.monotonic_ms() - t0 > ms + 500 then slow = slow + 1 end
    end
    return busy, slow
  end

  it("a device clearing O_NONBLOCK on its uffd, then faulting: no step "
    .. "blocks, the flag is set again, the fault is served, the loop idles", function()
    local map, reg = region(2, function(i) return pattern(11, i) end)
    local c = spawn(function(sock)
      local u = send_uffd(sock, map)
      if not child.await(sock) then return false end
      local fl = fcntl.fcntl(u:fd(), fcntl.F_GETFL)
      assert(fcntl.fcntl(u:fd(), fcntl.F_SETFL, fl - fcntl.O_NONBLOCK))
      child.signal(sock)                                -- "cleared"
      if not child.await(sock) then return false end    -- "fault now"
      if map:read(0, PAGE) ~= pattern(11, 0) then return false end
      -- A monitor stuck in read(2) is freed by the next event: while the
      -- parent's "done" does not come, a REMOVE each second (then this
      -- exits 1, and the parent's steps took a second each).
      for k = 1, 20 do
        if poll.rpoll(sock, 1000) == 1 then return k == 1 end
        map:remove(0, PAGE)
      end
      return false
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    child.signal(c.sock)
    assert.is_true(await_child(c))
    assert.is_false(has_bit(fcntl.fcntl(u:fd(), fcntl.F_GETFL), fcntl.O_NONBLOCK))
    child.signal(c.sock)
    step_until(function() return reg.faults >= 1 end, "the fault")
    local busy, slow = idle_rounds(10, 10)
    child.signal(c.sock)                                -- "done"
    assert.are.equal(0, slow, "steps that blocked")
    assert.are.equal(0, busy, "steps that found the uffd ready (EPOLLERR)")
    assert.is_true(has_bit(fcntl.fcntl(u:fd(), fcntl.F_GETFL), fcntl.O_NONBLOCK))
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.equal(1, reg.faults)
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  it("a device clearing O_NONBLOCK before each fault: quarantined once, "
    .. "reported once, removable, and the loop idles", function()
    if needs_quarantine() then return end
    remonitor { max_flag_restores = 3 }
    local npages = 10
    local map, reg = region(npages, function(i) return pattern(13, i) end)
    local c = spawn(function(sock)
      local u = send_uffd(sock, map)
      if not child.await(sock) then return false end
      -- Clearing the flag alone wakes no epoll waiter; the fault after it
      -- makes epoll poll the uffd, which then says EPOLLERR.
      for i = 0, npages - 1 do
        local fl = fcntl.fcntl(u:fd(), fcntl.F_GETFL)
        if has_bit(fl, fcntl.O_NONBLOCK) then
          fcntl.fcntl(u:fd(), fcntl.F_SETFL, fl - fcntl.O_NONBLOCK)
        end
        map:read(i * PAGE, 1)
      end
      return child.await(sock)
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    child.signal(c.sock)
    step_until(function() return #errors_of("quarantine") > 0 end, "the quarantine")
    local faults = reg.faults
    local busy, slow = idle_rounds(10, 10)
    assert.are.equal(0, slow)
    assert.are.equal(0, busy, "a quarantined entry made the loop spin")
    assert.are.equal(faults, reg.faults)
    assert(faults >= 3 and faults < npages, "faults " .. faults)
    local q = errors_of("quarantine")
    assert.are.equal(1, #q)
    assert.matches("O_NONBLOCK", q[1].msg)
    assert.matches("^dynamic entry 2", q[1].msg)
    assert.is_true(list:is_quarantined(2))
    assert.are.equal(1, #errors)
    -- Removable: out of the list and closed.  The device still holds its
    -- own fd of the uffd, so its blocked fault stays blocked: kill it.
    local fds = child.count_fds()
    assert.is_true(m:remove(u))
    assert.is_true(u:is_closed())
    assert.are.equal(1, #list)
    assert.are.equal(fds - 1, child.count_fds())
    assert.are.equal(1, m.stats.removed)
    assert.is_false(try_reap(c))
    child.kill(c)
    c.exit_how = "killed"
    errors[1] = nil
    assert_still_serves()
  end)

  it("a device sending a uffd without UFFDIO_API: recv refuses it "
    .. "(EBADFD) and closes it", function()
    if not raw_uffd_works() then
      pending("userfaultfd(2) cannot be called here (valgrind?)")
      return
    end
    local c = spawn(function(sock)
      local fd = raw_uffd(fcntl.O_NONBLOCK, nil)
      assert(assert(ufl.adopt(fd, { check = false })):send(sock))
      return true
    end)
    assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
    local n0 = child.count_fds()
    local u, msg, errno = ufl.recv(c.sock)
    assert.is_nil(u)
    assert.are.equal(E.EBADFD, errno)
    assert.matches("UFFDIO_API", msg)
    assert.are.equal(n0, child.count_fds(), "the refused fd was kept")
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert_still_serves()
  end)

  it("a uffd without the features the monitor needs: recv{features=} "
    .. "refuses it, and so does m:register (device.features); nothing leaks", function()
    local c = spawn(function(sock)
      local u = assert(ufl.create(ufl.FEATURE_MISSING_SHMEM))
      assert(u:send(sock))
      assert(u:send(sock))
      return child.await(sock)
    end)
    local n0 = child.count_fds()
    assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
    local u, msg, errno, lack = ufl.recv(c.sock, { features = ufl.DEFAULT_FEATURES })
    assert.is_nil(u)
    assert.are.equal(E.EOPNOTSUPP, errno)
    assert.matches("lacks features", msg)
    assert.are.equal(ufl.FEATURE_EVENT_REMOVE, lack)
    assert.are.equal(n0, child.count_fds())
    remonitor { features = ufl.DEFAULT_FEATURES }
    u = assert(ufl.recv(c.sock))
    assert.are.equal(ufl.FEATURE_MISSING_SHMEM, u:features()) -- from fdinfo
    m:register(u)
    assert.is_true(u:is_closed())
    assert.are.equal(1, #errors)
    assert.are.equal("register", errors[1].what)
    assert.matches("lacks features", errors[1].msg)
    assert.are.equal(n0, child.count_fds())
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    errors[1] = nil
    assert_still_serves()
  end)

  it("a uffd with minor faults enabled is refused by a monitor that does "
    .. "not serve them", function()
    if not ufl.FEATURE_MINOR_SHMEM then return pending("no FEATURE_MINOR_SHMEM") end
    local c = spawn(function(sock)
      local u = assert(ufl.create(ufl.DEFAULT_FEATURES + ufl.FEATURE_MINOR_SHMEM))
      assert(u:send(sock))
      return child.await(sock)
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    assert.is_true(u:is_closed())
    assert.are.equal(1, #errors)
    assert.matches("does not serve minor faults", errors[1].msg)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    errors[1] = nil
    assert_still_serves()
  end)

  it("a device registering its range for minor faults: a monitor with "
    .. "serve_minor maps the page already in the page cache (UFFDIO_CONTINUE)", function()
    if not (ufl.FEATURE_MINOR_SHMEM and ufl.REGISTER_MINOR) then
      return pending("no minor faults on this kernel")
    end
    remonitor { serve_minor = true }
    local map = region(1)
    local c = spawn(function(sock)
      local u = assert(ufl.create(ufl.DEFAULT_FEATURES + ufl.FEATURE_MINOR_SHMEM))
      assert(u:register(map:addr(), PAGE, ufl.REGISTER_MINOR))
      assert(u:send(sock))
      if not child.await(sock) then return false end
      return map:read(0, PAGE) == pattern(14, 0)  -- a minor fault
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    assert.are.equal(2, u:index())
    -- In the page cache (shmem), not mapped in the child: its access is a
    -- minor fault, the page's content is what we wrote.
    assert(map:write(0, pattern(14, 0)))
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.equal(1, m.stats.served_special)
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  -- A device whose page 0 of a private mapping is write-protected by its
  -- own uffd (REGISTER_WP): on "go" it writes there (a WP fault).
  local function wp_device(map)
    return spawn(function(sock)
      assert(map:write(0, "a"))           -- present, then protected
      local u = assert(ufl.create())
      assert(u:register(map:addr(), PAGE, ufl.REGISTER_WP))
      assert(u:writeprotect(map:addr(), PAGE, true))
      assert(u:send(sock))
      if not child.await(sock) then return false end
      assert(map:write(0, "b"))
      return map:read(0, 1) == "b"
    end)
  end

  it("a device registering its range write-protected: the monitor not "
    .. "configured for it quarantines the entry once, no livelock", function()
    local map = assert(ufl.mmap_anon(PAGE, false))
    maps[#maps + 1] = map
    local c = wp_device(map)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    child.signal(c.sock)
    step_until(function() return #errors > 0 end, "the quarantine")
    local faults = m.stats.faults
    local busy, slow = idle_rounds(20, 10)
    assert.are.equal(0, slow)
    assert.are.equal(0, busy, "rounds with the device ready (a livelock)")
    assert.are.equal(faults, m.stats.faults, "faults after the quarantine")
    assert.are.equal(1, faults)
    assert.are.equal(1, #errors)
    assert.are.equal("quarantine", errors[1].what)
    assert.matches("write%-protect fault", errors[1].msg)
    assert.is_false(try_reap(c)) -- its thread stays blocked
    child.kill(c)
    c.exit_how = "killed"
    errors[1] = nil
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  it("a static device that goes bad is quarantined and reported, never "
    .. "removed nor closed", function()
    -- A list of its own with one static device (the shared one has none).
    local main2 = assert(ufl.create())
    local list2 = assert(ufl.list(main2, checker))
    local errs = {}
    local m2 = monitor.new { list = list2, policy = {}, fill = fill,
      on_error = function(_, what, msg) errs[#errs + 1] = { what, msg } end }
    m2:set_num_static_devices(1)
    local map = assert(ufl.mmap_anon(PAGE, false))
    maps[#maps + 1] = map
    local c = wp_device(map)
    local u = assert(ufl.recv(c.sock))
    m2:register(u)
    assert.are.equal(2, u:index())
    child.signal(c.sock)
    local deadline = ufl.monotonic_ms() + WAIT_MS
    while #errs == 0 and ufl.monotonic_ms() < deadline do m2:step(10) end
    assert.are.equal(1, #errs)
    assert.are.equal("quarantine", errs[1][1])
    assert.matches("^static entry 2: write%-protect fault", errs[1][2])
    assert.is_true(list2:is_quarantined(2))
    local ok, msg, errno = m2:remove(u)
    assert.is_nil(ok)
    assert.are.equal(E.EPERM, errno)
    assert.matches("never removed", msg)
    assert.is_false(u:is_closed())
    assert.are.equal(2, #list2)
    child.kill(c)
    c.exit_how = "killed"
    m2:close()
    local ctx2 = list2:waitctx()
    list2:close()
    ctx2:close()
    assert.is_true(u:is_closed())   -- closed by list:close, with the list
  end)

  it("a device registering its range write-protected: a monitor with "
    .. "serve_wp clears the protection and the write goes through", function()
    remonitor { serve_wp = true }
    local map = assert(ufl.mmap_anon(PAGE, false))
    maps[#maps + 1] = map
    local c = wp_device(map)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    assert.are.equal(1, m.stats.served_special)
    assert.are.same({}, errors)
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  it("a page that exists yet faults again and again (EEXIST, wake, "
    .. "refault): bounded, the entry quarantined and reported once", function()
    if needs_quarantine() then return end
    remonitor { max_exists = 8 }
    local map, reg = region(1, function() return pattern(12, 0) end)
    local c = spawn(function(sock)
      send_uffd(sock, map)
      if not child.await(sock) then return false end
      return map:read(0, PAGE) == pattern(12, 0)
    end)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    -- The kernel says "page exists" for every fill of this device.
    m.fill = function(fu, addr, len)
      if fu == u then return nil, "copy: page exists", E.EEXIST end
      return fill(fu, addr, len)
    end
    child.signal(c.sock)
    step_until(function() return #errors > 0 end, "the quarantine")
    local faults = reg.faults
    local busy = idle_rounds(20, 10)
    assert.are.equal(0, busy)
    assert.are.equal(faults, reg.faults, "faults served after the quarantine")
    assert(faults > 8 and faults <= 10, "faults " .. faults)
    assert.are.equal(1, #errors)
    assert.are.equal("quarantine", errors[1].what)
    assert.matches("livelock", errors[1].msg)
    child.kill(c)
    c.exit_how = "killed"
    errors[1] = nil
    m.fill = fill
    assert.are.equal(1, m:gc())
    assert_still_serves()
  end)

  -- A device made by hand without O_CLOEXEC (so the kernel gives its fork
  -- events' fds none either: fs/userfaultfd.c, resolve_userfault_fork uses
  -- the creation flags) that, on "go", forks n children which sleep until
  -- it kills them; it tells the monitor how many forks returned.
  local function forking_device(map, n)
    local raw = raw_uffd_works()
    return spawn(function(sock)
      local features = ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_FORK
      local u
      if raw then
        u = assert(ufl.adopt(raw_uffd(0, features)))
      else  -- valgrind: ufl.create's uffd (O_CLOEXEC already)
        u = assert(ufl.create(features))
      end
      assert(u:register(map:addr(), map:len()))
      assert(u:send(sock))
      if not child.await(sock) then return false end
      local pids = {}
      for _ = 1, n do
        local pid = unistd.fork()  -- returns once the monitor read FORK
        if pid == 0 then   -- sleeps while the device lives
          local parent = unistd.getppid()
          while unistd.getppid() == parent do
            require("posix.time").nanosleep({ tv_sec = 0, tv_nsec = 50000000 })
          end
          unistd._exit(0)
        end
        pids[#pids + 1] = pid
      end
      assert.are.equal(1, unistd.write(sock, string.char(#pids)))
      child.await(sock)
      for _, pid in ipairs(pids) do signal.kill(pid, signal.SIGKILL) end
      for _, pid in ipairs(pids) do wait.wait(pid) end
      return true
    end)
  end

  local function fork_allowed()
    local u = ufl.create(ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_FORK)
    if not u then
      pending("UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE")
      return false
    end
    u:close()
    return true
  end

  it("a device forking many children: its fork uffds are capped "
    .. "(max_forks), the excess closed and reported once, every one FD_CLOEXEC", function()
    if not fork_allowed() then return end
    remonitor { max_forks = 3 }
    local map = region(1)
    local c = forking_device(map, 10)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    local nfds = child.count_fds()
    child.signal(c.sock)
    step_until(function() return poll.rpoll(c.sock, 0) == 1 end, "the forks")
    assert.are.equal(10, unistd.read(c.sock, 1):byte())
    m:step(0)
    assert.are.equal(5, #list)          -- main, the device, 3 of its children
    assert.are.equal(7, m.stats.forks_refused)
    assert.are.equal(nfds + 3, child.count_fds(), "fds beyond the cap")
    for i = 3, 5 do
      local fu = list:get(i)
      assert.are.equal("fork", fu:origin())
      assert.is_true(has_bit(fcntl.fcntl(fu:fd(), fcntl.F_GETFD), fcntl.FD_CLOEXEC))
      assert.is_true(has_bit(fcntl.fcntl(fu:fd(), fcntl.F_GETFL), fcntl.O_NONBLOCK))
    end
    -- and the monitor's own fds: the epoll fd, the spare, the main uffd
    for _, fd in ipairs { list:waitctx():fd(), m.dev.spare:fd(), main:fd(), u:fd() } do
      assert.is_true(has_bit(fcntl.fcntl(fd, fcntl.F_GETFD), fcntl.FD_CLOEXEC))
    end
    local f = errors_of("fork")
    assert.are.equal(1, #f)
    assert.matches("max_forks", f[1].msg)
    assert.are.equal(1, #errors)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    errors[1] = nil
    assert.are.equal(4, m:gc())
    assert_still_serves()
  end)

  it("EMFILE while reading fork events: reported once, each event still "
    .. "read (its uffd closed), no tight failure loop", function()
    if not fork_allowed() then return end
    if os.getenv("UFFDLIST_UNDER_VALGRIND") then
      -- valgrind keeps fds of its own above the limit it gives us
      pending("RLIMIT_NOFILE games under valgrind")
      return
    end
    local resource = require "posix.sys.resource"
    remonitor { max_forks = 1000 }
    local map = region(1)
    local N = 12
    local c = forking_device(map, N)
    local u = assert(ufl.recv(c.sock))
    m:register(u)
    -- Room for 2 more fds: the 3rd fork uffd and on hit EMFILE.  The
    -- holes below the highest fd are filled first (fillers, closed after).
    local top = 0
    for name in require("posix.dirent").files("/proc/self/fd") do
      top = math.max(top, tonumber(name) or 0)
    end
    local fillers = {}
    while true do
      local f = assert(fcntl.open("/dev/null", fcntl.O_RDONLY))
      fillers[#fillers + 1] = f
      if f >= top then break end
    end
    local old = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert(resource.setrlimit(resource.RLIMIT_NOFILE,
      { rlim_cur = fillers[#fillers] + 3, rlim_max = old.rlim_max }))
    local ok, err = pcall(function()
      child.signal(c.sock)
      local rounds, busy = 0, 0
      while poll.rpoll(c.sock, 0) ~= 1 do
        assert(rounds < 2000, "the forks did not finish")
        rounds = rounds + 1
        if m:step(10) > 0 then busy = busy + 1 end
      end
      -- One round per fork event at most (plus a few): no failure loop.
      assert(busy <= N + 4, "busy rounds " .. busy)
      local idle = idle_rounds(10, 10)
      assert.are.equal(0, idle, "rounds with events after the storm")
    end)
    assert(resource.setrlimit(resource.RLIMIT_NOFILE, old))
    for _, f in ipairs(fillers) do unistd.close(f) end
    assert(ok, err)
    assert.are.equal(N, unistd.read(c.sock, 1):byte())
    assert(m.stats.fd_pressure >= 1)
    assert(m.stats.forks_refused >= 1)
    assert.are.equal(N, m.stats.forks_refused + (#list - 2))
    local f = errors_of("fds")
    assert.are.equal(1, #f, "EMFILE reported once")
    assert.are.equal(E.EMFILE, f[1].errno)
    assert.are.equal(#errors, 1)
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    errors[1] = nil
    m:gc()
    assert.are.equal(1, #list)
    assert_still_serves()
  end)

  it("a device sending back a dup of the monitor's own main uffd: it "
    .. "registers and gc does not hang in the checker's reset", function()
    -- Run in a process of its own (a hang fails it, by timeout, instead
    -- of hanging busted): a monitor whose main uffd a child sends back.
    local script = [[
      local ufl = require "uffdlist"
      local monitor = require "uffdlist.monitor"
      local child = require "spec.helpers.child"
      local checker = assert(ufl.checker())
      local main = assert(ufl.create())
      local list = assert(ufl.list(main, checker))
      local m = monitor.new { list = list, policy = {} }
      m:set_num_static_devices(0)
      local c = child.spawn(function(sock)
        assert(main:send(sock))          -- our inherited copy of it
        return child.await(sock)
      end)
      local u = assert(ufl.recv(c.sock))
      m:register(u)
      assert(u:index() == 2, "not registered")
      assert(m:gc() == 0)
      assert(m:gc() == 0)
      child.signal(c.sock)
      assert(child.reap(c) == 0)
      print("gc returned")
    ]]
    local cmd = "timeout -s KILL 20 " .. (arg and arg[-1] or "luajit")
      .. " -e " .. ("%q"):format(script):gsub("\\\n", "\n") .. " 2>&1"
    local f = assert(io.popen(cmd))
    local out = f:read("*a")
    f:close()
    assert.matches("gc returned", out)
  end)

  it("an exec'd device's uffd: m:register says the checker's page is not "
    .. "mapped there (exec'd), not a bare EINVAL", function()
    local c = spawn(function(sock)
      local script = ("local ufl = require 'uffdlist'; "
        .. "assert(ufl.create():send(%d)); "
        .. "require('posix.unistd').read(%d, 1)"):format(sock, sock)
      unistd.execp(arg and arg[-1] or "luajit", { "-e", script })
      return false
    end)
    assert.are.equal(1, poll.rpoll(c.sock, WAIT_MS))
    local u = assert(ufl.recv(c.sock))
    local ok0, msg0, errno0 = list:register(u)   -- the list itself says so
    assert.is_nil(ok0)
    assert.are.equal(E.EINVAL, errno0)
    assert.are.equal("register: checker: probe page not mapped in the "
      .. "device process (exec'd, or not forked from the checker's creator)", msg0)
    assert.is_nil(u:index())
    m:register(u)                                 -- and so does the monitor
    assert.is_true(u:is_closed())
    assert.are.equal(1, #errors)
    assert.are.equal(E.EINVAL, errors[1].errno)
    assert.matches("exec'd", errors[1].msg)
    local u2 = assert(ufl.create())
    local ok, msg = checker:register(u2)  -- our own: refused plainly
    assert.is_nil(ok)
    assert.matches("own process", msg)
    u2:close()
    child.signal(c.sock)
    assert.are.same({ "exited", 0 }, { await_exit(c) })
    errors[1] = nil
    assert_still_serves()
  end)
end)
