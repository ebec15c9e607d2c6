-- What doc/lua-api.md "Pitfalls" tells a new user, shown on real
-- processes: ufl.recv on a blocking socket waits (only an O_NONBLOCK one
-- answers "nothing pending"), and the real checker cannot probe a uffd of
-- a process that does not have its page (one exec'd, or forked before the
-- checker was created) — such a uffd registers as a static entry only.
local ufl = require "uffdlist"
local posix = require "spec.helpers.posix"
local child = require "spec.helpers.child"
local fcntl = posix.require "posix.fcntl"
local ptime = posix.require "posix.time"
local it = posix.it(it, function(msg) pending(msg) end)

local E = ufl.errno

-- O_NONBLOCK on or off without bit operators (5.1 has none): the flag is
-- a power of two, so add it when absent, subtract it when present.
local function nonblock(fd, on)
  local fl = assert(fcntl.fcntl(fd, fcntl.F_GETFL))
  local has = math.floor(fl / fcntl.O_NONBLOCK) % 2 == 1
  if on and not has then
    fl = fl + fcntl.O_NONBLOCK
  elseif not on and has then
    fl = fl - fcntl.O_NONBLOCK
  end
  assert(fcntl.fcntl(fd, fcntl.F_SETFL, fl))
end

describe("pitfalls (doc/lua-api.md)", function()
  it("ufl.recv answers EAGAIN only on an O_NONBLOCK socket; on a blocking one it waits for the peer", function()
    -- The child sends its uffd only after our signal, and then only after
    -- a pause: a recv that did not wait would find nothing there.
    local c = child.spawn(function(sock)
      local u = assert(ufl.create())
      if not child.await(sock) then return false end
      ptime.nanosleep { tv_sec = 0, tv_nsec = 200 * 1000 * 1000 }
      return u:send(sock) == true
    end)
    nonblock(c.sock, true)
    local none, msg, errno = ufl.recv(c.sock)
    assert.is_nil(none)
    assert.are.equal(E.EAGAIN, errno, msg)
    nonblock(c.sock, false)
    child.signal(c.sock)
    local u, rmsg = ufl.recv(c.sock) -- blocks until the child has sent
    assert.are.equal("userdata", type(u), rmsg)
    assert.are.equal("adopted", u:origin())
    assert.are.equal(0, child.reap(c))
    u:close()
  end)

  it("a uffd of a process without the checker's page registers as static, and as dynamic fails with EINVAL", function()
    -- Forked before the checker exists: the child lacks its page, as an
    -- exec'd device would.
    local c = child.spawn(function(sock)
      local a, b = assert(ufl.create()), assert(ufl.create())
      local ok = a:send(sock) and b:send(sock)
      child.await(sock)
      return ok == true
    end)
    local checker = assert(ufl.checker())
    local a = assert(ufl.recv(c.sock))
    local b = assert(ufl.recv(c.sock))
    local list = assert(ufl.list(assert(ufl.create()), checker))
    -- static entries are never probed: any process's uffd will do
    assert.is_false(list:register(a))
    assert.is_true(list:set_num_static_devices(1))
    local ok, msg, errno = list:register(b)
    assert.is_nil(ok)
    assert.are.equal(E.EINVAL, errno)
    assert.is_truthy(msg:match("register"))
    -- the failed call left it the caller's, the list as it was
    assert.is_false(b:is_closed())
    assert.is_nil(b:index())
    assert.are.equal(2, list:len())
    b:close()
    child.signal(c.sock)
    assert.are.equal(0, child.reap(c))
    list:close()
    checker:close()
  end)
end)
