-- The Lua binding survives misuse: for every public function and method,
-- wrong argument types raise naming the argument, negative and
-- out-of-range numbers raise, methods on closed objects raise, close is
-- idempotent, and objects collected without close leak no fd.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local it = posix.it(it, function(msg) pending(msg) end)
local child = require "spec.helpers.child" -- count_fds (lfs without posix)
local unistd = posix.require "posix.unistd"
local socket = posix.require "posix.sys.socket"
local wait = posix.require "posix.sys.wait"

local PS = ufl.page_size()
local TWO53 = 2 ^ 53
local EPOLLET = 2 ^ 31

local function collect()
  collectgarbage()
  collectgarbage()
end

-- Open fds of this process; settled_nfds after a full collection of
-- earlier garbage.
local nfds = child.count_fds

local function settled_nfds()
  collect()
  return nfds()
end

-- Calls through generated code so that the error names the function:
-- o:name(...) for methods, t.name(...) for functions (never a tail call,
-- which would lose the name).
local callers = {}
local function caller(kind, name)
  local key = kind .. name
  if not callers[key] then
    local src = kind == "method"
      and ("local o = ...; local _ = o:%s(select(2, ...))"):format(name)
      or ("local t = ...; local _ = t.%s(select(2, ...))"):format(name)
    callers[key] = assert((loadstring or load)(src, "=" .. name))
  end
  return callers[key]
end

local function raises(text, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error containing: " .. text)
  assert(type(err) == "string" and err:find(text, 1, true),
    ("expected an error containing %q, got: %s"):format(text, tostring(err)))
end

-- o:name(...) raises text
local function method_raises(text, o, name, ...)
  raises(text, caller("method", name), o, ...)
end

-- t.name(...) raises text
local function fn_raises(text, t, name, ...)
  raises(text, caller("function", name), t, ...)
end

local function badarg(n, name, what)
  -- no closing parenthesis: `what` may be the start of the message
  return ("bad argument #%d to '%s' (%s"):format(n, name, what)
end

local function fake_checker(dead)
  dead = dead or {}
  return {
    dead = dead,
    register = function() return true end,
    is_dead = function(_, u) return dead[u] == true end,
    reset = function() return true end,
  }
end

local function methods_of(o)
  return getmetatable(o).__index
end

-- Every method but those in `except` raises on the closed object o.
local function all_raise_closed(o, tname, except)
  local skip = { is_closed = true, close = true }
  for _, name in ipairs(except or {}) do
    skip[name] = true
  end
  local n = 0
  for name in pairs(methods_of(o)) do
    if not skip[name] then
      method_raises("attempt to use a closed " .. tname, o, name)
      n = n + 1
    end
  end
  assert(n > 0)
end

-- Every method raises "tname expected, got number" when self is 5, and
-- "got <other class>" when self is another of our objects.
local function all_check_self(o, tname, other, othername)
  local M = methods_of(o)
  for name in pairs(M) do
    fn_raises(badarg(1, name, tname .. " expected, got number"), M, name, 5)
    fn_raises(badarg(1, name, tname .. " expected, got " .. othername),
      M, name, other)
  end
  local meta = getmetatable(o)
  for _, mm in ipairs { "__gc", "__tostring" } do
    fn_raises(tname .. " expected, got number", meta, mm, 5)
  end
end

describe("uffdlist binding misuse", function()
  local map, ctx0

  before_each(function()
    map = assert(ufl.mmap_anon(4 * PS))
    ctx0 = assert(ufl.waitctx())
  end)

  after_each(function()
    map:close()
    ctx0:close()
  end)

  describe("module functions", function()
    it("create checks features", function()
      fn_raises(badarg(1, "create", "number expected, got string"), ufl, "create", "x")
      fn_raises(badarg(1, "create", "out of range"), ufl, "create", -1)
      fn_raises(badarg(1, "create", "integer expected, got 1.5"), ufl, "create", 1.5)
      fn_raises(badarg(1, "create", "out of range"), ufl, "create", TWO53 * 2)
      fn_raises(badarg(1, "create", "out of range"), ufl, "create", 0 / 0)
    end)

    it("create reports missing features as values", function()
      local u, msg, err, missing = ufl.create(2 ^ 52)
      assert.is_nil(u)
      assert.matches("^create: ", msg)
      assert.equal(ufl.errno.EOPNOTSUPP, err)
      assert.equal(2 ^ 52, missing)
    end)

    it("supported_features returns a number", function()
      assert.is_number(ufl.supported_features())
    end)

    it("adopt checks its arguments", function()
      fn_raises(badarg(1, "adopt", "number expected, got string"), ufl, "adopt", "3")
      fn_raises(badarg(1, "adopt", "out of range"), ufl, "adopt", -1)
      fn_raises(badarg(1, "adopt", "integer expected"), ufl, "adopt", 0.5)
      fn_raises(badarg(2, "adopt", "table expected, got number"), ufl, "adopt", 0, 5)
      fn_raises(badarg(2, "adopt", "field 'own': boolean expected, got number"),
        ufl, "adopt", 0, { own = 1 })
      fn_raises(badarg(2, "adopt", "field 'check': boolean expected, got string"),
        ufl, "adopt", 0, { check = "no" })
    end)

    it("adopt returns nil, msg, errno for a non-uffd and leaves the fd open", function()
      local r, w = unistd.pipe()
      local u, msg, err = ufl.adopt(r)
      assert.is_nil(u)
      assert.matches("^adopt: ", msg)
      assert.equal(ufl.errno.ENOTTY, err)
      assert.equal("adopt: not a userfaultfd", msg)
      assert.is_not_nil(unistd.close(r))
      unistd.close(w)
      u, msg, err = ufl.adopt(1000000)
      assert.is_nil(u)
      assert.matches("^adopt: ", msg)
      assert.equal(ufl.errno.EBADF, err)
    end)

    it("is_userfaultfd checks its argument", function()
      fn_raises(badarg(1, "is_userfaultfd", "number expected, got no value"), ufl, "is_userfaultfd")
      fn_raises(badarg(1, "is_userfaultfd", "out of range"), ufl, "is_userfaultfd", -3)
      fn_raises(badarg(1, "is_userfaultfd", "out of range"), ufl, "is_userfaultfd", 2 ^ 31)
      local ok, msg, err = ufl.is_userfaultfd(1000000)
      assert.is_nil(ok)
      assert.is_string(msg)
      assert.equal(ufl.errno.EBADF, err)
      local u = assert(ufl.create())
      assert.is_true(ufl.is_userfaultfd(u:fd()))
      assert.is_false(ufl.is_userfaultfd(ctx0:fd()))
      u:close()
    end)

    it("recv checks its arguments", function()
      fn_raises(badarg(1, "recv", "number expected, got table"), ufl, "recv", {})
      fn_raises(badarg(1, "recv", "out of range"), ufl, "recv", -1)
      fn_raises(badarg(2, "recv", "table expected, got boolean"), ufl, "recv", 0, true)
      fn_raises(badarg(2, "recv", "field 'check': boolean expected, got number"),
        ufl, "recv", 0, { check = 0 })
      local r, w = unistd.pipe()
      local u, msg, err = ufl.recv(r)
      assert.is_nil(u)
      assert.matches("^recv: ", msg)
      assert.equal(ufl.errno.ENOTSOCK, err)
      unistd.close(r)
      unistd.close(w)
    end)

    it("recv reports a closed peer and a message without fd", function()
      local a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0)
      socket.send(b, "x")
      local u, _, err = ufl.recv(a)
      assert.is_nil(u)
      assert.equal(ufl.errno.EBADMSG, err)
      unistd.close(b)
      u, _, err = ufl.recv(a)
      assert.is_nil(u)
      assert.equal(ufl.errno.ECONNRESET, err)
      unistd.close(a)
    end)

    it("list checks its arguments", function()
      local u = assert(ufl.create())
      local fc = fake_checker()
      fn_raises(badarg(1, "list", "uffdlist.uffd expected, got number"), ufl, "list", 5, fc)
      fn_raises(badarg(1, "list", "uffdlist.uffd expected, got uffdlist.waitctx"),
        ufl, "list", ctx0, fc)
      local what = "uffdlist.checker or object with register, is_dead and reset methods"
      fn_raises(badarg(2, "list", what .. " expected, got number"), ufl, "list", u, 5)
      fn_raises(badarg(2, "list", what .. " expected, got table"), ufl, "list", u, {})
      fn_raises(badarg(2, "list", what .. " expected, got table"), ufl, "list", u,
        { register = print, is_dead = print })
      fn_raises(badarg(2, "list", what .. " expected, got uffdlist.mapping"), ufl, "list", u, map)
      fn_raises(badarg(3, "list", "uffdlist.waitctx expected, got string"),
        ufl, "list", u, fc, "ctx")
      local c = assert(ufl.checker())
      c:close()
      fn_raises("attempt to use a closed uffdlist.checker", ufl, "list", u, c)
      local ctx = assert(ufl.waitctx())
      ctx:close()
      fn_raises("attempt to use a closed uffdlist.waitctx", ufl, "list", u, fc, ctx)
      local l = assert(ufl.list(u, fc))
      fn_raises(badarg(1, "list", "uffd already in a list"), ufl, "list", u, fc)
      l:close()
      fn_raises("attempt to use a closed uffdlist.uffd", ufl, "list", u, fc)
    end)

    it("mmap and mmap_anon check their arguments", function()
      fn_raises(badarg(1, "mmap_anon", "number expected, got string"), ufl, "mmap_anon", "4096")
      fn_raises(badarg(1, "mmap_anon", "out of range"), ufl, "mmap_anon", 0)
      fn_raises(badarg(1, "mmap_anon", "out of range"), ufl, "mmap_anon", -4096)
      fn_raises(badarg(1, "mmap_anon", "integer expected"), ufl, "mmap_anon", 4096.5)
      fn_raises(badarg(2, "mmap_anon", "boolean expected, got number"), ufl, "mmap_anon", PS, 1)
      fn_raises(badarg(1, "mmap", "number expected, got no value"), ufl, "mmap")
      fn_raises(badarg(1, "mmap", "out of range"), ufl, "mmap", -1, PS)
      fn_raises(badarg(2, "mmap", "out of range"), ufl, "mmap", 0, 0)
      fn_raises(badarg(3, "mmap", "out of range"), ufl, "mmap", 0, PS, -PS)
      fn_raises(badarg(4, "mmap", "boolean expected, got string"), ufl, "mmap", 0, PS, 0, "rw")
      local m, msg, err = ufl.mmap(1000000, PS)
      assert.is_nil(m)
      assert.matches("^mmap: ", msg)
      assert.equal(ufl.errno.EBADF, err)
      assert.equal(PS, ufl.page_size())
    end)

    it("exports constants and errno names", function()
      assert.is_number(ufl.DEFAULT_FEATURES)
      assert.is_number(ufl.FEATURE_EVENT_FORK)
      assert.is_number(ufl.REGISTER_MISSING)
      assert.is_number(ufl.COPY_DONTWAKE)
      assert.is_number(ufl.EPOLLIN)
      assert.is_number(ufl.errno.ESRCH)
      assert.equal("EAGAIN", ufl.errname(ufl.errno.EAGAIN))
      assert.is_nil(ufl.errname(-1))
    end)
  end)

  describe("uffd", function()
    local u

    before_each(function()
      u = assert(ufl.create())
    end)

    after_each(function()
      if not u:is_closed() and not u:index() then
        u:close()
      end
    end)

    it("every method checks self", function()
      all_check_self(u, "uffdlist.uffd", ctx0, "uffdlist.waitctx")
    end)

    it("every method raises once closed; close is idempotent", function()
      assert.is_true(u:close())
      assert.is_true(u:close())
      assert.is_true(u:is_closed())
      assert.equal("uffdlist.uffd (closed)", tostring(u))
      all_raise_closed(u, "uffdlist.uffd")
    end)

    it("register and unregister check their arguments", function()
      local a = map:addr()
      method_raises(badarg(1, "register", "number expected, got string"), u, "register", "x", PS)
      method_raises(badarg(1, "register", "out of range"), u, "register", -1, PS)
      method_raises(badarg(1, "register", "integer expected, got 1.5"), u, "register", 1.5, PS)
      method_raises(badarg(1, "register", "out of range"), u, "register", TWO53 + 2, PS)
      method_raises(badarg(2, "register", "number expected, got no value"), u, "register", a)
      method_raises(badarg(2, "register", "out of range"), u, "register", a, -PS)
      method_raises(badarg(3, "register", "out of range"), u, "register", a, PS, -1)
      method_raises(badarg(3, "register", "number expected, got string"), u, "register", a, PS, "wp")
      method_raises(badarg(1, "unregister", "number expected, got boolean"), u, "unregister", true, PS)
      method_raises(badarg(2, "unregister", "out of range"), u, "unregister", a, -1)
      assert.is_number(u:register(a, map:len()))
      assert.is_true(u:unregister(a, map:len()))
    end)

    it("register returns nil, msg, errno on a bad range", function()
      local ok, msg, err = u:register(map:addr() + 1, PS)
      assert.is_nil(ok)
      assert.matches("^register: ", msg)
      assert.equal(ufl.errno.EINVAL, err)
    end)

    it("copy checks its arguments", function()
      local a = map:addr()
      local page = ("x"):rep(PS)
      method_raises(badarg(1, "copy", "number expected, got string"), u, "copy", "a", page)
      method_raises(badarg(1, "copy", "out of range"), u, "copy", -PS, page)
      method_raises(badarg(2, "copy", "string or address expected, got boolean"), u, "copy", a, true)
      method_raises(badarg(2, "copy", "string or address expected, got nil"), u, "copy", a, nil)
      method_raises(badarg(3, "copy", "longer than the source string"), u, "copy", a, "abc", 4)
      method_raises(badarg(3, "copy", "out of range"), u, "copy", a, page, -1)
      method_raises(badarg(3, "copy", "length required"), u, "copy", a, a + PS)
      method_raises(badarg(2, "copy", "out of range"), u, "copy", a, -1, PS)
      method_raises(badarg(4, "copy", "number expected, got string"), u, "copy", a, page, PS, "x")
      method_raises(badarg(4, "copy", "out of range"), u, "copy", a, page, PS, -1)
    end)

    it("copy and zeropage name their outcomes", function()
      local a = map:addr()
      assert.is_number(u:register(a, map:len()))
      assert.equal(PS, u:copy(a, ("y"):rep(PS)))
      local n, msg, err = u:copy(a, ("y"):rep(PS))
      assert.is_nil(n)
      assert.equal("copy: page exists", msg)
      assert.equal(ufl.errno.EEXIST, err)
      assert.equal("page_exists", (ufl.outcome(u:copy(a, ("y"):rep(PS)))))
      assert.equal(PS, u:zeropage(a + PS, PS))
      assert.equal("page exists", select(2, u:zeropage(a + PS, PS)):match(": (.*)"))
      assert.equal(PS, u:copy(a + 2 * PS, a, PS))   -- from an address
      assert.equal("yyyy", map:read(2 * PS, 4))
      assert.is_true(u:wake(a, PS))
    end)

    it("zeropage, continue, wake and writeprotect check their arguments", function()
      for _, name in ipairs { "zeropage", "continue", "wake" } do
        method_raises(badarg(1, name, "number expected, got string"), u, name, "0", PS)
        method_raises(badarg(1, name, "out of range"), u, name, -1, PS)
        method_raises(badarg(2, name, "out of range"), u, name, 0, -1)
        method_raises(badarg(2, name, "integer expected"), u, name, 0, 0.25)
      end
      method_raises(badarg(3, "zeropage", "out of range"), u, "zeropage", 0, PS, -1)
      method_raises(badarg(3, "continue", "number expected, got table"), u, "continue", 0, PS, {})
      method_raises(badarg(1, "writeprotect", "out of range"), u, "writeprotect", -1, PS, true)
      method_raises(badarg(3, "writeprotect", "boolean expected, got string"),
        u, "writeprotect", 0, PS, "yes")
      method_raises(badarg(3, "writeprotect", "boolean expected, got no value"),
        u, "writeprotect", 0, PS)
      method_raises(badarg(4, "writeprotect", "boolean expected, got number"),
        u, "writeprotect", 0, PS, true, 1)
    end)

    it("read_events checks its arguments and truncates a reused out", function()
      method_raises(badarg(1, "read_events", "table expected, got number"), u, "read_events", 5)
      method_raises(badarg(2, "read_events", "out of range"), u, "read_events", nil, 0)
      method_raises(badarg(2, "read_events", "out of range"), u, "read_events", nil, 1025)
      method_raises(badarg(2, "read_events", "out of range"), u, "read_events", nil, -1)
      method_raises(badarg(2, "read_events", "integer expected"), u, "read_events", nil, 1.5)
      method_raises(badarg(2, "read_events", "number expected, got string"), u, "read_events", {}, "8")
      local out = { { kind = "pagefault", address = 1 }, { kind = "remove" } }
      local n, same = u:read_events(out, 1024)
      assert.equal(0, n)
      assert.equal(out, same)
      assert.is_nil(out[1])
      assert.is_nil(out[2])
      local fresh
      n, fresh = u:read_events()
      assert.equal(0, n)
      assert.same({}, fresh)
    end)

    it("dup and send check their arguments", function()
      method_raises(badarg(1, "send", "number expected, got string"), u, "send", "1")
      method_raises(badarg(1, "send", "out of range"), u, "send", -1)
      local ok, msg, err = u:send(ctx0:fd())
      assert.is_nil(ok)
      assert.matches("^send: ", msg)
      assert.equal(ufl.errno.ENOTSOCK, err)
      local d = assert(u:dup())
      assert.equal("dup", d:origin())
      assert.is_not.equal(u:fd(), d:fd())
      d:close()
      assert.is_false(u:is_closed())
    end)

    it("a borrowed uffd leaves its fd open", function()
      local fd = unistd.dup(u:fd())
      local b = assert(ufl.adopt(fd, { own = false }))
      assert.is_false(b:owned())
      b:close()
      assert.is_true(ufl.is_userfaultfd(fd))
      unistd.close(fd)
    end)

    it("index is nil outside a list and raises once closed", function()
      assert.is_nil(u:index())
      u:close()
      method_raises("attempt to use a closed uffdlist.uffd", u, "index")
    end)

    it("close on a uffd held by a list raises; the list closes it", function()
      local l = assert(ufl.list(u, fake_checker()))
      method_raises("uffd belongs to a list (list:gc or list:close closes it)", u, "close")
      assert.is_false(u:is_closed())
      assert.equal(1, u:index())
      l:close()
      assert.is_true(u:is_closed())
      assert.is_true(u:close())
    end)
  end)

  describe("waitctx", function()
    it("every method checks self", function()
      local u = assert(ufl.create())
      all_check_self(ctx0, "uffdlist.waitctx", u, "uffdlist.uffd")
      u:close()
    end)

    it("every method raises once closed; close is idempotent", function()
      local ctx = assert(ufl.waitctx())
      assert.is_true(ctx:close())
      assert.is_true(ctx:close())
      assert.is_true(ctx:is_closed())
      assert.equal("uffdlist.waitctx (closed)", tostring(ctx))
      all_raise_closed(ctx, "uffdlist.waitctx")
    end)

    it("add checks its arguments", function()
      local r, w = unistd.pipe()
      local what = "fd or object with a pollfd method expected"
      method_raises(badarg(1, "add", what .. ", got string"), ctx0, "add", "3", 1)
      method_raises(badarg(1, "add", what .. ", got table"), ctx0, "add", {}, 1)
      method_raises(badarg(1, "add", what .. ", got uffdlist.mapping"), ctx0, "add", map, 1)
      method_raises(badarg(1, "add", what .. ", got nil"), ctx0, "add", nil, 1)
      method_raises(badarg(1, "add", "out of range"), ctx0, "add", -1, 1)
      method_raises(badarg(1, "add", "pollfd() returned no fd"), ctx0, "add",
        { pollfd = function() return -1 end }, 1)
      method_raises(badarg(2, "add", "token expected, got nil"), ctx0, "add", r, nil)
      method_raises(badarg(2, "add", "token expected, got no value"), ctx0, "add", r)
      method_raises(badarg(3, "add", "number expected, got string"), ctx0, "add", r, 1, "in")
      method_raises(badarg(3, "add", "out of range"), ctx0, "add", r, 1, -1)
      method_raises(badarg(3, "add", "level-triggered"), ctx0, "add", r, 1, ufl.EPOLLIN + EPOLLET)
      local u = assert(ufl.create())
      u:close()
      method_raises("attempt to use a closed uffdlist.uffd", ctx0, "add", u, 1)
      assert.is_true(ctx0:add(r, "pipe"))
      local ok, msg, err = ctx0:add(r, "again")
      assert.is_nil(ok)
      assert.matches("^add: ", msg)
      assert.equal(ufl.errno.EEXIST, err)
      ok, msg, err = ctx0:add(1000000, "nofd")
      assert.is_nil(ok)
      assert.matches("^add: ", msg)
      assert.equal(ufl.errno.EBADF, err)
      assert.is_true(ctx0:delete(r))
      unistd.close(r)
      unistd.close(w)
    end)

    it("modify and delete check their arguments", function()
      local r, w = unistd.pipe()
      method_raises(badarg(1, "modify", "out of range"), ctx0, "modify", -1, 1)
      method_raises(badarg(2, "modify", "token expected, got nil"), ctx0, "modify", r, nil)
      method_raises(badarg(3, "modify", "number expected, got boolean"), ctx0, "modify", r, 1, true)
      method_raises(badarg(3, "modify", "level-triggered"), ctx0, "modify", r, 1, EPOLLET)
      method_raises(badarg(1, "delete", "out of range"), ctx0, "delete", -1)
      local what = "fd or object with a pollfd method expected"
      method_raises(badarg(1, "delete", what .. ", got boolean"), ctx0, "delete", true)
      method_raises(badarg(1, "delete", what .. ", got no value"), ctx0, "delete")
      local ok, msg, err = ctx0:modify(r, 1)
      assert.is_nil(ok)
      assert.matches("^modify: ", msg)
      assert.equal(ufl.errno.ENOENT, err)
      ok, msg, err = ctx0:delete(r)
      assert.is_nil(ok)
      assert.matches("^delete: ", msg)
      assert.equal(ufl.errno.ENOENT, err)
      assert.is_true(ctx0:add(r, "old"))
      assert.is_true(ctx0:modify(r, "new"))
      unistd.write(w, "x")
      local n, out = ctx0:wait(0)
      assert.equal(1, n)
      assert.equal("new", out[1])
      assert.is_true(ctx0:delete(r))
      unistd.close(r)
      unistd.close(w)
    end)

    it("a closed uffd can still be deleted", function()
      local u = assert(ufl.create())
      assert.is_true(ctx0:add(u, u))
      u:close()
      method_raises("attempt to use a closed uffdlist.uffd", ctx0, "modify", u, 1)
      assert.is_true(ctx0:delete(u))
      assert.is_nil((ctx0:delete(u)))
    end)

    it("wait checks its arguments and truncates a reused out", function()
      method_raises(badarg(1, "wait", "number expected, got string"), ctx0, "wait", "0")
      method_raises(badarg(1, "wait", "out of range"), ctx0, "wait", -2)
      method_raises(badarg(1, "wait", "integer expected"), ctx0, "wait", 0.5)
      method_raises(badarg(1, "wait", "out of range"), ctx0, "wait", 2 ^ 31)
      method_raises(badarg(2, "wait", "table expected, got number"), ctx0, "wait", 0, 5)
      method_raises(badarg(3, "wait", "table expected, got string"), ctx0, "wait", 0, {}, "e")
      local out, evs = { "stale", "stale" }, { 1, 2 }
      local n, o, e = ctx0:wait(0, out, evs)
      assert.equal(0, n)
      assert.equal(out, o)
      assert.equal(evs, e)
      assert.is_nil(out[1])
      assert.is_nil(evs[1])
      assert.is_nil(out[2])
    end)

    it("close raises while a list is attached", function()
      local ctx = assert(ufl.waitctx())
      local l = assert(ufl.list(assert(ufl.create()), fake_checker(), ctx))
      method_raises("waitctx has lists attached (close them first)", ctx, "close")
      assert.is_false(ctx:is_closed())
      l:close()
      assert.is_true(ctx:close())
    end)

    it("keeps a watched object alive until it is deleted", function()
      local before = settled_nfds()
      local fd
      do
        local u = assert(ufl.create())
        fd = u:fd()
        assert.is_true(ctx0:add(u, {}))
      end
      collect()
      assert.equal(before + 1, nfds())
      assert.is_true(ufl.is_userfaultfd(fd))
      assert.is_true(ctx0:delete(fd))  -- by its fd number
      collect()
      assert.equal(before, nfds())
    end)
  end)

  describe("checker", function()
    it("every method checks self", function()
      local c = assert(ufl.checker())
      all_check_self(c, "uffdlist.checker", ctx0, "uffdlist.waitctx")
      c:close()
    end)

    it("every method raises once closed; close is idempotent", function()
      local c = assert(ufl.checker())
      assert.is_number(c:addr())
      assert.equal(PS, c:page_size())
      assert.is_true(c:close())
      assert.is_true(c:close())
      assert.equal("uffdlist.checker (closed)", tostring(c))
      all_raise_closed(c, "uffdlist.checker")
    end)

    it("register and is_dead check their argument", function()
      local c = assert(ufl.checker())
      local u = assert(ufl.create())
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got number"), c, "register", 1)
      method_raises(badarg(1, "is_dead", "uffdlist.uffd expected, got uffdlist.checker"),
        c, "is_dead", c)
      assert.is_false(c:is_dead(u))
      u:close()
      method_raises("attempt to use a closed uffdlist.uffd", c, "register", u)
      method_raises("attempt to use a closed uffdlist.uffd", c, "is_dead", u)
      assert.is_true(c:reset())
      c:close()
    end)

    it("close raises while a list uses it", function()
      local c = assert(ufl.checker())
      local l = assert(ufl.list(assert(ufl.create()), c))
      method_raises("checker is used by a list (close the list first)", c, "close")
      l:close()
      assert.is_true(c:close())
    end)
  end)

  describe("list", function()
    local main, fc, l

    before_each(function()
      main = assert(ufl.create())
      fc = fake_checker()
      l = assert(ufl.list(main, fc, ctx0))
    end)

    after_each(function()
      l:close()
    end)

    it("every method checks self", function()
      all_check_self(l, "uffdlist.list", main, "uffdlist.uffd")
    end)

    it("every method raises once closed; close is idempotent", function()
      assert.is_true(l:close())
      assert.is_true(l:close())
      assert.is_true(l:is_closed())
      assert.equal("uffdlist.list (closed)", tostring(l))
      all_raise_closed(l, "uffdlist.list")
      raises("attempt to use a closed uffdlist.list", function() return #l end)
      assert.is_true(main:is_closed())
    end)

    it("set_num_static_devices checks its argument", function()
      local f = "set_num_static_devices"
      method_raises(badarg(1, f, "number expected, got no value"), l, f)
      method_raises(badarg(1, f, "number expected, got string"), l, f, "1")
      method_raises(badarg(1, f, "out of range"), l, f, -1)
      method_raises(badarg(1, f, "out of range"), l, f, 2 ^ 32)
      method_raises(badarg(1, f, "integer expected"), l, f, 0.5)
      assert.is_nil(l:num_static())
      assert.is_true(l:set_num_static_devices(2 ^ 32 - 1))
      assert.is_false(l:set_num_static_devices(0))
      assert.equal(2 ^ 32, l:num_static())
    end)

    it("register checks its argument", function()
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got number"), l, "register", 5)
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got no value"), l, "register")
      method_raises(badarg(1, "register", "uffd already in a list"), l, "register", main)
      -- register checks both of its userdata against upvalues, not the
      -- registry (lua_list.c): our other classes are still refused by
      -- name.  (No table with the uffd's metatable: Lua 5.2+ would run
      -- its __gc on a table.)
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got uffdlist.list"), l, "register", l)
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got uffdlist.waitctx"), l, "register", ctx0)
      method_raises(badarg(1, "register", "uffdlist.uffd expected, got uffdlist.checker"), l, "register", ufl.checker())
      assert.equal(1, l:len())
      local u = assert(ufl.create())
      u:close()
      method_raises("attempt to use a closed uffdlist.uffd", l, "register", u)
      local other = assert(ufl.list(assert(ufl.create()), fake_checker()))
      local v = assert(ufl.create())
      assert.is_false(other:register(v))
      method_raises(badarg(1, "register", "uffd already in a list"), l, "register", v)
      other:close()
      assert.is_true(v:is_closed())
    end)

    it("get checks its index; past the end is nil", function()
      method_raises(badarg(1, "get", "out of range"), l, "get", 0)
      method_raises(badarg(1, "get", "out of range"), l, "get", -1)
      method_raises(badarg(1, "get", "integer expected"), l, "get", 1.5)
      method_raises(badarg(1, "get", "number expected, got string"), l, "get", "1")
      method_raises(badarg(1, "get", "out of range"), l, "get", TWO53 * 4)
      assert.equal(main, l:get(1))
      assert.equal(main, l:main_uffd())
      assert.is_nil(l:get(2))
      assert.equal(1, l:len())
      assert.equal(1, #l)
    end)

    it("entries, wait and on_log check their arguments", function()
      method_raises(badarg(1, "entries", "table expected, got number"), l, "entries", 5)
      method_raises(badarg(1, "wait", "number expected, got string"), l, "wait", "0")
      method_raises(badarg(1, "wait", "out of range"), l, "wait", -5)
      method_raises(badarg(2, "wait", "table expected, got boolean"), l, "wait", 0, false)
      method_raises(badarg(3, "wait", "table expected, got number"), l, "wait", 0, {}, 1)
      method_raises(badarg(1, "on_log", "function or nil expected, got string"), l, "on_log", "f")
      local out = assert(l:entries({ 1, 2, 3 }))
      assert.same({ main }, out)
      assert.equal(0, (l:wait(0)))
      assert.equal(ctx0, l:waitctx())
      assert.equal(ctx0:fd(), l:pollfd())
      assert.equal("r", l:events())
      assert.is_nil(l:timeout())
    end)

    it("re-entry from the checker fails, and the list stays usable", function()
      l:set_num_static_devices(0)
      local u = assert(ufl.create())
      assert.is_true(l:register(u))
      fc.is_dead = function() return l:gc() end
      local n, msg, err, so_far = l:gc()
      assert.is_nil(n)
      assert.matches("busy", msg)
      assert.equal(ufl.errno.EIO, err)
      assert.equal(0, so_far)
      fc.is_dead = function() l:close() end
      assert.is_nil((l:gc()))
      fc.is_dead = function() return "yes" end
      n, msg = l:gc()
      assert.is_nil(n)
      assert.matches("boolean expected", msg)
      fc.is_dead = function() return true end
      assert.equal(1, l:gc())
      assert.is_true(u:is_closed())
      assert.equal(1, #l)
    end)

    it("a failed register leaves the uffd the caller's", function()
      local u = assert(ufl.create())
      l:set_num_static_devices(0)
      fc.register = function() return nil, "refused", ufl.errno.EPERM end
      local ok, msg, err = l:register(u)
      assert.is_nil(ok)
      assert.equal("register: checker register: refused", msg)
      assert.equal(ufl.errno.EPERM, err)
      assert.is_nil(u:index())
      assert.is_true(u:close())
    end)

    it("an injected epoll_ctl failure is returned, not raised", function()
      local u = assert(ufl.create())
      ufl.testing.faults(ctx0, { fail_ctl_at = 1 })
      local ok, msg, err = l:register(u)
      ufl.testing.no_faults(ctx0)
      assert.is_nil(ok)
      assert.matches("^register: ", msg)
      assert.equal(ufl.errno.ENOMEM, err)
      assert.is_nil(u:index())
      assert.is_false(l:register(u))
      assert.equal(2, u:index())
    end)
  end)

  describe("mapping", function()
    it("every method checks self", function()
      all_check_self(map, "uffdlist.mapping", ctx0, "uffdlist.waitctx")
    end)

    it("every method raises once closed; close is idempotent", function()
      local m = assert(ufl.mmap_anon(PS))
      assert.is_true(m:close())
      assert.is_true(m:close())
      assert.equal("uffdlist.mapping (closed)", tostring(m))
      all_raise_closed(m, "uffdlist.mapping")
    end)

    it("read and write check their ranges", function()
      local len = map:len()
      method_raises(badarg(1, "read", "out of range"), map, "read", -1, 1)
      method_raises(badarg(1, "read", "number expected, got string"), map, "read", "0", 1)
      method_raises(badarg(2, "read", "range outside the mapping"), map, "read", 0, len + 1)
      method_raises(badarg(2, "read", "range outside the mapping"), map, "read", len + 1, 0)
      method_raises(badarg(2, "read", "range outside the mapping"), map, "read", 1, TWO53)
      method_raises(badarg(2, "write", "string expected, got number"), map, "write", 0, 5)
      method_raises(badarg(2, "write", "range outside the mapping"), map, "write", len, "x")
      method_raises(badarg(1, "write", "integer expected"), map, "write", 0.5, "x")
      method_raises(badarg(2, "remove", "range outside the mapping"), map, "remove", 0, len + 1)
      method_raises(badarg(1, "remove", "out of range"), map, "remove", -1, 1)
      assert.is_true(map:write(len - 2, "ab"))
      assert.equal("ab", map:read(len - 2, 2))
      assert.equal("", map:read(len, 0))
    end)
  end)

  describe("eventfd and timerfd", function()
    it("every method checks self and raises once closed", function()
      local e = assert(ufl.eventfd())
      local t = assert(ufl.timerfd(1000))
      local what = "uffdlist.eventfd or uffdlist.timerfd expected, got number"
      for _, o in ipairs { e, t } do
        local M = methods_of(o)
        for name in pairs(M) do
          if name ~= "write" and name ~= "set" then
            fn_raises(badarg(1, name, what), M, name, 5)
          end
        end
        assert.is_true(o:close())
        assert.is_true(o:close())
        assert.matches("%(closed%)$", tostring(o))
      end
      fn_raises(badarg(1, "write", "uffdlist.eventfd expected, got uffdlist.timerfd"),
        methods_of(e), "write", t)
      fn_raises(badarg(1, "set", "uffdlist.timerfd expected, got uffdlist.eventfd"),
        methods_of(t), "set", e)
      all_raise_closed(e, "uffdlist.eventfd")
      all_raise_closed(t, "uffdlist.timerfd")
    end)

    it("check their arguments", function()
      fn_raises(badarg(1, "eventfd", "out of range"), ufl, "eventfd", -1)
      fn_raises(badarg(1, "eventfd", "out of range"), ufl, "eventfd", 2 ^ 32)
      fn_raises(badarg(2, "eventfd", "boolean expected, got number"), ufl, "eventfd", 0, 1)
      fn_raises(badarg(1, "timerfd", "number expected, got no value"), ufl, "timerfd")
      fn_raises(badarg(1, "timerfd", "out of range"), ufl, "timerfd", 0)
      fn_raises(badarg(1, "timerfd", "integer expected"), ufl, "timerfd", 1.5)
      fn_raises(badarg(2, "timerfd", "boolean expected, got string"), ufl, "timerfd", 5, "once")
      local e = assert(ufl.eventfd())
      method_raises(badarg(1, "write", "out of range"), e, "write", 0)
      method_raises(badarg(1, "write", "out of range"), e, "write", -1)
      local t = assert(ufl.timerfd(1000))
      method_raises(badarg(1, "set", "out of range"), t, "set", -1)
      method_raises(badarg(2, "set", "boolean expected, got number"), t, "set", 1, 1)
      e:close()
      t:close()
    end)

    it("are pollable: an eventfd's counter and a timer's expirations", function()
      local e = assert(ufl.eventfd())
      assert.equal(0, e:read())
      assert.is_true(ctx0:add(e, "ev"))
      assert.equal(0, (ctx0:wait(0)))
      assert.is_true(e:write(2))
      assert.is_true(e:write())
      local n, out = ctx0:wait(0)
      assert.equal(1, n)
      assert.equal("ev", out[1])
      assert.equal(3, e:read())
      assert.is_true(ctx0:delete(e))
      e:close()
      local t = assert(ufl.timerfd(1, true))
      assert.is_true(ctx0:add(t, "timer"))
      n, out = ctx0:wait(1000)
      assert.equal(1, n)
      assert.equal("timer", out[1])
      assert.equal(1, t:read())
      assert.equal(0, t:read())
      assert.is_true(t:set(0))
      assert.is_true(ctx0:delete(t))
      t:close()
      local t0 = ufl.monotonic_ms()
      assert.is_number(t0)
      assert.is_true(ufl.monotonic_ms() >= t0)
    end)
  end)

  describe("collection without close", function()
    it("leaks no fd", function()
      local before = settled_nfds()
      do
        for _ = 1, 8 do
          assert(ufl.create())
          assert(ufl.waitctx())
          assert(ufl.checker())
          assert(ufl.mmap_anon(PS))
          assert(ufl.eventfd())
          assert(ufl.timerfd(1000))
        end
        local ctx = assert(ufl.waitctx())
        local x = assert(ufl.create())
        assert(ctx:add(x, "token"))
        local l = assert(ufl.list(assert(ufl.create()), fake_checker(), ctx))
        l:set_num_static_devices(1)
        for _ = 1, 4 do
          assert.is_not_nil(l:register(assert(ufl.create())))
        end
        local l2 = assert(ufl.list(assert(ufl.create()), assert(ufl.checker())))
        assert.is_not_nil(l2:register(assert(ufl.create()):dup()))
        local fd = unistd.dup(x:fd())
        assert(ufl.adopt(fd))
        assert(x:read_events())
        assert(before + 12 <= nfds())
      end
      collect()
      assert.equal(before, nfds())
    end)

    it("closes a kept uffd whose list was collected", function()
      local before = settled_nfds()
      local u = assert(ufl.create())
      do
        local l = assert(ufl.list(assert(ufl.create()), fake_checker()))
        assert.is_false(l:register(u))
      end
      collect()
      assert.is_true(u:is_closed())
      assert.is_true(u:close())
      assert.equal(before, nfds())
    end)

    it("keeps the entries of a live list", function()
      local before = settled_nfds()
      local l = assert(ufl.list(assert(ufl.create()), fake_checker()))
      assert.is_false(l:register(assert(ufl.create())))
      collect()
      assert.equal(before + 3, nfds())   -- two uffds and the list's epoll
      assert.is_false(l:get(2):is_closed())
      l:close()
      assert.equal(before + 1, nfds())   -- the ctx is collected later
      collect()
      assert.equal(before, nfds())
    end)
  end)

  describe("read_events", function()
    it("wraps a FORK event's fd in an owned uffd at once", function()
      local probe = ufl.create(ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_FORK)
      if not probe then
        pending("UFFD_FEATURE_EVENT_FORK needs CAP_SYS_PTRACE")
        return
      end
      probe:close()
      local before = settled_nfds()
      local priv = assert(ufl.mmap_anon(PS))
      local a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0)
      local pid = assert(unistd.fork())
      if pid == 0 then
        -- the child: its own uffd with EVENT_FORK, sent to the parent;
        -- then it forks (its fork waits until the parent reads FORK)
        unistd.close(a)
        local x = ufl.create(ufl.DEFAULT_FEATURES + ufl.FEATURE_EVENT_FORK)
        if not x or not x:register(priv:addr(), PS) or not x:send(b) then
          unistd._exit(2)
        end
        x:close()
        local gpid = unistd.fork()
        if gpid == 0 then
          unistd._exit(0)
        end
        wait.wait(gpid)
        unistd._exit(0)
      end
      unistd.close(b)
      local x = assert(ufl.recv(a))
      unistd.close(a)
      local out = { { kind = "pagefault", address = 5, write = true, tid = 7 } }
      local n
      for _ = 1, 500 do
        n = assert(x:read_events(out))
        if n > 0 then
          break
        end
        ctx0:wait(10)
      end
      assert.equal(1, n)
      local ev = out[1]
      assert.equal("fork", ev.kind)
      assert.is_nil(ev.address)
      assert.is_nil(ev.write)
      assert.is_nil(ev.tid)
      assert.equal("fork", ev.uffd:origin())
      assert.is_true(ev.uffd:owned())
      assert.is_true(ufl.is_userfaultfd(ev.uffd:fd()))
      -- Lift the registrations of the child and of the grandchild (which
      -- inherited it), waking any fault they took: nothing serves them
      -- here, and under valgrind their exit-time leak scan reads priv.
      for _, v in ipairs { x, ev.uffd } do
        local ok, _, err = v:unregister(priv:addr(), PS)
        assert(ok or err == ufl.errno.ESRCH, err)
      end
      local _, how, status = wait.wait(pid)
      assert.equal("exited", how)
      assert.equal(0, status)
      -- drop every reference to both uffds, then collect them
      out[1], ev, x = nil, nil, nil  -- luacheck: ignore 311
      priv:close()
      collect()
      assert.equal(before, nfds())
    end)
  end)
end)
