-- Event loops: uffd, eventfd, timerfd, list, waitctx and the monitor have
-- cqueues' pollable triple pollfd() / events() / timeout(), so
-- cqueues.poll(obj, t) returns obj itself as soon as obj is ready (not the
-- number t at the timeout), and a host's cqueues controller or luv loop
-- can drive a real monitor serving real faults of real children
-- (m:step(0) when m:pollfd() is readable or m:timeout() passed).
-- cqueues and luv are Debian's lua-cqueues and lua-luv (installed by
-- tools/install-deps.sh); LuaJIT uses their 5.1 builds.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local fake = require "helpers.fake"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local child = require "spec.helpers.child"

local has_cq, cqueues = pcall(require, "cqueues")
local has_uv, uv = pcall(require, "luv")

local PS = ufl.page_size()
local LONG = 5      -- seconds: a poll that waits this long has failed
local SHORT = 0.02  -- seconds: a poll on a quiet object returns this

-- it(), or pending with the reason when the library does not load.
local function it_with(has, lib, name, fn)
  if has then
    return it(name, fn)
  end
  pending(name .. ": needs " .. lib .. ", which does not load under "
    .. _VERSION .. " (Debian: lua-" .. lib .. ")")
end

-- cqueues.poll outside a controller: obj when ready, else the timeout.
local function cq_poll(obj, t)
  return cqueues.poll(obj, t)
end

describe("pollable triple", function()
  local w, list, ctx

  before_each(function()
    w = fake.new()
    list = assert(ufl.list(w:uffd(), w.checker))
    ctx = list:waitctx()
  end)

  after_each(function()
    list:close()
    ctx:close()
    w:close()
  end)

  it("every object has pollfd() = its fd, events() = 'r', timeout() = nil", function()
    local e = assert(ufl.eventfd())
    local t = assert(ufl.timerfd(1000, true))
    local u = w:uffd()
    local m = monitor.new{ list = list, read_events = w.read_events, policy = {} }
    for _, o in ipairs { e, t, u, list, ctx } do
      assert.equal("r", o:events(), tostring(o))
      assert.is_nil(o:timeout(), tostring(o))
    end
    assert.equal(e:fd(), e:pollfd())
    assert.equal(t:fd(), t:pollfd())
    assert.equal(u:fd(), u:pollfd())
    assert.equal(ctx:fd(), list:pollfd())
    assert.equal(ctx:fd(), ctx:pollfd())
    assert.equal(ctx:fd(), m:pollfd())
    assert.equal("r", m:events())
    m:close()
    e:close()
    t:close()
  end)

  it("raises on a closed uffd, eventfd or timerfd", function()
    local e = assert(ufl.eventfd())
    local t = assert(ufl.timerfd(1000, true))
    local ev = assert(ufl.eventfd())
    local u = assert(ufl.adopt(ev:fd(), { check = false, own = false }))
    for _, o in ipairs { u, ev, e, t } do
      o:close()
      for _, f in ipairs { "pollfd", "events", "timeout" } do
        assert.has_error(function() return o[f](o) end)
      end
    end
  end)

  it("the monitor's timeout() is the wait step() does: idle_ms, parked 1 ms", function()
    local m = monitor.new{ list = list, read_events = w.read_events, policy = {} }
    assert.equal(0.1, m:timeout())              -- no idle_ms: 100 ms
    m:set_policy{ idle_ms = -1 }                -- step would wait forever
    assert.is_nil(m:timeout())
    m:set_policy{ idle_ms = 250, on_idle = function() end }
    assert.equal(0.25, m:timeout())
    -- a fault meeting EAGAIN is parked: retried every 1 ms
    local removed = false
    m.fill = function(_, _, len)
      if removed then return len end
      return nil, "memory map changing", ufl.errno.EAGAIN
    end
    local u = w:uffd()
    m:register(u)
    m:set_num_static_devices(1)
    w:push_faults(u, 1, 0x7f0000000000)
    m:step(0)
    assert.equal(1, m:parked_count())
    assert.equal(0.001, m:timeout())
    removed = true
    m:step(0)
    assert.equal(0, m:parked_count())
    assert.equal(0.25, m:timeout())
    m:close()
  end)
end)

describe("cqueues.poll", function()
  local w, list, ctx

  before_each(function()
    w = fake.new()
    list = assert(ufl.list(w:uffd(), w.checker))
    ctx = list:waitctx()
  end)

  after_each(function()
    list:close()
    ctx:close()
    w:close()
  end)

  it_with(has_cq, "cqueues", "returns a readable eventfd, times out on a quiet one", function()
    local e = assert(ufl.eventfd())
    assert.equal(SHORT, cq_poll(e, SHORT))
    assert(e:write(1))
    assert.equal(e, cq_poll(e, LONG))
    e:close()
  end)

  it_with(has_cq, "cqueues", "returns a timerfd once it expired", function()
    local t = assert(ufl.timerfd(1000000, true))  -- 1000 s: quiet
    assert.equal(SHORT, cq_poll(t, SHORT))
    assert(t:set(5, true))
    assert.equal(t, cq_poll(t, LONG))
    assert.equal(1, t:read())
    t:close()
  end)

  it_with(has_cq, "cqueues", "returns a uffd, a list, a waitctx and a monitor when ready", function()
    local u = w:uffd()
    local m = monitor.new{ list = list, read_events = w.read_events, policy = {} }
    m:set_num_static_devices(0)
    m:register(u)
    assert.equal(2, u:index())
    local e = assert(ufl.eventfd())
    local other = assert(ufl.waitctx())
    assert(other:add(e, "e"))
    for _, o in ipairs { u, list, m } do
      assert.equal(SHORT, cq_poll(o, SHORT), tostring(o))
    end
    assert.equal(SHORT, cq_poll(other, SHORT))
    w:make_readable(u)
    assert(e:write(1))
    for _, o in ipairs { u, list, ctx, m, other } do
      assert.equal(o, cq_poll(o, LONG), tostring(o))
    end
    m:close()
    other:close()
    e:close()
  end)

  it_with(has_cq, "cqueues", "returns a real uffd when its child faults", function()
    local map = assert(ufl.mmap_anon(PS, true))
    local c = child.spawn(function(sock)
      assert(assert(ufl.create()):send(sock))
      if not child.await(sock) then return false end
      return map:read(0, PS) == string.rep("\0", PS)
    end)
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), map:len()))
    assert.equal(SHORT, cq_poll(u, SHORT))     -- no fault yet
    child.signal(c.sock)
    assert.equal(u, cq_poll(u, LONG))
    local out = {}
    local n = assert(u:read_events(out))
    assert.equal(1, n)
    assert.equal("pagefault", out[1].kind)
    assert(u:zeropage(map:addr(), PS))
    assert.equal(0, child.reap(c))
    u:close()
    map:close()
  end)
end)

-- A real monitor on a real list: a child of ours faults npages pages of
-- map, the monitor serves them (zeropage); once the child exited and was
-- reaped, a requested gc collects its uffd.  drive(m, done) runs the loop.
local function real_monitor_serves(drive)
  local checker = assert(ufl.checker())        -- before fork
  local npages = 3
  local map = assert(ufl.mmap_anon(npages * PS, true))
  local c = child.spawn(function(sock)
    assert(assert(ufl.create()):send(sock))
    if not child.await(sock) then return false end
    for i = 0, npages - 1 do
      if map:read(i * PS, PS) ~= string.rep("\0", PS) then return false end
    end
    return true
  end)
  local u = assert(ufl.recv(c.sock))
  assert(u:register(map:addr(), map:len()))
  -- main: a uffd of this process, static (see monitor_spec's real-kernel
  -- spec: the checker never registers its page there)
  local list = assert(ufl.list(assert(ufl.create()), checker))
  local ctx = list:waitctx()
  local errs, idles = {}, 0
  local m = monitor.new{ list = list,
    policy = { idle_ms = 10, on_idle = function() idles = idles + 1 end },
    on_error = function(_, what, msg) errs[#errs + 1] = what .. ": " .. msg end }
  m:set_num_static_devices(0)
  m:register(u)
  child.signal(c.sock)
  local status, deadline = nil, os.time() + 10
  drive(m, function()
    if os.time() > deadline then error("the loop did not finish in 10 s") end
    if status == nil then
      status = child.try_reap(c)
      if status ~= nil then m:request_gc() end
    end
    return u:is_closed() and idles > 0
  end)
  assert.equal(0, status)                      -- the child saw zero pages
  assert.equal(npages, m.stats.served_zero)
  assert.equal(1, m.stats.collected)
  assert.is_true(idles > 0)                    -- timeout() covers idle_ms
  assert.same({}, errs)
  m:close()
  list:close()
  ctx:close()
  map:close()
  checker:close()
end

describe("a real monitor in an outer loop", function()
  it_with(has_cq, "cqueues", "serves a child's faults and collects it from a cqueues controller", function()
    real_monitor_serves(function(m, done)
      local cq = cqueues.new()
      local polls = 0
      cq:wrap(function()
        repeat
          if cqueues.poll(m, m:timeout()) == m then polls = polls + 1 end
          m:step(0)
        until done()
      end)
      assert(cq:loop())
      assert.is_true(polls > 0)                -- woken by the fd, not only
    end)                                       -- by timeouts
  end)

  it_with(has_uv, "luv", "serves a child's faults and collects it from a luv loop", function()
    real_monitor_serves(function(m, done)
      local poll = uv.new_poll(m:pollfd())
      local timer = uv.new_timer()
      local polls, failed = 0, nil
      local function round(from_poll)
        local ok, e = pcall(function()
          if from_poll then polls = polls + 1 end
          m:step(0)
          return done()
        end)
        if not ok or e then
          failed = not ok and e or nil
          poll:stop()
          timer:stop()
          poll:close()
          timer:close()
          return
        end
        timer:stop()
        timer:start(math.ceil(m:timeout() * 1000), 0, function() round(false) end)
      end
      poll:start("r", function() round(true) end)
      timer:start(math.ceil(m:timeout() * 1000), 0, function() round(false) end)
      uv.run()
      if failed then error(failed, 0) end
      assert.is_true(polls > 0)
    end)
  end)
end)
