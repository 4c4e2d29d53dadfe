#!/usr/bin/env python3
"""Checks what gradcomp_reproduce wrote to --out (ctest label repro).

  check_outputs.py convex DIR      summary.json, every CSV and PNG of a convex run; the
                                   calibrated hard-threshold sent Top-k's elements within the
                                   tolerance (mean over seeds)
  check_outputs.py nonconvex DIR   the same for a non-convex run
  check_outputs.py same DIR_A DIR_B  the two runs wrote byte-identical CSV files and summary.json
                                   (MPI vs simulated; one data file vs the same rows in another order)

Exits 1 with a message naming the file and what is wrong.
"""
import csv
import json
import math
import os
import sys

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLUMNS = {
    "convex": ["step", "epoch", "elements_sent", "bytes_up", "bytes_down", "suboptimality", "mean_error_sq",
               "elements_per_step", "train_accuracy"],
    "nonconvex": ["step", "epoch", "elements_sent", "bytes_up", "bytes_down", "train_loss", "mean_error_sq",
                  "elements_per_step", "test_accuracy"],
}


def fail(message):
    print("check_outputs: " + message)
    sys.exit(1)


def read_csv(path, kind):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        fail(f"{path}: empty")
    if rows[0] != COLUMNS[kind]:
        fail(f"{path}: header {rows[0]} is not {COLUMNS[kind]}")
    table = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(COLUMNS[kind]):
            fail(f"{path}:{n}: {len(row)} fields, expected {len(COLUMNS[kind])}")
        try:
            table.append([float(v) for v in row])
        except ValueError:
            fail(f"{path}:{n}: not a number in {row}")
    if not table:
        fail(f"{path}: no rows")
    return table


def check_run_csv(path, kind, steps, method):
    table = read_csv(path, kind)
    col = {name: i for i, name in enumerate(COLUMNS[kind])}
    last_step = 0
    last_sent = 0
    for n, row in enumerate(table, start=2):
        step = row[col["step"]]
        if step <= last_step:
            fail(f"{path}:{n}: step {step} does not increase")
        last_step = step
        sent = row[col["elements_sent"]]
        if not (math.isfinite(sent) and sent >= last_sent):
            fail(f"{path}:{n}: elements_sent = {sent} (after {last_sent}): not a finite, non-decreasing count")
        last_sent = sent
        for name in ("epoch", "bytes_up", "bytes_down", "mean_error_sq"):
            if not (row[col[name]] >= 0 and math.isfinite(row[col[name]])):
                fail(f"{path}:{n}: {name} = {row[col[name]]}")
        accuracy = row[col[COLUMNS[kind][-1]]]
        if not 0 <= accuracy <= 1:
            fail(f"{path}:{n}: accuracy {accuracy} outside [0, 1]")
        objective = row[col[COLUMNS[kind][5]]]
        if not math.isfinite(objective) or objective < -1e-9:
            fail(f"{path}:{n}: {COLUMNS[kind][5]} = {objective}")
        if method == "sgd" and row[col["mean_error_sq"]] != 0:
            fail(f"{path}:{n}: uncompressed SGD has a residual {row[col['mean_error_sq']]}")
    if int(last_step) != steps:
        fail(f"{path}: last step {last_step}, the run has {steps}")
    if not last_sent > 0:
        fail(f"{path}: {method} sent {last_sent} elements in the whole run")


def check_dir(kind, directory):
    summary_path = os.path.join(directory, "summary.json")
    try:
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{summary_path}: {e}")
    if summary.get("experiment") != kind:
        fail(f"{summary_path}: experiment is {summary.get('experiment')}, expected {kind}")
    methods = {m["name"]: m for m in summary["methods"]}
    if not methods:
        fail(f"{summary_path}: no methods")
    for name, m in methods.items():
        if len(m["csv"]) != summary["seeds"]:
            fail(f"{summary_path}: {name} has {len(m['csv'])} CSV files for {summary['seeds']} seeds")
        for file in m["csv"]:
            check_run_csv(os.path.join(directory, file), kind, summary["steps"], name)
        for key in ("elements_sent", "bytes", "total_error"):
            s = m[key]
            if s["mean"] is not None and not (s["min"] <= s["mean"] <= s["max"]):
                fail(f"{summary_path}: {name}.{key} mean {s['mean']} outside [{s['min']}, {s['max']}]")
        # Every method sends something, and says how much (null is how NaN is written).
        for field in ("mean", "min", "max"):
            v = m["elements_sent"][field]
            if v is None or not (math.isfinite(v) and v > 0):
                fail(f"{summary_path}: {name}.elements_sent.{field} = {v}, expected a finite, positive count")
    if not summary["plots"]:
        fail(f"{summary_path}: no plots listed")
    for file in summary["plots"]:
        path = os.path.join(directory, file)
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                fail(f"{path}: not a PNG file")
        if os.path.getsize(path) < 1000:
            fail(f"{path}: only {os.path.getsize(path)} bytes")
    if kind == "convex" and "ef_hard_threshold" in methods and "ef_top_k" in methods:
        tolerance = summary["calibration"]["tolerance"]
        top_k = methods["ef_top_k"]["elements_sent"]
        hard = methods["ef_hard_threshold"]["elements_sent"]
        expected = summary["k"] * summary["workers"] * summary["steps"]
        if top_k["min"] != expected or top_k["max"] != expected:
            fail(f"{summary_path}: Top-k sent {top_k}, expected k * n * steps = {expected}")
        if abs(hard["mean"] / expected - 1) > tolerance:
            fail(f"{summary_path}: hard-threshold's elements (mean over seeds {hard['mean']}) are not within "
                 f"{tolerance:.0%} of Top-k's {expected}")
        print(f"check_outputs: lambda {summary['calibration']['lambda']:.6g} matches Top-k's volume: "
              f"{hard['mean'] / expected:.4f}x on average, seeds {hard['min'] / expected:.4f}..{hard['max'] / expected:.4f}x "
              f"(tolerance {tolerance})")
    if kind == "convex" and "ef_budget_threshold" in methods and "ef_top_k" in methods:
        # The self-calibrating threshold holds Top-k's volume up to window * ln(lambda_end /
        # lambda_start) / steps, with a window of a hundredth of the run: within 10%.
        expected = summary["k"] * summary["workers"] * summary["steps"]
        budget = methods["ef_budget_threshold"]["elements_sent"]
        if abs(budget["mean"] / expected - 1) > 0.10:
            fail(f"{summary_path}: budget_threshold's elements (mean over seeds {budget['mean']}) are not within 10% "
                 f"of Top-k's {expected}")
        print(f"check_outputs: budget_threshold sent {budget['mean'] / expected:.4f}x Top-k's volume without "
              f"calibration runs")
    if kind == "nonconvex":
        check_peer_volumes(summary_path, summary, methods)
    print(f"check_outputs: {directory}: {len(methods)} methods, {sum(len(m['csv']) for m in methods.values())} "
          f"CSV files, {len(summary['plots'])} PNG plots, summary.json: all well-formed")


# The MLP's tensors (784 x 128, 128, 128 x 10, 10) as PowerSGD sees them: a matrix is
# compressed when r (rows + cols) < rows * cols, else sent dense (the biases).
MLP_SHAPES = [(784, 128), (128, 1), (128, 10), (10, 1)]
DENSE_QUANTIZERS = ("qsgd_4bit", "terngrad", "natural_compression", "natural_dithering", "maxmin_8bit",
                    "float16_cast", "bfloat16_cast", "signum", "ef_onebit")


def powersgd_values_per_step(rank):
    total = 0
    for rows, cols in MLP_SHAPES:
        total += rank * (rows + cols) if rank * (rows + cols) < rows * cols else rows * cols
    return total


def check_peer_volumes(summary_path, summary, methods):
    """What the peers' methods send is known in advance: check it exactly."""
    runs = summary["workers"] * summary["steps"]
    for name, m in methods.items():
        sent = m["elements_sent"]
        if name in DENSE_QUANTIZERS:
            expected = runs * summary["dim"]
        elif name.startswith("powersgd_r"):
            expected = runs * powersgd_values_per_step(int(name[len("powersgd_r"):]))
        elif name in ("dgc", "ef21_top_k"):
            expected = runs * summary["k"]
        elif name == "ok_topk":
            # Delivered entries: the workers' shares of each step's global Top-k, which holds k
            # sums (fewer only if fewer are nonzero), each from one to n workers' messages.
            low, high = summary["steps"] * summary["k"], runs * summary["k"]
            if not (0 < sent["min"] and sent["max"] <= high):
                fail(f"{summary_path}: {name} delivered {sent}, outside (0, {high}] elements")
            print(f"check_outputs: {name} delivered {sent['min']:.0f}..{sent['max']:.0f} elements "
                  f"(at most {high:.0f}; {low:.0f}, k a step, if no two workers shared an entry)")
            continue
        else:
            continue
        if sent["min"] != expected or sent["max"] != expected:
            fail(f"{summary_path}: {name} sent {sent}, expected {expected} elements")
        print(f"check_outputs: {name} sent exactly {expected:.0f} elements")


def check_same(a, b):
    files = sorted(f for f in os.listdir(a) if f.endswith(".csv"))
    if not files:
        fail(f"{a}: no CSV files")
    if files != sorted(f for f in os.listdir(b) if f.endswith(".csv")):
        fail(f"{a} and {b} hold different CSV files")
    for f in files + ["summary.json"]:
        with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
            if x.read() != y.read():
                fail(f"{f} differs between {a} and {b}")
    print(f"check_outputs: {len(files)} CSV files and summary.json identical in {a} and {b}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in COLUMNS:
        check_dir(sys.argv[1], sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "same":
        check_same(sys.argv[2], sys.argv[3])
    else:
        fail(__doc__)
