#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, runs the CUDA back end's tests (also under
# compute-sanitizer memcheck and racecheck, sizes up to 2^20) and the GPU benchmarks (with
# PyTorch's Top-k beside them when torch is installed), and writes everything to OUT:
#   gpu.txt (nvidia-smi), tests.txt (doctest, with the time of every case and the counts),
#   bench.json, torch.json, python.txt (gradcomp.cuda and the hook on CUDA buckets, built
#   here for this Python), memcheck.txt, racecheck.txt, table.md, summary.txt.
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
  # The one-rank NCCL smoke test, where NCCL was found (docs/device-exchanges.md); optional.
  cmake --build "$BUILD" --target gradcomp_nccl_tests -j"$(nproc)" 2>/dev/null ||
    echo "gpu-check: gradcomp_nccl_tests not built (no NCCL found)"
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
# Budget: 8 minutes on one H200 in all (GPU_CHECK_BUDGET seconds). Every step has a timeout,
# capped by what is left, so the results so far always come back; a step with no time left
# says so (GPU_CHECK_STEPS=tests,bench,python,memcheck,racecheck runs a subset).
budget=${GPU_CHECK_BUDGET:-480}
steps=${GPU_CHECK_STEPS:-tests,bench,python,memcheck,racecheck}
want() { [[ ",$steps," == *",$1,"* ]]; }
# left CAP: seconds for the next step, at most CAP, keeping 20 s for the table (at least 1).
left() { local l=$(( budget - ($(date +%s) - start) - 20 )); (( l > $1 )) && l=$1; echo $(( l > 1 ? l : 1 )); }  # timeout 0 would mean none
nvidia-smi > "$OUT/gpu.txt" 2>&1 || true
PY=${PYTHON:-python3}

if want tests; then
  echo "== tests"
  timeout "$(left 180)" "$tests" --duration=true 2>&1 | tee "$OUT/tests.txt" || status=1
  # NCCL with one rank (it refuses two on one GPU): the communicator's plumbing. It links
  # libnccl dynamically; a machine without it says so here instead of failing the check.
  nccl_tests=$BUILD/tests/gradcomp_nccl_tests
  if [[ -x "$nccl_tests" ]]; then
    timeout "$(left 60)" "$nccl_tests" --duration=true > "$OUT/nccl.txt" 2>&1 || echo "nccl: failed or did not load (see nccl.txt)"
    tail -3 "$OUT/nccl.txt"
  fi
fi

if want bench; then
  echo "== benchmarks"
  t=$(left 200)
  if (( t > 30 )); then
    timeout "$t" "$bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      --benchmark_min_time=0.2 --benchmark_out="$OUT/bench.json" --benchmark_out_format=json 2>&1 | tail -40 ||
      status=1
    timeout "$(left 60)" "$PY" bench/cuda/torch_topk.py --out "$OUT/torch.json" || echo "torch_topk.py: not measured"
  else
    echo "benchmarks: skipped, no time left" | tee "$OUT/bench.txt"
  fi
fi

# The Python package on CUDA tensors (gradcomp.cuda, the DDP hook on CUDA buckets): built here,
# for this machine's Python and torch (pybind11 and dlpack headers from .devdeps:
# EXTRA_DEBS="pybind11-dev libdlpack-dev" bash ../shared/tools/device-deps.sh), then
# tests/python/cuda_check.py.
if want python; then
  echo "== python (gradcomp.cuda, the hook on CUDA buckets)"
  pybuild=${GPU_PYTHON_BUILD:-build-gpu-python}
  nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  built=0
  t=$(left 60)
  if (( t > 20 )) && timeout "$t" cmake -S . -B "$pybuild" -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_CUDA=ON \
       -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${GPU_ARCH:-90}" -DGRADCOMP_BUILD_PYTHON=ON \
       -DPython3_EXECUTABLE="$(command -v "$PY")" -DGRADCOMP_BUILD_TESTS=OFF -DGRADCOMP_BUILD_BENCH=OFF \
       -DGRADCOMP_BUILD_APPS=OFF -DGRADCOMP_BUILD_EXAMPLES=OFF > "$OUT/python-build.txt" 2>&1; then
    t=$(left 150)
    (( t > 20 )) && timeout "$t" cmake --build "$pybuild" --target gradcomp_python -j"$(nproc)" \
      >> "$OUT/python-build.txt" 2>&1 && built=1
  fi
  if (( built )); then
    (cd tests/python && PYTHONPATH="$OLDPWD/$pybuild/python" timeout "$(left 120)" "$PY" -m unittest -v cuda_check) \
      > "$OUT/python.txt" 2>&1 || status=1
    tail -15 "$OUT/python.txt"
  else
    echo "python: not built (no time left, or see python-build.txt)" | tee "$OUT/python.txt"
    tail -5 "$OUT/python-build.txt" 2>/dev/null || true
    status=1
  fi
fi

if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    want "$tool" || continue
    t=$(left 150)
    if (( t < 30 )); then echo "$tool: skipped, no time left" | tee "$OUT/$tool.txt"; continue; fi
    # Sizes up to 2^20, float cases (double runs the same kernels); racecheck only the kernels
    # that share memory between threads (the block sums, the select, the sign sums, the fused step).
    filter=(-tce="*graph*,*<double>*")
    [[ $tool == racecheck ]] && filter+=(-tc="squared_norm*,top_k*,compress_model*,sign*,feedback_step_async*,qsgd*")
    echo "== compute-sanitizer --tool $tool (sizes <= 2^20, ${filter[*]})"
    GRADCOMP_CUDA_MAX_SIZE=1048576 timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 9 "$tests" \
      "${filter[@]}" 2>&1 | tail -40 > "$OUT/$tool.txt" || { echo "$tool: FAILED (see $OUT/$tool.txt)"; status=1; }
    tail -3 "$OUT/$tool.txt"
  done
else
  echo "compute-sanitizer not found" | tee "$OUT/memcheck.txt"
fi
[[ -f "$OUT/bench.json" ]] && { "$PY" scripts/gpu_table.py "$OUT/bench.json" "$OUT/torch.json" --out "$OUT/table.md" || status=1; }
{
  echo "gpu-check: status $status, $(( $(date +%s) - start )) s"
  grep -E "test cases|assertions|Status" "$OUT/tests.txt" || true
  grep -E "^(Ran|OK|FAILED)" "$OUT/python.txt" 2>/dev/null || true
} | tee "$OUT/summary.txt"
exit $status
