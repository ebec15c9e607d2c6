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
LUA_INCDIR ?= $(shell $(PKG_CONFIG) --variable=includedir $(LUA_PC) 2>/dev/null)/luajit-2.1
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

# Where the specs find our modules, before any installed copy.
SPEC_ENV = LUA_PATH="./lua/?.lua;./lua/?/init.lua;./spec/?.lua;./?.lua;;" \
           LUA_CPATH="./$(B)/?.so;;"

.PHONY: all deps test test-c test-lua demo bench check fuzz install clean

all: $(CORE_A) $(MODULE)

deps:
	@sh tools/install-deps.sh

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(PIC) -I$(LUA_INCDIR) -c -o $@ $<

$(B)/obj:
	@mkdir -p $(B)/obj $(B)/uffdlist

$(CORE_A): $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

$(MODULE): $(LUA_OBJ) $(CORE_A)
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(LUA_OBJ) $(CORE_A)

$(CTEST): $(CTEST_SRC) $(CORE_A) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Ispec/c -o $@ $(CTEST_SRC) $(CORE_A)

# Each runner's output goes to $(B)/log-*; tools/sum-counts.sh reads their
# closing lines, prints "N passed, N failed" and fails if any failed.
test: deps all $(CTEST)
	@rm -f $(B)/log-c $(B)/log-lua
	-@$(MAKE) --no-print-directory test-c 2>&1 | tee $(B)/log-c
	-@$(MAKE) --no-print-directory test-lua 2>&1 | tee $(B)/log-lua
	@sh tools/sum-counts.sh $(B)/log-c $(B)/log-lua

test-c: $(CTEST)
	./$(CTEST)

test-lua: $(MODULE)
	$(SPEC_ENV) $(LUA) $(BUSTED) -o utfTerminal $(BUSTED_ARGS) spec

install: all
	install -d $(DESTDIR)$(INST_LIBDIR)/uffdlist $(DESTDIR)$(INST_LUADIR)/uffdlist/policy
	install -m 755 $(MODULE) $(DESTDIR)$(INST_LIBDIR)/uffdlist/core.so
	install -m 644 lua/uffdlist/*.lua $(DESTDIR)$(INST_LUADIR)/uffdlist/
	-install -m 644 lua/uffdlist/policy/*.lua $(DESTDIR)$(INST_LUADIR)/uffdlist/policy/
	install -d $(DESTDIR)$(INST_INCDIR) $(DESTDIR)$(INST_ARDIR)
	install -m 644 src/uffdlist.h $(DESTDIR)$(INST_INCDIR)/
	install -m 644 $(CORE_A) $(DESTDIR)$(INST_ARDIR)/

clean:
	rm -rf $(B)
