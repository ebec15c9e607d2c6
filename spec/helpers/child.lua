-- spec/helpers/child.lua — real child processes for real-kernel specs.
-- child.spawn(fn) forks; the child runs fn(sock) and leaves with _exit
-- (0 if fn returned true, 1 if false, 2 if it raised), never returning into
-- busted.  The parent gets {pid=, sock=} and talks over a socketpair.
--
-- Under valgrind (UFFDLIST_UNDER_VALGRIND set by tools/check.sh) a forked
-- child is still under valgrind, whose leak scan at exit (even on a
-- self-sent SIGKILL) reads every mapping — a page registered on a uffd and
-- never served then blocks the child for ever.  So there the child writes
-- its code to a pipe and sleeps; reap reads the code, then SIGKILLs it from
-- outside, which nothing in the child can follow with a scan.
--
-- Without lua-posix (Lua 5.4 on Debian 12) these are spec/helpers/posix.lua
-- stand-ins: a spec that forks is then pending (see that file); count_fds
-- still works, through LuaFileSystem (a busted dependency).
local posix = require "spec.helpers.posix"
local socket = posix.require "posix.sys.socket"
local unistd = posix.require "posix.unistd"
local wait = posix.require "posix.sys.wait"
local signal = posix.require "posix.signal"
local dirent = posix.require "posix.dirent"
local poll = posix.require "posix.poll"

local child = {}

local UNDER_VALGRIND = os.getenv("UFFDLIST_UNDER_VALGRIND") ~= nil

local function leave(code, status_fd, sock)
  if UNDER_VALGRIND then
    unistd.close(sock) -- the parent sees EOF as if we had exited
    unistd.write(status_fd, string.char(code))
    while true do unistd.sleep(1) end -- until reap kills it
  end
  unistd._exit(code)
end

function child.spawn(fn)
  local a, b = assert(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0))
  local status_r, status_w = assert(unistd.pipe())
  local pid = assert(unistd.fork())
  if pid == 0 then
    unistd.close(a)
    unistd.close(status_r)
    local ok, res = pcall(fn, b)
    if not ok then io.stderr:write("child error: ", tostring(res), "\n") end
    leave(ok and (res and 0 or 1) or 2, status_w, b)
  end
  unistd.close(b)
  unistd.close(status_w)
  return { pid = pid, sock = a, status = status_r }
end

-- One byte each way: a tiny rendezvous between parent and child.
function child.signal(sock) assert(unistd.write(sock, "x") == 1) end
function child.await(sock)
  local s = unistd.read(sock, 1)
  return s ~= nil and #s == 1
end

-- Reaps the child; returns its exit status (or nil, "killed", signal).
function child.reap(c)
  if c.sock then unistd.close(c.sock); c.sock = nil end
  local code
  if UNDER_VALGRIND and c.status then
    code = unistd.read(c.status, 1) -- "" when it died before writing
    signal.kill(c.pid, signal.SIGKILL)
  end
  if c.status then unistd.close(c.status); c.status = nil end
  local _, how, status = wait.wait(c.pid)
  if how == "exited" then return status end
  if code and #code == 1 then return code:byte() end
  return nil, how, status
end

-- Non-blocking reap: nil while the child runs; else what reap returns.
function child.try_reap(c)
  if UNDER_VALGRIND and c.status and poll.rpoll(c.status, 0) == 1 then
    return child.reap(c) -- it wrote its code: reap kills and waits
  end
  local pid, how, status = wait.wait(c.pid, wait.WNOHANG)
  if pid ~= c.pid then return nil end

  if c.sock then unistd.close(c.sock); c.sock = nil end
  if c.status then unistd.close(c.status); c.status = nil end
  if how == "exited" then return status end
  return nil, how, status
end

function child.kill(c)
  signal.kill(c.pid, signal.SIGKILL)
  return child.reap(c)
end

function child.count_fds()
  local n = 0
  local files = posix.missing and require("lfs").dir or dirent.files
  for _ in files("/proc/self/fd") do n = n + 1 end
  return n - 3 -- ".", ".." and the directory's own fd
end

-- Why pidfd_open(2) cannot work here, or nil: ENOSYS before Linux 5.3, and
-- under valgrind before 3.20, which does not know syscall 434 ("unhandled
-- amd64-linux syscall: 434"; Debian 12 has 3.19) and fails it with ENOSYS.
-- Asked once, of our own pid.
local pidfd_why
function child.pidfd_missing()
  if pidfd_why == nil then
    local ufl = require "uffdlist"
    local pf, msg, errno = ufl.pidfd_open(unistd.getpid())
    if pf then pf:close() end
    pidfd_why = errno == ufl.errno.ENOSYS and ("pidfd_open(2) is ENOSYS here"
      .. " (Linux before 5.3, or valgrind before 3.20): " .. tostring(msg)) or false
  end
  return pidfd_why or nil
end

-- Wraps busted's `it` like posix.it: a spec that needs real pidfds is
-- pending, with the reason, where pidfd_open is ENOSYS.
--   local it_pidfd = child.it_pidfd(it, function(msg) pending(msg) end)
function child.it_pidfd(it, pend)
  return function(name, fn)
    return it(name, function(...)
      local why = child.pidfd_missing()
      if why then return pend(why) end
      return fn(...)
    end)
  end
end

-- A device child for fault specs: it makes its own uffd (EVENT_FORK too
-- with opts.forks), sends it and closes its own fd (so once the parent
-- closes its fd, a fault nobody serves — a failed case — no longer blocks
-- it for good), waits for "go"; with opts.forks it forks once (a FORK
-- event; the grandchild is killed, not left to exit: under valgrind an
-- exit's leak scan could touch a page registered on its uffd); then it
-- touches `pages` pages of the shared `map` one by one (each a MISSING
-- fault, served as zeros) and, with opts.remove, MADV_REMOVEs page 0 (a
-- REMOVE event) and touches it again.
function child.toucher(map, pages, opts)
  local ufl = require "uffdlist"
  local page = ufl.page_size()
  opts = opts or {}
  return child.spawn(function(sock)
    local u = assert(ufl.create(opts.forks and (ufl.DEFAULT_FEATURES
      + ufl.FEATURE_EVENT_FORK) or nil))
    assert(u:send(sock))
    u:close()
    if not child.await(sock) then return false end
    if opts.forks then
      local pid = unistd.fork()   -- returns once the FORK event is read
      if pid == 0 then
        while true do unistd.sleep(1) end
      end
      signal.kill(pid, signal.SIGKILL)
      wait.wait(pid)
    end
    for p = 0, pages - 1 do
      if map:read(p * page, 1) ~= "\0" then return false end
    end
    if opts.remove then
      assert(map:remove(0, page))
      if map:read(0, 1) ~= "\0" then return false end
    end
    return true
  end)
end

return child
