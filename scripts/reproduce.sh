#!/usr/bin/env bash
# The main job: reproduce the papers' claims on real data (docs/reproduction.md).
#   scripts/reproduce.sh                  the convex comparison (hard-threshold vs Top-k under
#                                         EF-SGD, logistic regression on Fashion-MNIST), a few minutes
#   scripts/reproduce.sh nonconvex        the MLP comparison (SGD, EF Top-k/hard-threshold/sign,
#                                         DoubleSqueeze, LIEC-SGD), about 15 minutes on 2 cores
#   scripts/reproduce.sh nonconvex --methods peers
#                                         the peers' compressors on the same MLP (QSGD, TernGrad,
#                                         natural compression, max-min, casts, Signum, EF21, DGC,
#                                         PowerSGD, ...), about an hour on 2 cores
#   scripts/reproduce.sh convex --help    every option, explained
# Further arguments go to gradcomp_reproduce. Results (CSV, PNG plots, summary.json) go to
# out/reproduce/<experiment>/ unless --out says otherwise. BUILD_DIR overrides the build
# directory (default: build-reproduce, apart from the test build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build-reproduce}"
experiment="convex"
if [[ $# -gt 0 && ( "$1" == "convex" || "$1" == "nonconvex" ) ]]; then
  experiment="$1"
  shift
fi

bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_TESTS=OFF -DGRADCOMP_BUILD_BENCH=OFF \
  -DGRADCOMP_BUILD_EXAMPLES=OFF -DGRADCOMP_BUILD_APPS=ON >/dev/null
cmake --build "$BUILD_DIR" --target gradcomp_reproduce -j"$(nproc)"
exec "$BUILD_DIR/apps/reproduce/gradcomp_reproduce" "$experiment" "$@"
