-- Scale (issue 8): one monitor's list holds 10,000 real uffds of 10,000
-- real device processes, serves real faults of a sample of them while
-- they are all there, collects 1,000 dead ones (exactly those), and the
-- monitor's fd count ends where it began.  A size check, not a timed one
-- (speed is bench/'s: make bench).
--
-- The device processes are forked by a spawner forked at the start, whose
-- fd table holds its two sockets only: forking them from the test process
-- after it holds thousands of uffds would copy its fd table each time.
-- 10,000 uffds need RLIMIT_NOFILE's soft limit raised to the hard one
-- (20,000 on this machine and in CI); below 10,000 + a margin the spec is
-- pending and says so.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local child = require "spec.helpers.child"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local resource = posix.require "posix.sys.resource"
local socket = posix.require "posix.sys.socket"
local unistd = posix.require "posix.unistd"
local signal = posix.require "posix.signal"
local wait = posix.require "posix.sys.wait"
local dirent = posix.require "posix.dirent"

-- Under the sanitizers (make check) every device process is a fork of an
-- instrumented process: 1,000 there, and none under valgrind (see below).
local UNDER_VALGRIND = os.getenv("UFFDLIST_UNDER_VALGRIND") ~= nil
local UNDER_ASAN = os.getenv("ASAN_OPTIONS") ~= nil
local N = tonumber(os.getenv("UFFDLIST_SCALE_N")) or (UNDER_ASAN and 1000)
  or 10000
local DEAD = math.floor(N / 10)
local SAMPLE, SAMPLE_PAGES = 16, 8
local MARGIN = 200
local PAGE = ufl.page_size()

local function read_line(fd)
  local s = {}
  while true do
    local c = unistd.read(fd, 1)
    if not c or c == "" then return nil end
    if c == "\n" then return table.concat(s) end
    s[#s + 1] = c
  end
end

local function write_line(fd, s)
  assert(unistd.write(fd, s .. "\n") == #s + 1)
end

-- The spawner's side (a forked copy of this process): "spawn n" forks n
-- device processes one by one (each creates its uffd, sends it on the uffd
-- socket, then sleeps until killed), "kill n" SIGKILLs and reaps the n
-- oldest alive, "quit" kills and reaps the rest.  Answers "ok".
local function spawner_main(cmd, fds)
  local open = {}
  for name in dirent.files("/proc/self/fd") do open[#open + 1] = tonumber(name) end
  for _, fd in ipairs(open) do
    if fd and fd > 2 and fd ~= cmd and fd ~= fds then unistd.close(fd) end
  end
  local kids, first = {}, 1
  while true do
    local line = read_line(cmd)
    local op, n = (line or "quit"):match("^(%a+) ?(%d*)$")
    n = tonumber(n)
    if op == "spawn" then
      for _ = 1, n do
        local r, w = unistd.pipe()
        local pid = unistd.fork()
        if pid == 0 then
          unistd.close(r)
          unistd.close(cmd)
          local u = ufl.create()
          if not u or not u:send(fds) then unistd._exit(1) end
          u:close()
          unistd.close(fds)
          unistd.write(w, "x")
          unistd.close(w)
          while true do unistd.sleep(3600) end
        end
        unistd.close(w)
        unistd.read(r, 1)
        unistd.close(r)
        kids[#kids + 1] = pid
      end
    elseif op == "kill" then
      for i = first, first + n - 1 do
        signal.kill(kids[i], signal.SIGKILL)
        wait.wait(kids[i])
      end
      first = first + n
    else
      for i = first, #kids do signal.kill(kids[i], signal.SIGKILL) end
      for i = first, #kids do wait.wait(kids[i]) end
      unistd._exit(0)
    end
    write_line(cmd, "ok")
  end
end

local function start_spawner()
  local a, b = assert(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0))
  local fa, fb = assert(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0))
  io.stdout:flush()
  local pid = assert(unistd.fork())
  if pid == 0 then
    local ok, e = pcall(spawner_main, b, fb)
    if not ok then io.stderr:write("spawner: ", tostring(e), "\n") end
    unistd._exit(1)
  end
  unistd.close(b)
  unistd.close(fb)
  return { pid = pid, cmd = a, fds = fa }
end

local function ask(sp, s)
  write_line(sp.cmd, s)
  assert.are.equal("ok", read_line(sp.cmd))
end

local function stop_spawner(sp)
  write_line(sp.cmd, "quit")
  wait.wait(sp.pid)
  unistd.close(sp.cmd)
  unistd.close(sp.fds)
end

describe("scale", function()
  it("one monitor holds 10,000 real uffds, serves a sample, collects "
     .. "1,000 dead ones and ends at its fd baseline", function()
    if UNDER_VALGRIND then
      pending("10,000 device processes would each run under valgrind: the "
        .. "scale check runs in make test (and 1,000 under ASan)")
      return
    end
    local lim = resource.getrlimit(resource.RLIMIT_NOFILE)
    local need = N + SAMPLE + MARGIN
    if lim.rlim_max < need then
      pending(("RLIMIT_NOFILE hard limit %d is below %d (%d uffds + "
        .. "margin): raise it (ulimit -Hn) to run the scale check")
        :format(lim.rlim_max, need, N))
      return
    end
    local f = assert(io.open("/proc/sys/kernel/pid_max"))
    local pid_max = tonumber(f:read("*l"))
    f:close()
    if pid_max < N + 1000 then
      pending(("kernel.pid_max %d leaves no room for %d device processes")
        :format(pid_max, N))
      return
    end
    local soft = lim.rlim_cur
    assert.are.equal(0, resource.setrlimit(resource.RLIMIT_NOFILE,
      { rlim_cur = lim.rlim_max, rlim_max = lim.rlim_max }))
    local baseline = child.count_fds()

    -- Everything the device processes must inherit exists before any
    -- fork: the checker's page and the sample's region.
    local checker = assert(ufl.checker())
    local region = assert(ufl.mmap_anon(SAMPLE * SAMPLE_PAGES * PAGE, true))
    local src = string.rep("\90", PAGE)
    local sp = start_spawner()
    local sample = {}
    for k = 1, SAMPLE do
      local off = (k - 1) * SAMPLE_PAGES * PAGE
      sample[k] = child.spawn(function(sock)
        local u = assert(ufl.create())
        assert(u:send(sock))
        u:close()
        if not child.await(sock) then return false end
        for p = 0, SAMPLE_PAGES - 1 do
          if region:read(off + p * PAGE, PAGE) ~= src then return false end
        end
        return true
      end)
    end

    -- The list: main, no static devices, every other entry dynamic.
    local ctx = assert(ufl.waitctx())
    local list = assert(ufl.list(assert(ufl.create()), checker, ctx))
    assert.is_true(list:set_num_static_devices(0))
    local sample_u = {}
    for k = 1, SAMPLE do
      sample_u[k] = assert(ufl.recv(sample[k].sock))
      local off = (k - 1) * SAMPLE_PAGES * PAGE
      assert(sample_u[k]:register(region:addr() + off, SAMPLE_PAGES * PAGE))
      assert.is_true(list:register(sample_u[k]))
    end
    -- Received while they are spawned: the socket holds only so many fds
    -- in flight.
    local before = child.count_fds() - SAMPLE
    write_line(sp.cmd, "spawn " .. N - SAMPLE)
    local devs = {}
    for i = 1, N - SAMPLE do
      devs[i] = assert(ufl.recv(sp.fds))
      assert.is_true(list:register(devs[i]))
    end
    assert.are.equal("ok", read_line(sp.cmd))
    assert.are.equal(N + 1, list:len())
    local full = child.count_fds()
    assert.are.equal(before + N, full)

    -- Serve the sample's faults through the monitor (copy of `src`).
    local errors = {}
    local m = monitor.new{
      list = list,
      fill = function(u, addr, len) return u:copy(addr, src, len) end,
      on_error = function(_, what, msg) errors[#errors + 1] = what .. ": " .. tostring(msg) end,
    }
    local running = child.count_fds()   -- the monitor may hold fds too
    for k = 1, SAMPLE do child.signal(sample[k].sock) end
    local codes, left = {}, SAMPLE
    local deadline = os.time() + 30
    while left > 0 do
      m:step(10)
      for k = 1, SAMPLE do
        if codes[k] == nil then
          local code = child.try_reap(sample[k])
          if code ~= nil then codes[k], left = code, left - 1 end
        end
      end
      assert(os.time() < deadline, "the sample's faults were not served in 30 s")
    end
    assert.are.same({}, errors)
    for k = 1, SAMPLE do assert.are.equal(0, codes[k]) end
    assert.are.equal(SAMPLE * SAMPLE_PAGES, m.stats.served_copy)

    -- The sample exited: its uffds are dead too.  Kill the DEAD oldest
    -- device processes; gc collects exactly those and the sample.
    ask(sp, "kill " .. DEAD)
    assert.are.equal(DEAD + SAMPLE, list:gc())
    assert.are.equal(N - DEAD - SAMPLE + 1, list:len())
    for i = 1, DEAD do assert.is_true(devs[i]:is_closed()) end
    for i = DEAD + 1, N - SAMPLE do assert.is_false(devs[i]:is_closed()) end
    for k = 1, SAMPLE do assert.is_true(sample_u[k]:is_closed()) end
    -- the collected uffds, and each reaped sample child's socket and pipe
    assert.are.equal(running - DEAD - SAMPLE - 2 * SAMPLE, child.count_fds())

    m:close()
    list:close()
    ctx:close()
    checker:close()
    region:close()
    stop_spawner(sp)
    for i = 1, N - SAMPLE do assert.is_true(devs[i]:is_closed()) end
    collectgarbage("collect")
    assert.are.equal(baseline, child.count_fds())
    resource.setrlimit(resource.RLIMIT_NOFILE,
      { rlim_cur = soft, rlim_max = lim.rlim_max })
  end)
end)
