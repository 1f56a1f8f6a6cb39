# Source this file (bash): `. scripts/cuda-env.sh [--link]`.
#
# Sets up what `--features cuda` needs to compile on a machine without a GPU or a CUDA install:
# NVIDIA's CUDA 13.0 compiler and headers from PyPI wheels, in a virtual environment that is
# created once and reused (DREAMYARD_CUDA_VENV, default ~/.cache/dreamyard/cuda-13.0). Every
# wheel is pinned to the 13.0 series: PTX written by a newer nvcc does not load on a 13.0 driver
# (the H200 machine has driver 580 = CUDA 13.0), and a mixed set fails in candle-kernels' build
# script (`ptxas fatal: Unsupported .version`) when pip pulls a newer nvidia-nvvm.
#
# Exports PATH (nvcc), CUDA_ROOT / CUDA_PATH / CUDA_HOME, CUDA_COMPUTE_CAP (default 90: Hopper,
# H100/H200; set it before sourcing for another GPU) and CUDAFORGE_THREADS (nvcc jobs: every
# core). That is enough for `cargo check` and `cargo clippy --features cuda`, which do not link.
#
# `--link` also makes a link-only folder (DREAMYARD_CUDA_VENV/link) so a binary can be linked:
# candle turns on cudarc's `dynamic-linking`, so the linker wants libcuda, libcublas,
# libcublasLt, libcurand and libnvrtc. The CUDA runtime (libcudart) comes from its wheel; the
# others are stubs: shared libraries with the real sonames that define every function name
# cudarc's bindings declare, and nothing else. They exist only to satisfy the linker; at run time
# the loader finds the real ones (the driver's libcuda.so.1; cuBLAS, cuRAND and NVRTC from a
# CUDA 13 install or from PyTorch's `nvidia-*` wheels, through LD_LIBRARY_PATH).

_dy_cuda_env() {
    local venv="${DREAMYARD_CUDA_VENV:-$HOME/.cache/dreamyard/cuda-13.0}"
    local pins=(
        "nvidia-cuda-nvcc==13.0.88"
        "nvidia-cuda-crt==13.0.88"
        "nvidia-nvvm==13.0.88"
        "nvidia-cuda-runtime==13.0.96"
        "nvidia-cuda-cccl==13.0.85"
    )
    local root
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv" || return 1
    fi
    root=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13
    if [ ! -x "$root/bin/nvcc" ]; then
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}" || return 1
    fi
    export CUDA_ROOT="$root" CUDA_PATH="$root" CUDA_HOME="$root"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    # candle-kernels' build script (cudaforge) runs nvcc on half the cores unless told: one
    # file at a time on CI's two cores, while the other core waits for candle-core.
    export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
    case ":$PATH:" in
        *":$root/bin:"*) ;;
        *) export PATH="$root/bin:$PATH" ;;
    esac
    if [ "${1:-}" = "--link" ]; then
        _dy_cuda_link_stubs "$venv/link" "$root" || return 1
    fi
}

# Writes the link folder: libcudart.so -> the wheel's, and one stub per other library.
_dy_cuda_link_stubs() {
    local dir="$1" root="$2" sys
    sys=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 1 -type d 2>/dev/null |
        while read -r d; do ls -d "$d"/cudarc-0.19.* 2>/dev/null; done | sort | tail -1)
    if [ -z "$sys" ]; then
        echo "cuda-env: cudarc's sources are not in the cargo registry yet; run \`cargo fetch\` first" >&2
        return 1
    fi
    mkdir -p "$dir"
    ln -sfn "$root/lib/libcudart.so.13" "$dir/libcudart.so"
    local spec lib soname module prefix
    # library  soname  cudarc module  symbol prefix
    for spec in "cuda libcuda.so.1 driver cu" \
        "cublas libcublas.so.13 cublas cublas" \
        "cublasLt libcublasLt.so.13 cublaslt cublasLt" \
        "curand libcurand.so.10 curand curand" \
        "nvrtc libnvrtc.so.13 nvrtc nvrtc"; do
        read -r lib soname module prefix <<<"$spec"
        [ -f "$dir/lib$lib.so" ] && continue
        grep -ohE "^ *(pub )?(unsafe )?fn ${prefix}[A-Za-z0-9_]*\(" "$sys/src/$module/sys/mod.rs" |
            sed -E 's/.*fn ([A-Za-z0-9_]+)\(/\1/' | sort -u |
            awk '{ print "void " $1 "(void) {}" }' >"$dir/$lib.c"
        gcc -shared -fPIC -Wl,-soname,"$soname" -o "$dir/lib$lib.so" "$dir/$lib.c" || return 1
    done
    # The C compiler that drives the link searches LIBRARY_PATH for `-l` (unlike RUSTFLAGS,
    # this does not change cargo's fingerprints, so nothing already built is rebuilt).
    export DREAMYARD_CUDA_LINK="$dir"
    case ":${LIBRARY_PATH:-}:" in
        *":$dir:"*) ;;
        *) export LIBRARY_PATH="$dir${LIBRARY_PATH:+:$LIBRARY_PATH}" ;;
    esac
}

_dy_cuda_env "$@"
