# kvserver: PGXS build.
#
#   make && make install     build and install the extension (kvserver.so,
#                            control file, SQL scripts, the OpenSSL shims
#                            for HTTPS) into the PostgreSQL found by
#                            pg_config; needs libcivetweb-dev,
#                            libjansson-dev and libssl-dev, nothing else
#   make installcheck        pg_regress in its own temporary instance, the
#                            thread-boundary check, the cache unit tests and
#                            the TAP tests, against the installed extension
#   make kvcli               the command-line client (needs libcurl)
#   make install-kvcli       install it into $(DESTDIR)$(PREFIX)/bin
#   make fuzzcheck           libFuzzer smoke pass over the request parser
#                            (needs clang); `make fuzz` for a real run
#   make bench               the benchmark (as root), watches' wake-up latency included
#   make bench-watch         wake-up latency of watches (after make install)
#   ./scripts/test.sh        all of it, from a root shell on a fresh Debian 12
#
# Sources: src/civet/ runs on civetweb's threads and never calls PostgreSQL;
# src/pg/ runs in PostgreSQL processes (the worker's main thread, backends).

MODULE_big = kvserver

# Runs on civetweb threads (or anywhere): plain C, no PostgreSQL symbols.
CIVET_OBJS = \
	src/civet/cache_blocks.o \
	src/civet/cache_core.o \
	src/civet/cache_fastpath.o \
	src/civet/cache_walk.o \
	src/civet/dashboard_html.o \
	src/civet/http_admin.o \
	src/civet/http_auth.o \
	src/civet/http_auth_guard.o \
	src/civet/http_keys.o \
	src/civet/http_parse.o \
	src/civet/json_body.o \
	src/civet/json_reply.o \
	src/civet/http_reply.o \
	src/civet/http_request.o \
	src/civet/http_server.o \
	src/civet/http_watch.o \
	src/civet/http_txn.o \
	src/civet/kv_api.o \
	src/civet/metrics.o \
	src/civet/node_role.o \
	src/civet/request_queue.o \
	src/civet/watch_ring.o \
	src/civet/watch_wait.o

# Runs in PostgreSQL processes: the worker's main thread and backends.
PG_OBJS = \
	src/pg/auth.o \
	src/pg/batch.o \
	src/pg/batch_writes.o \
	src/pg/cache.o \
	src/pg/cache_commit.o \
	src/pg/execute.o \
	src/pg/executor.o \
	src/pg/invalidate.o \
	src/pg/kvserver.o \
	src/pg/pool.o \
	src/pg/rmgr.o \
	src/pg/sql_api.o \
	src/pg/tokens.o \
	src/pg/store.o \
	src/pg/tls.o \
	src/pg/watch.o \
	src/pg/txn.o \
	src/pg/wire.o \
	src/pg/worker.o

OBJS = $(CIVET_OBJS) $(PG_OBJS)

EXTENSION = kvserver
DATA = sql/kvserver--1.0.sql sql/kvserver--1.1.sql sql/kvserver--1.0--1.1.sql
PGFILEDESC = "kvserver - key-value store over HTTP inside PostgreSQL"

PG_CPPFLAGS = -I$(srcdir)/src/civet -I$(srcdir)/src/pg
PG_CFLAGS = -pthread
SHLIB_LINK = -lcivetweb -ljansson -lcrypto -pthread

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

# HTTPS: src/pg/tls.c calls OpenSSL itself, and civetweb gets OpenSSL 3
# through two shim libraries of ours (src/tls/), installed next to the
# module (rules below).
SHLIB_LINK += -lssl -lcrypto
TLS_SHIM_OBJS = src/tls/kvserver_ssl_shim.o src/tls/kvserver_crypto_shim.o
TLS_SHIMS = kvserver_libssl$(DLSUFFIX) kvserver_libcrypto$(DLSUFFIX)

# pg_regress runs in its own temporary instance, preloading kvserver; it
# picks a free port itself.
REGRESS = kvserver_basic kvserver_txn kvserver_errors
REGRESS_OPTS = --temp-instance=$(CURDIR)/tmp_check_regress \
	--temp-config=$(srcdir)/test/regress.conf

TAP_TESTS = 1
PROVE_TESTS = test/t/*.pl

EXTRA_CLEAN = src/civet/dashboard_html.c tmp_check_regress \
	test/unit/test_cache_core test/unit/*.o

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS does not track header dependencies: rebuild every object when any
# header changes (a stale object with an older struct layout corrupts memory).
$(OBJS): $(wildcard $(srcdir)/src/civet/*.h $(srcdir)/src/pg/*.h)

# The dashboard page, compiled into the module.
src/civet/dashboard_html.c: web/dashboard.html scripts/embed.pl
	@mkdir -p $(dir $@)
	perl $(srcdir)/scripts/embed.pl kv_dashboard_html < $< > $@

# The thread boundary: no object of src/civet/ may reference a PostgreSQL
# symbol (palloc, ereport, SPI, LWLocks...), whatever its #includes say,
# nor any symbol the server binary exports (it would bind to the server's).
# The OpenSSL shims run on civetweb threads too; they may use OpenSSL.
boundarycheck: $(CIVET_OBJS) $(TLS_SHIM_OBJS)
	PG_SERVER_BIN='$(bindir)/postgres' \
		$(srcdir)/test/boundary/check_symbols.sh $(CIVET_OBJS)
	PG_SERVER_BIN='$(bindir)/postgres' \
		$(srcdir)/test/boundary/check_symbols.sh --allow-lib libssl.so.3 \
		--allow-lib libcrypto.so.3 $(TLS_SHIM_OBJS)
	PG_SERVER_BIN='$(bindir)/postgres' \
		$(srcdir)/test/boundary/check_symbols.sh --self-test

# The OpenSSL shims for civetweb (src/tls/kvserver_ssl_shim.c says why and
# how): each has the SONAME civetweb dlopen()s and depends on the real
# library, even where it references nothing of it (hence --no-as-needed).
all: $(TLS_SHIMS)

kvserver_libssl$(DLSUFFIX): src/tls/kvserver_ssl_shim.o
	$(CC) $(CFLAGS) -shared -o $@ $< $(LDFLAGS) $(LDFLAGS_SL) \
		-Wl,-soname,libssl.so -Wl,-z,defs -Wl,--no-as-needed -lssl -lcrypto

kvserver_libcrypto$(DLSUFFIX): src/tls/kvserver_crypto_shim.o
	$(CC) $(CFLAGS) -shared -o $@ $< $(LDFLAGS) $(LDFLAGS_SL) \
		-Wl,-soname,libcrypto.so -Wl,-z,defs -Wl,--no-as-needed -lcrypto

install: install-tls-shims

install-tls-shims: $(TLS_SHIMS) installdirs
	$(INSTALL_SHLIB) $(TLS_SHIMS) '$(DESTDIR)$(pkglibdir)/'

uninstall: uninstall-tls-shims

uninstall-tls-shims:
	rm -f $(addprefix '$(DESTDIR)$(pkglibdir)'/, $(TLS_SHIMS))

EXTRA_CLEAN += $(TLS_SHIMS) $(TLS_SHIM_OBJS)

.PHONY: install-tls-shims uninstall-tls-shims

# Postgres-free unit tests of the cache's data structure, in TAP form.
test/unit/test_cache_core: test/unit/test_cache_core.c src/civet/cache_core.c src/civet/cache_blocks.c \
		src/civet/cache_walk.c src/civet/cache_core.h src/civet/cache_layout.h
	$(CC) -std=gnu99 -Wall -Wextra -O1 -g -I$(srcdir)/src/civet -o $@ \
		$(srcdir)/test/unit/test_cache_core.c $(srcdir)/src/civet/cache_core.c \
		$(srcdir)/src/civet/cache_blocks.c $(srcdir)/src/civet/cache_walk.c

unitcheck: test/unit/test_cache_core
	prove -v test/unit/test_cache_core

installcheck: boundarycheck unitcheck

# kvcli, the command-line client (kvcli/Makefile also builds it on its own)
PREFIX ?= /usr/local

kvcli:
	$(MAKE) -C $(srcdir)/kvcli

install-kvcli: kvcli
	$(MAKE) -C $(srcdir)/kvcli install PREFIX='$(PREFIX)'

clean-kvcli:
	$(MAKE) -C $(srcdir)/kvcli clean

clean: clean-kvcli

# libFuzzer over the Postgres-free request parsing (fuzz/): a short smoke
# pass in scripts/test.sh, and `make fuzz FUZZ_SECONDS=600` for a real run
fuzzcheck:
	$(MAKE) -C $(srcdir)/fuzz fuzz-smoke

fuzz:
	$(MAKE) -C $(srcdir)/fuzz fuzz

clean: clean-fuzz

clean-fuzz:
	$(MAKE) -C $(srcdir)/fuzz clean

# benchmark side by side with civetweb's hello-world, nginx, webdis+redis and
# pgbench, a hot standby, a slow synchronous standby, and the watches'
# wake-up latency (as root; ~25 min, QUICK=1 for ~8 min)
bench:
	$(srcdir)/bench/run.sh
	$(srcdir)/bench/watch.sh

# wake-up latency of watches (commit to response, 100 watchers), after make install
bench-watch:
	$(srcdir)/bench/watch.sh

# the long linearizability run (the test suite runs a short one)
lincheck-long:
	$(srcdir)/test/lincheck/long_run.sh

.PHONY: boundarycheck unitcheck kvcli install-kvcli clean-kvcli clean-fuzz \
	lincheck-long bench bench-watch fuzz fuzzcheck
