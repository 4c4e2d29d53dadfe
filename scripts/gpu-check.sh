#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, runs the CUDA back end's tests (also under
# compute-sanitizer memcheck and racecheck, sizes up to 2^20) and the GPU benchmarks (with
# PyTorch's Top-k beside them when torch is installed), and writes everything to OUT:
#   gpu.txt (nvidia-smi), tests.txt (doctest, with the time of every case and the counts),
#   memcheck.txt, racecheck.txt, bench.json, torch.json, table.md, summary.txt.
#
#   bash scripts/gpu-check.sh OUT                 # build (if needed) and run
#   bash scripts/gpu-check.sh --build-only        # build here, for a GPU machine to run
#
# The build directory is build-gpu/ (GPU_BUILD overrides). Build it on a CPU machine with
# nvcc (--build-only: CUDA tests and benchmarks only, static C++ and CUDA runtimes, so the
# binaries run on a machine with another toolkit and libstdc++) and carry it along: then the
# GPU's minutes go to running, not compiling. Without it, this script builds there.
# CMAKE_PREFIX_PATH finds doctest and Google Benchmark where they are not installed
# (../shared/tools/device-deps.sh unpacks them into .devdeps/root/usr).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${GPU_BUILD:-build-gpu}
build_only=0
if [[ "${1:-}" == "--build-only" ]]; then
  build_only=1
elif [[ $# -lt 1 || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,18p' "$0"
  exit 2
fi

if [[ -d .devdeps/root/usr ]]; then
  export CMAKE_PREFIX_PATH="$PWD/.devdeps/root/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$PWD/.devdeps/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

build() {
  local nvcc=${CUDACXX:-}
  [[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
  [[ -z "$nvcc" ]] && nvcc=$(command -v nvcc || true)
  [[ -z "$nvcc" ]] && { echo "gpu-check: no nvcc found (set CUDACXX)" >&2; exit 1; }
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
    -DCMAKE_CUDA_ARCHITECTURES="${GPU_ARCH:-90}" -DGRADCOMP_BUILD_PYTHON=OFF -DGRADCOMP_BUILD_FUZZ=OFF \
    -DGRADCOMP_BUILD_APPS=OFF -DGRADCOMP_BUILD_EXAMPLES=OFF -DGRADCOMP_SANITIZED_TESTS=OFF \
    -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >/dev/null
  cmake --build "$BUILD" --target gradcomp_cuda_tests gradcomp_cuda_bench -j"$(nproc)"
}

if (( build_only )); then
  build
  echo "gpu-check: built $BUILD/tests/gradcomp_cuda_tests and $BUILD/bench/cuda/gradcomp_cuda_bench"
  exit 0
fi

OUT=$1
mkdir -p "$OUT"
tests=$BUILD/tests/gradcomp_cuda_tests
bench=$BUILD/bench/cuda/gradcomp_cuda_bench
# Rebuild when the carried binaries are missing or do not load here (a library they need).
if [[ ! -x "$tests" || ! -x "$bench" ]] || ! "$tests" --list-test-cases >/dev/null 2>&1 ||
   ! "$bench" --benchmark_list_tests >/dev/null 2>&1; then
  echo "gpu-check: building in $BUILD"
  build 2>&1 | tail -5
fi

start=$(date +%s)
status=0
nvidia-smi > "$OUT/gpu.txt" 2>&1 || true
echo "== tests"
# Budget (one H200, 8 minutes in all): tests about 1 minute, each sanitizer at most 2.5, the
# benchmarks about 2; every step has a timeout so that the results so far still come back.
timeout 240 "$tests" --duration=true 2>&1 | tee "$OUT/tests.txt" || status=1
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    echo "== compute-sanitizer --tool $tool (sizes <= 2^20)"
    GRADCOMP_CUDA_MAX_SIZE=1048576 timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$tests" \
      -tce="*graph*" 2>&1 | tail -40 > "$OUT/$tool.txt" || { echo "$tool: FAILED (see $OUT/$tool.txt)"; status=1; }
    tail -3 "$OUT/$tool.txt"
  done
else
  echo "compute-sanitizer not found" | tee "$OUT/memcheck.txt"
fi
echo "== benchmarks"
timeout 240 "$bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true --benchmark_min_time=0.2 \
  --benchmark_out="$OUT/bench.json" --benchmark_out_format=json 2>&1 | tail -40 || status=1
PY=${PYTHON:-python3}
"$PY" bench/cuda/torch_topk.py --out "$OUT/torch.json" || echo "torch_topk.py: not measured"
"$PY" scripts/gpu_table.py "$OUT/bench.json" "$OUT/torch.json" --out "$OUT/table.md" || status=1
{
  echo "gpu-check: status $status, $(( $(date +%s) - start )) s"
  grep -E "test cases|assertions|Status" "$OUT/tests.txt" || true
} | tee "$OUT/summary.txt"
exit $status
