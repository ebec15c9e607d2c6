-- spec/helpers/child.lua — real child processes for real-kernel specs.
-- child.spawn(fn) forks; the child runs fn(sock) and leaves with _exit
-- (0 if fn returned true, 1 if false, 2 if it raised), never returning into
-- busted.  The parent gets {pid=, sock=} and talks over a socketpair.
local socket = require "posix.sys.socket"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local signal = require "posix.signal"
local dirent = require "posix.dirent"

local child = {}

function child.spawn(fn)
  local a, b = assert(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM, 0))
  local pid = assert(unistd.fork())
  if pid == 0 then
    unistd.close(a)
    local ok, res = pcall(fn, b)
    if not ok then io.stderr:write("child error: ", tostring(res), "\n") end
    unistd._exit(ok and (res and 0 or 1) or 2)
  end
  unistd.close(b)
  return { pid = pid, sock = a }
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
  local _, how, status = wait.wait(c.pid)
  if how == "exited" then return status end
  return nil, how, status
end

function child.kill(c)
  signal.kill(c.pid, signal.SIGKILL)
  return child.reap(c)
end

function child.count_fds()
  local n = 0
  for _ in dirent.files("/proc/self/fd") do n = n + 1 end
  return n - 3 -- ".", ".." and the directory's own fd
end

return child
