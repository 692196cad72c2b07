#!/usr/bin/env bash
# Cross-compiles the test suite for x86_64-pc-windows-gnu with MinGW and runs
# it under Wine, in a fresh prefix. Installs what it needs.
#
# What Wine cannot show: it does not enforce LockFileEx's mandatory locks
# against reads through other handles, so it cannot prove that the holder's
# byte 0 is unreadable to others while the rest of the file stays readable
# (the design rests on Microsoft's documentation of LockFileEx for that).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-pc-windows-gnu
wine=/usr/lib/wine/wine64

if ! command -v x86_64-w64-mingw32-gcc >/dev/null || [ ! -x "$wine" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-mingw-w64-x86-64 wine64 >/dev/null
fi
rustup target add "$target" >/dev/null 2>&1 || rustup target add "$target"
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc

prefix=$(mktemp -d)
# Wine's processes may still be writing into the prefix for a moment after
# `wineserver -k`: retry the removal rather than fail a passing run on it.
trap 'for _ in 1 2 3 4 5; do rm -rf "$prefix" 2>/dev/null && break; sleep 1; done' EXIT

# The test binaries' paths come from cargo's own report, so that they are
# found wherever the target directory is (CARGO_TARGET_DIR included).
cargo test --target "$target" --no-run --message-format=json-render-diagnostics >"$prefix/tests.json"
mapfile -t binaries < <(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
        print(message["executable"])
' "$prefix/tests.json")
if [ "${#binaries[@]}" -eq 0 ]; then
    echo "no test binaries were built for $target" >&2
    exit 1
fi
export WINEPREFIX="$prefix/wine" WINEDEBUG=-all WINEDLLOVERRIDES="bcryptprimitives=n,b"
"$wine" wineboot -i >/dev/null 2>&1 || true
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    ci/processprng.c -ladvapi32

failed=0
for binary in "${binaries[@]}"; do
    echo "== under Wine: $(basename "$binary")"
    # --include-ignored is not given: ignored tests are the helpers and the
    # list of what did not run on this platform, shown with their reasons.
    if ! "$wine" "$binary" --test-threads=1; then
        failed=1
    fi
done
"$wine" wineserver -k >/dev/null 2>&1 || true
exit "$failed"
