#!/usr/bin/env bash
# Builds and runs the microbenchmarks, then prints the ratio table (docs/performance.md).
#   scripts/bench.sh                                   # everything except case 5 (a few minutes)
#   scripts/bench.sh --benchmark_filter='^c3/'         # arguments go to gradcomp_bench
#   GRADCOMP_BENCH_LARGE=1 scripts/bench.sh            # also case 5, d = 1e9 (about 16 GB of RAM)
# Writes out/bench/results.json (Google Benchmark JSON) and out/bench/table.md.
# BUILD_DIR (default build-bench) and OUT_DIR (default out/bench) override the paths.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BUILD_DIR="${BUILD_DIR:-build-bench}"
OUT_DIR="${OUT_DIR:-out/bench}"

bash scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_BENCH=ON -DGRADCOMP_BENCH_NATIVE=ON \
  -DGRADCOMP_BUILD_TESTS=ON -DGRADCOMP_SANITIZED_TESTS=OFF -DGRADCOMP_BUILD_EXAMPLES=OFF
cmake --build "$BUILD_DIR" --target gradcomp_bench -j"$(nproc)"

bench="$BUILD_DIR/bench/gradcomp_bench"
if [[ ! -x "$bench" ]]; then
  echo "bench.sh: $bench was not built (see the cmake output above: oneTBB or Google Benchmark missing?)" >&2
  exit 1
fi

mkdir -p "$OUT_DIR"
# Console progress on stdout while the JSON goes to the file.
"$bench" --benchmark_out="$OUT_DIR/results.json" --benchmark_out_format=json "$@"
python3 scripts/bench_table.py "$OUT_DIR/results.json" --out "$OUT_DIR/table.md"
echo "bench.sh: wrote $OUT_DIR/results.json and $OUT_DIR/table.md"
