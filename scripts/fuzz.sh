#!/usr/bin/env bash
# Fuzzes every parser of outside input for MINUTES minutes in all (default 10), equal time per
# target: mutated safetensors and pickle checkpoints, model configs (JSON, YAML), train configs
# and scene files (TOML), LeRobot info.json, datasets' parquet and JSON files, MP4 video,
# PNG/JPEG frames, predict's input file and DIAMOND spawn .npy files (tests/tests/cli/fuzz.rs).
# Prints cases per target; a panic or an allocation over 256 MiB is a finding, whose input is
# kept under target/fuzz-findings (DREAMYARD_FUZZ_OUT). DREAMYARD_FUZZ_SEED repeats a run.
#
#   scripts/fuzz.sh 60
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
export DREAMYARD_FUZZ_MINUTES="$minutes"
# predict prints a JSON line per accepted input; the table is what matters.
cargo test --release --locked -p dreamyard-tests --test cli -- \
    --ignored --exact fuzz::long_fuzz_run --nocapture 2>&1 | grep -av -e '^{"batch"' -e '^skipping: unsupported storage type' -e '^$'
