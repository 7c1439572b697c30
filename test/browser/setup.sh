#!/usr/bin/env bash
# Install what the dashboard browser test (test/t/050_dashboard.pl) needs,
# on Debian 12, as root:
#   - Debian's Chromium at /usr/bin/chromium
#   - node and npm (Debian's nodejs and npm, unless a node and npm are
#     already on PATH, e.g. from another package: they are left alone)
#   - test/browser/node_modules, from package-lock.json (npm ci)
#
# Idempotent: no apt-get at all when chromium, node and npm are present;
# npm ci only when node_modules does not match package-lock.json.  Never
# reads stdin.  Playwright never downloads a browser of its own: the test
# drives /usr/bin/chromium through playwright-core.
set -euo pipefail
exec </dev/null

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

log() { printf 'browser/setup.sh: %s\n' "$*" >&2; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -ne 0 ]; then
	log "missing packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		log "not running as root, cannot install them; run as root:"
		log "  apt-get update && apt-get install -y ${missing[*]}"
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	log "running apt-get update"
	apt-get update -q
	log "running apt-get install -y --no-install-recommends ${missing[*]}"
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

for tool in /usr/bin/chromium node npm; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		log "still missing after apt-get install: $tool"
		exit 1
	fi
done
log "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo '?'); node: $(node --version)"

# npm ci wipes and reinstalls node_modules: skip it when the installed tree
# was made from this very lock file (npm writes node_modules/.package-lock.json).
cd "$HERE"
if [ -f node_modules/.package-lock.json ] &&
	[ node_modules/.package-lock.json -nt package-lock.json ] &&
	[ -f node_modules/playwright-core/package.json ]; then
	log "node_modules is up to date"
else
	log "npm ci in $HERE"
	npm ci --no-audit --no-fund --loglevel=error
fi
log "ready"
