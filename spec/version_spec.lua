-- uffdlist._VERSION names the release the Makefile builds: the same
-- VERSION gives the C library its file name (libuffdlist.so.VERSION) and
-- uffdlist.pc its Version, so a release bump that forgets one fails here.
local ufl = require "uffdlist"
local files = require "spec.helpers.files"
local read = files.read

describe("uffdlist._VERSION", function()
  it("is 'uffdlist MAJOR.MINOR.PATCH'", function()
    assert.is_string(ufl._VERSION)
    assert.is_truthy(ufl._VERSION:match("^uffdlist %d+%.%d+%.%d+$"))
  end)

  it("is the Makefile's VERSION, whose major is the soname's", function()
    local mk = read("Makefile")
    local version = assert(mk:match("\nVERSION%s*=%s*(%d+%.%d+%.%d+)\n"))
    local soversion = assert(mk:match("\nSOVERSION%s*=%s*(%d+)\n"))
    assert.are.equal("uffdlist " .. version, ufl._VERSION)
    assert.are.equal(version:match("^(%d+)"), soversion)
  end)
end)
