#!/usr/bin/env python3
"""Turns gradcomp_bench's JSON (--benchmark_out) into the Markdown tables of docs/performance.md.

Usage: bench_table.py RESULTS.json [--out TABLE.md] [--quiet] [--strict]

Every speed is a ratio against a baseline measured in the same run (docs/performance.md):
  x read      kernel time / time to read the same input bytes (cpu::detail::l1_norm) on as
              many threads (seq rows and user baselines: one thread); 1.0 = memory bound;
  top_k / ht  Top-k time over hard-threshold time at the same density;
  vs user     copy + std::nth_element time / Top-k time; scalar loop time / hard-threshold time;
  EF / bytes  error_feedback::compress (double-buffered: writes a second vector) over
              same_bytes (p = e + s*g into a third vector); the in-place step and the fused
              kernel alone, in place, over inplace_update (e = e + s*g in place: reads g and e,
              writes e, the least any error-feedback step must move); same thread count;
  portable / native  a kernel built without -march flags (runtime SIMD dispatch) over the
              same kernel built with -march=native, same run;
  par(N)/par(1), par/seq  thread scaling: time on one thread (or exec::seq) / time on N.
Then the targets of the issue, each PASS or MISS.

--strict exits with status 1 when a benchmark reported an error or an expected row is missing
(the bench.smoke test uses it). Python 3 standard library only.
"""
import argparse
import json
import statistics
import sys

UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}

# Kernels by where they sit in the benchmark names (bench/common.hpp).
SPARSIFIERS = ["top_k", "hard_threshold", "ef_top_k", "ef_hard_threshold"]
EF_IN_PLACE = ["ef_hard_threshold.in_place", "ef_hard_threshold.kernel", "ef_top_k.kernel"]
SPARSE_EXTRAS = ["random_k", "decompress_add"]
PORTABLE = ["top_k.portable", "hard_threshold.portable"]
USER_BASELINES = ["copy_nth_element", "copy_partial_sort", "scalar_threshold"]
BASELINES = ["read", "copy", "inplace_update", "same_bytes"]
DENSE = ["scaled_sign", "onebit", "blockwise_sign", "qsgd"]
# Bytes each kernel is credited with, in units of d floats (for "x read" and GB/s).
TWO_VECTORS = {"ef_top_k", "ef_hard_threshold", "inplace_update", "same_bytes"}


def fmt_time(seconds):
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(r, digits=3):
    return "—" if r is None else f"{r:.{digits}g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


class Results:
    """The rows of one run, keyed by (data set, k label or None, kernel, back end)."""

    def __init__(self, doc):
        self.context = doc.get("context", {})
        self.errors = []
        groups = {}
        for b in doc.get("benchmarks", []):
            name = b.get("run_name") or b["name"]
            if name.endswith("/real_time"):
                name = name[: -len("/real_time")]
            parts = name.split("/")
            if len(parts) == 3:
                key = (parts[0], None, parts[1], parts[2])
            elif len(parts) == 4 and parts[1].startswith("k="):
                key = (parts[0], parts[1][2:], parts[2], parts[3])
            else:
                continue  # not one of ours
            if b.get("error_occurred"):
                self.errors.append(f"{name}: {b.get('error_message', 'error')}")
                continue
            groups.setdefault(key, []).append(b)
        self.rows = {}
        for key, runs in groups.items():
            median = [r for r in runs if r.get("run_type") == "aggregate" and r.get("aggregate_name") == "median"]
            if median:
                chosen = [median[0]]
            else:
                chosen = [r for r in runs if r.get("run_type", "iteration") == "iteration"] or runs
            times = [r["real_time"] * UNIT_SECONDS[r.get("time_unit", "ns")] for r in chosen]
            first = chosen[0]
            self.rows[key] = {
                "time": statistics.median(times),
                "gbps": statistics.median([r.get("bytes_per_second", 0.0) for r in chosen]) / 1e9,
                "sent": first.get("sent"),
                "d": first.get("d"),
                "k": first.get("k"),
                "par_kernel": first.get("par_kernel"),
                "fused": first.get("fused"),
                "iterations": sum(r.get("iterations", 0) for r in chosen),
            }
        self.datasets = []  # (id, title, [(k label, k)]) in context order
        for key, value in self.context.items():
            if not key.startswith("dataset."):
                continue
            title, _, ks = value.partition("; k ")
            kcs = []
            for item in filter(None, ks.split(",")):
                label, _, k = item.rpartition("=")
                kcs.append((label, int(k)))
            self.datasets.append((key[len("dataset."):], title, kcs))
        order = {}
        for key in self.rows:
            order.setdefault(key[0], len(order))
        self.datasets.sort(key=lambda t: order.get(t[0], len(order)))
        self.threads = int(self.context.get("tbb_threads", "0") or 0)
        if not self.threads:
            self.threads = max([int(k[3].split(":")[1]) for k in self.rows if k[3].startswith("par:")] or [1])

    def par(self):
        return f"par:{self.threads}"

    def backends(self):
        return ["seq", "par:1"] + ([self.par()] if self.threads > 1 else [])

    def get(self, ds, kl, kernel, backend):
        return self.rows.get((ds, kl, kernel, backend))

    def time(self, ds, kl, kernel, backend):
        r = self.get(ds, kl, kernel, backend)
        return r["time"] if r else None

    @staticmethod
    def baseline_backend(backend):
        return "par:1" if backend == "seq" else backend

    def x_read(self, ds, row, backend):
        """read GB/s over the row's GB/s at the same thread count: 1.0 = as fast as one read."""
        read = self.get(ds, None, "read", self.baseline_backend(backend))
        if not read or not row or not row["gbps"]:
            return None
        return read["gbps"] / row["gbps"]


def machine_section(res):
    c = res.context
    caches = c.get("caches") or []
    if caches:
        cache_text = ", ".join(f"L{x['level']} {x['type']} {x['size'] // 1024} KiB" for x in caches)
    else:
        cache_text = c.get("cache_sizes", "not reported")
    lines = [
        "| | |",
        "|---|---|",
        f"| CPU | {c.get('cpu_model', '?')}, {c.get('num_cpus', '?')} logical CPUs at {c.get('mhz_per_cpu', '?')} MHz |",
        f"| caches | {cache_text} |",
        f"| SIMD target (exec::par) | {c.get('simd_target', '?')} |",
        f"| oneTBB threads | {c.get('tbb_threads', '?')} |",
        f"| compiler | {c.get('compiler', '?')} |",
        f"| gradcomp | {c.get('gradcomp_version', '?')} |",
        f"| date | {c.get('date', '?')} (host {c.get('host_name', '?')}) |",
        f"| load average at start | {', '.join(f'{x:.2f}' for x in c.get('load_avg', []))} |",
    ]
    if c.get("smoke") == "1":
        lines += ["", "**Smoke run** (GRADCOMP_BENCH_SMOKE=1, every d = 2^17): checks the pipeline; the numbers "
                      "and the verdicts below mean nothing."]
    return lines


def kernel_rows(res, ds, kl, kernels, backends):
    out = []
    for kernel in kernels:
        for backend in backends:
            row = res.get(ds, kl, kernel, backend)
            if row is None:
                continue
            notes = []
            if backend.startswith("par") and row.get("par_kernel") == 0 and kernel not in BASELINES:
                notes.append("seq fallback")
            if kernel.startswith("ef_") and backend.startswith("par"):
                notes.append("fused" if row.get("fused") else "unfused")
            sent = row.get("sent")
            sent_text = f"{sent:.0f}" if sent else ""
            out.append(f"| {kernel} | {backend} | {fmt_time(row['time'])} | {row['gbps']:.3g} | "
                       f"{fmt_ratio(res.x_read(ds, row, backend))} | {sent_text} | {', '.join(notes)} |")
    return out


TABLE_HEAD = ["| kernel | back end | time/call | input GB/s | × read | sent/call | notes |",
              "|---|---|---:|---:|---:|---:|---|"]


def case_sections(res):
    lines = []
    for ds, title, kcs in res.datasets:
        lines += ["", f"### {ds}: {title}", ""]
        lines += TABLE_HEAD
        lines += kernel_rows(res, ds, None, BASELINES, ["par:1", res.par()] if res.threads > 1 else ["par:1"])
        lines += kernel_rows(res, ds, None, DENSE, res.backends())
        for label, k in kcs:
            lines += ["", f"k = {label} (k = {k}):", ""]
            lines += TABLE_HEAD
            lines += kernel_rows(res, ds, label, SPARSIFIERS + SPARSE_EXTRAS, res.backends())
            lines += kernel_rows(res, ds, label, EF_IN_PLACE + PORTABLE, [res.par()])
            lines += kernel_rows(res, ds, label, USER_BASELINES, ["seq"])
    return lines


def ratio_section(res):
    lines = ["| case | k | back end | top_k / ht | top_k vs copy+nth_element | top_k vs copy+partial_sort | "
             "ht vs scalar loop | EF(ht) / same bytes | EF(top_k) / same bytes | EF(ht) in place / in-place update | "
             "EF(ht) kernel / in-place update | EF(top_k) kernel / in-place update |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for ds, _, kcs in res.datasets:
        for label, _ in kcs:
            nth = res.time(ds, label, "copy_nth_element", "seq")
            psort = res.time(ds, label, "copy_partial_sort", "seq")
            scalar = res.time(ds, label, "scalar_threshold", "seq")
            for backend in res.backends():
                tk = res.time(ds, label, "top_k", backend)
                ht = res.time(ds, label, "hard_threshold", backend)
                same = res.time(ds, None, "same_bytes", res.baseline_backend(backend))
                inplace = res.time(ds, None, "inplace_update", res.baseline_backend(backend))
                ef_ht = res.time(ds, label, "ef_hard_threshold", backend)
                ef_tk = res.time(ds, label, "ef_top_k", backend)
                ef_ht_ip = res.time(ds, label, "ef_hard_threshold.in_place", backend)
                ef_ht_k = res.time(ds, label, "ef_hard_threshold.kernel", backend)
                ef_tk_k = res.time(ds, label, "ef_top_k.kernel", backend)
                if tk is None and ht is None:
                    continue
                lines.append(
                    f"| {ds} | {label} | {backend} | {fmt_ratio(ratio(tk, ht))} | {fmt_ratio(ratio(nth, tk))}× | "
                    f"{fmt_ratio(ratio(psort, tk))}× | {fmt_ratio(ratio(scalar, ht))}× | "
                    f"{fmt_ratio(ratio(ef_ht, same))} | {fmt_ratio(ratio(ef_tk, same))} | "
                    f"{fmt_ratio(ratio(ef_ht_ip, inplace))} | {fmt_ratio(ratio(ef_ht_k, inplace))} | "
                    f"{fmt_ratio(ratio(ef_tk_k, inplace))} |")
    return lines


def scaling_section(res):
    p = res.par()
    lines = [f"| case | k | kernel | {p} / par:1 (speed-up) | {p} / seq (speed-up) |",
             "|---|---|---|---:|---:|"]
    for ds, _, kcs in res.datasets:
        for kernel in BASELINES + DENSE:
            t1, tn, ts = (res.time(ds, None, kernel, b) for b in ("par:1", p, "seq"))
            if t1 is None and tn is None:
                continue
            lines.append(f"| {ds} | | {kernel} | {fmt_ratio(ratio(t1, tn))}× | "
                         f"{fmt_ratio(ratio(ts, tn)) + '×' if ts else '—'} |")
        for label, _ in kcs:
            for kernel in SPARSIFIERS + SPARSE_EXTRAS:
                t1, tn, ts = (res.time(ds, label, kernel, b) for b in ("par:1", p, "seq"))
                if t1 is None and tn is None:
                    continue
                lines.append(f"| {ds} | {label} | {kernel} | {fmt_ratio(ratio(t1, tn))}× | "
                             f"{fmt_ratio(ratio(ts, tn))}× |")
    return lines


def verdict(value, ok):
    if value is None:
        return "n/a (not measured)"
    return "PASS" if ok(value) else "MISS"


def target_section(res):
    p = res.par()
    lines = []
    c3_labels = [kc[0] for d in res.datasets if d[0] == "c3" for kc in d[2]]
    # 1. The fused EF + hard-threshold step, in place, <= 1.15x the in-place update e += s*g.
    for label in c3_labels:
        r = ratio(res.time("c3", label, "ef_hard_threshold.kernel", p), res.time("c3", None, "inplace_update", p))
        row = res.get("c3", label, "ef_hard_threshold.kernel", p) or {}
        fused = "fused" if row.get("fused") else "unfused"
        lines.append(f"- EF + hard-threshold step ({fused}, in place, {p}) ≤ 1.15× the in-place update e += s·g, "
                     f"case 3, k = {label}: {fmt_ratio(r)}× → **{verdict(r, lambda v: v <= 1.15)}**")
    # 1b. A consumer built without -march flags within 1.25x of -march=native, d = 1e8.
    for label in c3_labels:
        for kernel in ("top_k", "hard_threshold"):
            r = ratio(res.time("c3", label, kernel + ".portable", p), res.time("c3", label, kernel, p))
            lines.append(f"- {kernel} built without -march flags ≤ 1.25× built with -march=native ({p}), case 3, "
                         f"k = {label}: {fmt_ratio(r)}× → **{verdict(r, lambda v: v <= 1.25)}**")
    # 2. Exact Top-k k = 1e5: <= 2.5x hard-threshold, >= 20x faster than copy + nth_element.
    tk = res.time("c3", "1e5", "top_k", p)
    r = ratio(tk, res.time("c3", "1e5", "hard_threshold", p))
    lines.append(f"- Top-k ({p}) ≤ 2.5× hard-threshold at the same density, case 3, k = 1e5: "
                 f"{fmt_ratio(r)}× → **{verdict(r, lambda v: v <= 2.5)}**")
    r = ratio(res.time("c3", "1e5", "copy_nth_element", "seq"), tk)
    lines.append(f"- Top-k ({p}) ≥ 20× faster than copy + std::nth_element, case 3, k = 1e5: "
                 f"{fmt_ratio(r)}× → **{verdict(r, lambda v: v >= 20)}**")
    # 3. par >= 1.7x seq on 2 cores for d >= 2^24.
    checks = []
    for ds, _, kcs in res.datasets:
        rows = [res.get(ds, kc[0], "top_k", "seq") for kc in kcs]
        d = next((r["d"] for r in rows if r), None)
        if d is None or d < 2 ** 24:
            continue
        for label, _ in kcs:
            for kernel in SPARSIFIERS + SPARSE_EXTRAS:
                checks.append((f"{ds} k={label} {kernel}", ratio(res.time(ds, label, kernel, "seq"),
                                                                   res.time(ds, label, kernel, p))))
        for kernel in DENSE:
            checks.append((f"{ds} {kernel}", ratio(res.time(ds, None, kernel, "seq"), res.time(ds, None, kernel, p))))
    measured = [(n, v) for n, v in checks if v is not None]
    misses = [f"{n} ({v:.2g}×)" for n, v in measured if v < 1.7]
    note = "" if res.threads == 2 else f" (this run had {res.threads} threads, the target is for 2 cores)"
    if measured:
        overall = "PASS" if not misses else "MISS"
        lines.append(f"- {p} ≥ 1.7× exec::seq for d ≥ 2^24{note}: {len(measured) - len(misses)}/{len(measured)} "
                     f"kernels → **{overall}**" + (f"; below 1.7×: {', '.join(misses)}" if misses else ""))
    else:
        lines.append(f"- {p} ≥ 1.7× exec::seq for d ≥ 2^24: **n/a (not measured)**")
    return lines


def expected_rows(res):
    p = res.par()
    par_bs = ["par:1"] + ([p] if res.threads > 1 else [])
    for ds, _, kcs in res.datasets:
        for kernel in BASELINES:
            for b in par_bs:
                yield (ds, None, kernel, b)
        for label, _ in kcs:
            for kernel in SPARSIFIERS:
                for b in res.backends():
                    yield (ds, label, kernel, b)
            for kernel in ("copy_nth_element", "scalar_threshold"):
                yield (ds, label, kernel, "seq")
            for kernel in EF_IN_PLACE:
                yield (ds, label, kernel, p)
            if ds == "c3":
                for kernel in PORTABLE:
                    yield (ds, label, kernel, p)


def render(res):
    lines = ["## Machine", ""] + machine_section(res)
    lines += ["", "## Targets", ""] + target_section(res)
    lines += ["", "## Ratios", "",
              "Times over times in the same run; the user baselines run on one thread.", ""] + ratio_section(res)
    lines += ["", "## Thread scaling", ""] + scaling_section(res)
    lines += ["", "## Per case", "",
              "GB/s counts the dense input: d floats (g and e, 2d floats, for the EF step and same_bytes). "
              "× read = read GB/s / row GB/s at the same thread count (seq and user baselines: one thread)."]
    lines += case_sections(res)
    if res.errors:
        lines += ["", "## Errors", ""] + [f"- {e}" for e in res.errors]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="gradcomp_bench --benchmark_out file (JSON)")
    ap.add_argument("--out", help="also write the Markdown here")
    ap.add_argument("--quiet", action="store_true", help="do not print the table")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if a benchmark failed or an expected row is missing")
    args = ap.parse_args(argv)
    with open(args.json, encoding="utf-8") as f:
        res = Results(json.load(f))
    text = render(res)
    if not args.quiet:
        sys.stdout.write(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    if args.strict:
        problems = list(res.errors)
        if not res.datasets:
            problems.append("no data sets in the JSON context")
        problems += ["missing: " + "/".join(x for x in key if x is not None)
                     for key in expected_rows(res) if key not in res.rows]
        if problems:
            sys.stderr.write("bench_table.py --strict:\n" + "\n".join("  " + p for p in problems) + "\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
