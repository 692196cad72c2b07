#!/usr/bin/env bash
# The declared minimum Rust version holds, as users meet it:
# - a downstream crate that depends on this one by path, with every feature,
#   builds with the `rust-version` of Cargo.toml;
# - so does the `pidlockfile` command, built from the packaged crate (what
#   `cargo install pidlockfile --features cli` downloads).
# Both with a lock file resolved for that Rust version: dependencies whose own
# `rust-version` is newer are passed over where an older release fits
# (`CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback`, which the current
# cargo understands and the old one does not, so the current one resolves).
# The features come from `cargo metadata`, so features added later are built too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

read -r msrv features < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "pidlockfile")
features = sorted(f for f in package["features"] if f != "default")
print(package["rust_version"], ",".join(features))
')
echo "rust-version $msrv; features: ${features:-none}"

rustup toolchain install "$msrv" --profile minimal
cargo "+$msrv" --version

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One target directory for both builds (kept between runs), so that the
# dependencies they share are compiled once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/msrv"
export CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback

# A downstream crate, by path, every feature.
features_toml=$(python3 -c 'import json, sys; print(json.dumps([f for f in sys.argv[1].split(",") if f]))' "$features")
mkdir -p "$work/downstream/src"
cat >"$work/downstream/Cargo.toml" <<EOF
[package]
name = "pidlockfile-downstream"
version = "0.0.0"
edition = "2021"
rust-version = "$msrv"
publish = false

[dependencies]
pidlockfile = { path = "$root", features = $features_toml }

[workspace]
EOF
cat >"$work/downstream/src/main.rs" <<'EOF'
use std::time::Duration;

use pidlockfile::{Holder, LockError, LockFile, LockOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join(format!("downstream-{}.lock", std::process::id()));
    let lock = LockOptions::new()
        .content_template("{pid}/{hostname}")
        .wait(Duration::from_millis(10))
        .lock(&path)?;
    let holder = Holder::read(&path)?.expect("the holder wrote its pid");
    assert_eq!(holder.pid(), Some(std::process::id()));
    assert!(matches!(LockFile::lock(&path), Err(LockError::Locked { .. })));
    lock.close()?;
    std::fs::remove_file(&path)?;
    Ok(())
}
EOF
(
    cd "$work/downstream"
    cargo generate-lockfile
    cargo "+$msrv" build --locked
    cargo "+$msrv" run --locked --quiet
)

# The command, from the packaged crate.
cargo package --no-verify --allow-dirty --quiet --target-dir "$work/package"
# -m: the files get the time of extraction. A .crate holds one fixed mtime
# for every file, so cargo would take the last run's build as fresh.
tar -xzmf "$work"/package/package/pidlockfile-*.crate -C "$work"
(
    cd "$work"/pidlockfile-*/
    cargo generate-lockfile
    cargo "+$msrv" build --locked --all-features --bins
)
echo "rust $msrv builds the downstream crate and the command with every feature"
