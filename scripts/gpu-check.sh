#!/usr/bin/env bash
# The GPU check: Dreamyard's CUDA build measured on a GPU machine that has no Rust toolchain.
#
#   scripts/gpu-check.sh prepare   on the CPU machine: builds the CUDA binaries (headless CLI
#                                  and the model crate's test binary) and gathers everything the
#                                  run needs into .gpu/ (ignored; it travels as a carried folder)
#   scripts/gpu-check.sh run       on the GPU machine, from the repository root: writes every
#                                  figure as JSON (and the logs) into $OUT (default .gpu/out)
#
# `prepare` needs: the CUDA 13.0 compiler from PyPI (scripts/cuda-env.sh installs it), the
# DIAMOND fixture in ../shared/fixtures/diamond, and for the PyTorch comparison DIAMOND's git
# repository (DIAMOND_GIT=path/to/diamond/.git, or a git dir): six of its source files at the
# fixture's commit are copied into .gpu/diamond (never committed). Without it the comparison is
# skipped and says so.
#
# `run` does, in about 3 minutes (8 at most, each stage under its own timeout):
#   1. nvidia-smi;
#   2. the DIAMOND parity suites on CUDA (and the CPU) against the carried fixtures (Atari and
#      the two-stage CS:GO one);
#   3. `bench model` of the shipped push-t model and the DIAMOND fixture at batch 1, 8 and 64,
#      and of DIAMOND's published CS:GO architecture (random weights) at batch 1 and 8, in f32
#      and bf16;
#   4. DIAMOND's own PyTorch code on the same fixture, batches and dtypes (the peer figure);
#   5. 200 training steps of push-t on a dataset recorded there;
#   6. `eval` of the shipped push-t model on its test windows (MODEL_CARD.md's shard 0/4) in f32,
#      bf16 and f16: what 16 bits cost in PSNR;
#   7. summary.json: the figures side by side.
# The stage limits add up to 8 minutes.
# The machine's python3 holds PyTorch and NVIDIA's CUDA 13 wheels (cuBLAS, cuRAND, NVRTC, the
# runtime); the binaries find those libraries through LD_LIBRARY_PATH, and the driver's
# libcuda.so.1 through the system's loader path.
set -euo pipefail
cd "$(dirname "$0")/.."

GPU_DIR=.gpu
DIAMOND_COMMIT=5bcd1599755b4f2fae8e5e079e02f0728e174965

prepare() {
    local fixtures=${DREAMYARD_FIXTURES:-../shared/fixtures}
    [ -f "$fixtures/diamond/agent.pt" ] || {
        echo "gpu-check: no DIAMOND fixture in $fixtures/diamond" >&2
        exit 1
    }
    # shellcheck source=scripts/cuda-env.sh
    . scripts/cuda-env.sh --link
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/gpu}
    echo "== building the CUDA binaries (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP) into $CARGO_TARGET_DIR"
    cargo build --release --locked -p dreamyard --no-default-features --features cuda
    local tests
    tests=$(cargo test --release --locked -p dreamyard-model --features cuda --no-run \
        --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["kind"] == ["test"] and m["target"]["name"] == "model" and m.get("executable"):
        print(m["executable"])')
    [ -n "$tests" ] || {
        echo "gpu-check: the model crate's test binary was not built" >&2
        exit 1
    }
    rm -rf "$GPU_DIR/bin" "$GPU_DIR/fixtures" "$GPU_DIR/diamond"
    mkdir -p "$GPU_DIR/bin" "$GPU_DIR/fixtures/diamond" "$GPU_DIR/fixtures/diamond-csgo"
    strip -o "$GPU_DIR/bin/dreamyard" "$CARGO_TARGET_DIR/release/dreamyard"
    strip -o "$GPU_DIR/bin/model-tests" "$tests"
    for f in agent.pt config.yaml config.json inputs.safetensors outputs.safetensors tolerances.json; do
        cp "$fixtures/diamond/$f" "$GPU_DIR/fixtures/diamond/"
    done
    # The two-stage CS:GO fixture (28 MB) for `parity_csgo::`, when it is there.
    if [ -f "$fixtures/diamond-csgo/agent.pt" ]; then
        for f in agent.pt config.yaml config.json inputs.safetensors outputs.safetensors; do
            cp "$fixtures/diamond-csgo/$f" "$GPU_DIR/fixtures/diamond-csgo/"
        done
    fi
    # Carried folders travel 64 MiB in all: xz brings the binaries and both fixtures from about
    # 90 MB to about 62 (gzip: 80). `run` unpacks them with xz, or Python's lzma where xz is
    # missing.
    echo "== compressing (xz -9e)"
    find "$GPU_DIR/bin" "$GPU_DIR/fixtures" -type f -size +64k -print0 | xargs -0 xz -9e -T0 -f
    if [ -n "${DIAMOND_GIT:-}" ]; then
        local f
        for f in src/models/__init__.py src/models/blocks.py src/models/diffusion/__init__.py \
            src/models/diffusion/denoiser.py src/models/diffusion/inner_model.py \
            src/models/diffusion/diffusion_sampler.py; do
            mkdir -p "$GPU_DIR/diamond/$(dirname "$f")"
            git --git-dir="$DIAMOND_GIT" show "$DIAMOND_COMMIT:$f" >"$GPU_DIR/diamond/$f"
        done
        echo "DIAMOND sources at $DIAMOND_COMMIT copied into $GPU_DIR/diamond"
    else
        echo "gpu-check: DIAMOND_GIT not set: the PyTorch comparison will be skipped" >&2
    fi
    du -sh "$GPU_DIR"/* | sed 's/^/   /'
    local bytes limit=$((64 * 1024 * 1024))
    bytes=$(find "$GPU_DIR" -path "$GPU_DIR/out" -prune -o -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
    if [ "$bytes" -gt "$limit" ]; then
        echo "gpu-check: $GPU_DIR holds $bytes bytes, over the $limit a carry takes" >&2
        exit 1
    fi
    echo "== ready: $bytes bytes; carry $GPU_DIR and run \`scripts/gpu-check.sh run\` on the GPU machine"
}

# Runs "$@" under a timeout, logging to $OUT/$name.log; never stops the whole check.
stage() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit}s)"
    local t0=$SECONDS rc=0
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1 || rc=$?
    echo "   $name: exit $rc after $((SECONDS - t0)) s"
    echo "{\"stage\": \"$name\", \"exit\": $rc, \"seconds\": $((SECONDS - t0))}" >>"$OUT/stages.jsonl"
}

# Decompresses an .xz file with xz, or with Python's lzma on a machine without xz.
unxz_to() {
    if command -v xz >/dev/null 2>&1; then
        xz -dc "$1" >"$2"
    else
        python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as i, open(sys.argv[2], "wb") as o:
    shutil.copyfileobj(i, o)' "$1" "$2"
    fi
}

run_check() {
    OUT=${OUT:-$GPU_DIR/out}
    mkdir -p "$OUT"
    : >"$OUT/stages.jsonl"
    # The carried binaries and fixtures, unpacked outside the working tree in the same layout.
    local root=/tmp/dreamyard-gpu f dst
    local bin=$root/bin fx=$root/fixtures
    rm -rf "$root"
    for f in "$GPU_DIR"/bin/* "$GPU_DIR"/fixtures/*/*; do
        dst=$root/${f#"$GPU_DIR"/}
        mkdir -p "$(dirname "$dst")"
        case $f in
            *.xz) unxz_to "$f" "${dst%.xz}" ;;
            *) cp "$f" "$dst" ;;
        esac
    done
    chmod +x "$bin/dreamyard" "$bin/model-tests"
    # CUDA 13 libraries from the NVIDIA wheels next to PyTorch, and a CUDA install if any.
    local libs
    libs=$(python3 -c 'import glob, site
dirs = []
for sp in site.getsitepackages():
    dirs += sorted(glob.glob(sp + "/nvidia/*/lib"))
print(":".join(dirs))' 2>/dev/null || true)
    export LD_LIBRARY_PATH="${libs}${libs:+:}/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local dy="$bin/dreamyard"

    nvidia-smi >"$OUT/nvidia-smi.log" 2>&1 || echo "nvidia-smi failed" >&2
    ldd "$dy" >>"$OUT/nvidia-smi.log" 2>&1 || true

    # 2. Parity on CUDA (and the CPU), the fixture carried along.
    DREAMYARD_FIXTURES=$fx stage parity 80 "$bin/model-tests" parity:: --test-threads 1 --nocapture
    if [ -f "$fx/diamond-csgo/agent.pt" ]; then
        DREAMYARD_FIXTURES=$fx stage parity-csgo 60 "$bin/model-tests" parity_csgo:: --test-threads 1 --nocapture
    fi

    # 3. bench model, both models, both dtypes, batch 1, 8, 64.
    : >"$OUT/bench.jsonl"
    local m dt
    for dt in f32 bf16; do
        for m in push-t diamond; do
            local args=(--model assets/models/push-t)
            [ "$m" = diamond ] && args=(--model "$fx/diamond/agent.pt" --config "$fx/diamond/config.yaml")
            stage "bench-$m-$dt" 35 "$dy" bench model "${args[@]}" --device cuda --dtype "$dt" --batch 1,8,32,64 --steps 10
            grep '^{' "$OUT/bench-$m-$dt.log" >>"$OUT/bench.jsonl" || true
            rm -f "$OUT/bench-$m-$dt.log"
        done
        # DIAMOND's published CS:GO architecture (random weights): both stages' times.
        stage "bench-csgo-$dt" 60 "$dy" bench model --random --config assets/configs/diamond-csgo.yaml \
            --device cuda --dtype "$dt" --batch 1,8 --steps 10
        grep '^{' "$OUT/bench-csgo-$dt.log" >>"$OUT/bench.jsonl" || true
        rm -f "$OUT/bench-csgo-$dt.log"
    done

    # 4. DIAMOND's PyTorch code on the same fixture and GPU.
    if [ -d "$GPU_DIR/diamond/src" ]; then
        stage diamond-torch 80 python3 scripts/gpu/diamond_bench.py --diamond-src "$GPU_DIR/diamond/src" \
            --fixture "$fx/diamond" --batch 1,8,32,64 --dtypes f32,bf16
    else
        echo "   no DIAMOND sources carried: PyTorch comparison skipped"
    fi

    # 5. 200 training steps of push-t (stage 1's config) on a freshly recorded dataset.
    local data=/tmp/dy-pusht run=/tmp/dy-train
    rm -rf "$data" "$run"
    stage record 20 "$dy" record --scene push-t --policy heuristic --episodes 24 --seed 0 --size 64 --max-steps 200 --out "$data"
    stage train 60 "$dy" train --dataset "$data" --config assets/models/push-t/train.toml --out "$run" --device cuda --stop-after 200
    cp "$run/metrics.jsonl" "$OUT/train-metrics.jsonl" 2>/dev/null || true

    # 6. The push-t test windows (MODEL_CARD.md's recording), scored in each dtype.
    local test=/tmp/dy-pusht-test
    rm -rf "$test"
    stage record-test 20 bash -c "'$dy' record --scene push-t --policy heuristic --episodes 12 --seed 1000 --size 64 --max-steps 200 --out '$test' &&
        '$dy' record --scene push-t --policy random-walk --episodes 18 --seed 2000 --size 64 --max-steps 200 --out '$test' --resume"
    : >"$OUT/eval.jsonl"
    for dt in f32 bf16 f16; do
        stage "eval-$dt" 25 "$dy" eval --model assets/models/push-t --dataset "$test" --horizon 16 --shard 0/4 \
            --examples 0 --device cuda --dtype "$dt" --out "/tmp/dy-eval-$dt"
        { grep '^{' "$OUT/eval-$dt.log" | sed "s/^{/{\"dtype\": \"$dt\", /"; } >>"$OUT/eval.jsonl" || true
        { echo "== eval $dt"; cat "$OUT/eval-$dt.log"; } >>"$OUT/train.log"
        rm -f "$OUT/eval-$dt.log"
    done

    # 7. The summary.
    python3 - "$OUT" <<'PY' || true
import json, sys
out = sys.argv[1]
def lines(name):
    try:
        with open(f"{out}/{name}") as f:
            return [json.loads(l) for l in f if l.strip().startswith("{")]
    except OSError:
        return []
summary = {"stages": lines("stages.jsonl"), "dreamyard": [], "diamond_pytorch": None}
for b in lines("bench.jsonl"):
    for k, v in b.items():
        if k.startswith("batch_"):
            summary["dreamyard"].append({"model": b["model"], "dtype": b.get("dtype"), "batch": v["batch"],
                "ms_per_step": v["ms_per_step"], "frames_per_s": v["frames_per_s"],
                "ms_per_denoiser_call": v["ms_per_denoiser_call"]})
try:
    with open(f"{out}/diamond-torch.log") as f:
        text = f.read()
    summary["diamond_pytorch"] = json.loads(text[text.index("{"):])
except (OSError, ValueError):
    pass
train = lines("train-metrics.jsonl")
summary["train_last"] = train[-1] if train else None
summary["eval"] = lines("eval.jsonl")
with open(f"{out}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
for r in summary["dreamyard"]:
    print(f"dreamyard {r['model'][-30:]:>30} {r['dtype']:>5} b{r['batch']:<3} {r['frames_per_s']:10.1f} frames/s")
if summary["diamond_pytorch"]:
    for r in summary["diamond_pytorch"]["runs"]:
        print(f"diamond pytorch {r['dtype']:>5} b{r['batch']:<3} {r['frames_per_s']:10.1f} frames/s")
PY
    # At most 8 files come back from the machine: fold the small ones in.
    for f in record record-test; do
        { echo "== $f"; cat "$OUT/$f.log"; } >>"$OUT/train.log" 2>/dev/null || true
        rm -f "$OUT/$f.log"
    done
    rm -f "$OUT/stages.jsonl"
    grep -E "test result|skipped|FAILED|panicked" "$OUT/parity.log" | tail -5 || true
}

case "${1:-}" in
    prepare) prepare ;;
    run) run_check ;;
    *)
        echo "usage: scripts/gpu-check.sh prepare|run" >&2
        exit 2
        ;;
esac
