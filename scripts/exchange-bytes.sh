#!/usr/bin/env bash
# Bytes of EF-SGD's exchanges over MPI, 2 to 8 ranks, on the Fashion-MNIST MLP (d = 101,770,
# Top-k at 1%): the all-gather, the sparse reduce-scatter and recursive doubling, against
# dense SGD's allreduce of the same gradient. Every rank writes a trace; the cost model then
# recomputes every step's bytes from the traced messages and must match them exactly
# (scripts/scale_model.py validate), and a table of bytes per rank and step is printed.
# Usage: scripts/exchange-bytes.sh [BUILD_DIR] [OUT_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
out="${2:-out/exchange-bytes}"
steps="${3:-60}"
bin="$build/examples/gradcomp_mpi_training"
[[ -x "$bin" ]] || { echo "exchange-bytes: build $bin first (cmake --build $build --target gradcomp_mpi_training)" >&2; exit 2; }
data=()
[[ -d /usr/share/datasets/fashion-mnist ]] || data=(--synthetic)
rm -rf "$out" && mkdir -p "$out"
for np in 2 3 4 5 6 7 8; do
  for run in "top_k allgather" "top_k reduce_scatter" "top_k recursive_doubling" "identity allgather"; do
    read -r compressor exchange <<<"$run"
    name="$compressor.$exchange.np$np"
    echo "exchange-bytes: $name"
    mpirun -np "$np" --oversubscribe --allow-run-as-root "$bin" --scheme ef_sgd --compressor "$compressor" \
      --density 0.01 --exchange "$exchange" --steps "$steps" --every "$steps" "${data[@]}" --trace "$out/$name" \
      > "$out/$name.log"
  done
done
python3 scripts/scale_model.py validate "$out"/*.jsonl
python3 - "$out" <<'PY'
import glob, json, os, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(dict)
for path in glob.glob(os.path.join(out, "*.jsonl")):
    name = os.path.basename(path).rsplit(".", 2)[0]          # compressor.exchange.npP
    compressor, exchange, np_ = name.split(".")
    lines = [json.loads(l) for l in open(path)]
    key = (int(np_[2:]), "dense allreduce" if compressor == "identity" else exchange)
    acc = rows[key].setdefault("acc", [0, 0, 0, 0])
    for l in lines:
        acc[0] += l["up"]; acc[1] += l["down"]; acc[2] += 1
        acc[3] = max(acc[3], l["down"])
print("\n| ranks | exchange | up per rank and step | down per rank and step | largest down | down / dense |")
print("|---:|---|---:|---:|---:|---:|")
for np_ in sorted({k[0] for k in rows}):
    dense = rows[(np_, "dense allreduce")]["acc"]
    dense_down = dense[1] / dense[2]
    for ex in ("dense allreduce", "allgather", "reduce_scatter", "recursive_doubling"):
        a = rows[(np_, ex)]["acc"]
        up, down = a[0] / a[2], a[1] / a[2]
        print(f"| {np_} | {ex} | {up:,.0f} B | {down:,.0f} B | {a[3]:,} B | {down / dense_down:.3f} |")
PY
