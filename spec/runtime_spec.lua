-- Runtimes: one binding for LuaJIT 2.1 and PUC Lua 5.1, 5.3 and 5.4
-- (make test, test-lua51, test-lua53, test-lua54).  Under 5.4 a
-- to-be-closed variable (`local u <close> = ...`) closes a uffd, an
-- eventfd and the other objects at the end of its scope, also when the
-- scope is left by an error.  `<close>` is a syntax error before 5.4, so
-- that part is a chunk string load()ed only under 5.4 (pending elsewhere).
local ufl = require "uffdlist"
local child = require "spec.helpers.child"  -- count_fds (lfs without posix)

local IS54 = _VERSION == "Lua 5.4"
local RUNTIME = rawget(_G, "jit") and jit.version or _VERSION

-- A real uffd, or pending when the kernel refuses one here.
local function new_uffd()
  local u, msg = ufl.create()
  if not u then pending("userfaultfd unavailable: " .. tostring(msg)) end
  return u
end

-- The chunk, compiled by 5.4 only: objects made by the constructors in
-- `make` live in <close> variables; it returns them once out of scope.
local CLOSE_CHUNK = [[
local ufl, new_uffd, raise = ...
local kept = {}
local function scope()
  local u <close> = new_uffd()
  local e <close> = assert(ufl.eventfd())
  local t <close> = assert(ufl.timerfd(1000, true))
  local ctx <close> = assert(ufl.waitctx())
  local map <close> = assert(ufl.mmap_anon(ufl.page_size()))
  local list <close> = assert(ufl.list(new_uffd(), {
    register = function() return true end,
    is_dead = function() return false end,
    reset = function() return true end }))
  local lctx = list:waitctx()
  kept = { u = u, e = e, t = t, ctx = ctx, map = map, list = list,
    main = list:main_uffd(), lctx = lctx }
  assert(ctx:add(e, "e"))
  assert(not u:is_closed() and not e:is_closed() and not list:is_closed())
  if raise then error("leaving by an error") end
end
local ok, err = pcall(scope)
return kept, ok, err
]]

describe("runtime " .. RUNTIME, function()
  it("loads the one binding and gives integers where 5.3+ has them", function()
    assert.is_table(ufl.core)
    local e = assert(ufl.eventfd())
    assert(e:write(5))
    local n = e:read()
    assert.equal(5, n)
    assert.equal("5", tostring(n))             -- not "5.0" on 5.3/5.4
    if math.type then
      assert.equal("integer", math.type(n))
      assert.equal("integer", math.type(e:fd()))
      assert.equal("integer", math.type(ufl.EPOLLIN))
    end
    e:close()
  end)

  it("every object's __close metamethod closes it (called directly)", function()
    local u = new_uffd()
    local e = assert(ufl.eventfd())
    local ctx = assert(ufl.waitctx())
    for _, o in ipairs { u, e, ctx } do
      local mt = getmetatable(o)
      assert.is_function(mt.__close, tostring(o))
      mt.__close(o, nil)
      assert.is_true(o:is_closed(), tostring(o))
    end
  end)

  -- luaL_testudata (the 5.2+ API the port uses) takes a light userdata
  -- too; a host's debug.setmetatable can give one our metatable.
  it("a light userdata with a class's metatable is not taken for an object", function()
    if not debug.upvalueid then
      pending("no light userdata from Lua here (debug.upvalueid): " .. RUNTIME)
    end
    local x = 1
    local lud = debug.upvalueid(function() return x end, 1)
    assert.equal("userdata", type(lud))
    local old = debug.getmetatable(lud)
    local u, e = new_uffd(), assert(ufl.eventfd())
    local ctx = assert(ufl.waitctx())
    for _, o in ipairs { u, e, ctx } do
      local mt = getmetatable(o)
      debug.setmetatable(lud, mt)
      local ok, err = pcall(mt.__index.fd, lud)
      debug.setmetatable(lud, old)
      assert.is_false(ok)
      assert.matches("expected, got", tostring(err))
    end
    u:close()
    e:close()
    ctx:close()
  end)

  describe("<close> (5.4)", function()
    local function run(raise)
      if not IS54 then
        pending("`local x <close>` is Lua 5.4 syntax; this is " .. RUNTIME)
      end
      local chunk = assert(load(CLOSE_CHUNK, "=close_chunk", "t"))
      local before = child.count_fds()
      local kept, ok, err = chunk(ufl, new_uffd, raise)
      return kept, ok, err, before
    end

    local function assert_all_closed(kept, before)
      for _, k in ipairs { "u", "e", "t", "ctx", "list", "main" } do
        assert.is_true(kept[k]:is_closed(), k)
      end
      assert.is_true(kept.map:is_closed())
      -- the list's own wait context stays the caller's (list:waitctx())
      assert.is_false(kept.lctx:is_closed())
      kept.lctx:close()
      assert.equal(before, child.count_fds(), "fd leaked")
    end

    it("closes a uffd, an eventfd, a timerfd, a waitctx, a mapping and a list at scope end", function()
      local kept, ok, err, before = run(false)
      assert.is_true(ok, tostring(err))
      assert_all_closed(kept, before)
    end)

    it("closes them when the scope is left by an error", function()
      local kept, ok, err, before = run(true)
      assert.is_false(ok)
      assert.matches("leaving by an error", tostring(err))
      assert_all_closed(kept, before)
    end)
  end)
end)
