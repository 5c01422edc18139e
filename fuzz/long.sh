#!/usr/bin/env bash
# Longer runs than run.sh: each "target:seconds" in turn, one libFuzzer process at a
# time (-fork=1 keeps going after a crash, collecting every artifact).
set -u
cd "$(dirname "$0")"
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
for spec in "$@"; do
    t=${spec%%:*}; s=${spec#*:}
    mkdir -p "corpus/$t" "artifacts/$t"
    start=$(date +%s)
    nice -n 19 "$bin/$t" "corpus/$t" $([ -d "seeds/$t" ] && echo "seeds/$t") \
        -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$s" -timeout=10 -rss_limit_mb=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/long-$t.log" 2>&1
    echo "$t rc=$? seconds=$(( $(date +%s) - start )) $(grep -E '^#[0-9]+' "logs/long-$t.log" | tail -1) artifacts=$(ls "artifacts/$t" | wc -l)" >> logs/long-summary.txt
done
