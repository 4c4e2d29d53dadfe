#!/usr/bin/env python3
"""Tabulates scripts/gpu-check.sh's results: gradcomp_cuda_bench's JSON (and, when present,
bench/cuda/torch_topk.py's) as the markdown table of docs/performance.md, with the issue's
targets: hard-threshold >= 80% of copy bandwidth, the EF step <= 1.3x a copy of the same
bytes, Top-k (d = 1e8, k = 1e5) >= 3x faster than torch.topk and faster than the radix
sort, whole-model Top-k over 100 tensors <= 1.2x one call on their concatenation, bf16 at
least as fast as float per element.

usage: gpu_table.py BENCH_JSON [TORCH_JSON] [--out table.md]
"""
import argparse
import json
import re


def load_bench(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        m = re.match(r"cuda/([^/]+/[^/]+)/([^/]+)", b["name"])
        if not m:
            continue
        case, op = m.group(1), m.group(2)
        rows.setdefault(case, {})[op] = {"us": b["real_time"], "bps": b.get("bytes_per_second", 0.0)}
    return data.get("context", {}), rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bench")
    ap.add_argument("torch", nargs="?")
    ap.add_argument("--out")
    a = ap.parse_args()
    try:
        context, rows = load_bench(a.bench)
    except (OSError, ValueError) as e:
        print(f"gpu_table.py: no benchmark results ({e})")
        return 1
    torch = None
    if a.torch:
        try:
            with open(a.torch) as f:
                torch = json.load(f)
        except (OSError, ValueError):
            torch = None
    out = [f"GPU: {context.get('gpu', '?')}; gradcomp_cuda_bench, CUDA events, times in microseconds.", ""]
    out.append("| case | kernel | time (µs) | GB/s | vs copy (same bytes) |")
    out.append("|---|---|---:|---:|---:|")
    for case, ops in rows.items():
        copy = ops.get("copy")
        for op, r in ops.items():
            ratio = ""
            if copy and copy["bps"] and r["bps"]:
                ratio = f"{r['bps'] / copy['bps']:.2f}× bandwidth"
            out.append(f"| {case} | {op} | {r['us']:.1f} | {r['bps'] / 1e9:.1f} | {ratio} |")
    out.append("")
    out.append("Targets (goals, not gates):")
    for case, ops in rows.items():
        copy = ops.get("copy")
        if not copy:
            continue
        if "hard_threshold" in ops:
            bw = ops["hard_threshold"]["bps"] / copy["bps"]
            out.append(f"- {case}: hard_threshold at {100 * bw:.0f}% of copy bandwidth (goal >= 80% at d >= 2^26)")
        for g in ("f32", "bf16"):
            op = f"ef_hard_threshold.{g}"
            if op in ops:
                same_bytes_copy_us = copy["us"] * (ops[op]["bps"] * ops[op]["us"]) / (copy["bps"] * copy["us"])
                out.append(f"- {case}: {op} at {ops[op]['us'] / same_bytes_copy_us:.2f}× a copy of the same bytes (goal <= 1.3×)")
        if "ef_top_k.f32" in ops and "ef_top_k.bf16" in ops:
            out.append(f"- {case}: ef_top_k bf16 / f32 time {ops['ef_top_k.bf16']['us'] / ops['ef_top_k.f32']['us']:.2f} (goal <= 1)")
        if "top_k" in ops and "top_k.model100" in ops:
            out.append(f"- {case}: whole-model top_k over 100 tensors at {ops['top_k.model100']['us'] / ops['top_k']['us']:.2f}× one call on their concatenation (goal <= 1.2×)")
        if "top_k" in ops and "radix_sort_pairs" in ops:
            out.append(f"- {case}: top_k is {ops['radix_sort_pairs']['us'] / ops['top_k']['us']:.2f}× faster than the radix sort (goal > 1)")
    if torch:
        out.append("")
        out.append(f"PyTorch {torch.get('torch')} on {torch.get('gpu')} (median of 20, µs):")
        out.append("")
        out.append("| op | dtype | d | k | torch (µs) | gradcomp (µs) | gradcomp speed-up |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for r in torch.get("records", []):
            case = next((c for c in rows if c.startswith(f"d={'1e8' if r['d'] == 100000000 else '2^' + str(r['d'].bit_length() - 1)}/")), None)
            ours = None
            if case:
                op = {"topk": "top_k", "threshold": "hard_threshold", "copy": "copy"}[r["op"]]
                if r["dtype"] == "float32" and op in rows[case]:
                    ours = rows[case][op]["us"]
            speed = f"{r['median_us'] / ours:.2f}×" if ours else ""
            ours_s = f"{ours:.1f}" if ours else ""
            out.append(f"| {r['op']} | {r['dtype']} | {r['d']} | {r['k']} | {r['median_us']:.1f} | {ours_s} | {speed} |")
    text = "\n".join(out) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
