# evalrun — one non-recursive Makefile.
#
#   make            build build/evalrun
#   make demo       install missing Debian packages, build, run the main job on the shipped defaults
#   make test       install missing packages, build, run unit (cmocka) + CLI tests; ends with
#                   one "N passed, N failed, N skipped" line and exits non-zero on any failure
#   make asan       the unit + CLI suites under AddressSanitizer + UndefinedBehaviorSanitizer
#                   (build-asan/); fails on any sanitizer report. CI runs it after make test
#                   (.ci/run). check-asan is its old name, kept as an alias
#   make fuzz       libFuzzer targets for every parser of outside input (FUZZ_SECONDS each)
#   make bench      benchmarks against PyTorch (not timed tests; never fail on a timing)
#   make refs       regenerate reference tensors/fixtures with Debian's PyTorch (/usr/bin/python3)
#   make fast       opt-in -march=native -ffast-math build (scores may differ in the last bits)
#   make lint       banned-function grep; the layout checks (harness/scripts/check_layout.sh)
#
# Sources: every harness/<wing>/*.c, graders/*.c and evals/*.c goes into build/libevalrun.a;
# only harness/cli/main.c is the program. Tests: each tests/unit/test_*.c is one cmocka binary.
# Includes name their wing ("base/util.h", "graders/grader.h"); see docs/architecture.md.

PKGS       := libcurl libcjson libpcre2-8 sqlite3 openblas ncursesw libzip zlib
TEST_PKGS  := cmocka
BUILD      ?= build
SANITIZE   ?=

CC         ?= cc
OPT        ?= -O3
WARN       := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
              -Wmissing-prototypes -Wwrite-strings -Wdouble-promotion -Wvla -Werror
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)
CFLAGS     += $(OPT) -g $(WARN) -fopenmp -D_GNU_SOURCE -MMD -MP \
              -Iharness -I. -I$(BUILD) $(PKG_CFLAGS) $(SANITIZE)
LDLIBS     += $(PKG_LIBS) -fopenmp -lm -lpthread $(SANITIZE)

SRC_DIRS   := harness/base harness/model harness/sae harness/store harness/cluster harness/cli \
              graders evals
LIB_SRC    := $(filter-out harness/cli/main.c,$(wildcard $(addsuffix /*.c,$(SRC_DIRS))))
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ   := $(BUILD)/harness/cli/main.o
TEST_SRC   := $(wildcard tests/unit/test_*.c)
TEST_BIN   := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SCHEMA     := $(sort $(wildcard harness/store/schema/*.sql))
# The version evalrun --version prints and runs record: git describe, or a fixed string
# where there is no git history (a source tarball).
VERSION    := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
# Generated headers are prerequisites only of the objects whose sources include them (after
# the first build, the -MMD dependency files say the same); every other object depends only
# on the headers it includes.
SCHEMA_USERS  := $(patsubst %.c,$(BUILD)/%.o,$(shell grep -l '"schema_sql.h"' $(LIB_SRC)))
VERSION_USERS := $(patsubst %.c,$(BUILD)/%.o,$(shell grep -l 'EVALRUN_VERSION' $(LIB_SRC) \
                   harness/cli/main.c))

.PHONY: FORCE all deps demo test asan check-asan bench refs fast lint clean unit-tests fuzz
all: $(BUILD)/evalrun

deps:
	@harness/scripts/install-deps.sh

$(BUILD)/evalrun: $(MAIN_OBJ) $(BUILD)/libevalrun.a
	@echo "  LD $@"
	@$(CC) -o $@ $^ $(LDLIBS)

$(BUILD)/libevalrun.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(SCHEMA_USERS): $(BUILD)/schema_sql.h

# Only the objects that print or record the version get it, and they are rebuilt when it
# changes: version.stamp is rewritten only when the string differs from the last build's.
$(VERSION_USERS): CFLAGS += -DEVALRUN_VERSION='"$(VERSION)"'
$(VERSION_USERS): $(BUILD)/version.stamp
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(VERSION)' | cmp -s - $@ || echo '$(VERSION)' > $@
FORCE:

# The schema migrations are compiled in: one C string per harness/store/schema/NNN_*.sql file.
$(BUILD)/schema_sql.h: $(SCHEMA) harness/scripts/embed_sql.sh
	@mkdir -p $(BUILD)
	@harness/scripts/embed_sql.sh $(SCHEMA) > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libevalrun.a
	@mkdir -p $(dir $@)
	@echo "  CCLD $@"
	@$(CC) $(CFLAGS) -Wno-write-strings $(TEST_CFLAGS) -o $@ $< $(BUILD)/libevalrun.a $(TEST_LIBS) $(LDLIBS)

unit-tests: $(TEST_BIN)

demo: deps all
	harness/scripts/demo.sh $(BUILD)/evalrun

# JOBS=N: up to N suites at once (tests/run_tests.sh); 1, one after the other, by default.
JOBS ?= 1
test: deps
	@$(MAKE) --no-print-directory all unit-tests
	@JOBS=$(JOBS) tests/run_tests.sh $(BUILD)

ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SANITIZE="$(ASAN_FLAGS)" \
	    all unit-tests
	@tests/asan/run.sh build-asan

check-asan: asan

# bench drivers (tests/bench/*_bench.c): built only by make bench, never evalrun commands
BENCH_SRC  := $(wildcard tests/bench/*_bench.c)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libevalrun.a
	@mkdir -p $(dir $@)
	@echo "  CCLD $@"
	@$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libevalrun.a $(LDLIBS)

bench: all $(BENCH_BIN)
	@tests/bench/run.sh $(BUILD)

refs:
	@tests/refs/make_refs.sh

# libFuzzer targets (clang) for every parser of outside input (docs/robustness.md); regression
# inputs first, then FUZZ_SECONDS of fuzzing per target, as many at once as there are CPUs
fuzz:
	@tests/fuzz/run.sh --seconds $(or $(FUZZ_SECONDS),60)

fast:
	@$(MAKE) --no-print-directory BUILD=build-fast OPT="-O3 -march=native -ffast-math" all

lint:
	@! grep -nE '\b(strcpy|strcat|sprintf|gets|atoi|atof|rand|strtok)\s*\(' \
	    $(addsuffix /*.c,$(SRC_DIRS)) || (echo "lint: banned function above" && false)
	@harness/scripts/check_layout.sh .
	@echo "lint: ok"

clean:
	rm -rf build build-asan build-fast

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
