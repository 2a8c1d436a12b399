# resort-sync: GNU Makefile.
#
#   make            build/resort-sync, build/libresortsync.a and the shared
#                   library build/libresortsync.so.MAJOR.MINOR
#   make install    into PREFIX (default /usr/local) under DESTDIR; BINDIR,
#                   LIBDIR, INCLUDEDIR, MANDIR, SYSCONFDIR, ... (see below)
#   make uninstall  removes what make install put there
#   make test       install what is missing, build, run every test
#   make asan       the same tests under AddressSanitizer + UBSan (build-asan/)
#   make demo       a sample database synced into local D1 and a local Turso server
#   make bench      side-by-side benchmarks (see bench/README.md)
#   make fuzz       every fuzz target for a bounded time (FUZZ_SECONDS, default 30)
#
# Sources are found by wildcard: a new .c under src/ is part of the library,
# a new tests/unit/test_*.c is a new test program.  Nothing to register.

BUILD   ?= build
CC      ?= cc
PKGS    := sqlite3 libcurl jansson libprotobuf-c libmicrohttpd libcrypto
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ifdef WERROR
WARN    += -Werror
endif
ifdef SAN
OPT     := -O1 -g -fno-omit-frame-pointer
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
HAVE_SYSTEMD := $(shell pkg-config --exists libsystemd 2>/dev/null && echo 1)
ifeq ($(HAVE_SYSTEMD),1)
PKG_CFLAGS += -DRS_HAVE_SYSTEMD $(shell pkg-config --cflags libsystemd)
PKG_LIBS   += $(shell pkg-config --libs libsystemd)
endif

CPPFLAGS += -Iinclude -Isrc -I$(BUILD)/gen -D_GNU_SOURCE
CFLAGS   := -std=c11 -fPIC $(OPT) $(WARN) $(SANFLAGS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS  += $(SANFLAGS)
LDLIBS   := $(PKG_LIBS) -lm -lpthread

PROTOS   := $(wildcard src/*/*.proto)
PROTO_C  := $(patsubst src/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(PROTO_C:.c=.o)
TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test test-only asan valgrind demo bench fuzz soak-d1 soak-d1-fullload soak-turso clean
# Generated protobuf sources are kept, not rebuilt on every run.
.SECONDARY: $(PROTO_C) $(PROTO_C:.c=.h)
all: $(BUILD)/resort-sync $(BUILD)/libresortsync.a

$(BUILD)/libresortsync.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The version comes from the public header.  The shared library is
# libresortsync.so.MAJOR.MINOR with the soname libresortsync.so.MAJOR.
VERSION := $(shell sed -n 's/^\#define RS_VERSION "\(.*\)"/\1/p' include/resortsync.h)
VMAJOR  := $(word 1,$(subst ., ,$(VERSION)))
VMINOR  := $(word 2,$(subst ., ,$(VERSION)))
SONAME  := libresortsync.so.$(VMAJOR)
SHLIB   := libresortsync.so.$(VMAJOR).$(VMINOR)

all: $(BUILD)/$(SHLIB)

# The shared library exports only the functions resortsync.h declares: the
# version script is generated from the header (scripts/abi-symbols.sh), and
# tests/e2e/install_abi.sh checks the result with nm -D.  The program itself
# links the static library (it uses internal functions too).
$(BUILD)/libresortsync.map: include/resortsync.h scripts/abi-symbols.sh
	@mkdir -p $(dir $@)
	CC="$(CC)" scripts/abi-symbols.sh --map $< > $@.tmp && mv $@.tmp $@
ifndef SAN
SHLIB_LDFLAGS := -Wl,--no-undefined
endif
$(BUILD)/$(SHLIB): $(LIB_OBJ) $(BUILD)/libresortsync.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=$(BUILD)/libresortsync.map \
	  $(SHLIB_LDFLAGS) -Wl,--as-needed $(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS)
	ln -sf $(SHLIB) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libresortsync.so

$(BUILD)/resort-sync: $(BUILD)/obj/src/main.o $(BUILD)/libresortsync.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Generated protobuf code: headers must exist before anything includes them.
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: src/%.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=src --c_out=$(BUILD)/gen $<
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CPPFLAGS) -std=c11 -fPIC $(OPT) $(SANFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/harness.h tests/faults.h $(BUILD)/libresortsync.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libresortsync.a $(LDFLAGS) $(LDLIBS)

# The same program with test hooks (crash points) compiled in, for the fault
# tests only: the sources that mention RS_TEST_HOOKS are compiled again with
# it defined; the shipped program and library never contain the hooks.
HOOK_SRC := $(shell grep -l RS_TEST_HOOKS $(LIB_SRC) src/main.c 2>/dev/null)
HOOK_OBJ := $(patsubst %.c,$(BUILD)/obj-hooks/%.o,$(HOOK_SRC))
$(BUILD)/obj-hooks/%.o: %.c | $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DRS_TEST_HOOKS $(CFLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/resort-sync-hooks: $(HOOK_OBJ) $(filter-out $(patsubst %.c,$(BUILD)/obj/%.o,$(HOOK_SRC)),$(BUILD)/obj/src/main.o $(LIB_OBJ))
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test_d1_machine kills forked cycles at D1's crash points (RS_D1_TEST_CRASH),
# so it links the test-hook objects ahead of the library's own.
HOOK_LIB_OBJ := $(filter-out $(BUILD)/obj-hooks/src/main.o,$(HOOK_OBJ))
$(BUILD)/tests/test_d1_machine: tests/unit/test_d1_machine.c tests/harness.h tests/faults.h $(HOOK_LIB_OBJ) $(BUILD)/libresortsync.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests -o $@ $< $(HOOK_LIB_OBJ) $(BUILD)/libresortsync.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libresortsync.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libresortsync.a $(LDFLAGS) $(LDLIBS)

deps:
	@scripts/deps.sh

# The README's test command: install what is missing, build with -Werror, test.
test: deps
	@$(MAKE) --no-print-directory WERROR=1 all-tests
	@tests/run.sh $(BUILD)

# Build only (used by test, asan and CI).
.PHONY: all-tests
all-tests: all $(TEST_BIN) $(TOOL_BIN) $(BUILD)/resort-sync-hooks

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 WERROR=1 all-tests
	@RS_SANITIZED=1 tests/run.sh build-asan

# The unit tests under valgrind: no leak, no invalid read or write.
valgrind: deps
	@$(MAKE) --no-print-directory all-tests
	@fail=0; for t in $(TEST_BIN); do \
	  printf '%-28s ' "$$(basename $$t)"; \
	  if RS_VALGRIND=1 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	       --track-fds=no $$t > $(BUILD)/valgrind-$$(basename $$t).log 2>&1; then echo clean; \
	  else echo "errors (see $(BUILD)/valgrind-$$(basename $$t).log)"; fail=1; fi; done; exit $$fail

# The D1 SIGKILL soak for longer than make test runs it (RS_SOAK_SECONDS against
# the stand-in for D1, RS_SOAK_REAL killed cycles against wrangler --local).
soak-d1: deps
	@$(MAKE) --no-print-directory all-tests
	@RS_SOAK_SECONDS=$${RS_SOAK_SECONDS:-900} RS_SOAK_REAL=$${RS_SOAK_REAL:-100} RS_SOAK_DAEMON=$${RS_SOAK_DAEMON:-20} \
	  tests/run.sh $(BUILD) d1_soak && grep -h '^soak' $(BUILD)/test-logs/d1_soak.py.log
	@$(MAKE) --no-print-directory soak-d1-fullload

# A RustResort-shaped full load of about 210,000 rows (1,500 statuses of 5-50 KB)
# in parts of 8 MB, killed after its 3rd part and resumed (tests/e2e/d1_fullload.py;
# no time limit, unlike tests/run.sh).
soak-d1-fullload: all-tests
	@ROOT=$(CURDIR) BUILD=$(BUILD) WRANGLER_SEND_METRICS=false PATH="$(CURDIR)/tools/node_modules/.bin:$$PATH" \
	  RS_FULLLOAD_ROWS=$${RS_FULLLOAD_ROWS:-200000} RS_FULLLOAD_STATUSES=$${RS_FULLLOAD_STATUSES:-1500} \
	  RS_FULLLOAD_PART_KB=$${RS_FULLLOAD_PART_KB:-8000} RS_FULLLOAD_QUICK=1 python3 tests/e2e/d1_fullload.py

# The Turso soak (two SIGKILLed resort-sync clients and the official client on one
# tursodb) for longer than make test runs it: RS_TURSO_SOAK_SECONDS (default 600);
# RS_TURSO_SOAK_HARD=1 adds the tables without keys, NOCASE keys and UNIQUE columns.
soak-turso: deps
	@$(MAKE) --no-print-directory all-tests
	@RS_TURSO_SOAK_SECONDS=$${RS_TURSO_SOAK_SECONDS:-600} \
	  tests/run.sh $(BUILD) turso_soak && grep -h '^soak' $(BUILD)/test-logs/turso_soak.py.log

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh $(BUILD)

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)

fuzz: deps
	@scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz

# Installation.  Every directory can be set on the command line, e.g.
#   make install PREFIX=/usr DESTDIR=/tmp/stage
# SYSCONFDIR is /etc for PREFIX=/usr, PREFIX/etc otherwise.  Systemd units
# and bash completion go where systemd and bash-completion look for them
# under PREFIX; packagers set SYSTEMDUNITDIR and BASHCOMPDIR as they need.
PREFIX         ?= /usr/local
BINDIR         ?= $(PREFIX)/bin
LIBDIR         ?= $(PREFIX)/lib
INCLUDEDIR     ?= $(PREFIX)/include
DATADIR        ?= $(PREFIX)/share
MANDIR         ?= $(DATADIR)/man
SYSCONFDIR     ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
PKGCONFIGDIR   ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR    ?= $(DATADIR)/bash-completion/completions
INSTALL        ?= install
# What the generated files name: the installed paths, without DESTDIR.
SUBST := sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBS_PRIVATE@|$(strip $(PKG_LIBS) -lm -lpthread)|g'
MAN1 := $(wildcard man/*.1)
MAN5 := $(wildcard man/*.5)
UNITS := resort-sync.service resort-sync@.service
D := $(DESTDIR)
.PHONY: install uninstall

install: all
	$(INSTALL) -d $(D)$(BINDIR) $(D)$(LIBDIR) $(D)$(INCLUDEDIR) $(D)$(PKGCONFIGDIR) \
	  $(D)$(MANDIR)/man1 $(D)$(MANDIR)/man5 $(D)$(SYSCONFDIR)/resort-sync \
	  $(D)$(SYSTEMDUNITDIR) $(D)$(BASHCOMPDIR)
	$(INSTALL) -m 0755 $(BUILD)/resort-sync $(D)$(BINDIR)/resort-sync
	$(INSTALL) -m 0644 $(BUILD)/$(SHLIB) $(D)$(LIBDIR)/$(SHLIB)
	ln -sf $(SHLIB) $(D)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(D)$(LIBDIR)/libresortsync.so
	$(INSTALL) -m 0644 $(BUILD)/libresortsync.a $(D)$(LIBDIR)/libresortsync.a
	$(INSTALL) -m 0644 include/resortsync.h $(D)$(INCLUDEDIR)/resortsync.h
	$(SUBST) contrib/libresortsync.pc.in > $(D)$(PKGCONFIGDIR)/libresortsync.pc
	chmod 0644 $(D)$(PKGCONFIGDIR)/libresortsync.pc
	$(INSTALL) -m 0644 $(MAN1) $(D)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(MAN5) $(D)$(MANDIR)/man5/
	$(INSTALL) -m 0644 contrib/resort-sync.toml.example $(D)$(SYSCONFDIR)/resort-sync/resort-sync.toml.example
	for u in $(UNITS); do \
	  $(SUBST) contrib/$$u.in > $(D)$(SYSTEMDUNITDIR)/$$u && chmod 0644 $(D)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 contrib/resort-sync.bash-completion $(D)$(BASHCOMPDIR)/resort-sync

uninstall:
	rm -f $(D)$(BINDIR)/resort-sync $(D)$(LIBDIR)/$(SHLIB) $(D)$(LIBDIR)/$(SONAME) \
	  $(D)$(LIBDIR)/libresortsync.so $(D)$(LIBDIR)/libresortsync.a $(D)$(INCLUDEDIR)/resortsync.h \
	  $(D)$(PKGCONFIGDIR)/libresortsync.pc \
	  $(addprefix $(D)$(MANDIR)/man1/,$(notdir $(MAN1))) $(addprefix $(D)$(MANDIR)/man5/,$(notdir $(MAN5))) \
	  $(D)$(SYSCONFDIR)/resort-sync/resort-sync.toml.example \
	  $(addprefix $(D)$(SYSTEMDUNITDIR)/,$(UNITS)) $(D)$(BASHCOMPDIR)/resort-sync
	rmdir $(D)$(SYSCONFDIR)/resort-sync 2>/dev/null || true

-include $(shell find $(BUILD)/obj $(BUILD)/obj-hooks -name '*.d' 2>/dev/null)
