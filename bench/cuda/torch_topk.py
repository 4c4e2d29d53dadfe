#!/usr/bin/env python3
"""PyTorch's Top-k and threshold on the GPU, on the inputs of gradcomp_cuda_bench.

Times, with CUDA events, on N(0, 1) float32 and bfloat16 vectors of the benchmark's sizes:
  topk:      torch.topk(x.abs(), k, sorted=False), then the gather of the signed values
  threshold: (x.abs() >= t).nonzero(), then the gather (t the k-th largest |x_i|)
Writes JSON (one record per case: median of 20 runs after 3 warm-ups) to stdout or --out.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    ap.add_argument("--smoke", action="store_true", help="one tiny case")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("torch_topk.py: PyTorch is not installed; nothing measured", file=sys.stderr)
        return 77
    if not torch.cuda.is_available():
        print("torch_topk.py: no CUDA device for PyTorch; nothing measured", file=sys.stderr)
        return 77
    cases = [(1 << 16, 64)] if args.smoke else [(1 << 20, (1 << 20) // 1000), (1 << 26, (1 << 26) // 1000), (100_000_000, 100_000)]
    records = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    for d, k in cases:
        x32 = torch.randn(d, device="cuda", generator=gen)
        for dtype in (torch.float32, torch.bfloat16):
            x = x32.to(dtype)
            t = torch.topk(x.abs(), k, sorted=False).values.min()

            def topk():
                idx = torch.topk(x.abs(), k, sorted=False).indices
                return x[idx]

            def threshold():
                idx = (x.abs() >= t).nonzero().squeeze(1)
                return x[idx]

            def copy():
                return x.clone()

            for name, fn in (("topk", topk), ("threshold", threshold), ("copy", copy)):
                for _ in range(3):
                    fn()
                times = []
                for _ in range(20):
                    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    stop.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(stop) * 1e3)  # microseconds
                times.sort()
                records.append({"op": name, "dtype": str(dtype).replace("torch.", ""), "d": d, "k": k,
                                "median_us": times[len(times) // 2], "min_us": times[0]})
    out = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0), "records": records}
    text = json.dumps(out, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
