# resort-sync: GNU Makefile.
#
#   make            build/resort-sync and build/libresortsync.a
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
CFLAGS   := -std=c11 $(OPT) $(WARN) $(SANFLAGS) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
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

.PHONY: all deps test test-only asan valgrind demo bench fuzz soak-d1 soak-turso clean
# Generated protobuf sources are kept, not rebuilt on every run.
.SECONDARY: $(PROTO_C) $(PROTO_C:.c=.h)
all: $(BUILD)/resort-sync $(BUILD)/libresortsync.a

$(BUILD)/libresortsync.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/resort-sync: $(BUILD)/obj/src/main.o $(BUILD)/libresortsync.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Generated protobuf code: headers must exist before anything includes them.
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: src/%.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=src --c_out=$(BUILD)/gen $<
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(CPPFLAGS) -std=c11 $(OPT) $(SANFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(PROTO_C)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/harness.h $(BUILD)/libresortsync.a
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

-include $(shell find $(BUILD)/obj $(BUILD)/obj-hooks -name '*.d' 2>/dev/null)
