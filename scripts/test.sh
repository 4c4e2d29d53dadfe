#!/usr/bin/env bash
# Builds everything and runs the whole test suite (unit, par, sanitized, MPI, Python, consumer, ...).
# BUILD_DIR overrides the build directory (default: build). Arguments go to cmake's configure
# step: `bash scripts/test.sh -DGRADCOMP_PAR_TESTS_FULL=ON` runs the exec::par tests under every
# thread count and size on every SIMD target (longer than CI's budget allows).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build}"
jobs="$(nproc)"

bash scripts/install-deps.sh --python
# ON: the Python package and its tests must build (a missing dependency is an error, not a
# skipped label). /usr/bin/python3 is the interpreter Debian's python3-torch installs into.
# CUDA: where nvcc is (CI has it, without a GPU) the CUDA back end's tests, benchmarks and
# header checks must compile (ON); its tests then report "skipped" without a device.
cuda=AUTO
nvcc=""
if [[ -x /usr/local/cuda/bin/nvcc ]]; then nvcc=/usr/local/cuda/bin/nvcc; elif command -v nvcc >/dev/null; then nvcc=$(command -v nvcc); fi
if [[ -n "$nvcc" ]]; then cuda="ON -DCMAKE_CUDA_COMPILER=$nvcc"; else echo "test.sh: no nvcc here, the CUDA back end is not built"; fi
# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_PYTHON=ON -DPython3_EXECUTABLE=/usr/bin/python3 \
  -DGRADCOMP_BUILD_CUDA=$cuda "$@"
cmake --build "$BUILD_DIR" -j"$jobs"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$jobs"
