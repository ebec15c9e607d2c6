# uffdlist — build, test, install.
#
#   make            build the C library and the Lua module
#                   (build/uffdlist/core.so)
#   make lib        the C library alone, no Lua needed: build/libuffdlist.a,
#                   build/libuffdlist.so.$(VERSION) (soname libuffdlist.so.0,
#                   exports only ufl_*), build/uffdlist.pc
#   make test       install what is missing, build, run the C tests, the
#                   busted specs under LuaJIT and the installed-library checks
#                   (examples/c); ends with "N passed, N failed"
#   make demo       the simulated VM under the default policy
#   make doc        HTML API docs with LDoc into build/doc (config.ld)
#   make install    the C library, header and uffdlist.pc, and the Lua parts
#                   when Lua is found; PREFIX, DESTDIR, LIBDIR, INCLUDEDIR,
#                   PKGCONFIGDIR, or LuaRocks' INST_LIBDIR / INST_LUADIR
#   make uninstall  removes what install put there (same variables)
#
# Honours CC CFLAGS LDFLAGS LIBFLAG LUA_INCDIR; never hard-codes a compiler.

VERSION    = 0.1.0
SOVERSION  = 0

LUA_PC     ?= luajit
LUA        ?= luajit
PKG_CONFIG ?= pkg-config
# Both are recursive (`?=` with no `:`): pkg-config runs when a recipe that
# needs them runs — after `deps` (an order-only prerequisite of every build
# step when a goal needs it, see DEPS_FIRST) — never at parse time, when
# pkg-config or the Lua headers may not be installed yet.
LUA_INCDIR ?= $(patsubst -I%,%,$(firstword $(shell $(PKG_CONFIG) --cflags-only-I $(LUA_PC) 2>/dev/null)))
LUA_LIBS   ?= $(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null)
BUSTED     ?= /usr/bin/busted
LDOC       ?= ldoc

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wshadow \
            -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Isrc
LIBFLAG  ?= -shared
PIC       = -fPIC

PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# 5.1 (LuaJIT, lua5.1) unless LUA_PC names another: lua5.3 -> 5.3
LUA_VERSION  ?= $(or $(patsubst lua%,%,$(filter lua5.%,$(LUA_PC))),5.1)
INST_LIBDIR  ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
INST_LUADIR  ?= $(PREFIX)/share/lua/$(LUA_VERSION)

B = build

# Every src/*.c but the binding is the C core (no Lua in it).
CORE_SRC = $(filter-out src/lua_%,$(wildcard src/*.c))
LUA_SRC  = $(wildcard src/lua_*.c)
CTEST_SRC = $(wildcard spec/c/*.c)

CORE_OBJ = $(CORE_SRC:src/%.c=$(B)/obj/%.o)
LUA_OBJ  = $(LUA_SRC:src/%.c=$(B)/obj/%.o)
HDRS     = $(wildcard src/*.h)

MODULE = $(B)/uffdlist/core.so
CORE_A = $(B)/libuffdlist.a
SONAME = libuffdlist.so.$(SOVERSION)
CORE_SO = $(B)/libuffdlist.so.$(VERSION)
CORE_PC = $(B)/uffdlist.pc
CTEST  = $(B)/test_core
VM_BIN = $(B)/uffdlist-vm

# Where the specs find our modules, before any installed copy.
SPEC_ENV = LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" \
           LUA_CPATH="./$(B)/?.so;;"

.PHONY: all lib deps test test-c test-lua test-lua51 test-lib test-rock dist rock \
        demo bench check fuzz soak doc install install-lib install-lua \
        uninstall clean

all: lib $(MODULE)

lib: $(CORE_A) $(CORE_SO) $(CORE_PC)

# PUC Lua needs its own interpreter and headers (Debian: lua5.1 +
# liblua5.1-0-dev, lua5.3 + liblua5.3-dev, lua5.4 + liblua5.4-dev).
DEPS_EXTRA ?= $(if $(filter lua5.1,$(LUA_PC)),lua5.1 liblua5.1-0-dev) \
              $(if $(filter lua5.3 lua5.4,$(LUA_PC)),$(LUA_PC) lib$(LUA_PC)-dev)

# tools/install-deps.sh installs the compiler that $(CC) names, so it gets
# CC; a goal that builds and runs things makes every build step wait for
# it (order-only, so nothing is rebuilt for it): under `make -j` no compile
# may start before the headers and pkg-config are there.  `make`, `make lib`
# and `make install` never install anything (a C user's machine).
INSTALL_DEPS ?= sh tools/install-deps.sh
deps:
	@CC="$(CC)" $(INSTALL_DEPS) $(DEPS_EXTRA)

DEPS_GOALS = deps test test-c test-lua test-lua51 test-lua53 test-lua54 \
             test-lib demo soak bench
DEPS_FIRST ?= $(if $(filter $(DEPS_GOALS),$(MAKECMDGOALS)),deps)
# `make -j clean test`: goals are made in parallel, and make would also
# remember files clean is about to remove; so with other goals, clean is
# done here, while the makefile is read, before anything is looked at.
ifneq ($(and $(filter clean,$(MAKECMDGOALS)),$(filter-out clean,$(MAKECMDGOALS))),)
$(shell rm -rf $(B))
endif

# The C core never sees a Lua header; the binding (src/lua_*.c) does.
LUA_CPPFLAGS = -I$(if $(LUA_INCDIR),$(LUA_INCDIR),$(error no Lua headers \
  for $(LUA_PC): pkg-config --cflags $(LUA_PC) gave nothing (run `make deps` \
  as root, or set LUA_INCDIR)))

$(B)/obj/lua_%.o: src/lua_%.c $(HDRS) | $(B)/obj $(DEPS_FIRST)
	$(CC) $(CPPFLAGS) $(LUA_CPPFLAGS) $(CFLAGS) $(WARN) $(PIC) -c -o $@ $<

$(B)/obj/%.o: src/%.c $(filter-out src/lua_%,$(HDRS)) | $(B)/obj $(DEPS_FIRST)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(PIC) -c -o $@ $<

$(B)/obj:
	@mkdir -p $(B)/obj $(B)/uffdlist

$(CORE_A): $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# The shared library exports ufl_* only (src/libuffdlist.map); its soname
# carries the major version: an incompatible change of uffdlist.h bumps
# SOVERSION.
$(CORE_SO): $(CORE_OBJ) src/libuffdlist.map
	$(CC) -shared $(LDFLAGS) -Wl,--no-undefined -Wl,-soname,$(SONAME) \
	  -Wl,--version-script,src/libuffdlist.map -o $@ $(CORE_OBJ)
	ln -sf libuffdlist.so.$(VERSION) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libuffdlist.so

# uffdlist.pc for the PREFIX/LIBDIR/INCLUDEDIR of this make run; rewritten
# only when that changes (install regenerates it for its own variables).
PC_SED = -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
         -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
$(CORE_PC): uffdlist.pc.in FORCE | $(B)/obj
	@sed $(PC_SED) uffdlist.pc.in > $@.tmp && \
	  { cmp -s $@.tmp $@ && rm -f $@.tmp || mv -f $@.tmp $@; }

FORCE:

$(MODULE): $(LUA_OBJ) $(CORE_A)
	$(CC) $(LIBFLAG) $(LDFLAGS) -Wl,--exclude-libs,ALL -o $@ $(LUA_OBJ) $(CORE_A)

$(CTEST): $(CTEST_SRC) $(CORE_A) $(HDRS) | $(DEPS_FIRST)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Ispec/c -o $@ $(CTEST_SRC) $(CORE_A)

# Each runner's output goes to $(B)/log-*; tools/sum-counts.sh reads their
# closing lines, prints "N passed, N failed" and fails if any failed.
test: deps all $(CTEST) $(VM_BIN)
	@rm -f $(B)/log-c $(B)/log-lua $(B)/log-lib
	-@$(MAKE) --no-print-directory DEPS_FIRST= test-c 2>&1 | tee $(B)/log-c
	-@$(MAKE) --no-print-directory DEPS_FIRST= test-lua 2>&1 | tee $(B)/log-lua
	-@$(MAKE) --no-print-directory DEPS_FIRST= test-lib 2>&1 | tee $(B)/log-lib
	@sh tools/sum-counts.sh $(B)/log-c $(B)/log-lua $(B)/log-lib

test-c: $(CTEST)
	./$(CTEST)

test-lua: $(MODULE)
	$(SPEC_ENV) $(LUA) $(BUSTED) -o utfTerminal $(BUSTED_ARGS) spec examples/policy

# One binding source for LuaJIT, 5.1, 5.3 and 5.4: below 5.3 src/lua_core.h
# takes the 5.3 C API from compat-5.3.h (Debian lua-compat53-dev puts it in
# /usr/include/lua5.1).  -idirafter: searched after the Lua headers, and
# its warnings are not ours.
COMPAT53_INCDIR ?= /usr/include/lua5.1
CPPFLAGS += -idirafter $(COMPAT53_INCDIR)

# The specs under PUC Lua 5.3 and 5.4, but for those tagged #luajit.
# Debian 12's lua-posix has no 5.4 build: spec/helpers/posix.lua then makes
# the specs that use it pending, with that reason; every other one runs.
.PHONY: test-lua53 test-lua54
test-lua53:
	$(MAKE) --no-print-directory B=build/lua53 LUA=lua5.3 LUA_PC=lua5.3 \
	  deps all test-lua BUSTED_ARGS="--exclude-tags=luajit"

test-lua54:
	$(MAKE) --no-print-directory B=build/lua54 LUA=lua5.4 LUA_PC=lua5.4 \
	  deps all test-lua BUSTED_ARGS="--exclude-tags=luajit"

# The same specs under PUC Lua 5.1, but for those tagged #luajit (the
# embedded host is a LuaJIT program).
test-lua51:
	$(MAKE) --no-print-directory B=build/lua51 LUA=lua5.1 LUA_PC=lua5.1 \
	  deps all test-lua BUSTED_ARGS="--exclude-tags=luajit"

# The installed library, as a C user gets it: `make install` into
# $(B)/inst, pkg-config resolves it, examples/c/monitor.c (a monitor in C
# serving real children's faults and collecting a dead one) is built
# against it and run, only ufl_* is exported, `make uninstall` removes
# everything.  Ends with "lib-tests: N passed, N failed".
test-lib: lib
	@CC="$(CC)" MAKE="$(MAKE)" PKG_CONFIG="$(PKG_CONFIG)" LUA="$(LUA)" B="$(B)" \
	  sh tools/lib-check.sh $(CURDIR)/$(B)/inst

# LuaRocks in a local tree: luarocks make, luarocks test (the specs against
# the installed rock), luarocks build of the rockspec and of its .src.rock
# (tools/rock-check.sh).  ROCK_LUA: the Lua version LuaRocks builds for.
ROCK_LUA ?= 5.1
ROCK_DEPS = luarocks lua$(ROCK_LUA) \
            $(if $(filter 5.1,$(ROCK_LUA)),liblua5.1-0-dev,liblua$(ROCK_LUA)-dev)
test-rock:
	@CC="$(CC)" $(INSTALL_DEPS) $(ROCK_DEPS)
	@CC="$(CC)" sh tools/rock-check.sh $(ROCK_LUA)

# build/uffdlist-scm.tar.gz: the checkout's files (tracked, and new ones
# not ignored) under uffdlist/ — the rockspec's source.
dist:
	@mkdir -p $(B)
	git ls-files -co --exclude-standard | \
	  tar -czf $(B)/uffdlist-scm.tar.gz --transform 's,^,uffdlist/,' -T -

# build/rock/uffdlist-scm-1.src.rock, which `luarocks build` takes on any
# machine.  `luarocks pack` fetches the source from a temporary directory,
# so it is given a copy of the rockspec whose source is this tarball's
# absolute path (`luarocks build` of the rockspec itself takes the relative
# one, from the checkout).
rock: dist
	@mkdir -p $(B)/rock
	sed 's|url = "file://build/|url = "file://$(CURDIR)/$(B)/|' \
	  uffdlist-scm-1.rockspec > $(B)/rock/uffdlist-scm-1.rockspec
	cd $(B)/rock && luarocks pack uffdlist-scm-1.rockspec

# Sanitizers (ASan+UBSan) and valgrind over the C tests and the specs.
check:
	@sh tools/check.sh

# ---- docs: `make doc` -> build/doc/index.html (LDoc, config.ld) --------
# The API from src/lua_*.c and lua/ (LDoc tags), and the hand-written
# docs as topics.  --fatalwarnings: any LDoc warning fails the build.
# ldoc runs under lua5.2 or lua5.1 (lua-any), the Lua versions Debian
# builds lua-discount (its Markdown, with tables) for: hence lua5.1.
doc:
	@CC="$(CC)" $(INSTALL_DEPS) lua-ldoc lua-discount lua5.1
	@rm -rf $(B)/doc && mkdir -p $(B)
	@echo "$(LDOC) --fatalwarnings -d $(B)/doc ."; \
	  $(LDOC) --fatalwarnings -d $(B)/doc . >$(B)/doc.log 2>&1; rc=$$?; \
	  grep -v '^found master module' $(B)/doc.log; exit $$rc

# ---- install -------------------------------------------------------
# The Lua parts go in only when a Lua is found (pkg-config $(LUA_PC), or
# LUA_INCDIR given): a C user needs no Lua.  Looked up when the rule is
# read (install never installs packages), and only when install is a goal.
ifneq ($(filter install,$(MAKECMDGOALS)),)
LUA_FOUND := $(if $(LUA_INCDIR),yes)
endif

install: install-lib $(if $(LUA_FOUND),install-lua)
	@$(if $(LUA_FOUND),:,echo "install: no Lua headers found ($(PKG_CONFIG) $(LUA_PC)): C library only")

install-lib: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 src/uffdlist.h $(DESTDIR)$(INCLUDEDIR)/uffdlist.h
	install -m 644 $(CORE_A) $(DESTDIR)$(LIBDIR)/libuffdlist.a
	install -m 755 $(CORE_SO) $(DESTDIR)$(LIBDIR)/libuffdlist.so.$(VERSION)
	ln -sf libuffdlist.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libuffdlist.so
	sed $(PC_SED) uffdlist.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/uffdlist.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/uffdlist.pc

LUA_FILES = $(wildcard lua/uffdlist/*.lua)
POLICY_FILES = $(wildcard lua/uffdlist/policy/*.lua)

install-lua: $(MODULE)
	install -d $(DESTDIR)$(INST_LIBDIR)/uffdlist $(DESTDIR)$(INST_LUADIR)/uffdlist/policy
	install -m 755 $(MODULE) $(DESTDIR)$(INST_LIBDIR)/uffdlist/core.so
	install -m 644 $(LUA_FILES) $(DESTDIR)$(INST_LUADIR)/uffdlist/
	install -m 644 $(POLICY_FILES) $(DESTDIR)$(INST_LUADIR)/uffdlist/policy/
	install -D -m 755 bin/uffdlist-policy $(DESTDIR)$(PREFIX)/bin/uffdlist-policy

# Removes exactly what install puts there (both parts: the Lua ones may
# have been installed by an earlier run), then the directories it made if
# they are empty.
uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/uffdlist.h $(DESTDIR)$(LIBDIR)/libuffdlist.a \
	  $(DESTDIR)$(LIBDIR)/libuffdlist.so.$(VERSION) \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libuffdlist.so \
	  $(DESTDIR)$(PKGCONFIGDIR)/uffdlist.pc \
	  $(DESTDIR)$(INST_LIBDIR)/uffdlist/core.so \
	  $(DESTDIR)$(PREFIX)/bin/uffdlist-policy \
	  $(patsubst lua/%,$(DESTDIR)$(INST_LUADIR)/%,$(LUA_FILES) $(POLICY_FILES))
	@for d in $(DESTDIR)$(INST_LUADIR)/uffdlist/policy \
	  $(DESTDIR)$(INST_LUADIR)/uffdlist $(DESTDIR)$(INST_LIBDIR)/uffdlist; do \
	  [ ! -d $$d ] || rmdir $$d 2>/dev/null || :; done

clean:
	rm -rf $(B)

# ---- the simulated VM (examples/vm): `make demo` ----------------------
# build/uffdlist-vm embeds LuaJIT, the binding and every Lua module it
# needs, compiled to bytecode (`luajit -b`) into build/vm/*.h.
# dkjson (Debian lua-dkjson) is embedded too: the host searches no disk.
DKJSON  ?= /usr/share/lua/5.1/dkjson.lua
VM_LUA  = $(wildcard lua/uffdlist/*.lua lua/uffdlist/*/*.lua) \
          examples/vm/monitor_vm.lua $(DKJSON)
VM_SRC  = examples/vm/host.c examples/vm/vmlib.c examples/vm/guest.c
DEMO_ARGS ?=

# modules.h: each module's bytecode header, then VM_LUA_MODULES, the
# {name, bytecode, size} entries host.c preloads.
$(B)/vm/modules.h: $(VM_LUA) Makefile | $(DEPS_FIRST)
	@mkdir -p $(B)/vm && rm -f $(B)/vm/bc_*.h $@.inc $@.tab && \
	for f in $(VM_LUA); do \
	  n=$$(echo $$f | sed 's,^$(dir $(DKJSON)),,;s,^lua/,,;s,^examples/vm/,,;s,\.lua$$,,;s,/init$$,,;s,/,.,g'); \
	  s=$$(echo $$n | tr . _); \
	  $(LUA) -b -g -n $$n $$f $(B)/vm/bc_$$s.h || exit 1; \
	  echo "#include \"bc_$$s.h\"" >> $@.inc; \
	  echo "{ \"$$n\", luaJIT_BC_$$s, luaJIT_BC_$$s""_SIZE }, \\" >> $@.tab; \
	done && \
	{ cat $@.inc; echo '#define VM_LUA_MODULES \'; cat $@.tab; echo; } > $@ && \
	rm -f $@.inc $@.tab

# Installed by deps; a rule, so that under make -j it is looked for only
# once deps has run.
$(DKJSON): | $(DEPS_FIRST)
	@test -f $@ || { echo "$@ missing: install lua-dkjson (make deps)" >&2; exit 1; }

$(VM_BIN): $(VM_SRC) examples/vm/guest.h $(B)/vm/modules.h $(LUA_OBJ) $(CORE_A)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LUA_CPPFLAGS) -I$(B)/vm \
	  $(LDFLAGS) -o $@ $(VM_SRC) $(LUA_OBJ) $(CORE_A) $(LUA_LIBS)

demo: deps all $(VM_BIN)
	./$(VM_BIN) $(DEMO_ARGS)

# ---- fuzzing: libFuzzer over the list against a model (spec/fuzz/) --------
#   make fuzz [FUZZ_SECONDS=60]   fuzz; the working corpus is build/fuzz/corpus
#                                 (seeded from spec/fuzz/corpus, kept between
#                                 runs); crashes go to build/fuzz/artifacts/
#   make fuzz-smoke [FUZZ_RUNS=1000000]   CI: a fixed number of runs over a
#                                 fresh copy of the seeds, with final stats
# Both first replay spec/fuzz/regress/ (read-only; one input per bug found).
# Needs clang with libFuzzer (Debian: clang, libclang-rt-dev).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?= 1000000
FUZZ_CFLAGS  ?= -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all
FUZZ_ARGS    ?=
FUZZ_SRC      = src/sys.c src/faults.c src/uffd.c src/waitctx.c src/checker.c \
                src/uffd_list.c spec/fuzz/list_fuzz.c
FUZZ_BIN      = $(B)/list_fuzz
FUZZ_RUN      = -max_len=100 -timeout=10 -print_final_stats=1 \
                -artifact_prefix=$(B)/fuzz/artifacts/

.PHONY: fuzz-smoke

$(FUZZ_BIN): $(FUZZ_SRC) src/uffdlist.h
	@CC=$(FUZZ_CC) sh tools/install-deps.sh clang-rt
	@mkdir -p $(B)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -D_GNU_SOURCE -Isrc -o $@ $(FUZZ_SRC)

fuzz: $(FUZZ_BIN)
	@mkdir -p $(B)/fuzz/corpus $(B)/fuzz/artifacts
	cp spec/fuzz/corpus/* $(B)/fuzz/corpus/
	./$(FUZZ_BIN) $(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_ARGS) \
	  $(B)/fuzz/corpus spec/fuzz/regress

fuzz-smoke: $(FUZZ_BIN)
	@rm -rf $(B)/fuzz/smoke && mkdir -p $(B)/fuzz/smoke $(B)/fuzz/artifacts
	cp spec/fuzz/corpus/* $(B)/fuzz/smoke/
	./$(FUZZ_BIN) $(FUZZ_RUN) -seed=1 -runs=$(FUZZ_RUNS) $(FUZZ_ARGS) \
	  $(B)/fuzz/smoke spec/fuzz/regress

# ---- soak: 1,000 hot-plugged processes through the VM host, ~100 alive ----
#   make soak [SOAK_ARGS="--hotplug 1000 --alive 100 --duration 60 --mem 64 --policy threshold"]
# tools/soak.sh prints the figures and fails on a mismatch, an fd leak,
# RSS growth past its bounds (see the script for SOAK_MAX_ANON_GROWTH_KB),
# fewer devices hot-plugged than asked or a peak alive below
# SOAK_MIN_ALIVE.  About 60 s.
SOAK_ARGS ?= --hotplug 1000 --alive 100 --duration 60 --mem 64 --policy threshold
SOAK_MIN_ALIVE ?= 80

soak: deps all $(VM_BIN)
	SOAK_BIN=./$(VM_BIN) SOAK_ARGS="$(SOAK_ARGS)" \
	  SOAK_MIN_ALIVE=$(SOAK_MIN_ALIVE) sh tools/soak.sh

# ---- benchmarks: `make bench` [FAULT_ARGS="--runs 15"] [LIST_ARGS="--runs 7"]
# bench/run.sh runs build/fault_loop (real children's page faults served
# by the binding loop, the monitor loop and a raw syscall loop; pinned,
# then unpinned) and build/list_bench (dispatch, register, gc_scan,
# collect_one, gc_pause, memory) and ends with the RATIO lines; the log is
# build/bench.log.  See bench/README.md.  Not part of `make test`.
BENCH_BIN  = $(B)/fault_loop
LBENCH_BIN = $(B)/list_bench
FAULT_ARGS ?= --runs 15
LIST_ARGS  ?= --runs 7

$(BENCH_BIN): bench/fault_loop.c bench/embed.h $(LUA_OBJ) $(CORE_A) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LUA_CPPFLAGS) $(LDFLAGS) \
	  -o $@ bench/fault_loop.c $(LUA_OBJ) $(CORE_A) $(LUA_LIBS)

$(LBENCH_BIN): bench/list_bench.c bench/embed.h $(LUA_OBJ) $(CORE_A) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LUA_CPPFLAGS) $(LDFLAGS) \
	  -o $@ bench/list_bench.c $(LUA_OBJ) $(CORE_A) $(LUA_LIBS)

bench: all $(BENCH_BIN) $(LBENCH_BIN)
	B=$(B) FAULT_ARGS="$(FAULT_ARGS)" LIST_ARGS="$(LIST_ARGS)" sh bench/run.sh
