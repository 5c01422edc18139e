#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after the other,
# on one core at the lowest priority; prints per target the executions and whether it
# found a crash. TARGETS="a b" picks targets; TOOLCHAIN=stable builds with
# RUSTC_BOOTSTRAP=1 instead of nightly. Logs: fuzz/logs/, crashes: fuzz/artifacts/.
set -u
cd "$(dirname "$0")"
SECONDS_EACH=${1:-60}
TOOLCHAIN=${TOOLCHAIN:-nightly}
if [ "$TOOLCHAIN" = nightly ]; then
    build=(cargo +nightly fuzz build)
else
    build=(env RUSTC_BOOTSTRAP=1 cargo "+$TOOLCHAIN" fuzz build)
fi
# No sanitizer (safe Rust: ASan adds cost, not findings); debug assertions and
# overflow checks on, so a debug_assert! in a dependency counts as a crash too.
nice -n 19 "${build[@]}" --sanitizer none --debug-assertions || exit 2
python3 make-seeds.py --corpus || exit 2
bin=target/x86_64-unknown-linux-gnu/release
targets=${TARGETS:-$(cargo +"$TOOLCHAIN" fuzz list 2>/dev/null || ls fuzz_targets | sed 's/\.rs$//')}
mkdir -p logs
printf '%-16s %12s %8s  %s\n' target executions seconds result | tee logs/summary.txt
failed=0
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    start=$(date +%s)
    nice -n 19 "$bin/$t" "corpus/$t" $([ -d "seeds/$t" ] && echo "seeds/$t") \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    if [ $rc -eq 0 ]; then
        result=ok
    else
        failed=1
        result="CRASH (exit $rc): $(ls -t "artifacts/$t" | head -1) — see logs/$t.log"
    fi
    printf '%-16s %12s %8s  %s\n' "$t" "${execs:-?}" "$took" "$result" | tee -a logs/summary.txt
done
exit $failed
