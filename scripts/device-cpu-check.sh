#!/usr/bin/env bash
# The CPU checks for a session that is lent the GPU machine (16 quiet cores: figures without the
# VM's noise). Run there from the project root, with .devdeps carried (prepare it here with
# `bash ../shared/tools/device-deps.sh`):
#   run(command="bash scripts/device-cpu-check.sh", carry=[".devdeps"], timeout_s=580)
# Writes to $OUT: log.txt (machine, build, test summaries), par-<target>.txt (the full doctest
# output of each run), abi.txt, bench.json (Google Benchmark JSON, case 3 only, medians of 3,
# interleaved). About 9 minutes: the build takes 70 s, each par run up to 150 s, the bench 200 s.
set -u
: "${OUT:?OUT must name the output folder}"
export CMAKE_PREFIX_PATH=$PWD/.devdeps/root/usr
export LD_LIBRARY_PATH=$PWD/.devdeps/root/usr/lib/x86_64-linux-gnu
exec > >(tee "$OUT/log.txt") 2>&1
date; lscpu | head -25; nproc; free -g; nvidia-smi -L || true; g++ --version | head -1; cmake --version | head -1
T0=$(date +%s)
cmake -S . -B /tmp/b -DCMAKE_BUILD_TYPE=Release -DGRADCOMP_BUILD_APPS=OFF -DGRADCOMP_BUILD_EXAMPLES=OFF \
  -DGRADCOMP_SANITIZED_TESTS=OFF -DGRADCOMP_BUILD_FUZZ=OFF -DGRADCOMP_INSTALL=OFF -DGRADCOMP_BUILD_PYTHON=OFF > "$OUT/cmake.txt" 2>&1 ||
  { tail -40 "$OUT/cmake.txt"; exit 1; }
grep -i "gradcomp" "$OUT/cmake.txt"
timeout 300 cmake --build /tmp/b -j"$(nproc)" --target gradcomp_bench gradcomp_par_tests gradcomp_abi_tests \
  > "$OUT/build.txt" 2>&1 || tail -60 "$OUT/build.txt"
echo "build took $(( $(date +%s) - T0 )) s"
# The best target and the scalar one in full (every other compiled target runs in CI).
for t in best scalar; do
  echo "== par tests --simd-target=$t"
  timeout 150 /tmp/b/tests/gradcomp_par_tests --simd-target=$t > "$OUT/par-$t.txt" 2>&1
  echo "exit $?"; tail -3 "$OUT/par-$t.txt"
done
timeout 30 /tmp/b/tests/gradcomp_abi_tests > "$OUT/abi.txt" 2>&1; echo "abi exit $?"; tail -3 "$OUT/abi.txt"
timeout 200 /tmp/b/bench/gradcomp_bench \
  --benchmark_filter='^c3/(read|copy|inplace_update|same_bytes)/|^c3/k=1e[56]/(copy_nth_element/seq|.*/par)' \
  --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
  --benchmark_out="$OUT/bench.json" --benchmark_out_format=json 2>&1 | grep -E "median|simd|Run on" | head -150
echo "total $(( $(date +%s) - T0 )) s"
