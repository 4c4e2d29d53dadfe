#!/usr/bin/env bash
# gradcomp's DDP hook side by side with PyTorch's own hooks (no hook, fp16_compress_hook,
# PowerSGD rank 1 and 4; gradcomp Top-k, hard-threshold, scaled sign) on the Fashion-MNIST MLP:
# accuracy vs bytes and hook compute time, in out/pytorch/ and docs/images/pytorch_hooks.png.
# Arguments go to examples/pytorch/compare_hooks.py: scripts/pytorch-hooks.sh --ranks 2 --steps 200
# (see --help). BUILD_DIR overrides the build directory (default: build), PYTHON the interpreter
# (default: /usr/bin/python3, Debian's, which has torch and numpy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build}"
PYTHON="${PYTHON:-/usr/bin/python3}"

bash scripts/install-deps.sh --python
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DGRADCOMP_BUILD_PYTHON=ON -DPython3_EXECUTABLE="$PYTHON"
cmake --build "$BUILD_DIR" --target gradcomp_python -j"$(nproc)"
PYTHONPATH="$BUILD_DIR/python${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" examples/pytorch/compare_hooks.py "$@"
