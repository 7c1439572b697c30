#!/usr/bin/env bash
# Run fuzz_http_parse and summarise: executions, coverage, findings.
#
#   run.sh fuzz SECONDS [libFuzzer flags...]   grows work/corpus (kept between runs)
#   run.sh smoke RUNS                          fresh copy of corpus/, fixed seed
#
# Exits non-zero when libFuzzer reports a crash, leak, UB, timeout or OOM.
set -uo pipefail
cd "$(dirname "$0")"

mode=${1:?usage: run.sh fuzz SECONDS [flags] | run.sh smoke RUNS}
shift
bin=./fuzz_http_parse
stamp=$(date +%Y%m%d-%H%M%S)
art=work/artifacts/$stamp/
mkdir -p "$art" work/logs
log=work/logs/$mode-$stamp.log

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ]; then
	sym=$(command -v llvm-symbolizer-14 || command -v llvm-symbolizer || true)
	[ -n "$sym" ] && export ASAN_SYMBOLIZER_PATH=$sym
fi

case $mode in
	fuzz)
		seconds=${1:?seconds}
		shift
		mkdir -p work/corpus
		cp -n corpus/* work/corpus/
		args=(-max_total_time="$seconds" work/corpus)
		;;
	smoke)
		runs=${1:?runs}
		shift
		rm -rf work/smoke
		cp -r corpus work/smoke
		args=(-runs="$runs" -max_total_time=60 -seed=1 work/smoke)
		;;
	*)
		echo "run.sh: unknown mode $mode" >&2
		exit 2
		;;
esac

echo "fuzz: $bin ${args[*]} $*  (log: fuzz/$log)"
"$bin" -dict=http.dict -artifact_prefix="$art" -print_final_stats=1 "$@" "${args[@]}" >"$log" 2>&1
rc=$?

last=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -n 1)
execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
echo "fuzz: executions: ${execs:-?}"
echo "fuzz: last status: ${last:-none}"
grep -E '^Done [0-9]+ runs' "$log" | sed 's/^/fuzz: /'

findings=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) 2>/dev/null)
if [ "$rc" -ne 0 ] || [ -n "$findings" ]; then
	echo "fuzz: FAILED (libFuzzer exit $rc)" >&2
	# the first report, from its headline to libFuzzer's SUMMARY line
	awk '/CHECK FAILED|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:/ { on = 1 }
		on { print; n++ } on && /^SUMMARY:/ { exit } n >= 80 { exit }' "$log" >&2
	for f in $findings; do
		echo "fuzz: finding fuzz/$f" >&2
		echo "fuzz:   hex: $(od -An -v -tx1 "$f" | tr -d ' \n' | head -c 2000)" >&2
		echo "fuzz:   reproduce: cd fuzz && ./fuzz_http_parse $f" >&2
	done
	echo "fuzz: full output in fuzz/$log" >&2
	exit 1
fi
rmdir "$art" 2>/dev/null || true
echo "fuzz: OK, no crashes"
