#!/usr/bin/env bash
# Builds everything and runs the whole test suite (unit, par, sanitized, MPI, Python, consumer, ...).
# BUILD_DIR overrides the build directory (default: build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build}"
jobs="$(nproc)"

bash scripts/install-deps.sh --python
# ON: the Python package and its tests must build (a missing dependency is an error, not a
# skipped label). /usr/bin/python3 is the interpreter Debian's python3-torch installs into.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_PYTHON=ON -DPython3_EXECUTABLE=/usr/bin/python3
cmake --build "$BUILD_DIR" -j"$jobs"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$jobs"
