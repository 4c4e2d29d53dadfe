#!/usr/bin/env python3
"""The markdown table of docs/reproduction.md from gradcomp_reproduce nonconvex outputs.

  scripts/nonconvex-table.py DIR [DIR ...]

Reads each DIR's summary.json and CSV files (the runs of `scripts/reproduce.sh nonconvex`)
and prints one row per method: final test accuracy (mean and min..max over seeds), bytes per
worker up + down and up only, bytes per worker when the mean accuracy curve first reaches
0.80 and 0.84 (read at the logged points), and elements sent by all workers.
"""
import csv
import json
import os
import sys

LEVELS = (0.80, 0.84)


def fmt_bytes(b):
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            v = b / size
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{b:.0f} B"


def read_runs(directory, files):
    runs = []
    for f in files:
        with open(os.path.join(directory, f), newline="") as fh:
            runs.append([{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)])
    return runs


def row_of(directory, summary, method):
    workers = summary["workers"]
    runs = read_runs(directory, method["csv"])
    last = [r[-1] for r in runs]
    acc = [x["test_accuracy"] for x in last]
    up = sum(x["bytes_up"] for x in last) / len(last) / workers
    total = sum(x["bytes_up"] + x["bytes_down"] for x in last) / len(last) / workers
    reach = []
    for level in LEVELS:
        hit = "–"
        for i in range(min(len(r) for r in runs)):
            mean_acc = sum(r[i]["test_accuracy"] for r in runs) / len(runs)
            if mean_acc >= level:
                hit = fmt_bytes(sum(r[i]["bytes_up"] + r[i]["bytes_down"] for r in runs) / len(runs) / workers)
                break
        reach.append(hit)
    elements = sum(x["elements_sent"] for x in last) / len(last)
    mean = sum(acc) / len(acc)
    return (f"| {method['name']} | {mean:.4f} ({min(acc):.4f}..{max(acc):.4f}) | {fmt_bytes(total)} | "
            f"{fmt_bytes(up)} | {reach[0]} / {reach[1]} | {elements:.3g} |")


def main(dirs):
    print("| method | final test accuracy (min..max) | bytes per worker, up + down | up only | "
          "bytes to reach 0.80 / 0.84 | elements sent (all workers) |")
    print("|---|---:|---:|---:|---:|---:|")
    for d in dirs:
        with open(os.path.join(d, "summary.json")) as f:
            summary = json.load(f)
        for m in summary["methods"]:
            print(row_of(d, summary, m))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
