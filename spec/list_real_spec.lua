-- list:remove, list:quarantine, list:gc{budget} and list:gc{only} on real
-- userfaultfds of real child processes, with the real dead checker: a
-- device that breaks its uffd (clears O_NONBLOCK on the open file it
-- shares with us, so epoll reports EPOLLERR), quarantined then removed and
-- still served; dead children collected by budgeted steps and by hints.
-- (The fake-uffd specs of the same operations are in list_spec.lua.)
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local child = require "spec.helpers.child"
local fcntl = posix.require "posix.fcntl"

local PAGE = ufl.page_size()

local function pattern(i) return string.rep(string.char(65 + i % 26), PAGE) end

local function has(mask, bit) return mask % (2 * bit) >= bit end

-- A child that sends its own uffd, waits for "go", runs body(u) and
-- returns its result (true when body is nil).
local function device(body)
  return child.spawn(function(sock)
    local u = assert(ufl.create())
    assert(u:send(sock))
    if not child.await(sock) then return false end
    if body then return body(u, sock) end
    return true
  end)
end

-- Waits (own wait context) for u's next page fault and serves it with
-- pat at addr; true once served.
local function serve_one(u, addr, pat)
  local ctx = assert(ufl.waitctx())
  assert(ctx:add(u, "mine"))
  local out, served = {}, false
  for _ = 1, 200 do
    if ctx:wait(50) > 0 then
      local n = assert(u:read_events(out))
      for k = 1, n do
        if out[k].kind == "pagefault" then
          assert.are.equal(PAGE, u:copy(addr, pat))
          served = true
        end
      end
    end
    if served then break end
  end
  ctx:close()
  return served
end

-- The set of indices one list:wait(ms) reports, with their revents.
local function ready(list, ms)
  local out, evs = {}, {}
  local n = assert(list:wait(ms, out, evs))
  local r = {}
  for i = 1, n do r[out[i]] = evs[i] end
  return r, n
end

describe("list operations on real uffds", function()
  local checker, main, list

  before_each(function()
    checker = assert(ufl.checker()) -- before any fork: children share its page
    main = assert(ufl.create())
    list = assert(ufl.list(main, checker))
    assert.is_true(list:set_num_static_devices(0))
  end)

  after_each(function()
    list:close()
    checker:close()
  end)

  it("a device that clears O_NONBLOCK shows EPOLLERR in wait's revents; quarantined it is silent; "
    .. "removed it is handed back open and still serves the child", function()
    local map = assert(ufl.mmap_anon(PAGE, true))
    local c = device(function(u, sock)
      -- the flag lives on the open file the monitor shares: clear it
      assert(fcntl.fcntl(u:fd(), fcntl.F_SETFL, 0))
      child.signal(sock)
      return map:read(0, PAGE) == pattern(5) -- faults
    end)
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), PAGE))
    assert.is_true(list:register(u))
    local i = u:index()
    assert.are.equal(2, i)
    child.signal(c.sock)
    assert.is_true(child.await(c.sock)) -- flag cleared; the fault follows
    local r
    for _ = 1, 200 do
      r = ready(list, 50)
      if r[i] then break end
    end
    assert(r[i], "the faulting device was never reported")
    assert(has(r[i], ufl.EPOLLERR), "EPOLLERR in revents: " .. r[i])
    -- quarantined: reported no more, though EPOLLERR stays
    assert.is_true(list:quarantine(i))
    assert.is_true(list:is_quarantined(i))
    local r2, n2 = ready(list, 20)
    assert.are.equal(0, n2)
    assert.is_nil(r2[i])
    -- removed: the very uffd, open; the caller serves the pending fault
    -- (had the list closed it, the child would have read zeros)
    assert.are.equal(u, list:remove(i))
    assert.is_false(u:is_closed())
    assert.is_nil(u:index())
    assert.are.equal(1, #list)
    local fl = assert(fcntl.fcntl(u:fd(), fcntl.F_GETFL))
    assert(fcntl.fcntl(u:fd(), fcntl.F_SETFL, fl + fcntl.O_NONBLOCK))
    assert.is_true(serve_one(u, map:addr(), pattern(5)))
    assert.are.equal(0, child.reap(c))
    assert.is_true(u:close())
    map:close()
  end)

  it("gc{budget = 1} collects a real dead child in single-probe steps; live ones stay", function()
    local cs, us = {}, {}
    for k = 1, 3 do
      cs[k] = device()
      us[k] = assert(ufl.recv(cs[k].sock))
      assert.is_true(list:register(us[k]))
    end
    -- a full first pass: all alive
    local calls, more, n = 0, true
    while more do
      n, more = list:gc { budget = 1 }
      assert.are.equal(0, n)
      calls = calls + 1
    end
    assert.are.equal(3, calls)
    child.signal(cs[2].sock)
    assert.are.equal(0, child.reap(cs[2]))
    local before = child.count_fds()
    local total
    calls, more, total = 0, true, 0
    while more do
      n, more = list:gc { budget = 1 }
      assert.is_number(n, more)
      total = total + n
      calls = calls + 1
      assert(calls <= 3)
    end
    assert.are.equal(1, total)
    assert.are.equal(3, calls)
    assert.is_true(us[2]:is_closed())
    assert.are.equal(before - 1, child.count_fds())
    assert.are.equal(3, #list)
    for _, k in ipairs { 1, 3 } do
      assert.is_false(us[k]:is_closed())
      assert.are.equal(us[k], list:get(us[k]:index()))
      child.signal(cs[k].sock)
      assert.are.equal(0, child.reap(cs[k]))
    end
  end)

  it("gc{only = {i}} probes just the hinted child: a live hint is kept, a dead one collected", function()
    local alive, dying = device(), device()
    local ua, ud = assert(ufl.recv(alive.sock)), assert(ufl.recv(dying.sock))
    assert.is_true(list:register(ua))
    assert.is_true(list:register(ud))
    child.signal(dying.sock)
    assert.are.equal(0, child.reap(dying))
    -- a hint naming the live child never closes it, even right after a
    -- death elsewhere
    assert.are.equal(0, list:gc { only = { ua:index() } })
    assert.is_false(ua:is_closed())
    assert.is_false(ud:is_closed())         -- dead, but not hinted
    assert.are.equal(1, list:gc { only = { ud:index(), ua:index() } })
    assert.is_true(ud:is_closed())
    assert.is_false(ua:is_closed())
    assert.are.equal(2, #list)
    child.signal(alive.sock)
    assert.are.equal(0, child.reap(alive))
    -- now dead too: collected by its hint
    assert.are.equal(1, list:gc { only = { 2 } })
    assert.is_true(ua:is_closed())
  end)

  it("a live child's uffd removed from the list is not closed: its later faults are still served by the caller",
  function()
    local map = assert(ufl.mmap_anon(PAGE, true))
    local c = device(function()
      return map:read(0, PAGE) == pattern(9)
    end)
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), PAGE))
    assert.is_true(list:register(u))
    assert.are.equal(u, list:remove(u:index()))
    child.signal(c.sock)
    assert.is_true(serve_one(u, map:addr(), pattern(9)))
    assert.are.equal(0, child.reap(c))
    u:close(); map:close()
  end)
end)
