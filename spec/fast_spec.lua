-- uffdlist.fast (LuaJIT: the hot methods over the FFI) against the C
-- methods it stands in for: the same results, the same errors and
-- messages, the same side effects, on real uffds, real faults of real
-- children and real lists.  Every case runs the method both ways (the C
-- one is fast.slow[name]) on objects in the same state and compares.
-- The file is #luajit: PUC Lua has no FFI and keeps the C methods.
local ufl = require "uffdlist"
-- Loaded under every Lua (busted reads the file before it filters tags).
local fast = jit and require "uffdlist.fast"
local unpack = table.unpack or unpack
local child = require "spec.helpers.child"
local memcap = require "spec.helpers.memcap"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)

local PAGE = ufl.page_size()
local alive = {
  register = function() return true end,
  is_dead = function() return false end,
  reset = function() return true end,
}

local function pack(...)
  return { n = select("#", ...), ... }
end

-- Everything a call gives back: ok, then its results or its error.
local function outcome(f, ...)
  return pack(pcall(f, ...))
end

local function methods(obj)
  return getmetatable(obj).__index
end

-- The fast methods, by name (taken from the classes, not from self: a
-- case may pass another object as self).
local FAST = {}
if fast then
  local u, ctx = assert(ufl.create(0)), assert(ufl.waitctx())
  local l = assert(ufl.list(u, alive, ctx))
  for _, k in ipairs{ "copy", "zeropage", "wake", "read_events" } do
    FAST[k] = methods(u)[k]
  end
  FAST.wait, FAST.get = methods(l).wait, methods(l).get
  l:close(); ctx:close()
end

-- The fast method `name` and the C one give the same outcome for
-- args (built twice by make_args: objects in the same state).
local function same(name, make_args)
  local fa, sa = make_args(), make_args()
  local f = outcome(FAST[name], unpack(fa, 1, fa.n))
  local s = outcome(fast.slow[name], unpack(sa, 1, sa.n))
  assert.are.same(s, f)
  return f
end

-- Waits until ctx reports a ready source (30 s at most: a child under
-- valgrind that forks takes seconds); returns how many.
local function wait_ready(ctx)
  local ready = {}
  local deadline = ufl.monotonic_ms() + 30000
  repeat
    local n = ctx:wait(50, ready)
    if n > 0 then return n end
  until ufl.monotonic_ms() > deadline
  error("no event")
end

-- Waits for u's next events and reads them (u:read_events).
local function read_when_ready(ctx, u, out, max)
  for _ = 1, 200 do
    wait_ready(ctx)
    local n, msg, errno = u:read_events(out, max)
    if n ~= 0 then return n, msg, errno end
  end
  error("no event")
end

describe("uffdlist.fast #luajit", function()
  it("is installed by require 'uffdlist', and UFFDLIST_FFI=0 keeps the C methods", function()
    local u = assert(ufl.create())
    assert.are_not.equal(fast.slow.copy, methods(u).copy)
    assert.are.equal("table", type(fast.slow))
    for _, name in ipairs{ "copy", "zeropage", "wake", "read_events" } do
      assert.are.equal("function", type(methods(u)[name]))
    end
    u:close()
    local cmd = [[UFFDLIST_FFI=0 luajit -e 'local ufl = require "uffdlist"
      local u = ufl.create(0)
      io.write(tostring(require("uffdlist.fast").slow == nil), " ",
        tostring(debug.getinfo(getmetatable(u).__index.copy).what))']]
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    assert.are.equal("true C", out)
  end)

  it("monotonic_ms reads the C one's clock", function()
    assert.are_not.equal(fast.slow.monotonic_ms, ufl.monotonic_ms)
    assert.are.equal(ufl.monotonic_ms, ufl.core.monotonic_ms)
    for _ = 1, 100 do
      local a = fast.slow.monotonic_ms()
      local b = ufl.monotonic_ms()
      local c = fast.slow.monotonic_ms()
      assert.is_true(a <= b and b <= c, ("%.6f %.6f %.6f"):format(a, b, c))
    end
  end)

  describe("fills", function()
    local u, map
    before_each(function()
      u = assert(ufl.create(0))
      map = assert(ufl.mmap_anon(64 * PAGE))
      assert(u:register(map:addr(), map:len()))
    end)
    after_each(function()
      u:close(); map:close()
    end)

    -- args for page p (fresh for each of the two calls: p and p + 1)
    local next_page = 0
    local function page()
      next_page = next_page + 1
      return map:addr() + (next_page % 64) * PAGE
    end

    it("copy from an address, from a string, and its EEXIST", function()
      local src = string.rep("x", PAGE)
      local s = assert(ufl.mmap_anon(PAGE))
      assert.are.same({ true, PAGE, n = 2 },
        same("copy", function() return pack(u, page(), s:addr(), PAGE) end))
      assert.are.same({ true, PAGE, n = 2 },
        same("copy", function() return pack(u, page(), src) end))
      -- a length the kernel refuses (not a page multiple): EINVAL both ways
      assert.are.same({ true, nil, "copy: Invalid argument", ufl.errno.EINVAL, n = 4 },
        same("copy", function() return pack(u, page(), src, 16) end))
      local a = page()
      assert(u:copy(a, src))
      local r = same("copy", function() return pack(u, a, src) end)
      assert.are.same({ true, nil, "copy: page exists", ufl.errno.EEXIST, n = 4 }, r)
      r = same("zeropage", function() return pack(u, a, PAGE) end)
      assert.are.equal(ufl.errno.EEXIST, r[4])
      assert.are.same({ true, true, n = 2 },
        same("wake", function() return pack(u, a, PAGE) end))
      s:close()
    end)

    it("zeropage and wake; an unregistered range fails the same way", function()
      assert.are.same({ true, PAGE, n = 2 },
        same("zeropage", function() return pack(u, page(), PAGE) end))
      local r = same("zeropage", function() return pack(u, 4096, PAGE) end)
      assert.is_nil(r[2])
      assert.is_number(r[4])
      r = same("wake", function() return pack(u, 4096, PAGE, nil) end)
      assert.is_true(r[1])
    end)

    it("bad arguments raise the C method's errors", function()
      local cases = {
        { "copy", -1, "x" }, { "copy", 0.5, "x" }, { "copy", 0 / 0, "x" },
        { "copy", 2 ^ 53 + 2, "x" }, { "copy", 4096, {} },
        { "copy", 4096, 4096 }, { "copy", 4096, "ab", 3 },
        { "copy", 4096, "ab", 1, -1 }, { "copy", 4096, "ab", 1, 2 ^ 32 },
        { "copy", 4096, 4096, "1" }, { "copy", "4096", "x" },
        { "zeropage", 4096 }, { "zeropage", 4096, PAGE, 0.5 },
        { "zeropage", 4096, 1 / 0 }, { "wake", nil, PAGE }, { "wake", 4096, -PAGE },
      }
      for _, c in ipairs(cases) do
        local r = same(c[1], function() return pack(u, c[2], c[3], c[4], c[5]) end)
        assert.is_false(r[1], c[1] .. " " .. tostring(c[2]))
        assert.matches("bad argument", r[2])
      end
    end)

    it("a closed uffd, and another object as self, raise as the C methods", function()
      local closed = assert(ufl.create(0))
      closed:close()
      local ctx = assert(ufl.waitctx())
      for _, self in ipairs{ closed, ctx, io.stdout, {}, 7 } do
        for _, name in ipairs{ "copy", "zeropage", "wake", "read_events" } do
          local r = same(name, function() return pack(self, 4096, PAGE, PAGE) end)
          assert.is_false(r[1])
        end
      end
      ctx:close()
    end)
  end)

  describe("read_events with real faults", function()
    local map, c, u, ctx
    before_each(function()
      map = assert(ufl.mmap_anon(8 * PAGE, true))
    end)
    after_each(function()
      if ctx then ctx:close() end
      if u then u:close() end
      map:close()
      ctx, u = nil, nil
    end)

    -- before(): called before "go" (the buffer's first read, say)
    local function start(pages, forks, before)
      c = child.toucher(map, pages, { forks = forks })
      u = assert(ufl.recv(c.sock))
      assert(u:register(map:addr(), map:len()))
      ctx = assert(ufl.waitctx())
      assert(ctx:add(u, "u"))
      if before then before() end
      child.signal(c.sock)
    end

    local function serve(ev)
      assert(u:zeropage(ev.address - ev.address % PAGE, PAGE))
    end

    it("gives the C method's fields, in reused tables, and truncates", function()
      start(3)
      local out = { {}, {}, {}, "stale", "stale" }
      -- The first read makes the buffer (C method); then the fast path.
      local n = read_when_ready(ctx, u, out)
      assert.are.equal(1, n)
      local t1 = out[1]
      local first = {}
      for k, v in pairs(t1) do first[k] = v end
      assert.is_nil(out[2])
      serve(t1)
      out[2], out[3] = { kind = "remove", start = 1, stop = 2, junk = 1 }, "x"
      n = read_when_ready(ctx, u, out)
      assert.are.equal(1, n)
      assert.are.equal(t1, out[1])
      assert.is_nil(out[2]); assert.is_nil(out[3])
      assert.are.same({ "address", "flags", "kind", "minor", "wp", "write" },
        (function() local ks = {} for k in pairs(t1) do ks[#ks + 1] = k end
          table.sort(ks) return ks end)())
      assert.are.equal(first.address + PAGE, t1.address)
      assert.are.same({ first.kind, first.flags, first.write, first.wp, first.minor },
        { t1.kind, t1.flags, t1.write, t1.wp, t1.minor })
      serve(t1)
      -- A table that held another kind is cleared first, as in C.
      out[1] = { kind = "remove", start = 1, stop = 2, uffd = true }
      n = read_when_ready(ctx, u, out)
      assert.are.equal(1, n)
      assert.is_nil(out[1].start); assert.is_nil(out[1].uffd)
      assert.are.equal("pagefault", out[1].kind)
      serve(out[1])
      assert.are.equal(0, child.reap(c))
      assert.are.same({ true, 0, out, n = 3 },
        outcome(u.read_events, u, out))
      assert.is_nil(out[1])
    end)

    it("an out[i] that is no table: the C method delivers the event", function()
      start(2)
      local out = {}
      assert.are.equal(1, read_when_ready(ctx, u, out))
      serve(out[1])
      out[1] = 42      -- not a table: the fast read's event goes to C
      local n = read_when_ready(ctx, u, out)
      assert.are.equal(1, n)
      assert.are.equal("pagefault", out[1].kind)
      serve(out[1])
      assert.are.equal(0, child.reap(c))
    end)

    it("a conversion that raises loses no event: the next read delivers it", function()
      start(2)
      local out = {}
      read_when_ready(ctx, u, out)
      serve(out[1])
      -- An empty table needs its hash part: with the heap capped at its
      -- size, the first field set raises "not enough memory".
      assert.are.equal(1, wait_ready(ctx))
      out[1] = {}
      local ok, err = memcap.pcall(u.read_events, u, out)
      assert.is_false(ok)
      assert.matches("not enough memory", tostring(err))
      local n = assert(u:read_events(out))
      assert.are.equal(1, n)
      assert.are.equal("pagefault", out[1].kind)
      serve(out[1])
      assert.are.equal(0, child.reap(c))
    end)

    it("a FORK event: its uffd is wrapped by the C method, none leaks", function()
      local fds = child.count_fds()
      local out = { {}, {}, {} }
      -- The buffer exists before the FORK message: the fast read gets it.
      start(1, true, function()
        assert.are.same({ 0, out }, { u:read_events(out, 4) })
      end)
      local got = {}
      for _ = 1, 4 do
        local n = read_when_ready(ctx, u, out, 4)
        for i = 1, n do
          local ev = out[i]
          got[ev.kind] = (got[ev.kind] or 0) + 1
          if ev.kind == "pagefault" then serve(ev) end
          if ev.kind == "fork" then
            assert.are.equal("fork", ev.uffd:origin())
            ev.uffd:close()
            ev.uffd = nil
          end
        end
        if got.pagefault then break end
      end
      assert.are.same({ fork = 1, pagefault = 1 }, got)
      assert.are.equal(0, child.reap(c))
      ctx:close(); u:close()
      ctx, u = nil, nil
      assert.are.equal(fds, child.count_fds())
    end)
  end)

  describe("list:wait and list:get", function()
    local function list_of(n)
      local ctx = assert(ufl.waitctx())
      local main = assert(ufl.create(0))
      local l = assert(ufl.list(main, alive, ctx))
      l:set_num_static_devices(0)
      for _ = 2, n do assert(l:register(assert(ufl.create(0)))) end
      return l, ctx
    end

    it("get gives the C method's objects, through registers, removes and gc swaps", function()
      local l, ctx = list_of(6)
      local gone = {}
      local checker = {
        register = function() return true end,
        is_dead = function(_, u) return gone[u] == true end,
        reset = function() return true end,
      }
      local l2 = assert(ufl.list(assert(ufl.create(0)), checker, ctx))
      l2:set_num_static_devices(0)
      for _ = 1, 5 do assert(l2:register(assert(ufl.create(0)))) end
      for _, list in ipairs{ l, l2 } do
        for i = 1, list:len() + 1 do
          assert.are.equal(fast.slow.get(list, i), list:get(i))
        end
      end
      gone[l2:get(2)] = true
      gone[l2:get(4)] = true
      l2:gc()
      local removed = l2:remove(l2:len())
      removed:close()
      for i = 1, l2:len() + 1 do
        assert.are.equal(fast.slow.get(l2, i), l2:get(i))
      end
      for _, args in ipairs{ { 0 }, { 1.5 }, { "1" }, { -1 }, { 0 / 0 } } do
        assert.are.same(outcome(fast.slow.get, l2, args[1]),
          outcome(FAST.get, l2, args[1]))
      end
      l:close(); l2:close()
      assert.are.same(outcome(fast.slow.get, l, 1), outcome(FAST.get, l, 1))
      assert.is_false(pcall(FAST.get, l, 1))
      assert.are.same(outcome(fast.slow.get, ctx, 1), outcome(FAST.get, ctx, 1))
      ctx:close()
    end)

    it("wait: entries of this list, another list's and user fds, as the C method", function()
      local l, ctx = list_of(3)
      local l2 = assert(ufl.list(assert(ufl.create(0)), alive, ctx))
      local ev = assert(ufl.eventfd(1))
      -- Nothing ready: n = 0, and out/evs past n cleared.
      local out, evs = { 9, 9 }, { 9 }
      assert.are.same({ true, 0, out, evs, n = 4 }, outcome(FAST.wait, l, 0, out, evs))
      assert.is_nil(out[1]); assert.is_nil(evs[1])
      -- A user fd of the ctx: the C fill (tokens other than this list's).
      assert(ctx:add(ev, "ev"))
      local a, b = {}, {}
      local f = outcome(FAST.wait, l, 0, a, b)
      local s = outcome(fast.slow.wait, l, 0, {}, {})
      assert.are.same(s, f)
      assert.are.same({ "ev" }, a)
      assert.are.same({ ufl.EPOLLIN }, b)
      f = outcome(FAST.wait, l2, 0)
      assert.are.equal(1, f[2])
      assert.are.same({ "ev" }, f[3])
      assert.is_nil(f[4])
      ev:close()
      -- Bad arguments, a closed list: the C method's errors.
      for _, args in ipairs{ { 0.5 }, { -2 }, { 2 ^ 31 }, { "1" }, { 0, 5 }, { 0, {}, 5 } } do
        local r = outcome(FAST.wait, l, args[1], args[2], args[3])
        assert.are.same(outcome(fast.slow.wait, l, args[1], args[2], args[3]), r)
        assert.is_false(r[1])
      end
      l2:close(); l:close()
      assert.are.same(outcome(fast.slow.wait, l, 0), outcome(FAST.wait, l, 0))
      assert.are.same(outcome(fast.slow.wait, ctx, 0), outcome(FAST.wait, ctx, 0))
      ctx:close()
    end)

    -- A list of n static entries made readable at will: each a uffd
    -- object over a dup of an eventfd (adopted unchecked), as
    -- spec/list_spec.lua fakes them.  Returns it, its context, the eventfds.
    local function eventfd_list(n)
      local unistd = posix.require "posix.unistd"
      local ctx = assert(ufl.waitctx())
      local evfds, us = {}, {}
      for i = 1, n do
        evfds[i] = assert(ufl.eventfd())
        us[i] = assert(ufl.adopt(assert(unistd.dup(evfds[i]:fd())), { check = false }))
      end
      local l = assert(ufl.list(us[1], alive, ctx))
      l:set_num_static_devices(n - 1)
      for i = 2, n do assert.is_false(l:register(us[i])) end
      return l, ctx, evfds
    end

    it("wait: ready entries of this list, indices and masks", function()
      local l, ctx, evfds = eventfd_list(4)
      assert(evfds[2]:write(1)); assert(evfds[4]:write(1))
      local out, evs = { 7, 7, 7, 7, 7 }, {}
      assert.are.equal(2, l:wait(0, out, evs))
      assert.is_nil(out[3]); assert.is_nil(evs[3])
      table.sort(out)
      assert.are.same({ 2, 4 }, out)
      assert.are.same({ ufl.EPOLLIN, ufl.EPOLLIN }, evs)
      assert(evfds[1]:write(1)); assert(evfds[3]:write(1))
      local f, s = outcome(FAST.wait, l, 0, {}, {}), outcome(fast.slow.wait, l, 0, {}, {})
      table.sort(f[3]); table.sort(s[3])
      assert.are.same(s, f)
      assert.are.same({ 1, 2, 3, 4 }, f[3])
      l:close(); ctx:close()
      for i = 1, 4 do evfds[i]:close() end
    end)

    it("wait: 0 to 6 ready entries over longer tails, on both paths", function()
      -- put() writes up to 4 entries without a loop: every count around
      -- that edge, each over a tail to truncate (up to the first nil:
      -- what is past a hole stays).
      local l, ctx, evfds = eventfd_list(6)
      local function call(w, n, tail)
        local out, evs = {}, {}
        for i = 1, n + tail do out[i], evs[i] = "x", "x" end
        out[n + tail + 2], evs[n + tail + 2] = "kept", "kept"
        local r = w(l, 0, out, evs)
        assert.are.equal(n, r)
        for i = n + 1, n + tail + 1 do
          assert.is_nil(out[i]); assert.is_nil(evs[i])
        end
        assert.are.equal("kept", out[n + tail + 2])
        assert.are.equal("kept", evs[n + tail + 2])
        local ids = {}
        for i = 1, n do
          ids[i] = out[i]
          assert.are.equal(ufl.EPOLLIN, evs[i])
        end
        table.sort(ids)
        return ids
      end
      for n = 0, 6 do
        for i = 1, 6 do
          evfds[i]:read()
          if i <= n then assert(evfds[i]:write(1)) end
        end
        local want = {}
        for i = 1, n do want[i] = i end
        for _, tail in ipairs { 0, 1, 3, 8 } do
          assert.are.same(want, call(FAST.wait, n, tail))
          assert.are.same(want, call(fast.slow.wait, n, tail))
        end
      end
      l:close(); ctx:close()
      for i = 1, 6 do evfds[i]:close() end
    end)

    it("wait: three children's faults ready at once, on both paths", function()
      -- Real uffds made readable by real faults on one shared page.  The
      -- wait is bounded by time, not by a count of waits: once one entry
      -- is ready a wait returns at once, and a count of them would run
      -- out before slower children have faulted.
      local map = assert(ufl.mmap_anon(PAGE, true))
      local ctx = assert(ufl.waitctx())
      local kids, uffds = {}, {}
      for i = 1, 3 do
        kids[i] = child.toucher(map, 1)
        uffds[i] = assert(ufl.recv(kids[i].sock))
        assert(uffds[i]:register(map:addr(), map:len()))
      end
      local l = assert(ufl.list(uffds[1], alive, ctx))
      l:set_num_static_devices(2)
      assert.is_false(l:register(uffds[2])); assert.is_false(l:register(uffds[3]))
      for i = 1, 3 do child.signal(kids[i].sock) end
      local out, evs = {}, {}
      local n
      local deadline = ufl.monotonic_ms() + 10000
      repeat n = l:wait(50, out, evs) until n == 3 or ufl.monotonic_ms() > deadline
      assert.are.equal(3, n)
      table.sort(out)
      assert.are.same({ 1, 2, 3 }, out)
      assert.are.same({ ufl.EPOLLIN, ufl.EPOLLIN, ufl.EPOLLIN }, evs)
      local f, sl = outcome(FAST.wait, l, 0, {}, {}), outcome(fast.slow.wait, l, 0, {}, {})
      table.sort(f[3]); table.sort(sl[3])
      assert.are.same(sl, f)
      -- Served: the page is shared, so after the first fill the others
      -- are EEXIST and only need a wake.
      for i = 1, 3 do
        local u = l:get(i)
        assert.are.equal(1, assert(u:read_events()))
        local r, _, e = u:zeropage(map:addr(), PAGE)
        if not r then
          assert.are.equal(ufl.errno.EEXIST, e)
          assert(u:wake(map:addr(), PAGE))
        end
      end
      for i = 1, 3 do assert.are.equal(0, child.reap(kids[i])) end
      l:close(); ctx:close(); map:close()
    end)
  end)
end)
