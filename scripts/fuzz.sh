#!/usr/bin/env bash
# A fuzzing campaign longer than ctest's (label fuzz runs each target for 10 s):
#   scripts/fuzz.sh                     every target for 10 minutes, one after the other
#   scripts/fuzz.sh 3600                every target for an hour
#   scripts/fuzz.sh 600 decode_sparse error_feedback_load    only these targets
# Targets: decode_sparse decode_seeded_sparse decode_sign decode_quantized decode_dense
# error_feedback_load (docs/fuzzing.md says what each checks). JOBS=n runs n targets at once.
# The corpus grows in out/fuzz/corpus/<target>/ across campaigns; crashing inputs go to
# out/fuzz/artifacts/ (copy one to fuzz/regressions/fuzz_<target>/ to replay it in every
# ctest run once fixed). BUILD_DIR (default build-fuzz) and OUT_DIR (default out/fuzz)
# override the paths; extra libFuzzer flags go in FUZZ_FLAGS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: scripts/fuzz.sh [seconds per target] [target...]" >&2
  exit 2
fi
shift || true
all=(decode_sparse decode_seeded_sparse decode_sign decode_quantized decode_dense error_feedback_load)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${all[@]}")
fi

BUILD_DIR="${BUILD_DIR:-build-fuzz}"
OUT_DIR="${OUT_DIR:-out/fuzz}"
JOBS="${JOBS:-1}"

bash scripts/install-deps.sh
cxx="$(command -v clang++ || command -v clang++-14 || true)"
if [[ -z "$cxx" ]]; then
  echo "fuzz.sh: clang++ not found (Debian: apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S fuzz/targets -B "$BUILD_DIR" -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)"

mkdir -p "$OUT_DIR/artifacts" "$OUT_DIR/logs"
run_one() {
  local name="$1" t="fuzz_$1"
  local dirs=("$OUT_DIR/corpus/$t" "$BUILD_DIR/seeds/$t")
  [[ -d "fuzz/regressions/$t" ]] && dirs+=("fuzz/regressions/$t")
  mkdir -p "$OUT_DIR/corpus/$t"
  echo "fuzz.sh: $name for ${seconds} s (log: $OUT_DIR/logs/$name.log)"
  # shellcheck disable=SC2086
  UBSAN_OPTIONS=print_stacktrace=1 "$BUILD_DIR/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2560 \
    -print_final_stats=1 -artifact_prefix="$OUT_DIR/artifacts/$t-" ${FUZZ_FLAGS:-} "${dirs[@]}" \
    >"$OUT_DIR/logs/$name.log" 2>&1
}

rm -f "$OUT_DIR/logs/failed"
names=()
for name in "${targets[@]}"; do
  if [[ ! -x "$BUILD_DIR/fuzz_$name" ]]; then
    echo "fuzz.sh: unknown target '$name' (one of: ${all[*]})" >&2
    exit 2
  fi
  (run_one "$name" || echo "$name" >>"$OUT_DIR/logs/failed") &
  names+=("$name")
  while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || true; done
done
wait
for name in "${names[@]}"; do
  echo "  $name: $(grep -E '^#[0-9]+' "$OUT_DIR/logs/$name.log" | tail -1)"
done
if [[ -s "$OUT_DIR/logs/failed" ]]; then
  echo "fuzz.sh: findings in $(tr '\n' ' ' <"$OUT_DIR/logs/failed"): see $OUT_DIR/logs/ and $OUT_DIR/artifacts/" >&2
  exit 1
fi
echo "fuzz.sh: no findings"
