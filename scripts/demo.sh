#!/usr/bin/env bash
# The main job: compress a real Fashion-MNIST gradient with every gradcomp compressor, print a
# table, train with error feedback and plot training loss vs bytes sent (out/demo/ by default).
# Arguments go to the demo: scripts/demo.sh --steps 3000 --out /tmp/demo (see --help).
# BUILD_DIR overrides the build directory (default: build-demo, apart from the test build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build-demo}"

bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DGRADCOMP_BUILD_TESTS=OFF -DGRADCOMP_BUILD_BENCH=OFF -DGRADCOMP_BUILD_EXAMPLES=ON
cmake --build "$BUILD_DIR" --target gradcomp_demo -j"$(nproc)"
"$BUILD_DIR/examples/gradcomp_demo" "$@"
