# The libFuzzer targets (issue 20.6): every library source compiled once with clang's fuzzer
# instrumentation and AddressSanitizer + UndefinedBehaviorSanitizer into $(FB)/libfuzz.a, and
# each tests/fuzz/fuzz_*.c linked against it. Incremental (-MMD): a rerun rebuilds only what
# changed. Used by tests/fuzz/run.sh (make fuzz, and the smoke run in make test).
#   make -f tests/fuzz/fuzz.mk [FB=build/fuzz] [FUZZ_CC=clang] -j2

FUZZ_CC  ?= clang
FB       ?= build/fuzz
PKGS     := libcurl libcjson libpcre2-8 sqlite3 openblas ncursesw libzip zlib
SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS   := -g -O1 -std=c11 -D_GNU_SOURCE -fopenmp -MMD -MP -Iharness -I. -I$(FB) \
            $(shell pkg-config --cflags $(PKGS)) $(SAN)
LIBS     := $(shell pkg-config --libs $(PKGS)) -fopenmp -lm -lpthread
SRC_DIRS := harness/base harness/model harness/sae harness/store harness/cluster graders evals
LIB_SRC  := $(wildcard $(addsuffix /*.c,$(SRC_DIRS)))
LIB_OBJ  := $(LIB_SRC:%.c=$(FB)/obj/%.o)
TARGETS  := $(patsubst tests/fuzz/%.c,$(FB)/%,$(wildcard tests/fuzz/fuzz_*.c))
SCHEMA   := $(sort $(wildcard harness/store/schema/*.sql))

all: $(TARGETS)

$(FB)/schema_sql.h: $(SCHEMA) harness/scripts/embed_sql.sh
	@mkdir -p $(FB)
	@harness/scripts/embed_sql.sh $(SCHEMA) > $@.tmp && mv $@.tmp $@

$(FB)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

# the generated header only for the objects that include it (the -MMD files do the rest)
$(patsubst %.c,$(FB)/obj/%.o,$(shell grep -l '"schema_sql.h"' $(LIB_SRC))): $(FB)/schema_sql.h

$(FB)/libfuzz.a: $(LIB_OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(FB)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h tests/fuzz/fuzz_model.h $(FB)/libfuzz.a
	@echo "  FUZZ-LD $@"
	@$(FUZZ_CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(FB)/libfuzz.a $(LIBS)

-include $(LIB_OBJ:.o=.d)
