#!/usr/bin/env bash
# Runs the desktop app in a virtual X display with software Vulkan (lavapipe), drives a few
# steps with synthetic input and saves a screenshot of the window.
#
#   scripts/screenshot.sh [OUT.png] [STEPS] [-- extra app args, e.g. --model DIR]
#
# Installs xvfb, Mesa's Vulkan drivers and the Vulkan loader when missing (Debian/Ubuntu).
# Exits non-zero if the app fails or no screenshot is written.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-target/screenshots/dreamyard.png}
steps=${2:-24}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift

packages=(xvfb mesa-vulkan-drivers libvulkan1 xauth)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

bin=${DREAMYARD_BIN:-}
if [ -z "$bin" ]; then
    cargo build --quiet -p dreamyard
    bin="${CARGO_TARGET_DIR:-target}/debug/dreamyard"
fi

mkdir -p "$(dirname "$out")"
rm -f "$out"
display=:${DISPLAY_NUM:-99}
Xvfb "$display" -screen 0 1600x960x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill "$xvfb" 2>/dev/null || true' EXIT
sleep 1

# lavapipe: Mesa's CPU Vulkan driver.
export DISPLAY=$display WGPU_BACKEND=vulkan
export VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-$(ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n1)}
timeout "${TIMEOUT_S:-600}" "$bin" --screenshot-after "$steps" --screenshot "$out" --exit "$@"
test -s "$out"
echo "$out"
