# CodeCollab build. Three variants of every binary:
#   build/release/  -O2, what `make run` and the benchmarks use
#   build/asan/     AddressSanitizer + UndefinedBehaviorSanitizer, what `make test` uses
# and build/fuzz/, the libFuzzer targets of tests/fuzz/ (clang; `make fuzz`, and `make test`
# for their short smoke run).
# Every variant initialises the automatic variables the code leaves uninitialised: to zero
# in the release build, so that no stack bytes can reach a client, and to a pattern in the
# test builds (0xFE bytes with gcc, 0xAA with clang), so that code reading one before writing
# it gives values no test expects (AddressSanitizer does not see such reads).
# docs/SECURITY.md, "Stack memory never reaches a client".
# Sources are found by wildcard: a new module is a new .c file, nothing to register here.

SHELL := /bin/bash
BUILD ?= release
B := build/$(BUILD)

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter
# Generated sources (scripts/luagen.sh): the Lua scripts of lib/lua/ as C, shared by both
# variants.
GEN := build/gen
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Ilib -I$(GEN) -I/usr/include/postgresql -MMD -MP $(WARN)
ifeq ($(BUILD),asan)
  VARIANT_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -ftrivial-auto-var-init=pattern
  VARIANT_LDFLAGS := -fsanitize=address,undefined
else ifeq ($(BUILD),fuzz)
  # every object gets libFuzzer's coverage hooks; only the fuzz targets link its main.
  # clang's warnings stop this build as gcc's stop the others (-Werror).
  CC := clang
  VARIANT_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
    -fno-sanitize-recover=undefined -ftrivial-auto-var-init=pattern
  VARIANT_LDFLAGS := -fsanitize=fuzzer,address,undefined
else ifeq ($(BUILD),memcheck)
  # scripts/memcheck.sh: the programs for valgrind, with nothing initialised for them, so
  # that memcheck sees what the code itself leaves unwritten
  VARIANT_CFLAGS := -O1 -g -fno-omit-frame-pointer
  VARIANT_LDFLAGS :=
else
  # zero-filling needs gcc 12 or clang 16 (Debian 12's cc is gcc 12); an older compiler
  # (make CC=clang-14) builds without it, and says so
  AUTO_INIT_ZERO := $(shell $(CC) -ftrivial-auto-var-init=zero -Werror -E -x c /dev/null >/dev/null 2>&1 && \
    echo -ftrivial-auto-var-init=zero)
  $(if $(AUTO_INIT_ZERO),,$(warning $(CC) cannot zero automatic variables (-ftrivial-auto-var-init=zero): built without))
  VARIANT_CFLAGS := -O2 -g $(AUTO_INIT_ZERO)
  VARIANT_LDFLAGS :=
endif
CFLAGS_ALL := $(BASE_CFLAGS) $(VARIANT_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(VARIANT_LDFLAGS) $(LDFLAGS)

# Libraries of the shared library; every program links them all (static archive, so only
# what is used ends up in a binary).
LIB_LIBS := -lhiredis -lpq -lcjson -ljwt -largon2 -lcurl -lssl -lcrypto -lsystemd -lm -lpthread
API_LIBS := -lfcgi
# -levent is libevent whole: core and "extra", whose evdns resolves the broker's Redis host
# names without blocking its loop (docs/INTERNALS.md, "Connecting to Redis").
BROKER_LIBS := -levent -lwslay -luring
WORKER_LIBS := -lpthread

LIB_SRC := $(wildcard lib/*.c)
API_SRC := $(wildcard fcgi/*.c)
BROKER_SRC := $(wildcard sse-broker/*.c)
WORKER_SRC := $(wildcard queue-worker/*.c)
SNAP_SRC := $(wildcard snapshotter/*.c)
# C tests, by what they need (docs/INTERNALS.md, "Tests"): tests/unit/ pure code, tests/programs/
# real programs and tools (bubblewrap, compilers). Both build into $(B)/tests/<group>/.
UNIT_SRC := $(wildcard tests/unit/test_*.c) $(wildcard tests/programs/test_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o) $(B)/obj/$(GEN)/rscripts.o
LUA_SRC := $(wildcard lib/lua/*.lua)
API_OBJ := $(API_SRC:%.c=$(B)/obj/%.o)
BROKER_OBJ := $(BROKER_SRC:%.c=$(B)/obj/%.o)
WORKER_OBJ := $(WORKER_SRC:%.c=$(B)/obj/%.o)
SNAP_OBJ := $(SNAP_SRC:%.c=$(B)/obj/%.o)

LIBA := $(B)/libcodecollab.a
API_BIN := $(B)/bin/codecollab-api
BROKER_BIN := $(B)/bin/codecollab-broker
WORKER_BIN := $(B)/bin/codecollab-worker
SNAP_BIN := $(B)/bin/codecollab-snapshotter
UNIT_BINS := $(UNIT_SRC:tests/%.c=$(B)/tests/%)

# Load tools of the benchmarks (bench/c/NAME.c -> $(B)/bin/bench-NAME): plain C with libc
# only, built with the programs so the tests can run them under the sanitizers too.
BENCH_SRC := $(wildcard bench/c/*.c)
BENCH_BINS := $(BENCH_SRC:bench/c/%.c=$(B)/bin/bench-%)

# A fault the worker's tests load with LD_PRELOAD (tests/programs/stall_curl.c): no sanitizer
# in it, the program it is loaded into has them.
STALL_SO := $(B)/tests/programs/stall_curl.so

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(B)/%)

# Program objects other than main.c, so unit tests can link a program's modules.
API_MODS := $(filter-out $(B)/obj/fcgi/main.o,$(API_OBJ))
BROKER_MODS := $(filter-out $(B)/obj/sse-broker/main.o,$(BROKER_OBJ))
WORKER_MODS := $(filter-out $(B)/obj/queue-worker/main.o,$(WORKER_OBJ))
SNAP_MODS := $(filter-out $(B)/obj/snapshotter/main.o,$(SNAP_OBJ))

.PHONY: all build build-asan bins deps deps-test deps-bench deps-compare deps-fuzz deps-cluster deps-analyze run cluster test \
  analyze test-unit test-programs test-fuzz test-stack test-browser test-apache test-integration test-cluster fuzz fuzz-bins bench \
  bench-cluster bench-compare clean fmt ot-sim

all: build

# Debian packages, by what a target needs (scripts/deps.sh): building and running; the tests
# add Chromium, the languages they run and clang (the fuzz targets' smoke run); the benchmarks
# wrk; `make fuzz` clang alone.
deps:
	@./scripts/deps.sh
deps-test:
	@./scripts/deps.sh test
deps-bench:
	@./scripts/deps.sh bench
deps-compare:
	@./scripts/deps.sh compare
deps-fuzz:
	@./scripts/deps.sh fuzz
deps-cluster:
	@./scripts/deps.sh cluster
deps-analyze:
	@./scripts/deps.sh analyze

build: deps client
	@$(MAKE) --no-print-directory -j2 BUILD=release bins

build-asan: deps client
	@$(MAKE) --no-print-directory -j2 BUILD=asan bins units

# The browser client (docs/CLIENT.md): htdocs/src/*.js and CodeMirror from npm, bundled by
# esbuild into htdocs/dist/ (not committed). npm ci runs when the lockfile is newer than
# node_modules; nothing of Node.js is needed at run time.
.PHONY: client
client: htdocs/dist/app.js htdocs/dist/stream-worker.js
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
htdocs/dist/app.js: $(wildcard htdocs/src/*.js) node_modules/.package-lock.json
	npx --no-install esbuild htdocs/src/main.js --bundle --format=esm --minify --sourcemap \
	  --target=es2022 --log-level=warning --outfile=$@
# the shared worker that holds one stream for every tab (htdocs/src/shared-stream.js)
htdocs/dist/stream-worker.js: htdocs/src/stream-worker.js htdocs/src/stream-origin.js node_modules/.package-lock.json
	npx --no-install esbuild $< --bundle --format=iife --minify --sourcemap \
	  --target=es2022 --log-level=warning --outfile=$@

bins: $(API_BIN) $(BROKER_BIN) $(WORKER_BIN) $(SNAP_BIN) $(BENCH_BINS)
units: $(UNIT_BINS) $(STALL_SO)

# The Redis contract's scripts (lib/rscript.h): rewritten only when their text changes.
$(GEN)/.stamp: scripts/luagen.sh lib/rkeys.def $(LUA_SRC)
	@./scripts/luagen.sh $(GEN) lib/rkeys.def $(LUA_SRC)
	@touch $@
$(GEN)/rscripts.c $(GEN)/rscripts.h: $(GEN)/.stamp ;

$(B)/obj/%.o: %.c | $(GEN)/rscripts.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(API_BIN): $(API_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(API_OBJ) $(LIBA) $(API_LIBS) $(LIB_LIBS)

$(BROKER_BIN): $(BROKER_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(BROKER_OBJ) $(LIBA) $(BROKER_LIBS) $(LIB_LIBS)

$(WORKER_BIN): $(WORKER_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(WORKER_OBJ) $(LIBA) $(WORKER_LIBS) $(LIB_LIBS)

$(SNAP_BIN): $(SNAP_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(SNAP_OBJ) $(LIBA) $(LIB_LIBS)

$(B)/bin/bench-%: $(B)/obj/bench/c/%.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< -lm

# A C test links the shared library and every program's modules (not their main.c).
$(B)/tests/%: $(B)/obj/tests/%.o $(LIBA) $(API_MODS) $(BROKER_MODS) $(WORKER_MODS) $(SNAP_MODS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(API_MODS) $(BROKER_MODS) $(WORKER_MODS) $(SNAP_MODS) $(LIBA) \
	  $(API_LIBS) $(BROKER_LIBS) $(WORKER_LIBS) $(LIB_LIBS)

$(STALL_SO): tests/programs/stall_curl.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O1 -fPIC -shared -o $@ $<

# A fuzz target links like a C test: the shared library and every program's modules.
$(B)/fuzz_%: $(B)/obj/tests/fuzz/fuzz_%.o $(LIBA) $(API_MODS) $(BROKER_MODS) $(WORKER_MODS) $(SNAP_MODS)
	$(CC) $(LDFLAGS_ALL) -o $@ $< $(API_MODS) $(BROKER_MODS) $(WORKER_MODS) $(SNAP_MODS) $(LIBA) \
	  $(API_LIBS) $(BROKER_LIBS) $(WORKER_LIBS) $(LIB_LIBS)
fuzz-bins: $(FUZZ_BINS)

# make fuzz (tests/fuzz/README.md): installs clang and its libFuzzer runtime when missing,
# builds every tests/fuzz/fuzz_*.c into build/fuzz/, runs each for FUZZ_SECONDS on its seeds
# (tests/fuzz/seeds/<target>/) and fails on a crash. `make test` runs the same targets for a
# fixed number of inputs instead (tests/fuzz/run.sh smoke, tests/fuzz/smoke-runs).
# The fuzz variant is its own make (BUILD=fuzz: build/fuzz/, clang), run after the other
# builds, never beside them (they share build/gen).
FUZZ_BUILD = $(MAKE) --no-print-directory -j2 BUILD=fuzz fuzz-bins
FUZZ_SECONDS ?= 20
fuzz: deps-fuzz
	@$(FUZZ_BUILD)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/fuzz/run.sh

run: build
	@./scripts/run.sh

# The layout of several machines on this one (docs/SCALING.md): HAProxy on PORT, two web
# nodes, two brokers, two workers, two snapshotters, a Redis Cluster (three masters, three
# replicas; CLUSTER_REDIS=single for one plain Redis) and a PostgreSQL primary with a
# streaming replica, data under var/cluster/. Foreground, supervised, Ctrl-C stops it all.
cluster: deps-cluster build
	@./scripts/cluster.sh

# The tests by what they need (docs/INTERNALS.md, "Tests"); `make test` runs every group,
# with one stack for the stack and browser groups. test-integration is those two groups.
# The fuzz group needs the fuzz variant too (build/fuzz/); every other group the ASan build.
test: deps-test build-asan
	@$(FUZZ_BUILD)
	@./scripts/test.sh

test-unit: build-asan
	@./scripts/test.sh unit

test-programs: deps-test build-asan
	@./scripts/test.sh programs

# every fuzz target on its seeds and a fixed number of mutations (tests/fuzz/run.sh smoke)
test-fuzz: deps-fuzz
	@$(FUZZ_BUILD)
	@./scripts/test.sh fuzz

test-stack: deps-test build-asan
	@./scripts/test.sh stack

test-browser: deps-test build-asan
	@./scripts/test.sh browser

# the HTTP, stream and browser suites through Apache httpd instead of lighttpd
test-apache: deps-test build-asan
	@./scripts/test.sh apache

test-integration: deps-test build-asan
	@./scripts/test.sh integration

# the make cluster layout (tests/cluster/): started on free ports by each suite
test-cluster: deps-test build-asan
	@./scripts/test.sh cluster

# Static analysis (scripts/analyze.sh; docs/INTERNALS.md, "Static analysis"): gcc's
# -fanalyzer and clang's analyzer over every C source of lib/ and the programs, with the
# build's flags but -Werror; fails on a report that scripts/analyze-known.txt does not list
# as read and false. A few minutes, so not part of `make test`.
ANALYZE_CFLAGS := $(filter-out -Werror -MMD -MP,$(BASE_CFLAGS))
analyze: deps deps-analyze $(GEN)/rscripts.h
	@ANALYZE_CFLAGS="$(ANALYZE_CFLAGS)" ./scripts/analyze.sh

# The OT simulation at length (tests/unit/test_ot.c, lib/ot.h "Who goes first"): random
# runs of 2..10 typists at one spot and random editors, reordered and lost answers and
# reconnects, until OT_SIM_OPS operations have been made; prints the divergences and broken
# runs, and fails on any. Optimised build: a few minutes. `make test` runs a slice of it.
OT_SIM_OPS ?= 1000000
ot-sim: deps
	@$(MAKE) --no-print-directory BUILD=release build/release/tests/unit/test_ot
	build/release/tests/unit/test_ot --sim $(OT_SIM_OPS)

bench: deps-bench deps-cluster build
	@./bench/run.sh

# The make cluster layout's figures (bench/cluster.sh): committed operations per second with
# one and with two web nodes, and the fan-out to 20,000 subscribers through HAProxy. The last
# part of `make bench` too (BENCH_ONLY=cluster: that part alone).
bench-cluster: deps-bench deps-cluster build
	@./bench/cluster.sh

# Our fan-out against nginx + Nchan and Socket.IO 4 in one run (bench/compare.sh;
# BENCH_COMPARE_N="1000 5000" for other sizes). Not part of `make bench` or `make test`.
bench-compare: deps-compare build
	@./bench/compare.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)

# keep objects of unit tests between builds
.SECONDARY:
