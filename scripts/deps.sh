#!/usr/bin/env bash
# Install the Debian 12 packages kvserver needs, by purpose.
#
#   scripts/deps.sh run     build, install and run the extension
#                           (what ./scripts/run-local.sh needs)
#   scripts/deps.sh test    the above, plus the test suite's tools: kvcli's
#                           libcurl, promtool, clang/libFuzzer, valgrind,
#                           the TAP framework's IPC::Run, pg_auto_failover
#                           for the automatic failover test, and the
#                           browser test's Chromium and Node packages
#                           (what ./scripts/test.sh needs; the default)
#
# Idempotent: asks dpkg which packages are missing and does nothing (no
# network, no apt-get update) when all are present. Never reads stdin.
# As a non-root user it only reports what is missing and fails if anything is.
set -euo pipefail

PURPOSE=${1:-test}

RUN_PACKAGES=(
	postgresql-15              # server, initdb, pg_ctl
	postgresql-client-15       # psql
	postgresql-server-dev-15   # pg_config, PGXS
	libcivetweb-dev            # embedded HTTP server
	libjansson-dev             # JSON
	libssl-dev                 # OpenSSL 3, for HTTPS (src/pg/tls.c, src/tls/)
	curl                       # run-local.sh waits for /health
	make
	gcc
	perl                       # scripts/embed.pl
)

TEST_PACKAGES=(
	libcurl4-openssl-dev       # kvcli (HTTP client)
	libipc-run-perl            # needed by the TAP framework (PostgreSQL::Test::*)
	prometheus                 # promtool, to check GET /metrics in the tests
	clang-14                   # libFuzzer harness (fuzz/)
	libclang-rt-14-dev         # libFuzzer and the sanitizer runtimes
	llvm-14                    # llvm-symbolizer, for fuzzer stack traces
	valgrind                   # the memcheck pass (scripts/test.sh --valgrind)
	binutils                   # nm, for the thread-boundary check
	openssl                    # the openssl command: certificates for the TLS test
	pg-auto-failover-cli       # pg_autoctl, for the automatic failover test (t/143)
	postgresql-15-auto-failover # pg_auto_failover's monitor extension (t/143)
)

case $PURPOSE in
	run) PACKAGES=("${RUN_PACKAGES[@]}") ;;
	test) PACKAGES=("${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
	*)
		printf 'usage: %s [run|test]\n' "$0" >&2
		exit 2
		;;
esac

log() { printf 'deps.sh: %s\n' "$*" >&2; }

is_installed() {
	local status
	status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
	[ "$status" = installed ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
	is_installed "$pkg" || missing+=("$pkg")
done

# The browser test's own tools (Chromium, Node, playwright-core from npm).
browser_setup() {
	if [ "$PURPOSE" = test ] && [ "$(id -u)" -eq 0 ] && [ "${KV_SKIP_BROWSER_SETUP:-0}" != 1 ]; then
		"$(dirname "${BASH_SOURCE[0]}")/../test/browser/setup.sh"
	fi
}

if [ "${#missing[@]}" -eq 0 ]; then
	log "all ${#PACKAGES[@]} packages for '$PURPOSE' are installed"
	browser_setup
	exit 0
fi

log "missing packages: ${missing[*]}"

if [ "$(id -u)" -ne 0 ]; then
	log "not running as root, cannot install them; run as root:"
	log "  apt-get update && apt-get install -y ${missing[*]}"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "running apt-get update"
apt-get update -q </dev/null
log "running apt-get install -y ${missing[*]}"
apt-get install -y -q -o DPkg::Lock::Timeout=300 "${missing[@]}" </dev/null

still_missing=()
for pkg in "${missing[@]}"; do
	is_installed "$pkg" || still_missing+=("$pkg")
done
if [ "${#still_missing[@]}" -ne 0 ]; then
	log "still missing after apt-get install: ${still_missing[*]}"
	exit 1
fi
log "installed: ${missing[*]}"
browser_setup
