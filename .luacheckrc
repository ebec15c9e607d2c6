-- luacheck lua spec examples bin
-- luacheck gives busted's globals to spec/**/*_spec.lua by itself; the
-- example policy's spec (examples/policy, run by `busted examples/policy`)
-- is one too.
files["examples/**/*_spec.lua"] = { std = "+busted" }
