#!/usr/bin/env bash
# Install size and time of gradnas, CPU-only vs default PyTorch wheels, each in a fresh venv without pip cache.
#   bash benchmarks/install_size.sh [WORKDIR] [CPU_TORCH]
# CPU_TORCH: what to install torch from for the CPU-only venv; default the PyTorch CPU index
# ("--index-url https://download.pytorch.org/whl/cpu torch torchvision"); on a machine without that index,
# a local CPU wheel, e.g. /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl 'torchvision==0.28.*'.
# Measured 2026-12-06 (2-core CPU, packages from this machine's local mirror, so download time is not in it):
#   cpu: install 40 s, size 1.9G, torch 2.13.0+cpu        default: install 104 s, size 6.4G, torch 2.14.1+cu130
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
shift || true
cpu_torch=${*:-"--index-url https://download.pytorch.org/whl/cpu torch torchvision"}
cd "$work"
for kind in cpu default; do
  rm -rf "venv_$kind"
  python3 -m venv "venv_$kind"
  # shellcheck disable=SC1090
  . "venv_$kind/bin/activate"
  python -m pip install --quiet --upgrade pip
  t0=$(date +%s.%N)
  if [ "$kind" = cpu ]; then
    # shellcheck disable=SC2086
    pip install --no-cache-dir --quiet $cpu_torch
  fi
  pip install --no-cache-dir --quiet -e "$src[dev]"
  t1=$(date +%s.%N)
  deactivate
  echo "$kind: install $(echo "$t1 - $t0" | bc) s, size $(du -sh "venv_$kind" | cut -f1), torch $("venv_$kind/bin/python" -c 'import torch; print(torch.__version__)')"
done
