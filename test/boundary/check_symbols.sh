#!/usr/bin/env bash
# The thread boundary, checked on the object files: code under src/civet/
# runs on civetweb's threads and must never call into PostgreSQL (no
# palloc, ereport, SPI, LWLocks, latches, CHECK_FOR_INTERRUPTS...).  Its
# files refuse postgres.h with #error; this checks what they actually link
# against, whatever they include.
#
#   check_symbols.sh OBJ...       every symbol the objects leave undefined
#                                 must be defined by one of them, or by a
#                                 library the module links on that side
#                                 (libc, libm, civetweb, jansson, OpenSSL's
#                                 libcrypto (HMAC, base64), the
#                                 dynamic loader, libgcc); anything else,
#                                 PostgreSQL's functions first of all, fails
#   check_symbols.sh --allow-lib LIB... OBJ...
#                                 the same, with the shared library LIB
#                                 (a name such as libssl.so.3, repeatable)
#                                 allowed too, for these objects only: the
#                                 OpenSSL shims of src/tls/ use libssl
#   check_symbols.sh --self-test  proves the check catches a planted palloc()
#                                 call and passes a plain malloc() one, and
#                                 that --allow-lib widens the list for the
#                                 objects checked with it only (and, with
#                                 PG_SERVER_BIN, that a json_object() call
#                                 is caught)
#
# An allow-list, not a deny-list: a PostgreSQL symbol nobody thought of
# still fails, because the server binary is not among the libraries.
#
# With PG_SERVER_BIN set to the server binary (the Makefile sets it), a
# symbol that binary exports fails too, even when an allowed library
# defines it: the executable comes first in the dynamic linker's search, so
# the module's reference binds to the server's function.  (jansson's
# json_object() and PostgreSQL's SQL function json_object() are one such
# pair: a call on a civetweb thread ran the SQL function and crashed.)
set -euo pipefail

die() { printf 'check_symbols.sh: %s\n' "$*" >&2; exit 2; }

# Symbols PostgreSQL's server exports that a reader will recognise, named
# in the failure message to say why an unknown symbol is there.
PG_HINT='^(palloc|palloc0|pfree|repalloc|psprintf|pstrdup|MemoryContext|CurrentMemoryContext|errstart|errfinish|errmsg|errcode|elog_|pg_re_throw|SPI_|LWLock|SpinLock|s_lock|ProcessInterrupts|InterruptPending|CHECK_FOR_INTERRUPTS|SetLatch|WaitLatch|ResetLatch|MyLatch|pg_atomic_|pg_snprintf|pg_printf|pg_fprintf|pg_vsnprintf|ExceptionalCondition)'

lib_path() {
	local name=$1 path
	path=$(/sbin/ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n { print $NF; exit }')
	[ -n "$path" ] || path=$(cc -print-file-name="$name" 2>/dev/null || true)
	[ -n "$path" ] && [ -e "$path" ] || die "cannot find the shared library $name"
	printf '%s\n' "$path"
}

# Libraries allowed beyond the usual ones (--allow-lib).
EXTRA_LIBS=()

# Symbols the allowed libraries define.
allowed_symbols() {
	local lib
	for lib in libc.so.6 libm.so.6 libcivetweb.so.1 libjansson.so.4 libcrypto.so.3 libgcc_s.so.1 \
		${EXTRA_LIBS[@]+"${EXTRA_LIBS[@]}"}; do
		nm -D --defined-only "$(lib_path "$lib")" | awk 'NF >= 3 { print $3 }'
	done
	# the dynamic loader (__tls_get_addr and friends)
	for lib in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1; do
		[ -e "$lib" ] && nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }'
	done
	# linker-provided
	printf '%s\n' _GLOBAL_OFFSET_TABLE_ __dso_handle
}

check() {
	local objs=("$@") tmp rc=0 obj sym
	[ "${#objs[@]}" -gt 0 ] || die "no object files given"
	for obj in "${objs[@]}"; do
		[ -f "$obj" ] || die "no such object file: $obj"
	done
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	allowed_symbols | sed 's/@.*//' | sort -u >"$tmp/allowed"
	nm --defined-only -g "${objs[@]}" 2>/dev/null | awk 'NF >= 3 { print $3 }' |
		sort -u >>"$tmp/allowed"
	sort -u -o "$tmp/allowed" "$tmp/allowed"
	: >"$tmp/server"
	if [ -n "${PG_SERVER_BIN:-}" ]; then
		[ -f "$PG_SERVER_BIN" ] || die "no such server binary: $PG_SERVER_BIN"
		nm -D --defined-only "$PG_SERVER_BIN" | awk 'NF >= 3 { print $3 }' |
			sed 's/@.*//' | sort -u >"$tmp/server"
	fi
	for obj in "${objs[@]}"; do
		nm -u "$obj" | awk '{ print $NF }' | sed 's/@.*//' | sort -u >"$tmp/undef"
		comm -23 "$tmp/undef" "$tmp/allowed" >"$tmp/bad"
		while IFS= read -r sym; do
			[ -n "$sym" ] || continue
			if printf '%s\n' "$sym" | grep -Eq "$PG_HINT"; then
				printf 'BOUNDARY VIOLATION: %s references %s, a PostgreSQL symbol\n' "$obj" "$sym"
			else
				printf 'BOUNDARY VIOLATION: %s references %s, which no allowed library defines\n' "$obj" "$sym"
			fi
			rc=1
		done <"$tmp/bad"
		comm -12 "$tmp/undef" "$tmp/server" >"$tmp/shadowed"
		while IFS= read -r sym; do
			[ -n "$sym" ] || continue
			printf 'BOUNDARY VIOLATION: %s references %s, which the server binary defines too: the call would run the server'"'"'s\n' "$obj" "$sym"
			rc=1
		done <"$tmp/shadowed"
	done
	if [ "$rc" -eq 0 ]; then
		printf 'boundary: %d civetweb-side objects reference only libc, libm, civetweb, jansson, libcrypto%s and each other\n' \
			"${#objs[@]}" "$([ "${#EXTRA_LIBS[@]}" -eq 0 ] || printf ', %s' "${EXTRA_LIBS[@]}")"
	fi
	return "$rc"
}

self_test() {
	local tmp out
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	cat >"$tmp/planted.c" <<'C'
extern void *palloc(unsigned long size);
void *planted(void) { return palloc(16); }
C
	cat >"$tmp/clean.c" <<'C'
#include <stdlib.h>
void *clean(void) { return malloc(16); }
C
	cc -c -o "$tmp/planted.o" "$tmp/planted.c"
	cc -c -o "$tmp/clean.o" "$tmp/clean.c"
	if out=$(check "$tmp/planted.o" 2>&1); then
		printf 'boundary self-test FAILED: a palloc() call was not caught\n%s\n' "$out"
		return 1
	fi
	case $out in
		*"references palloc, a PostgreSQL symbol"*) ;;
		*) printf 'boundary self-test FAILED: unexpected report:\n%s\n' "$out"; return 1 ;;
	esac
	if ! out=$(check "$tmp/clean.o" 2>&1); then
		printf 'boundary self-test FAILED: a malloc() call was refused\n%s\n' "$out"
		return 1
	fi
	cat >"$tmp/ssl.c" <<'C'
extern void *SSL_new(void *ctx);
void *ssl(void) { return SSL_new(0); }
C
	cc -c -o "$tmp/ssl.o" "$tmp/ssl.c"
	if out=$(check "$tmp/ssl.o" 2>&1); then
		printf 'boundary self-test FAILED: an SSL_new() call passed without --allow-lib\n%s\n' "$out"
		return 1
	fi
	if ! out=$(EXTRA_LIBS=(libssl.so.3); check "$tmp/ssl.o" 2>&1); then
		printf 'boundary self-test FAILED: --allow-lib libssl.so.3 refused SSL_new()\n%s\n' "$out"
		return 1
	fi
	if [ -n "${PG_SERVER_BIN:-}" ]; then
		cat >"$tmp/shadow.c" <<'C'
extern void *json_object(void);
void *shadow(void) { return json_object(); }
C
		cc -c -o "$tmp/shadow.o" "$tmp/shadow.c"
		if out=$(check "$tmp/shadow.o" 2>&1); then
			printf 'boundary self-test FAILED: a json_object() call (jansson, and a function of the server) passed\n%s\n' "$out"
			return 1
		fi
		case $out in
			*"references json_object, which the server binary defines too"*) ;;
			*) printf 'boundary self-test FAILED: unexpected report:\n%s\n' "$out"; return 1 ;;
		esac
	fi
	printf 'boundary self-test: a planted palloc() is caught, malloc() passes, SSL_new() only with --allow-lib libssl.so.3%s\n' \
		"$([ -z "${PG_SERVER_BIN:-}" ] || printf ', json_object() (also the server'"'"'s) is caught')"
}

if [ "${1:-}" = --self-test ]; then
	self_test
	exit
fi
while [ "${1:-}" = --allow-lib ]; do
	[ -n "${2:-}" ] || die "--allow-lib needs a library name"
	EXTRA_LIBS+=("$2")
	shift 2
done
check "$@"
