# uffdlist — build, test, install.
#
#   make            build the C core (build/libuffdlist.a) and the Lua module
#                   (build/uffdlist/core.so)
#   make test       install what is missing, build, run the C tests and the
#                   busted specs under LuaJIT; ends with "N passed, N failed"
#   make demo       the simulated VM under the default policy
#   make install    PREFIX, DESTDIR, or LuaRocks' INST_LIBDIR / INST_LUADIR
#
# Honours CC CFLAGS LDFLAGS LIBFLAG LUA_INCDIR; never hard-codes a compiler.

LUA_PC     ?= luajit
LUA        ?= luajit
PKG_CONFIG ?= pkg-config
LUA_INCDIR ?= $(patsubst -I%,%,$(firstword $(shell $(PKG_CONFIG) --cflags-only-I $(LUA_PC) 2>/dev/null)))
LUA_LIBS   ?= $(shell $(PKG_CONFIG) --libs $(LUA_PC) 2>/dev/null)
BUSTED     ?= /usr/bin/busted

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wshadow \
            -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Isrc
LIBFLAG  ?= -shared
PIC       = -fPIC

PREFIX      ?= /usr/local
LUA_VERSION ?= 5.1
INST_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
INST_LUADIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
INST_INCDIR ?= $(PREFIX)/include
INST_ARDIR  ?= $(PREFIX)/lib

B = build

CORE_SRC = src/sys.c src/uffd.c src/waitctx.c src/checker.c src/uffd_list.c \
           src/faults.c
LUA_SRC  = $(wildcard src/lua_*.c)
CTEST_SRC = $(wildcard spec/c/*.c)

CORE_OBJ = $(CORE_SRC:src/%.c=$(B)/obj/%.o)
LUA_OBJ  = $(LUA_SRC:src/%.c=$(B)/obj/%.o)
HDRS     = $(wildcard src/*.h)

MODULE = $(B)/uffdlist/core.so
CORE_A = $(B)/libuffdlist.a
CTEST  = $(B)/test_core
VM_BIN = $(B)/uffdlist-vm

# Where the specs find our modules, before any installed copy.
SPEC_ENV = LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" \
           LUA_CPATH="./$(B)/?.so;;"

.PHONY: all deps test test-c test-lua test-lua51 demo bench check fuzz soak \
        install clean

all: $(CORE_A) $(MODULE)

# PUC Lua needs its own interpreter and headers (Debian: lua5.1 +
# liblua5.1-0-dev, lua5.3 + liblua5.3-dev, lua5.4 + liblua5.4-dev).
DEPS_EXTRA ?= $(if $(filter lua5.1,$(LUA_PC)),lua5.1 liblua5.1-0-dev) \
              $(if $(filter lua5.3 lua5.4,$(LUA_PC)),$(LUA_PC) lib$(LUA_PC)-dev)

deps:
	@sh tools/install-deps.sh $(DEPS_EXTRA)

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(PIC) -I$(LUA_INCDIR) -c -o $@ $<

$(B)/obj:
	@mkdir -p $(B)/obj $(B)/uffdlist

$(CORE_A): $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(MODULE): $(LUA_OBJ) $(CORE_A)
	$(CC) $(LIBFLAG) $(LDFLAGS) -Wl,--exclude-libs,ALL -o $@ $(LUA_OBJ) $(CORE_A)

$(CTEST): $(CTEST_SRC) $(CORE_A) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Ispec/c -o $@ $(CTEST_SRC) $(CORE_A)

# Each runner's output goes to $(B)/log-*; tools/sum-counts.sh reads their
# closing lines, prints "N passed, N failed" and fails if any failed.
test: deps all $(CTEST) $(VM_BIN)
	@rm -f $(B)/log-c $(B)/log-lua
	-@$(MAKE) --no-print-directory test-c 2>&1 | tee $(B)/log-c
	-@$(MAKE) --no-print-directory test-lua 2>&1 | tee $(B)/log-lua
	@sh tools/sum-counts.sh $(B)/log-c $(B)/log-lua

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

# Sanitizers (ASan+UBSan) and valgrind over the C tests and the specs.
check:
	@sh tools/check.sh

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/uffdlist $(DESTDIR)$(INST_LUADIR)/uffdlist/policy
	install -m 755 $(MODULE) $(DESTDIR)$(INST_LIBDIR)/uffdlist/core.so
	install -m 644 lua/uffdlist/*.lua $(DESTDIR)$(INST_LUADIR)/uffdlist/
	-install -m 644 lua/uffdlist/policy/*.lua $(DESTDIR)$(INST_LUADIR)/uffdlist/policy/
	install -d $(DESTDIR)$(INST_INCDIR) $(DESTDIR)$(INST_ARDIR)
	install -m 644 src/uffdlist.h $(DESTDIR)$(INST_INCDIR)/
	install -m 644 $(CORE_A) $(DESTDIR)$(INST_ARDIR)/
	install -D -m 755 bin/uffdlist-policy $(DESTDIR)$(PREFIX)/bin/uffdlist-policy

clean:
	rm -rf $(B)

# ---- the simulated VM (examples/vm): `make demo` ----------------------
# build/uffdlist-vm embeds LuaJIT, the binding and every Lua module it
# needs, compiled to bytecode (`luajit -b`) into build/vm/*.h.
VM_LUA  = $(wildcard lua/uffdlist/*.lua lua/uffdlist/*/*.lua) \
          examples/vm/monitor_vm.lua
VM_SRC  = examples/vm/host.c examples/vm/vmlib.c examples/vm/guest.c
DEMO_ARGS ?=

# modules.h: each module's bytecode header, then VM_LUA_MODULES, the
# {name, bytecode, size} entries host.c preloads.
$(B)/vm/modules.h: $(VM_LUA) Makefile
	@mkdir -p $(B)/vm && rm -f $(B)/vm/bc_*.h $@.inc $@.tab && \
	for f in $(VM_LUA); do \
	  n=$$(echo $$f | sed 's,^lua/,,;s,^examples/vm/,,;s,\.lua$$,,;s,/init$$,,;s,/,.,g'); \
	  s=$$(echo $$n | tr . _); \
	  $(LUA) -b -g -n $$n $$f $(B)/vm/bc_$$s.h || exit 1; \
	  echo "#include \"bc_$$s.h\"" >> $@.inc; \
	  echo "{ \"$$n\", luaJIT_BC_$$s, luaJIT_BC_$$s""_SIZE }, \\" >> $@.tab; \
	done && \
	{ cat $@.inc; echo '#define VM_LUA_MODULES \'; cat $@.tab; echo; } > $@ && \
	rm -f $@.inc $@.tab

$(VM_BIN): $(VM_SRC) examples/vm/guest.h $(B)/vm/modules.h $(LUA_OBJ) $(CORE_A)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -I$(LUA_INCDIR) -I$(B)/vm \
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
	@sh tools/install-deps.sh clang libclang-rt-14-dev
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

# ---- soak: hundreds of hot-plugged processes through the VM host ---------
#   make soak [SOAK_ARGS="--hotplug 300 --duration 30 --mem 64 --policy threshold"]
# tools/soak.sh prints the figures and fails on a mismatch, an fd leak or
# RSS growth past its bounds (see the script for SOAK_MAX_ANON_GROWTH_KB).
SOAK_ARGS ?= --hotplug 300 --duration 30 --mem 64 --policy threshold

soak: deps all $(VM_BIN)
	SOAK_BIN=./$(VM_BIN) SOAK_ARGS="$(SOAK_ARGS)" sh tools/soak.sh

# ---- benchmarks: `make bench` [BENCH_ARGS="--children 4 --pages 4096 --runs 5"]
# bench/fault_loop.c serves real page faults of forked children: a raw C
# loop, then (embedding LuaJIT) bench/fault_loop.lua's binding loop and the
# monitor loop; prints median ns/fault and the ratios to the C loop.
BENCH_BIN  = $(B)/fault_loop
BENCH_ARGS ?=

$(BENCH_BIN): bench/fault_loop.c $(LUA_OBJ) $(CORE_A) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -I$(LUA_INCDIR) $(LDFLAGS) \
	  -o $@ bench/fault_loop.c $(LUA_OBJ) $(CORE_A) $(LUA_LIBS)

bench: all $(BENCH_BIN)
	./$(BENCH_BIN) --lua bench/fault_loop.lua $(BENCH_ARGS)
