-- The hand-written docs match the code.  Introspects what the module
-- really has — the functions of `uffdlist`, of `ufl.testing`, of
-- `uffdlist.monitor` and `uffdlist.policy`, the methods of every class the
-- binding registers (each "uffdlist.X" metatable in the registry, so a
-- class added later is found too) and of a live monitor — and compares
-- each set with the names doc/lua-api.md and doc/monitor-api.md give.  It
-- fails on an undocumented function or method and on a documented one that
-- does not exist, naming them.
--
-- How the docs name things (the spec reads only these forms):
--   doc/lua-api.md   "## Module functions": `ufl.NAME(`;
--                    "## core.testing ...": `ufl.testing.NAME(`;
--                    "## X methods ...": `VAR:NAME` for class uffdlist.X,
--                    VAR being the first `VAR:` written in that section.
--   doc/monitor-api.md "## monitor": `monitor.NAME(` or `monitor.NAME{`,
--                    and `m:NAME` for the monitor's methods;
--                    "## policies": `policy.NAME(`.
local ufl = require "uffdlist"
local monitor = require "uffdlist.monitor"
local policy = require "uffdlist.policy"
local files = require "spec.helpers.files"
local read = files.read

-- "## Heading" -> its text up to the next "## " (### stay inside).
local function sections(text)
  local out, name, buf = {}, nil, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local h = line:match("^## (.+)$")
    if h then
      if name then out[name] = table.concat(buf, "\n") end
      name, buf = h, {}
    elseif name then
      buf[#buf + 1] = line
    end
  end
  if name then out[name] = table.concat(buf, "\n") end
  return out
end

local function section(secs, prefix, file)
  for h, body in pairs(secs) do
    if h:sub(1, #prefix) == prefix then return body end
  end
  error(file .. " has no section '## " .. prefix .. "...'", 2)
end

local function names(text, pattern)
  local set = {}
  for n in text:gmatch(pattern) do set[n] = true end
  return set
end

local function functions_of(t)
  local set = {}
  for k, v in pairs(t) do
    if type(v) == "function" then set[k] = true end
  end
  return set
end

local function sorted(set)
  local l = {}
  for k in pairs(set) do l[#l + 1] = k end
  table.sort(l)
  return l
end

-- "" when they agree, else a message naming what the code has and the
-- docs lack, and the reverse.
local function diff(what, code, documented)
  local missing, extra = {}, {}
  for k in pairs(code) do
    if not documented[k] then missing[#missing + 1] = k end
  end
  for k in pairs(documented) do
    if not code[k] then extra[#extra + 1] = k end
  end
  table.sort(missing)
  table.sort(extra)
  local msg = ""
  if #missing > 0 then
    msg = msg .. what .. ": undocumented: " .. table.concat(missing, ", ") .. ". "
  end
  if #extra > 0 then
    msg = msg .. what .. ": documented but not in the code: "
      .. table.concat(extra, ", ") .. ". "
  end
  return msg
end

local function same(what, code, documented)
  local msg = diff(what, code, documented)
  assert(msg == "", msg)
end

-- Every class the binding registered: "uffdlist.X" -> its methods.
local function classes()
  local out = {}
  for k, v in pairs(debug.getregistry()) do
    if type(k) == "string" and k:match("^uffdlist%.[%w_]+$")
      and type(v) == "table" and type(rawget(v, "__index")) == "table" then
      out[k:sub(#"uffdlist." + 1)] = functions_of(rawget(v, "__index"))
    end
  end
  return out
end

local api = sections(read("doc/lua-api.md"))
local mon = sections(read("doc/monitor-api.md"))

describe("doc/lua-api.md", function()
  it("lists exactly the module's functions", function()
    local documented = names(section(api, "Module functions", "doc/lua-api.md"),
      "`ufl%.([%a_][%w_]*)%(")
    same("ufl", functions_of(ufl), documented)
  end)

  it("lists exactly ufl.testing's functions", function()
    local documented = names(section(api, "core.testing", "doc/lua-api.md"),
      "`ufl%.testing%.([%a_][%w_]*)%(")
    same("ufl.testing", functions_of(ufl.testing), documented)
  end)

  it("has a methods section for every class, naming exactly its methods", function()
    local found = classes()
    -- the classes every build has; others found in the registry count too
    for _, c in ipairs { "uffd", "waitctx", "list", "checker", "mapping",
      "eventfd", "timerfd" } do
      assert(found[c], "no metatable uffdlist." .. c .. " in the registry")
    end
    local msg = ""
    for _, c in ipairs(sorted(found)) do
      local body = section(api, c .. " methods", "doc/lua-api.md")
      local var = body:match("`([%a_][%w_]*):[%a_]")
      assert(var, "## " .. c .. " methods names no `VAR:method`")
      msg = msg .. diff("uffdlist." .. c .. " (" .. var .. ":)", found[c],
        names(body, "`" .. var .. ":([%a_][%w_]*)"))
    end
    assert(msg == "", msg)
  end)

  it("every class it documents exists", function()
    local found = classes()
    for h in pairs(api) do
      local c = h:match("^([%w_]+) methods")
      if c then
        assert(found[c], "## " .. h .. ": there is no class uffdlist." .. c)
      end
    end
  end)
end)

describe("doc/monitor-api.md", function()
  local body = section(mon, "monitor", "doc/monitor-api.md")

  it("lists exactly uffdlist.monitor's functions", function()
    local documented = names(body, "monitor%.([%a_][%w_]*)%s*[%({]")
    same("uffdlist.monitor", functions_of(monitor), documented)
  end)

  it("lists exactly a monitor's methods", function()
    local ctx = assert(ufl.waitctx())
    local checker = {
      register = function() return true end,
      is_dead = function() return false end,
      reset = function() return true end,
    }
    local list = assert(ufl.list(assert(ufl.create()), checker, ctx))
    local m = monitor.new { list = list }
    local methods = {}
    -- what m:NAME finds: its metatable's __index chain, not its fields
    local mt = getmetatable(m)
    local idx = mt and mt.__index
    while type(idx) == "table" do
      for k, v in pairs(idx) do
        if type(v) == "function" and k:sub(1, 2) ~= "__" then methods[k] = true end
      end
      local up = getmetatable(idx)
      idx = up and up.__index
    end
    if m.close then m:close() end
    list:close()
    ctx:close()
    assert(next(methods), "the monitor has no methods?")
    same("monitor (m:)", methods, names(body, "`m:([%a_][%w_]*)"))
  end)

  it("lists exactly uffdlist.policy's functions", function()
    local documented = names(section(mon, "policies", "doc/monitor-api.md"),
      "`policy%.([%a_][%w_]*)%(")
    same("uffdlist.policy", functions_of(policy), documented)
  end)
end)

describe("generated docs (make doc, config.ld)", function()
  -- LDoc takes the first doc comment of a file for its module: a binding
  -- file without this header stops `make doc` with "'class' cannot have
  -- multiple values".  Said here, by file name.
  it("every src/lua_*.c opens with a doc comment tagged @module uffdlist.core", function()
    local p = assert(io.popen("ls src/lua_*.c"))
    local n = 0
    for f in p:lines() do
      n = n + 1
      local s = read(f)
      local head = s:match("^/%*%*\n(.-)%*/")
      assert(head, f .. " does not open with a /** doc comment")
      assert(head:match("\n %* @module uffdlist%.core\n"),
        f .. ": its header lacks ' * @module uffdlist.core'")
    end
    p:close()
    assert.is_true(n > 0)
  end)
end)
