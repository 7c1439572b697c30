#!/usr/bin/env bash
# Install the Debian 12 packages kvserver needs to build, run and test.
#
# Idempotent: asks dpkg which packages are missing and does nothing (no
# network, no apt-get update) when all are present. Never reads stdin.
# As a non-root user it only reports what is missing and fails if anything is.
set -euo pipefail

PACKAGES=(
	postgresql-15              # server, initdb, pg_ctl
	postgresql-client-15       # psql
	postgresql-server-dev-15   # pg_config, PGXS, pg_regress, PostgreSQL::Test::* (TAP)
	libcivetweb-dev            # embedded HTTP server
	libjansson-dev             # JSON
	libcurl4-openssl-dev       # kvcli (HTTP client)
	prometheus                 # promtool, to check GET /metrics in the tests
	clang-14                   # libFuzzer harness (fuzz/)
	libclang-rt-14-dev         # libFuzzer and the sanitizer runtimes
	llvm-14                    # llvm-symbolizer, for fuzzer stack traces
	valgrind                   # the memcheck pass (scripts/test.sh --valgrind)
	libipc-run-perl            # needed by the TAP framework
	curl
	make
	gcc
	perl                       # prove, JSON::PP, HTTP::Tiny are in core
)

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
	if [ "$(id -u)" -eq 0 ] && [ "${KV_SKIP_BROWSER_SETUP:-0}" != 1 ]; then
		"$(dirname "${BASH_SOURCE[0]}")/../test/browser/setup.sh"
	fi
}

if [ "${#missing[@]}" -eq 0 ]; then
	log "all ${#PACKAGES[@]} required packages are installed"
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
apt-get install -y -q "${missing[@]}" </dev/null

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
