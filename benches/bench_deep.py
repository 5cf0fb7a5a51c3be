#!/usr/bin/env python3
"""Benchmarks `etcdsnap verify --deep` against `etcdsnap verify`.

    python3 benches/bench_deep.py [--snapshot FILE] [--size-mib 1024] [--runs 3] [--pairs 5]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1: the Kubernetes
   serialization fixtures as values, each object's metadata.name/namespace
   set to what its key names, so the kube-values check passes as on a real
   cluster).
2. Builds etcdsnap in release mode.
3. Warm cache: best of --runs of `verify` and of `verify --deep`, then --pairs
   runs of the two in turns (the median of per-pair ratios is the figure: it
   is what the target, verify --deep <= 2 x verify, is judged on), and the
   peak anonymous memory (heap, not the mapped file) of each.
Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import best, bench_snapshot_and_binary, measure, warm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=5)
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    plain = [ours, "verify", snap, "-q"]
    deep = [ours, "verify", "--deep", snap, "-q"]
    warm(snap)
    v = best(plain, args.runs)
    d = best(deep, args.runs)
    ratios = []
    for _ in range(args.pairs):
        a = measure(plain)[0]
        b = measure(deep)[0]
        ratios.append(b / a)
    print(f"| command on {os.path.basename(snap)} ({os.path.getsize(snap) >> 20} MiB) "
          f"| seconds (best of {args.runs}) | peak anonymous MiB |")
    print("|---|---|---|")
    for label, (sec, _rss, anon, _out) in (("verify", v), ("verify --deep", d)):
        print(f"| `etcdsnap {label}` | {sec:.2f} | {anon / 1024:.0f} |")
    print(f"\nverify --deep / verify: best-of ratio {d[0] / v[0]:.2f}, "
          f"median of {args.pairs} pairs {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}; target <= 2)")


if __name__ == "__main__":
    main()
