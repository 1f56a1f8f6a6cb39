#!/usr/bin/env bash
# Video datasets, Dreamyard beside LeRobot on the same frames in the same run: records a push-t
# image dataset, then writes its frames as AV1 video and reads them back with
# `dreamyard bench video` and with LeRobot's own code (scripts/bench_lerobot_video.py), and
# prints both JSON lines. BENCHMARKS.md has the figures.
#
#   scripts/bench-video.sh [EPISODES] [SIZE]      (defaults: 20 episodes of 300 steps, 96x96)
#
# Needs a release build (cargo build --release -p dreamyard) and a Python with lerobot 0.6
# (PYTHON, default python3; `pip install 'lerobot[dataset]'`, Python 3.12).
set -euo pipefail
cd "$(dirname "$0")/.."

episodes=${1:-20}
size=${2:-96}
bin=${DREAMYARD_BIN:-target/release/dreamyard}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$bin" record --scene push-t --policy heuristic --episodes "$episodes" --max-steps 300 \
    --seed 0 --size "$size" --out "$work/images" >/dev/null
"$bin" bench video --dataset "$work/images" --out "$work/dreamyard-video"
HF_HUB_OFFLINE=1 "$python" scripts/bench_lerobot_video.py "$work/images" "$work/lerobot-video" 200
