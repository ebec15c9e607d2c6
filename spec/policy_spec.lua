-- Ready policies, policy.load's sandbox and policy.guard.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local policy = require "uffdlist.policy"
local fake = require "helpers.fake"
local files = require "spec.helpers.files"
local write_tmp = files.write_tmp

local PS = ufl.page_size()
local BASE = 0x7f0000000000

describe("policy", function()
  local w, list, ctx, m, errors, now

  local function new_monitor(p, opts)
    opts = opts or {}
    opts.list, opts.policy = list, p
    opts.read_events = w.read_events
    opts.fill = function(_, _, len) return len end
    opts.on_error = function(_, what, msg)
      errors[#errors + 1] = { what = what, msg = msg }
    end
    m = monitor.new(opts)
    return m
  end

  -- n static uffds, then set_num_static_devices(n)
  local function static_uffds(n) return w:static_uffds(m, n) end

  local function register_dynamic(n, dead)
    for _ = 1, n do
      local u = w:uffd()
      if dead then w:mark_dead(u) end
      m:register(u)
    end
  end

  before_each(function()
    w = fake.new()
    list = assert(ufl.list(w:uffd(), w.checker))
    ctx = list:waitctx()
    errors, now = {}, 0
  end)

  after_each(function()
    if m then m:close() end
    list:close()
    ctx:close()
    w:close()
    m = nil
  end)

  describe("load", function()
    it("loads each ready policy by name", function()
      for _, name in ipairs{ "crosvm", "threshold", "periodic", "idle" } do
        local p, msg = policy.load(name)
        assert.is_table(p, msg)
      end
      assert.equal(250, policy.load("periodic", { ms = 250 }).timer_ms)
      assert.equal(70, policy.load("idle", { ms = 70 }).idle_ms)
    end)

    it("returns nil and a message for what it cannot load", function()
      local p, msg = policy.load("no_such_policy")
      assert.is_nil(p)
      assert.matches("no ready policy 'no_such_policy'", msg)
      p, msg = policy.load("/nonexistent/p.lua")
      assert.is_nil(p)
      assert.is_string(msg)
      local path = write_tmp("return {")
      p, msg = policy.load(path)
      assert.is_nil(p)
      assert.is_string(msg)
      os.remove(path)
      path = write_tmp("return { on_idle = 5 }")
      p, msg = policy.load(path)
      assert.is_nil(p)
      assert.matches("on_idle must be a function", msg)
      os.remove(path)
      assert.has_error(function() policy.load(42) end)
    end)

    it("refuses bytecode", function()
      local path = write_tmp(string.dump(function() return {} end))
      local p, msg = policy.load(path)
      assert.is_nil(p)
      assert.matches("binary chunks are not accepted", msg)
      os.remove(path)
    end)

    it("passes opts to the constructor", function()
      local path = write_tmp([[
        return function(opts) return { idle_ms = opts.ms * 2 } end ]])
      assert.equal(20, policy.load(path, { ms = 10 }).idle_ms)
      os.remove(path)
    end)
  end)

  describe("sandbox", function()
    it("keeps io, os.execute, require, debug, ffi and loaders out", function()
      local path = write_tmp([[
        local names = { "io", "require", "debug", "ffi", "loadstring",
          "load", "loadfile", "dofile", "package", "getfenv", "setfenv",
          "jit", "module", "newproxy", "collectgarbage", "getmetatable",
          "print" }
        local seen = {}
        for _, n in ipairs(names) do seen[n] = type(_G[n]) end
        seen["os.execute"] = type(os.execute)
        seen["os.exit"] = type(os.exit)
        seen["os.remove"] = type(os.remove)
        seen["os.getenv"] = type(os.getenv)
        seen["string.dump"] = type(string.dump)
        seen["os.clock"] = type(os.clock)
        seen["pcall"] = type(pcall)
        seen["string.format"] = type(string.format)
        string.rep = nil      -- a copy: the host's stays
        return { seen = seen }
      ]])
      local p = assert(policy.load(path))
      os.remove(path)
      for name, t in pairs(p.table.seen) do
        if name == "os.clock" or name == "pcall" or name == "string.format"
        then
          assert.equal("function", t, name)
        else
          assert.equal("nil", t, name)
        end
      end
      assert.is_function(string.rep)
    end)

    it("keeps the bounded library doing what Lua does", function()
      local path = write_tmp([[
        local r = {}
        r.rep = ("ab"):rep(3, "-")
        r.find = { ("hello world"):find("o w") }
        r.plain = { string.find("a.b", ".", 1, true) }
        r.match = ("key=42"):match("^(%w+)=(%d+)$")
        r.gsub = ("a,b"):gsub("%w", function(c) return c:upper() end)
        r.gsub_t = ("$x $y"):gsub("%$(%w)", { x = "1", y = "2" })
        local words = {}
        for w in ("one two"):gmatch("%a+") do words[#words + 1] = w end
        r.gmatch = table.concat(words, "+")
        r.xpcall = { xpcall(function() error("e", 0) end,
          function(m) return "handled " .. m end) }
        local gen = coroutine.wrap(function() coroutine.yield(1) return 2 end)
        r.wrap = { gen(), gen() }
        local t = { 3, 1, 2 }
        table.sort(t)
        r.sort = t
        r.pcall = { pcall(error, "x", 0) }
        return { r = r }
      ]])
      local spec = assert(policy.load(path))
      os.remove(path)
      local r = spec.table.r
      -- PUC Lua 5.1's string.rep has no separator
      assert.equal((_VERSION == "Lua 5.1" and not jit) and "ababab"
        or "ab-ab-ab", r.rep)
      assert.same({ 5, 7 }, r.find)
      assert.same({ 2, 2 }, r.plain)
      assert.equal("key", r.match)
      assert.equal("A,B", r.gsub)
      assert.equal("1 2", r.gsub_t)
      assert.equal("one+two", r.gmatch)
      assert.same({ false, "handled e" }, r.xpcall)
      assert.same({ 1, 2 }, r.wrap)
      assert.same({ 1, 2, 3 }, r.sort)
      assert.same({ false, "x" }, r.pcall)
    end)

    it("turns the JIT off so a runaway chunk is stopped", function()
      local path = write_tmp("local i = 0 while true do i = i + 1 end")
      local t0 = os.clock()
      local p, msg = policy.load(path, { hook_budget_ms = 30 })
      assert.is_nil(p)
      assert.matches("policy hook 'load' exceeded 30 ms", msg)
      assert.is_true(os.clock() - t0 < 0.5)
      os.remove(path)
    end)

    it("stops a runaway hook that swallows errors with pcall", function()
      local path = write_tmp([[
        return { on_idle = function()
          while true do
            pcall(function() while true do end end)
            local co = coroutine.create(function() while true do end end)
            coroutine.resume(co)
          end
        end } ]])
      local p = assert(policy.load(path))
      os.remove(path)
      local t0 = os.clock()
      local ok, msg, kind = policy.guard(p.hooks, "on_idle", 40, 0)
      assert.is_false(ok)
      assert.equal("policy hook 'on_idle' exceeded 40 ms", msg)
      assert.equal("time", kind)
      assert.is_true(os.clock() - t0 < 0.5)
    end)

    it("runs a 20-line user policy unchanged", function()
      local p = assert(policy.load("examples/policy/my_policy.lua"))
      local calls = {}
      new_monitor(p, { clock = function() return now end })
      m.fill = function(_, addr, len)
        calls[#calls + 1] = addr
        return len
      end
      local u = static_uffds(1)[1]
      -- write faults: 4 pages; read faults: 1
      w:push_faults(u, 1, BASE, true)
      w:push_faults(u, 1, BASE + 64 * PS, false)
      m:step(0)
      assert.same({ BASE, BASE + PS, BASE + 2 * PS, BASE + 3 * PS,
        BASE + 64 * PS }, calls)
      -- more than 4 dynamic uffds: gc
      register_dynamic(4, true)
      assert.equal(0, m.stats.gcs)
      register_dynamic(1)
      assert.equal(1, m.stats.gcs)
      assert.equal(4, m.stats.collected)
      -- 500 ms without events: one gc
      local gcs = m.stats.gcs
      now = 400
      m:step(0)
      assert.equal(gcs, m.stats.gcs)
      now = 700
      m:step(0)
      assert.equal(gcs + 1, m.stats.gcs)
      now = 1500
      m:step(0)
      assert.equal(gcs + 1, m.stats.gcs)
      assert.same({}, errors)
    end)
  end)

  describe("guard", function()
    it("returns the hook's results and removes its count hook", function()
      local p = { f = function(a, b) return a + b, "x" end }
      assert.same({ true, 5, "x" }, { policy.guard(p, "f", 100, 2, 3) })
      assert.is_nil(debug.gethook())
      p.g = function() error("bad", 0) end
      assert.same({ false, "bad", "error" }, { policy.guard(p, "g", 100) })
      assert.is_nil(debug.gethook())
      assert.same({ true }, { policy.guard(p, "missing", 100) })
    end)

    it("puts back a hook the host had", function()
      local function host_hook() end
      debug.sethook(host_hook, "", 100000)
      policy.guard({ f = function() end }, "f", 100)
      local h, mask, count = debug.gethook()
      debug.sethook()
      assert.equal(host_hook, h)
      assert.equal("", mask)
      assert.equal(100000, count)
    end)
  end)

  describe("crosvm", function()
    it("collects after a dynamic register only", function()
      new_monitor("crosvm")
      local us = static_uffds(2)
      w:mark_dead(us[2])
      assert.equal(0, m.stats.gcs)
      register_dynamic(1, true)
      assert.equal(1, m.stats.gcs)
      assert.equal(1, m.stats.collected)
      assert.is_false(us[2]:is_closed())
      w:push_faults(us[1], 1, BASE)
      m:step(0)
      m:step(0)
      assert.equal(1, m.stats.gcs)
    end)
  end)

  describe("threshold", function()
    it("collects only past n dynamic entries", function()
      new_monitor("threshold", { policy_opts = { n = 3 } })
      static_uffds(1)
      register_dynamic(3, true)
      assert.equal(0, m.stats.gcs)
      register_dynamic(1)
      assert.equal(1, m.stats.gcs)
      assert.equal(3, m.stats.collected)
      assert.equal(1, m.stats.dynamic)
      -- after a round the count is taken from the stats again
      w:push_faults(list:get(2), 1, BASE)
      m:step(0)
      register_dynamic(2)
      assert.equal(1, m.stats.gcs)
      register_dynamic(1)
      assert.equal(2, m.stats.gcs)
    end)
  end)

  describe("periodic", function()
    it("collects on timer expirations", function()
      new_monitor("periodic", { policy_opts = { ms = 20 } })
      static_uffds(1)
      register_dynamic(0)
      m:step(0)
      assert.equal(0, m.stats.gcs)
      local t0 = os.time()
      m:run(function(mm)
        return mm.stats.gcs >= 2 or os.time() - t0 > 5
      end)
      assert.is_true(m.stats.gcs >= 2)
    end)
  end)

  describe("timer_ms", function()
    it("arms a timerfd in the wait context and calls on_timer", function()
      -- a stand-in for ufl.timerfd, so this runs with or without it
      local sig, armed, pending = fake.signal(), nil, 0
      local timer = {
        fd = function() return sig:fd() end,
        read = function()
          local n = pending
          pending = 0
          sig:drain(true)
          return n
        end,
        close = function() sig:close() end,
      }
      local real = ufl.timerfd
      ufl.timerfd = function(ms) armed = ms return timer end
      local ok, err = pcall(function()
        local fired, batches = {}, 0
        new_monitor{ timer_ms = 20,
          on_timer = function(n) fired[#fired + 1] = n return "gc" end,
          after_batch = function() batches = batches + 1 end }
        assert.equal(20, armed)
        assert.equal(0, m:step(0))       -- nothing ready yet
        pending = 3
        sig:poke()
        assert.equal(1, m:step(0))
        assert.same({ 3 }, fired)
        assert.equal(1, m.stats.gcs)
        assert.equal(0, batches)         -- the loop's timer is no event
        m:close()
        assert.is_nil(m.timer)
      end)
      ufl.timerfd = real
      assert(ok, err)
    end)
  end)

  describe("idle", function()
    it("collects once after ms without events", function()
      new_monitor("idle", { policy_opts = { ms = 30 },
        clock = function() return now end })
      local u = static_uffds(1)[1]
      w:push_faults(u, 1, BASE)
      m:step(0)
      now = 20
      m:step(0)
      assert.equal(0, m.stats.gcs)
      now = 31
      m:step(0)
      assert.equal(1, m.stats.gcs)
      now = 100
      m:step(0)
      assert.equal(1, m.stats.gcs)
      w:push_faults(u, 1, BASE)
      m:step(0)
      now = 140
      m:step(0)
      assert.equal(2, m.stats.gcs)
    end)

    it("waits idle_ms when nothing happens", function()
      new_monitor("idle", { policy_opts = { ms = 30 } })
      local t0 = os.time()
      m:run(function(mm)
        return mm.stats.gcs >= 1 or os.time() - t0 > 5
      end)
      assert.equal(1, m.stats.gcs)
    end)
  end)
end)
