-- spec/helpers/files.lua — whole files for the specs.
--   files.read(path)       the file's bytes (raises if it cannot be read)
--   files.write_tmp(src)   a new temporary file holding src: its path
--                          (the caller os.remove()s it)
local files = {}

function files.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function files.write_tmp(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(src)
  f:close()
  return path
end

return files
