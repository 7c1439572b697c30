# kvserver: PGXS build.
#
#   make && make install        build and install into the PostgreSQL found by pg_config
#   make installcheck           pg_regress (own temporary instance) + cache unit tests + TAP
#   ./scripts/test.sh           the same, from a root shell on a fresh Debian machine

MODULE_big = kvserver
OBJS = \
	src/cache.o \
	src/cache_core.o \
	src/cache_fastpath.o \
	src/dashboard_html.o \
	src/http_parse.o \
	src/http_server.o \
	src/invalidate.o \
	src/kvserver.o \
	src/metrics.o \
	src/request_queue.o \
	src/sql_api.o \
	src/store.o \
	src/worker.o

EXTENSION = kvserver
DATA = sql/kvserver--1.0.sql
PGFILEDESC = "kvserver - key-value store over HTTP inside PostgreSQL"

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -pthread
SHLIB_LINK = -lcivetweb -ljansson -pthread

# make SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer in the
# module.  The server binary is not instrumented, so the ASan runtime must be
# preloaded into the postmaster; on Debian 12 that deadlocks every
# PostgreSQL 15 program before main() (see test/valgrind/run.sh), so the
# suite's memory checking here is valgrind's: scripts/test.sh --valgrind.
# The Postgres-free code runs under ASan + UBSan in fuzz/ and test/unit/.
ifeq ($(SANITIZE),1)
PG_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1
SHLIB_LINK += -fsanitize=address,undefined
endif

# pg_regress runs in its own temporary instance, preloading kvserver.
REGRESS = kvserver_basic kvserver_txn kvserver_errors
REGRESS_OPTS = --temp-instance=$(CURDIR)/tmp_check_regress \
	--temp-config=$(srcdir)/test/regress.conf --port=55432

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = src/dashboard_html.c fuzz/fuzz_http_parse tmp_check_regress test/unit/test_cache_core test/unit/*.o

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The dashboard page, compiled into the module.
src/dashboard_html.c: web/dashboard.html scripts/embed.pl
	perl $(srcdir)/scripts/embed.pl kv_dashboard_html < $< > $@

# Postgres-free unit tests of the cache's data structure, in TAP form.
test/unit/test_cache_core: test/unit/test_cache_core.c src/cache_core.c src/cache_core.h
	$(CC) -std=gnu99 -Wall -Wextra -O1 -g -I$(srcdir)/src -o $@ \
		$(srcdir)/test/unit/test_cache_core.c $(srcdir)/src/cache_core.c

unitcheck: test/unit/test_cache_core
	prove -v test/unit/test_cache_core

installcheck: unitcheck

# kvcli, the command-line client (kvcli/Makefile also builds it on its own)
all: kvcli-build
installcheck: kvcli-build
install: install-kvcli
clean: clean-kvcli

kvcli-build:
	$(MAKE) -C kvcli

install-kvcli: kvcli-build
	$(MAKE) -C kvcli install

clean-kvcli:
	$(MAKE) -C kvcli clean

# libFuzzer over the Postgres-free request parsing (fuzz/): a short smoke pass
# in the test suite, and `make fuzz FUZZ_SECONDS=600` for a real run
fuzzcheck:
	$(MAKE) -C fuzz fuzz-smoke

fuzz:
	$(MAKE) -C fuzz fuzz

installcheck: fuzzcheck

# benchmark against nginx, webdis+redis and pgbench (as root; QUICK=1 for ~1.5 min)
bench:
	$(srcdir)/bench/run.sh

# the long linearizability run (the test suite runs a short one)
lincheck-long:
	$(srcdir)/test/lincheck/long_run.sh

.PHONY: unitcheck kvcli-build install-kvcli clean-kvcli lincheck-long bench fuzz fuzzcheck
