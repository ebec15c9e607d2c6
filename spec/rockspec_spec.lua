-- uffdlist-scm-1.rockspec builds what the Makefile builds: every source of
-- the C module (src/*.c) and every Lua module (lua/uffdlist/**.lua) under
-- its module name, so a file added to the tree but not to the rockspec
-- (a `luarocks make` install missing it) fails here, naming it.
local files = require "spec.helpers.files"
local read = files.read

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function rockspec()
  local env, text = {}, read("uffdlist-scm-1.rockspec")
  local chunk
  if setfenv then -- 5.1, LuaJIT
    chunk = assert(loadstring(text, "rockspec"))
    setfenv(chunk, env)
  else
    chunk = assert(load(text, "rockspec", "t", env))
  end
  chunk()
  return env
end

describe("uffdlist-scm-1.rockspec", function()
  local spec = rockspec()
  local modules = spec.build.modules

  it("compiles every src/*.c into uffdlist.core", function()
    local listed = {}
    for _, f in ipairs(modules["uffdlist.core"].sources) do listed[f] = true end
    local missing = {}
    for _, f in ipairs(lines("ls src/*.c")) do
      if not listed[f] then missing[#missing + 1] = f end
      listed[f] = nil
    end
    assert(#missing == 0, "not in the rockspec: " .. table.concat(missing, ", "))
    assert(next(listed) == nil, "in the rockspec, not in src/: " .. tostring(next(listed)))
  end)

  it("installs every Lua module under its name", function()
    local want = {}
    for _, f in ipairs(lines("find lua -name '*.lua' | sort")) do
      local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
      want[name] = f
    end
    for name, f in pairs(want) do
      assert(modules[name] == f, "rockspec: [\"" .. name .. "\"] = \"" .. f .. "\" missing")
    end
    for name, f in pairs(modules) do
      if type(f) == "string" then
        assert(want[name] == f, "rockspec lists " .. name .. " = " .. f .. ": no such file")
      end
    end
  end)

  it("runs its specs with busted and says which Lua versions build", function()
    assert.are.equal("busted", spec.test.type)
    assert.is_truthy(read(".busted"):match("ROOT"))
    assert.are.same({ "lua >= 5.1, < 5.5" }, spec.dependencies)
  end)
end)
