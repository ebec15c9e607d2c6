-- Exit hints (doc/monitor-api.md, "Exit hints"): the monitor watches a
-- pidfd of each hot-plugged device (or its socket's hang-up), the policy's
-- on_exit decides, and list:gc{only} probes exactly that entry.  A hint
-- never collects by itself: real children that hang up and live on, a pid
-- that names another process, a hint fd that stays readable.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local child = require "spec.helpers.child"
-- the specs that open pidfds (or have the monitor open them)
local it_pidfd = child.it_pidfd(it, function(msg) pending(msg) end)
local unistd = posix.require "posix.unistd"

local PS = ufl.page_size()

-- Under valgrind a child does not exit by itself: it waits for reap to
-- kill it (spec/helpers/child.lua).  let_exit makes it exit either way
-- (a zombie until reaped when not under valgrind); reap then returns its
-- code.
local VALGRIND = os.getenv("UFFDLIST_UNDER_VALGRIND") ~= nil
local function let_exit(c)
  child.signal(c.sock)
  if VALGRIND then
    c.code, c.reaped = child.reap(c), true
  end
end
local function reap(c)
  if c.reaped then return c.code end
  return child.reap(c)
end

describe("ufl.pidfd_open, ufl.peercred, ufl.peer_pidfd", function()
  it("a pidfd becomes readable when its process exits, before it is reaped", function()
    if VALGRIND then
      pending("under valgrind a child exits only when reaped (spec/helpers/child.lua)")
      return
    end
    local c = child.spawn(function(sock) return child.await(sock) end)
    local pf = assert(ufl.pidfd_open(c.pid))
    assert.equal(c.pid, pf:pid())
    assert.is_false(pf:exited())
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(pf, "exit"))
    assert.equal(0, (ctx:wait(20)))
    child.signal(c.sock)
    local n, out = ctx:wait(5000)
    assert.equal(1, n)
    assert.equal("exit", out[1])
    assert.is_true(pf:exited())          -- a zombie: exited, not reaped
    assert(ctx:delete(pf))
    ctx:close()
    assert.equal(0, child.reap(c))
    assert.is_true(pf:exited())
    assert.is_true(pf:close())
    assert.is_true(pf:close())           -- idempotent
    assert.is_true(pf:is_closed())
    assert.matches("closed", tostring(pf))
    assert.has_error(function() pf:fd() end,
      "attempt to use a closed uffdlist.pidfd")
  end)

  it_pidfd("pidfd_open: a reaped pid is ESRCH; a bad pid raises naming the argument", function()
    local c = child.spawn(function() return true end)
    assert.equal(0, child.reap(c))
    local pf, msg, errno = ufl.pidfd_open(c.pid)
    -- (unless the pid was reused in between: then it is someone else's)
    if pf then pf:close() else
      assert.is_nil(pf)
      assert.is_string(msg)
      assert.equal(ufl.errno.ESRCH, errno)
    end
    assert.has_error(function() ufl.pidfd_open(0) end)
    assert.has_error(function() ufl.pidfd_open("1") end)
    assert.has_error(function() ufl.pidfd_open(1.5) end)
  end)

  it("peercred of a socketpair made before fork names its creator (us), not the child", function()
    local c = child.spawn(function(sock) return child.await(sock) end)
    local pid, uid, gid = ufl.peercred(c.sock)
    assert.equal(unistd.getpid(), pid)
    assert.is_number(uid)
    assert.is_number(gid)
    local pf = ufl.peer_pidfd(c.sock)
    if pf then   -- Linux 6.5+
      assert.equal(unistd.getpid(), pf:pid())
      assert.is_false(pf:exited())
      pf:close()
    end
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
    local r, w = assert(unistd.pipe())
    local n, msg, e = ufl.peercred(r)
    assert.is_nil(n)
    assert.matches("peercred", msg)
    assert.equal(ufl.errno.ENOTSOCK, e)
    unistd.close(r)
    unistd.close(w)
    assert.has_error(function() ufl.peercred(-1) end)
  end)
end)

describe("monitor exit hints on real children", function()
  local checker, list, ctx, m, errs, map, before

  -- A device: sends its own uffd, then does body(sock) once told "go".
  local function device(body)
    local c = child.spawn(function(sock)
      local u = assert(ufl.create())
      assert(u:send(sock))
      if not child.await(sock) then return false end
      if body then return body(sock) end
      return true
    end)
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), map:len()))
    return c, u
  end

  local function new_monitor(policy, opts)
    opts = opts or {}
    opts.list, opts.policy = list, policy
    opts.on_error = function(_, what, msg) errs[#errs + 1] = what .. ": " .. tostring(msg) end
    m = monitor.new(opts)
    m:set_num_static_devices(0)
    return m
  end

  -- Steps until pred() or 5 s; returns pred().
  local function step_until(pred)
    local t0 = ufl.monotonic_ms()
    while not pred() and ufl.monotonic_ms() - t0 < 5000 do
      m:step(20)
    end
    return pred()
  end

  before_each(function()
    -- fds an earlier spec left to the collector (a monitor's spare fd
    -- until its eventfd is collected) must not count as this one's
    collectgarbage("collect")
    before = child.count_fds()
    checker = assert(ufl.checker())   -- before any fork
    map = assert(ufl.mmap_anon(4 * PS, true))
    list = assert(ufl.list(assert(ufl.create()), checker))
    ctx = list:waitctx()
    errs = {}
  end)

  after_each(function()
    if m then m:close() end
    m = nil
    list:close()
    ctx:close()
    map:close()
    checker:close()
    collectgarbage("collect")
    assert.equal(before, child.count_fds())   -- no pidfd, no uffd left
  end)

  it_pidfd("exact: a dead device is collected after its exit with one probe; the live ones stay", function()
    new_monitor("exact")
    local live, ul = device()
    local dying, ud = device()
    m:register(ul, { pid = live.pid })
    m:register(ud, { pid = dying.pid })
    assert.same({ 2, 2 }, { m:hint_count() })
    local p0 = list:probes()
    let_exit(dying)                       -- it exits: its pidfd fires
    assert.is_true(step_until(function() return ud:is_closed() end))
    assert.equal(1, list:probes() - p0)   -- exactly the dead one, once
    assert.equal(1, m.stats.exit_collected)
    assert.equal(1, m.stats.exit_probes)
    assert.equal(1, m.stats.collected)
    assert.equal(0, m.stats.gcs)          -- no full gc
    assert.is_false(ul:is_closed())
    assert.same({ 1, 1 }, { m:hint_count() })   -- its pidfd closed
    assert.equal(0, reap(dying))
    let_exit(live)
    assert.is_true(step_until(function() return ul:is_closed() end))
    assert.equal(2, list:probes() - p0)
    assert.equal(0, reap(live))
    assert.same({ 0, 0 }, { m:hint_count() })
    assert.same({}, errs)
  end)

  it("a live device that hangs up its socket is not collected, and is still served after", function()
    new_monitor("exact", { exit_retries = 2, exit_retry_ms = 2 })
    local pattern = string.rep("H", PS)
    local r, w = assert(unistd.pipe())
    local c, u = device(function(sock)
      unistd.close(sock)                      -- hangs up, stays alive
      unistd.close(w)
      unistd.read(r, 1)                       -- until the parent says
      return map:read(0, PS) == pattern       -- a real fault, served
    end)
    unistd.close(r)
    m.fill = function(x, addr, len) return x:copy(addr, pattern, len) end
    m:register(u, { hint = c.sock })
    child.signal(c.sock)
    local p0 = list:probes()
    assert.is_true(step_until(function() return m.stats.exit_gave_up == 1 end))
    assert.equal(3, list:probes() - p0)       -- the probe and 2 retries
    assert.equal(3, m.stats.exit_alive)
    assert.is_false(u:is_closed())
    assert.equal(2, u:index())
    assert.same({ 0, 0 }, { m:hint_count() })
    -- the hung-up socket stays readable: unwatched, it no longer wakes us
    assert.equal(0, m:step(30))
    assert.equal(1, m.stats.exit_hints)
    unistd.write(w, "x")
    unistd.close(w)
    assert.is_true(step_until(function() return m.stats.faults >= 1 end))
    assert.equal(1, m.stats.served_copy)
    assert.equal(0, child.reap(c))
    assert.same({}, errs)
  end)

  it_pidfd("a pid that names another process: its exit fires the hint, the probe keeps the live device", function()
    new_monitor("exact", { exit_retries = 1, exit_retry_ms = 1 })
    local other = child.spawn(function(sock) return child.await(sock) end)
    local c, u = device()
    m:register(u, { pid = other.pid })        -- wrong (as a reused pid)
    child.signal(other.sock)
    assert.equal(0, child.reap(other))
    assert.is_true(step_until(function() return m.stats.exit_gave_up == 1 end))
    assert.is_false(u:is_closed())
    assert.equal(2, m.stats.exit_alive)
    -- the device dies later: no hint left; the normal gc collects it
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
    assert.equal(1, m:gc())
    assert.is_true(u:is_closed())
    assert.same({}, errs)
  end)

  it_pidfd("retries wait for their time, not in a spin: the loop's wait is cut to the next retry, then back to normal",
  function()
    new_monitor("exact", { exit_retries = 1, exit_retry_ms = 40 })
    local other = child.spawn(function(sock) return child.await(sock) end)
    local c, u = device()
    m:register(u, { pid = other.pid })
    assert.equal(0.1, m:timeout())            -- nothing due: idle wait
    child.signal(other.sock)
    assert.equal(0, child.reap(other))
    assert.is_true(step_until(function() return m.stats.exit_alive == 1 end))
    local t = m:timeout()
    assert.is_true(t >= 0.001 and t <= 0.04, "timeout " .. t)
    local rounds = m.stats.rounds
    assert.is_true(step_until(function() return m.stats.exit_gave_up == 1 end))
    assert.is_true(m.stats.rounds - rounds <= 3, "rounds " .. (m.stats.rounds - rounds))
    assert.equal(0.1, m:timeout())
    assert.is_false(u:is_closed())
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
  end)

  it("a hint fd that stays readable fires once: the loop does not spin", function()
    new_monitor("exact", { exit_retries = 0 })
    local c, u = device()
    local ev = assert(ufl.eventfd())
    assert(ev:write(1))                       -- readable for ever
    m:register(u, { hint = ev, events = ufl.EPOLLIN })
    m:step(0)
    assert.equal(1, m.stats.exit_hints)
    local rounds = m.stats.rounds
    for _ = 1, 3 do assert.equal(0, m:step(10)) end   -- each waits
    assert.equal(rounds + 3, m.stats.rounds)
    assert.equal(1, m.stats.exit_hints)
    assert.equal(1, m.stats.exit_gave_up)
    assert.is_false(u:is_closed())
    assert.is_false(ev:is_closed())           -- borrowed: still the host's
    ev:close()
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
  end)

  it_pidfd("a device already reaped at register: the register fails (no mm for the checker's page), "
    .. "the uffd is closed, no hint is left", function()
    new_monitor("exact")
    local c, u = device()
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
    m:register(u, { pid = c.pid })
    assert.is_true(u:is_closed())
    assert.same({ 0, 0 }, { m:hint_count() })
    assert.matches("^register", errs[1])
    errs = {}
  end)

  it_pidfd("a pid already gone at register (pidfd_open ESRCH) is probed at once; a live device with it stays",
  function()
    new_monitor("exact", { exit_retries = 1, exit_retry_ms = 1 })
    local other = child.spawn(function() return true end)
    assert.equal(0, child.reap(other))
    local c, u = device()
    local p0 = list:probes()
    m:register(u, { pid = other.pid })
    if m.stats.exit_hints == 1 then           -- (unless other.pid was reused)
      assert.equal(1, list:probes() - p0)     -- probed at register
      assert.is_true(step_until(function() return m.stats.exit_gave_up == 1 end))
      assert.equal(2, list:probes() - p0)
    end
    assert.is_false(u:is_closed())
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
    assert.same({}, errs)
  end)

  it_pidfd("on_exit gets plain data; false leaves the entry to the normal gc; "
    .. "a bad answer is reported and probes nothing",
  function()
    local got = {}
    local answer = false
    new_monitor({ on_exit = function(info)
      got[#got + 1] = info
      return answer
    end })
    local c1, u1 = device()
    m:register(u1, { pid = c1.pid })
    let_exit(c1)
    assert.is_true(step_until(function() return #got == 1 end))
    assert.same({ index = 2, dynamic = true, pid = c1.pid, source = "pidfd",
      entries = 2, dynamic_entries = 1 }, got[1])
    assert.is_nil(getmetatable(got[1]))
    assert.is_false(u1:is_closed())
    assert.equal(1, m.stats.exit_left)
    assert.equal(0, m.stats.exit_probes)
    answer = "collect everything"
    local c2, u2 = device()
    m:register(u2, { pid = c2.pid })
    let_exit(c2)
    assert.is_true(step_until(function() return #got == 2 end))
    assert.is_false(u2:is_closed())
    assert.equal(0, m.stats.exit_probes)
    assert.matches("policy.on_exit.answer", errs[1], 1, true)
    assert.equal(0, reap(c1))
    assert.equal(0, reap(c2))
    errs = {}
    assert.equal(2, m:gc())
  end)

  it_pidfd("a hostile on_exit (raises, spins, answers a table) costs reports and the default decision: "
    .. "nothing is probed",
  function()
    new_monitor("spec/policies/exit_raiser.lua", { hook_budget_ms = 20 })
    local kinds = {}
    m.on_error = function(_, what, _msg, _errno, kind)
      kinds[#kinds + 1] = what .. ":" .. tostring(kind)
    end
    local cs, us = {}, {}
    for i = 1, 3 do
      cs[i], us[i] = device()
      m:register(us[i], { pid = cs[i].pid })
    end
    local p0 = list:probes()
    for i = 1, 3 do
      child.signal(cs[i].sock)
      assert.equal(0, child.reap(cs[i]))
      assert.is_true(step_until(function() return m.stats.exit_left == i end))
    end
    assert.equal(0, list:probes() - p0)
    assert.same({ "policy.on_exit:error", "policy.on_exit:time",
      "policy.on_exit.answer:answer", "policy:disabled" }, kinds)
    assert.equal("crosvm", m.policy.name)
    for i = 1, 3 do assert.is_false(us[i]:is_closed()) end
    assert.equal(3, m:gc())                   -- the normal gc still works
  end)

  it_pidfd("one fd for two hints: the second entry registers without a hint, reported; the first hint still works",
  function()
    new_monitor("exact")
    local c1, u1 = device()
    local c2, u2 = device()
    local pf = assert(ufl.pidfd_open(c1.pid))
    m:register(u1, { pidfd = pf })
    m:register(u2, { pidfd = pf })
    assert.matches("already watched", errs[1])
    errs = {}
    assert.is_false(pf:is_closed())
    assert.same({ 1, 1 }, { m:hint_count() })
    assert.equal(3, #list)
    let_exit(c1)
    assert.is_true(step_until(function() return u1:is_closed() end))
    assert.is_true(pf:is_closed())
    assert.equal(0, reap(c1))
    child.signal(c2.sock)
    assert.equal(0, child.reap(c2))
    assert.same({}, errs)
  end)

  it_pidfd("a policy without on_exit watches nothing and closes a pidfd it was given", function()
    new_monitor("crosvm")
    local c, u = device()
    local pf = assert(ufl.pidfd_open(c.pid))
    m:register(u, { pidfd = pf })
    assert.is_true(pf:is_closed())
    assert.same({ 0, 0 }, { m:hint_count() })
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
  end)

  it("a hint of a static entry is dropped at once (static entries are never collected)", function()
    m = monitor.new { list = list, policy = "exact" }
    local c, u = device()
    m:register(u, { pid = c.pid })            -- before set_num_static: static
    m:set_num_static_devices(1)
    assert.same({ 0, 0 }, { m:hint_count() })
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
  end)

  it_pidfd("a full gc that collects a hinted entry ends its hint (pidfd closed)", function()
    new_monitor("exact")
    local c, u = device()
    m:register(u, { pid = c.pid })
    assert.same({ 1, 1 }, { m:hint_count() })
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
    assert.equal(1, m:gc())                   -- before the loop saw the hint
    assert.same({ 0, 0 }, { m:hint_count() })
  end)

  it("exact's fallback: a dead device registered without a hint is collected once the list reaches full_at", function()
    new_monitor("exact", { policy_opts = nil })
    m:set_policy("exact", { full_at = 2 })
    local c1, u1 = device()
    m:register(u1)                            -- no hint
    child.signal(c1.sock)
    assert.equal(0, child.reap(c1))
    assert.equal(0, m.stats.gcs)
    local c2, u2 = device()
    m:register(u2)                            -- 2 dynamic: a full gc
    assert.equal(1, m.stats.gcs)
    assert.is_true(u1:is_closed())
    assert.is_false(u2:is_closed())
    child.signal(c2.sock)
    assert.equal(0, child.reap(c2))
  end)

  it_pidfd("register's hint argument: misuse raises naming it", function()
    new_monitor("exact")
    local c, u = device()
    assert.has_error(function() m:register(u, 5) end,
      "bad argument #2 to 'register' (table or nil expected, got number)")
    assert.has_error(function() m:register(u, { pid = 0 }) end)
    assert.has_error(function() m:register(u, { pid = 1.5 }) end)
    assert.has_error(function() m:register(u, { pid = "1" }) end)
    assert.has_error(function() m:register(u, { bogus = 1 }) end,
      "bad argument #2 to 'register' (unknown option 'bogus')")
    assert.has_error(function() m:register(u, { hint = "x" }) end)
    assert.has_error(function() m:register(u, { hint = 3, events = 0 }) end)
    local pf = assert(ufl.pidfd_open(c.pid))
    assert.has_error(function() m:register(u, { pidfd = pf, hint = 3 }) end)
    pf:close()
    assert.is_nil(u:index())                  -- nothing was queued
    assert.same({ 0, 0 }, { m:hint_count() })
    u:close()
    child.signal(c.sock)
    assert.equal(0, child.reap(c))
  end)
end)
