#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a while (FUZZ_SECONDS each, 60 by
# default) with cargo-fuzz on nightly, installing both when missing. A crash,
# a failed assertion or a leak makes libFuzzer, and so this script, fail; the
# input that did it is saved under fuzz/artifacts/<target>/ and printed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-60}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

mapfile -t targets < <(cargo +nightly fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets in fuzz/" >&2
    exit 1
fi
log=$(mktemp)
# The content_template target leaves its lock file behind, as every holder
# does: in a directory of its own, removed at the end.
scratch=$(mktemp -d)
trap 'rm -rf "$log" "$scratch"' EXIT
for target in "${targets[@]}"; do
    echo "== cargo +nightly fuzz run $target, ${seconds} s"
    # The summary and any failure are shown; libFuzzer's progress lines are not.
    # New inputs go to corpus/<target>; seeds/<target>, where it exists,
    # holds the cases at the edges (such as the longest template that fits).
    corpora=("corpus/$target")
    mkdir -p "${corpora[0]}"
    if [ -d "seeds/$target" ]; then
        corpora+=("seeds/$target")
    fi
    if ! TMPDIR="$scratch" cargo +nightly fuzz run "$target" "${corpora[@]}" -- -max_total_time="$seconds" -print_final_stats=1 \
        2>"$log"; then
        tail -n 60 "$log" >&2
        echo "fuzz target $target failed" >&2
        exit 1
    fi
    grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
    echo "corpus: $(find "corpus/$target" -type f | wc -l) inputs"
done
