-- The monitor loop (lua/uffdlist/monitor.lua) against fake uffds.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local monitor = require "uffdlist.monitor"
local fake = require "helpers.fake"
local unpack = unpack or table.unpack -- 5.1 / 5.2+

local ESRCH, EEXIST, EAGAIN = ufl.errno.ESRCH, ufl.errno.EEXIST,
  ufl.errno.EAGAIN
local PS = ufl.page_size()
local BASE = 0x7f0000000000

-- A fill that records its calls and answers from a script: script[i] is
-- the i-th call's results ({} or nil: success), or a function(addr, len).
local function scripted_fill(script)
  local f = { calls = {} }
  f.fn = function(u, addr, len)
    local k = #f.calls + 1
    f.calls[k] = { u = u, addr = addr, len = len }
    local r = script and script[k]
    if type(r) == "function" then
      return r(addr, len)
    elseif r and #r > 0 then
      return unpack(r, 1, 4)
    end
    return len
  end
  return f
end

-- A fill that meets "memory map changing" (EAGAIN) on every call until
-- done() is true, then succeeds.
local function changing_until(done)
  return scripted_fill(setmetatable({}, { __index = function()
    return function(_, len)
      if done() then return len end
      return nil, "memory map changing", EAGAIN
    end
  end }))
end

-- A proxy of the list that records wait timeouts.
local function spy_waits(m)
  local real, timeouts = m.list, {}
  m.list = setmetatable({
    wait = function(_, t, ...)
      timeouts[#timeouts + 1] = t
      return real:wait(t, ...)
    end,
  }, { __index = function(_, k)
    return function(_, ...) return real[k](real, ...) end
  end })
  return timeouts
end

describe("monitor", function()
  local w, list, ctx, main, m, errors, fill

  local function new_monitor(opts)
    opts = opts or {}
    opts.list = list
    opts.read_events = w.read_events
    opts.fill = opts.fill or fill.fn
    opts.on_error = function(_, what, msg, errno)
      errors[#errors + 1] = { what = what, msg = msg, errno = errno }
    end
    m = monitor.new(opts)
    return m
  end

  local function static_uffds(n) return w:static_uffds(m, n) end

  before_each(function()
    w = fake.new()
    main = w:uffd()
    list = assert(ufl.list(main, w.checker))
    ctx = list:waitctx()
    errors, fill = {}, scripted_fill()
  end)

  after_each(function()
    if m then m:close() end
    list:close()
    ctx:close()
    w:close()
    m = nil
  end)

  describe("dispatch", function()
    it("passes each event kind to its handler", function()
      local seen = {}
      local function record(kind)
        return function(mm, u, ev)
          seen[#seen + 1] = { kind = kind, m = mm, u = u, evkind = ev.kind,
            start = ev.start, from = ev.from, uffd = ev.uffd }
        end
      end
      new_monitor{ handlers = {
        pagefault = record("pagefault"), remove = record("remove"),
        fork = record("fork"), remap = record("remap"),
        unmap = record("unmap") } }
      local u = static_uffds(1)[1]
      local child = w:uffd()
      w:push(u, { kind = "pagefault", address = BASE })
      w:push(u, { kind = "remove", start = BASE, stop = BASE + PS })
      w:push(u, { kind = "fork", uffd = child })
      w:push(u, { kind = "remap", from = BASE, to = BASE + PS, len = PS })
      w:push(u, { kind = "unmap", start = BASE, stop = BASE + PS })
      assert.equal(1, m:step(0))
      assert.equal(5, #seen)
      local kinds = {}
      for i, s in ipairs(seen) do
        kinds[i] = s.kind
        assert.equal(s.kind, s.evkind)
        assert.equal(m, s.m)
        assert.equal(u, s.u)
      end
      assert.same({ "pagefault", "remove", "fork", "remap", "unmap" }, kinds)
      assert.equal(BASE, seen[2].start)
      assert.equal(BASE, seen[4].from)
      assert.equal(child, seen[3].uffd)
      assert.same({ pagefault = 1, remove = 1, fork = 1, remap = 1,
        unmap = 1 }, m.stats.events)
      assert.equal(1, m.stats.faults)
      assert.same({}, errors)
    end)

    it("serves faults with the default handler through m.fill", function()
      new_monitor()
      local u = static_uffds(1)[1]
      w:push_faults(u, 3, BASE + 123)   -- not page aligned: aligned down
      m:step(0)
      assert.equal(3, #fill.calls)
      assert.equal(BASE, fill.calls[1].addr)
      assert.equal(PS, fill.calls[1].len)
      assert.equal(BASE + 2 * PS, fill.calls[3].addr)
      assert.equal(3, m.stats.served_copy)
    end)

    it("registers a forked uffd by default, between batches", function()
      new_monitor()
      local u = static_uffds(1)[1]
      local child = w:uffd()
      w:push(u, { kind = "fork", uffd = child })
      m:step(0)
      assert.equal(3, list:len())
      assert.equal(3, child:index())
      assert.equal(1, m.stats.registered - 1)   -- 1 static + the child
    end)

    it("reports an unknown event kind and goes on", function()
      new_monitor()
      local u = static_uffds(1)[1]
      w:push(u, { kind = "unknown", event = 99 })
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal("event", errors[1].what)
      assert.equal(1, #fill.calls)
    end)

    it("reports a handler error and serves the rest of the batch", function()
      local n = 0
      new_monitor{ handlers = { pagefault = function(mm, u, ev)
        n = n + 1
        if n == 1 then error("handler broke") end
        mm:serve(u, ev)
      end } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 3, BASE)
      m:step(0)
      assert.equal("handler.pagefault", errors[1].what)
      assert.matches("handler broke", errors[1].msg)
      assert.equal(2, #fill.calls)
    end)
  end)

  describe("fairness", function()
    it("reads at most batch events of one uffd per round", function()
      new_monitor{ batch = 16 }
      local us = static_uffds(2)
      w:push_faults(us[1], 1000, BASE)
      w:push_faults(us[2], 3, BASE)
      m:step(0)
      local per = {}
      for _, c in ipairs(fill.calls) do
        per[c.u] = (per[c.u] or 0) + 1
      end
      assert.equal(16, per[us[1]])
      assert.equal(3, per[us[2]])          -- served in the same round
      assert.equal(1000 - 16, w:pending(us[1]))
      m:step(0)                            -- level-triggered: ready again
      assert.equal(1000 - 32, w:pending(us[1]))
    end)

    it("does not allocate event tables per round", function()
      new_monitor{ batch = 8 }
      local u = static_uffds(1)[1]
      w:push_faults(u, 8, BASE)
      m:step(0)
      local first = {}
      for i = 1, 8 do first[i] = m.evbuf[i] end
      w:push_faults(u, 1, BASE)
      m:step(0)
      w:push_faults(u, 8, BASE)
      m:step(0)
      for i = 1, 8 do assert.equal(first[i], m.evbuf[i]) end
    end)
  end)

  describe("fill outcomes", function()
    it("skips a fault meeting ESRCH and drops the rest of that batch", function()
      fill = scripted_fill{ { nil, "process gone", ESRCH } }
      new_monitor()
      local us = static_uffds(2)
      local child = w:uffd()
      w:push_faults(us[1], 5, BASE)
      w:push(us[1], { kind = "fork", uffd = child })
      w:push_faults(us[2], 2, BASE)
      m:step(0)
      local per = {}
      for _, c in ipairs(fill.calls) do
        per[c.u] = (per[c.u] or 0) + 1
      end
      assert.equal(1, per[us[1]])
      assert.equal(2, per[us[2]])          -- others are still served
      assert.equal(1, m.stats.skipped_gone)
      assert.equal(4, m.stats.dropped)
      -- a fork's uffd is owned: never dropped
      assert.equal(4, child:index())
      assert.same({}, errors)
    end)

    it("wakes the thread when the page exists", function()
      local woken = {}
      fill = scripted_fill{ { nil, "page exists", EEXIST } }
      new_monitor{ wake = function(u, addr, len)
        woken[#woken + 1] = { u = u, addr = addr, len = len }
        return true
      end }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.same({ { u = u, addr = BASE, len = PS } }, woken)
      assert.equal(1, m.stats.woken)
      assert.same({}, errors)
    end)

    it("copies the rest after a partial copy", function()
      fill = scripted_fill{ { nil, "partially copied", EAGAIN, 1024 } }
      new_monitor()
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal(2, #fill.calls)
      assert.equal(BASE + 1024, fill.calls[2].addr)
      assert.equal(PS - 1024, fill.calls[2].len)
      assert.equal(1, m.stats.served_copy)
      assert.equal(0, m:parked_count())
    end)

    it("copies the rest after partial copies in a row, then parks the "
      .. "part left on EAGAIN", function()
      -- fill_range has no loop (a loop aborted every trace through the
      -- fault path, bench/README.md): each partial copy tail-calls it for
      -- the rest, and the range it reports is what is left.
      fill = scripted_fill{
        { nil, "partially copied", EAGAIN, 1024 },
        { nil, "partially copied", EAGAIN, 1024 },
        { nil, "memory map changing", EAGAIN },
      }
      new_monitor()
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)   -- the round's retry of the parked part fills it
      assert.equal(4, #fill.calls)
      assert.equal(BASE + 1024, fill.calls[2].addr)
      assert.equal(PS - 1024, fill.calls[2].len)
      assert.equal(BASE + 2048, fill.calls[3].addr)
      assert.equal(PS - 2048, fill.calls[3].len)
      assert.equal(2, m.stats.partial)
      assert.equal(1, m.stats.parked)
      assert.equal(BASE + 2048, fill.calls[4].addr)
      assert.equal(PS - 2048, fill.calls[4].len)
      assert.equal(1, m.stats.served_copy)
      assert.equal(0, m:parked_count())
    end)

    it("parks a fault on EAGAIN, reads the uffd's REMOVE, retries", function()
      local removed = false
      fill = changing_until(function() return removed end)
      new_monitor{ batch = 1, handlers = {
        remove = function() removed = true end } }
      local timeouts = spy_waits(m)
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      w:push(u, { kind = "remove", start = BASE, stop = BASE + PS })
      m:step()
      assert.equal(1, m:parked_count())
      assert.equal(1, m.stats.parked)
      assert.is_false(removed)          -- batch = 1: REMOVE still pending
      m:step()
      assert.is_true(removed)
      assert.equal(0, m:parked_count())
      assert.equal(1, m.stats.served_copy)
      assert.equal(100, timeouts[1])    -- nothing parked: the default
      assert.equal(1, timeouts[2])      -- parked: small, never 0
      assert.same({}, errors)
    end)

    it("reads the events of a parked uffd the wait did not report", function()
      local removed = false
      fill = changing_until(function() return removed end)
      new_monitor{ handlers = { remove = function() removed = true end } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal(1, m:parked_count())
      -- queued without making u readable: only the retry pass reads it
      local q = w.queues[u]
      q.last = q.last + 1
      q[q.last] = { kind = "remove", start = BASE, stop = BASE + PS }
      m:step(0)
      assert.is_true(removed)
      assert.equal(0, m:parked_count())
    end)

    it("gives up a parked fault after retry_timeout_ms", function()
      local now = 0
      fill = scripted_fill(setmetatable({}, { __index = function()
        return { nil, "memory map changing", EAGAIN }
      end }))
      local woken = {}
      new_monitor{ retry_timeout_ms = 50, clock = function() return now end,
        wake = function(_, addr) woken[#woken + 1] = addr; return true end }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      now = 30
      m:step(0)
      assert.equal(1, m:parked_count())
      assert.same({}, errors)
      now = 51
      m:step(0)
      assert.equal(0, m:parked_count())
      assert.equal("retry_timeout", errors[1].what)
      assert.equal(EAGAIN, errors[1].errno)
      assert.matches("0x7f0000000000", errors[1].msg)
      assert.equal(1, m.stats.retry_timeouts)
      assert.same({ BASE }, woken) -- its thread retries, not blocked for ever
    end)

    it("wakes the faulting thread when its fill fails", function()
      local woken = {}
      fill = scripted_fill{ { nil, "copy: No such file or directory", 2 } }
      new_monitor{ wake = function(u, addr, len)
        woken[#woken + 1] = { u = u, addr = addr, len = len }
        return true
      end }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal("fill", errors[1].what)
      assert.same({ { u = u, addr = BASE, len = PS } }, woken)
    end)

    it("never spins while a fault is parked", function()
      fill = scripted_fill(setmetatable({}, { __index = function()
        return { nil, "memory map changing", EAGAIN }
      end }))
      new_monitor{ retry_timeout_ms = 60000 }
      local timeouts = spy_waits(m)
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step()
      for _ = 1, 5 do m:step() end
      for i = 2, #timeouts do assert.equal(1, timeouts[i]) end
      assert.equal(1, m:parked_count())
    end)

    it("drops a parked fault whose uffd a gc closed", function()
      fill = scripted_fill(setmetatable({}, { __index = function()
        return { nil, "memory map changing", EAGAIN }
      end }))
      new_monitor()
      static_uffds(1)
      local dyn = w:uffd()
      m:register(dyn)
      w:push_faults(dyn, 1, BASE)
      m:step(0)
      assert.equal(1, m:parked_count())
      w:mark_dead(dyn)
      assert.equal(1, m:gc())
      assert.equal(0, m:parked_count())
      assert.is_true(dyn:is_closed())
      m:step(0)
      assert.same({}, errors)
    end)
  end)

  describe("list changes", function()
    it("registers and collects between batches, never during one", function()
      local fresh, checks = w:uffd(), {}
      new_monitor{ handlers = { pagefault = function(mm, u, ev)
        local len = list:len()
        mm:register(fresh)
        local r, why = mm:gc()
        checks[#checks + 1] = { len_before = len, len_after = list:len(),
          fresh_index = fresh:index(), gc = r, why = why }
        mm:serve(u, ev)
      end } }
      local u = static_uffds(1)[1]
      local dead = w:uffd()
      m:register(dead)                    -- dynamic
      w:mark_dead(dead)
      assert.equal(3, list:len())
      w:push_faults(u, 2, BASE)
      m:step(0)
      for _, c in ipairs(checks) do
        assert.equal(c.len_before, c.len_after)
        assert.is_nil(c.fresh_index)
        assert.is_nil(c.gc)
        assert.equal("deferred", c.why)
      end
      -- after the batch: fresh registered (dynamic), crosvm's gc ran
      assert.is_true(dead:is_closed())
      assert.is_number(fresh:index())
      assert.equal(1, m.stats.collected)
      -- fresh was queued twice: the second register is an error
      assert.equal("register", errors[1].what)
    end)

    it("applies register and set_num_static_devices at once between rounds", function()
      new_monitor()
      local u = w:uffd()
      m:register(u)
      assert.equal(2, u:index())
      m:set_num_static_devices(1)
      assert.equal(2, list:num_static())
      assert.has_error(function() m:set_num_static_devices(1) end,
        "set_num_static_devices called twice")
    end)

    it("runs crosvm's gc only after a dynamic register", function()
      new_monitor()
      local us = static_uffds(1)
      w:mark_dead(us[1])                  -- static: never collected
      assert.equal(0, m.stats.gcs)
      local d1 = w:uffd()
      m:register(d1)
      assert.equal(1, m.stats.gcs)
      w:mark_dead(d1)
      w:push_faults(us[1], 1, BASE)
      m:step(0)
      assert.equal(1, m.stats.gcs)        -- a dead one waits for a hot-plug
      assert.is_false(d1:is_closed())
      m:register(w:uffd())
      assert.equal(2, m.stats.gcs)
      assert.is_true(d1:is_closed())
      assert.is_false(us[1]:is_closed())
    end)

    it("reports a failed register and closes the uffd", function()
      new_monitor()
      local u = w:uffd()
      u:close()
      m:register(u)
      assert.equal("register", errors[1].what)
      assert.has_error(function() m:register(42) end)
    end)
  end)

  describe("watch", function()
    it("calls a watched fd's function when it is ready", function()
      new_monitor()
      local sig = fake.signal()
      local calls = {}
      assert.is_true(m:watch(sig:fd(), function(mm, target, evmask)
        calls[#calls + 1] = { m = mm, target = target, ev = evmask }
        sig:drain(true)
      end))
      assert.equal(0, m:step(0))
      sig:poke()
      assert.equal(1, m:step(0))
      assert.equal(1, #calls)
      assert.equal(m, calls[1].m)
      assert.equal(sig:fd(), calls[1].target)
      assert.is_true(calls[1].ev % (2 * ufl.EPOLLIN) >= ufl.EPOLLIN)
      assert.is_true(m:unwatch(sig:fd()))
      sig:poke()
      m:step(0)
      assert.equal(1, #calls)
      sig:close()
    end)

    it("reports an error in a watched function and goes on", function()
      new_monitor()
      local sig = fake.signal()
      m:watch(sig:fd(), function() error("watch broke") end)
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      sig:poke()
      m:step(0)
      assert.equal("watch", errors[1].what)
      assert.equal(1, #fill.calls)
      m:unwatch(sig:fd())
      sig:close()
    end)
  end)

  describe("policy hooks", function()
    it("a hook error is reported and the loop goes on", function()
      new_monitor{ policy = {
        on_register = function() error("register hook broke") end,
        after_batch = function() error("batch hook broke") end,
      } }
      local u = static_uffds(1)[1]
      assert.equal("policy.on_register", errors[1].what)
      assert.matches("register hook broke", errors[1].msg)
      w:push_faults(u, 2, BASE)
      m:step(0)
      assert.equal(2, #fill.calls)
      assert.equal("policy.after_batch", errors[#errors].what)
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal(3, #fill.calls)
      assert.equal(3, m.stats.hook_errors)
    end)

    it("stops a runaway hook within its budget", function()
      new_monitor{ hook_budget_ms = 50, policy = {
        after_batch = function() while true do end end,
      } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      local t0 = os.clock()
      m:step(0)
      assert.is_true(os.clock() - t0 < 0.5)
      assert.equal("policy.after_batch", errors[1].what)
      assert.equal("policy hook 'after_batch' exceeded 50 ms", errors[1].msg)
      assert.is_nil(debug.gethook())   -- the count hook is gone
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.equal(2, #fill.calls)
    end)

    it("prefetches the window on_fault returns", function()
      new_monitor{ policy = { on_fault = function(_u, ev)
        return ev.write and 3 or 1
      end } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE, true)
      w:push_faults(u, 1, BASE + 16 * PS, false)
      m:step(0)
      assert.equal(4, #fill.calls)
      assert.equal(BASE + 2 * PS, fill.calls[3].addr)
      assert.equal(BASE + 16 * PS, fill.calls[4].addr)
      assert.equal(2, m.stats.prefetched)
    end)

    it("calls on_idle with the time since the last event", function()
      local now, idle = 0, {}
      new_monitor{ clock = function() return now end, policy = {
        on_idle = function(ms) idle[#idle + 1] = ms end,
      } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      now = 10
      m:step(0)
      assert.same({}, idle)
      now = 35
      m:step(0)
      assert.same({ 25 }, idle)
    end)
  end)

  -- Issue 7, case 14: an error in the middle of a round left the monitor
  -- busy, and every later step failed with "called from inside a round".
  describe("a round that fails", function()
    local function usable()
      -- the next step works and serves
      local u = list:get(2)
      local before = #fill.calls
      w:push_faults(u, 1, BASE + 100 * PS)
      assert.is_true(m:step(0) >= 1)
      assert.is_false(m.busy)
      assert.is_true(#fill.calls > before)
      assert.equal(BASE + 100 * PS, fill.calls[#fill.calls].addr)
    end

    it("in a fill raising on the retry path", function()
      local n = 0
      fill = scripted_fill(setmetatable({}, { __index = function()
        return function(_, len)
          n = n + 1
          if n <= 2 then return nil, "memory map changing", EAGAIN end
          if n == 3 then error("fill broke on the retry") end
          return len
        end
      end }))
      local woken = {}
      new_monitor{ wake = function(_, addr) woken[#woken + 1] = addr
        return true end }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)                        -- parked
      assert.equal(1, m:parked_count())
      m:step(0)                        -- the retry raises
      assert.is_false(m.busy)
      assert.equal(0, m:parked_count())
      assert.equal("fill", errors[1].what)
      assert.matches("fill broke on the retry", errors[1].msg)
      assert.same({ BASE }, woken)     -- its thread is not left blocked
      usable()
    end)

    it("in read_events raising", function()
      new_monitor()
      local u = static_uffds(1)[1]
      local real = m.read_events
      m.read_events = function() error("read_events broke") end
      w:push_faults(u, 1, BASE)
      m:step(0)
      assert.is_false(m.busy)
      assert.equal("read_events", errors[1].what)
      assert.matches("read_events broke", errors[1].msg)
      m.read_events = real
      usable()
    end)

    it("in a failing wake (on the retry path, and on a give-up)", function()
      fill = scripted_fill{ { nil, "memory map changing", EAGAIN },
        { nil, "memory map changing", EAGAIN }, { nil, "page exists", EEXIST },
        { nil, "copy: No such file or directory", 2 } }
      new_monitor{ wake = function() error("wake broke") end }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)                        -- parked
      m:step(0)                        -- EEXIST on the retry: wake raises
      assert.is_false(m.busy)
      assert.equal(0, m:parked_count())
      w:push_faults(u, 1, BASE + PS)
      m:step(0)                        -- a failed fill: the wake raises
      assert.is_false(m.busy)
      assert.equal("fill", errors[2].what)
      assert.equal("wake", errors[3].what)
      assert.equal("wake", errors[1].what)
      assert.matches("wake broke", errors[1].msg)
      m.wake = function() return true end
      usable()
    end)

    it("anywhere else: the round ends, is reported, the next one works",
      function()
        new_monitor()
        static_uffds(1)
        local real = m.list
        m.list = setmetatable({ wait = function() error("wait broke") end },
          { __index = function(_, k)
            return function(_, ...) return real[k](real, ...) end
          end })
        assert.equal(0, m:step(0))
        assert.is_false(m.busy)
        assert.equal("round", errors[1].what)
        assert.matches("wait broke", errors[1].msg)
        m.list = real
        usable()
      end)

    it("in a queued register whose uffd raises", function()
      new_monitor()
      static_uffds(1)
      local bad = setmetatable({}, { __index = function() error("odd uffd") end })
      m:register(w:uffd())
      -- a userdata-looking object the list refuses: the queue goes on
      m.q_op[1], m.q_arg[1], m.nqueued = "register", bad, 1
      m:step(0)
      assert.equal(0, m.nqueued)
      assert.is_true(#errors >= 1)
      usable()
    end)
  end)

  describe("run", function()
    it("steps until until_fn is true", function()
      new_monitor()
      local u = static_uffds(1)[1]
      w:push_faults(u, 3, BASE)
      m:run(function(mm) return mm.stats.faults >= 3 end)
      assert.equal(3, #fill.calls)
    end)

    it("stop ends run after the current round", function()
      new_monitor{ handlers = { pagefault = function(mm, u, ev)
        mm:serve(u, ev)
        mm:stop()
      end } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:run()
      assert.equal(1, #fill.calls)
    end)

    -- run runs its rounds inside one pcall (a LuaJIT trace cannot return
    -- into a pcall's frame): an error must still cost one round only.
    it("an error in a round or after it is reported as step would, and run goes on", function()
      new_monitor()
      local u = static_uffds(1)[1]
      local real, waits, clock = m.list, 0, m.clock
      m.list = setmetatable({ wait = function(_, ...)
        waits = waits + 1
        if waits == 1 then error("wait broke") end
        return real:wait(...)
      end }, { __index = function(_, k)
        return function(_, ...) return real[k](real, ...) end
      end })
      local ticks = 0
      m.clock = function()
        ticks = ticks + 1
        if ticks == 2 then error("clock broke") end
        return clock()
      end
      w:push_faults(u, 3, BASE)
      m:run(function(mm) return mm.stats.faults >= 3 end)
      assert.is_false(m.busy)
      assert.equal(3, #fill.calls)
      assert.equal(2, #errors)
      assert.equal("round", errors[1].what)
      assert.matches("wait broke", errors[1].msg)
      assert.equal("round", errors[2].what)
      assert.matches("clock broke", errors[2].msg)
      m.list, m.clock = real, clock
    end)

    it("run from inside a round raises as step does, and the outer run goes on", function()
      local inner
      new_monitor{ handlers = { pagefault = function(mm, u, ev)
        inner = { pcall(mm.run, mm) }
        mm:serve(u, ev)
      end } }
      local u = static_uffds(1)[1]
      w:push_faults(u, 2, BASE)
      m:run(function(mm) return mm.stats.faults >= 2 end)
      assert.is_false(inner[1])
      assert.matches("monitor:run called from inside a round", inner[2])
      assert.equal(2, #fill.calls)
      assert.is_false(m.busy)
      assert.equal(0, #errors)
    end)

    it("an error of until_fn reaches run's caller as it was raised, the monitor idle", function()
      new_monitor()
      local u = static_uffds(1)[1]
      local e = { "until broke" }
      w:push_faults(u, 1, BASE)
      local ok, got = pcall(m.run, m, function(mm)
        if mm.stats.faults >= 1 then error(e) end
      end)
      assert.is_false(ok)
      assert.equal(e, got)
      assert.is_false(m.busy)
      assert.equal(0, #errors)
      w:push_faults(u, 1, BASE + PS)
      m:run(function(mm) return mm.stats.faults >= 2 end)
      assert.equal(2, #fill.calls)
    end)
  end)

  describe("close", function()
    it("leaves no fd behind (fakes, list, monitor, watch)", function()
      local count_fds = require("spec.helpers.child").count_fds
      list:close()       -- the before_each ones: count from a clean slate
      ctx:close()
      w:close()
      local before = count_fds()
      w = fake.new()
      main = w:uffd()
      list = assert(ufl.list(main, w.checker))
      ctx = list:waitctx()
      new_monitor{ policy = { timer_ms = 50, on_timer = function() end } }
      local sig = fake.signal()
      m:watch(sig:fd(), function() sig:drain(true) end)
      local us = static_uffds(2)
      local d = w:uffd()
      m:register(d)
      w:mark_dead(d)
      w:push_faults(us[1], 3, BASE)
      sig:poke()
      m:step(0)
      assert.equal(1, m:gc())
      m:close()
      sig:close()
      list:close()
      ctx:close()
      w:close()
      assert.equal(before, count_fds())
    end)
  end)

  describe("on the real kernel", function()
    local child = require "spec.helpers.child"

    -- A child that sends its own uffd (features: default) and waits.
    local child_sock   -- in the child: its end of the socketpair

    local function spawn(body)
      local c = child.spawn(function(sock)
        child_sock = sock
        assert(assert(ufl.create()):send(sock))
        if not child.await(sock) then return false end
        return body()
      end)
      return c, assert(ufl.recv(c.sock))
    end

    it("serves a child's faults, then collects its uffd once it died", function()
      local checker = assert(ufl.checker())   -- before fork
      local map = assert(ufl.mmap_anon(2 * PS, true))
      local pattern = string.rep("M", PS)
      local c, u = spawn(function()
        return map:read(0, PS) == string.rep("\0", PS)
          and map:read(PS, PS) == pattern
      end)
      assert(u:register(map:addr(), map:len()))
      -- main: a uffd of this process (static, so the checker never
      -- registers its page there: a REMOVE on our own uffd would wait for
      -- us to read it while we are in reset's madvise)
      local real_list = assert(ufl.list(assert(ufl.create()), checker))
      local errs = {}
      local mm = monitor.new{ list = real_list,
        on_error = function(_, what, msg) errs[#errs + 1] = what .. msg end,
        handlers = { pagefault = function(mon, uu, ev)
          if ev.address - ev.address % PS == map:addr() + PS then
            return mon:serve(uu, ev, function(x, addr, len)
              return x:copy(addr, pattern, len)
            end)
          end
          return mon:serve(uu, ev)                -- m.fill: zeropage
        end } }
      mm:set_num_static_devices(0)
      mm:register(u)                              -- dynamic
      assert.equal(2, u:index())
      child.signal(c.sock)
      local t0 = os.time()
      mm:run(function(x)
        return x.stats.faults >= 2 or os.time() - t0 > 10
      end)
      assert.equal(0, child.reap(c))
      assert.equal(1, mm.stats.served_zero)
      assert.equal(1, mm.stats.served_copy)
      assert.is_false(u:is_closed())
      -- the child is gone: the next hot-plug's gc (crosvm) collects it
      local c2, u2 = spawn(function() return true end)
      mm:register(u2)
      assert.is_true(u:is_closed())
      assert.equal(1, mm.stats.collected)
      assert.is_false(u2:is_closed())
      child.signal(c2.sock)
      assert.equal(0, child.reap(c2))
      assert.same({}, errs)
      local rctx = real_list:waitctx()
      mm:close()
      real_list:close()
      rctx:close()
      map:close()
      checker:close()
    end)

    it("parks a fault that meets EAGAIN while a REMOVE is pending", function()
      local map = assert(ufl.mmap_anon(2 * PS, true))
      local pattern = string.rep("R", PS)
      local c, u = spawn(function()
        map:remove(PS, PS)  -- waits until REMOVE is read
        child.signal(child_sock)
        return map:read(0, PS) == pattern
      end)
      assert(u:register(map:addr(), map:len()))
      local real_list = assert(ufl.list(assert(ufl.create()), {
        register = function() return true end,
        is_dead = function() return false end,
        reset = function() return true end }))
      local errs, first = {}, true
      local mm = monitor.new{ list = real_list,
        on_error = function(_, what, msg) errs[#errs + 1] = what .. msg end,
        -- The kernel hands out faults before a REMOVE: stand in for a
        -- fault of another thread of the child, read just before it.
        read_events = function(x, out, max)
          if first then
            first = false
            out[1] = out[1] or {}
            out[1].kind, out[1].address = "pagefault", map:addr()
            return 1, out
          end
          return x:read_events(out, max)
        end,
        fill = function(x, addr, len) return x:copy(addr, pattern, len) end }
      mm:register(u)
      child.signal(c.sock)
      local t0 = os.time()
      mm:run(function(x)
        return x.stats.served_copy >= 1 and x.stats.events.remove >= 1
          or os.time() - t0 > 10
      end)
      assert.is_true(mm.stats.parked >= 1)
      assert.equal(1, mm.stats.events.remove)
      assert.equal(0, mm:parked_count())
      assert.is_true(child.await(c.sock))
      assert.equal(0, child.reap(c))
      assert.same({}, errs)
      local rctx = real_list:waitctx()
      mm:close()
      real_list:close()
      rctx:close()
      map:close()
    end)
  end)
end)
