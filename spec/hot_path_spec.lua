-- The fault path's binding calls with real faults of a real child: what
-- bench/ measures must also be right.  read_events fills reused tables
-- without lua_pcall and without allocating once they exist (its fast
-- path), clears the fields of another kind when a table is reused for a
-- different event, and still takes the protected path for fresh tables.
-- (Allocation is counted in bytes with the collector stopped; not timed.)
local ufl = require "uffdlist"
local child = require "spec.helpers.child"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)

local PAGE = ufl.page_size()

-- Serves u's events until `n` pagefaults were served; calls on(ev) for
-- each event read.
local function serve(u, ctx, out, n, on)
  local ready, served = {}, 0
  for _ = 1, 100000 do
    if served >= n then return end
    if ctx:wait(100, ready) > 0 then
      local m = assert(u:read_events(out))
      for i = 1, m do
        local ev = out[i]
        if on then on(ev) end
        if ev.kind == "pagefault" then
          assert(u:zeropage(ev.address - ev.address % PAGE, PAGE))
          served = served + 1
        end
      end
    end
  end
  error("served " .. served .. " of " .. n .. " faults")
end

describe("hot path with real faults", function()
  it("read_events into reused tables allocates nothing per fault", function()
    local PAGES, WARM = 2048, 512
    local map = assert(ufl.mmap_anon(PAGES * PAGE, true))
    local c = child.toucher(map, PAGES)
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), map:len()))
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(u, "u"))
    local out = {}
    child.signal(c.sock)
    local lo, hi = map:addr(), map:addr() + map:len()
    local function check(ev)
      assert.are.equal("pagefault", ev.kind)
      assert.is_true(ev.address >= lo and ev.address < hi)
      assert.are.equal(false, ev.write)
    end
    -- The trace cache may be full after the rest of the suite, and a full
    -- cache is flushed and recompiled at any time: start from an empty one.
    if jit then jit.flush() end
    serve(u, ctx, out, WARM / 2, check)  -- the events are right
    serve(u, ctx, out, WARM / 2)         -- warm-up of the path counted
    collectgarbage(); collectgarbage("stop")
    local before = collectgarbage("count")
    serve(u, ctx, out, PAGES - WARM)
    local per_fault = (collectgarbage("count") - before) * 1024 / (PAGES - WARM)
    collectgarbage("restart")
    assert.is_true(per_fault < 1, ("%.2f bytes per fault"):format(per_fault))
    assert.are.equal(0, child.reap(c))
    ctx:close(); u:close(); map:close()
  end)

  it("a reused table switching kinds keeps only the new kind's fields", function()
    local map = assert(ufl.mmap_anon(2 * PAGE, true))
    local c = child.toucher(map, 1, { remove = true })
    local u = assert(ufl.recv(c.sock))
    assert(u:register(map:addr(), map:len()))
    local ctx = assert(ufl.waitctx())
    assert(ctx:add(u, "u"))
    -- One table for every event: out[1] is reused on each read.
    local out = { {} }
    local t = out[1]
    local seen = {}
    child.signal(c.sock)
    serve(u, ctx, out, 2, function(ev)
      assert.are.equal(t, ev)   -- the very table, reused
      seen[#seen + 1] = ev.kind
      if ev.kind == "pagefault" then
        assert.is_nil(ev.start); assert.is_nil(ev.stop)
        assert.is_number(ev.address)
      elseif ev.kind == "remove" then
        assert.is_nil(ev.address); assert.is_nil(ev.flags)
        assert.is_nil(ev.write)
        assert.are.equal(map:addr(), ev.start)
        assert.are.equal(map:addr() + PAGE, ev.stop)
      end
    end)
    assert.are.same({ "pagefault", "remove", "pagefault" }, seen)
    assert.are.equal(0, child.reap(c))
    ctx:close(); u:close(); map:close()
  end)
end)
