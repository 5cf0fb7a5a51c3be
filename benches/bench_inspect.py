#!/usr/bin/env python3
"""Benchmarks `etcdsnap inspect` on the ~1 GiB benchmark snapshot.

    python3 benches/bench_inspect.py [--snapshot FILE] [--size-mib 1024] [--runs 3]
                                     [--flat SMALL LARGE]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1 if missing).
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs:
     etcdsnap ls FILE        (one full listing)
     etcdsnap inspect FILE   (target: <= 1.5 x ls)
     etcdsnap inspect FILE -w json
     etcdsnap inspect FILE --html benches/work/inspect.html (target: <= 1.2 x
       inspect; the page <= 2 MiB)
   and the peak anonymous memory (heap, not the mapped file) of each.
4. With --flat SMALL LARGE (two snapshots with the same keys, LARGE's values
   bigger, e.g. bench_diff.py's diff-before-64MiB-3000c-small.db and its -x4):
   inspect's peak anonymous memory on each — it should not follow the values.
Prints Markdown tables for BENCHMARKS.md.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import best, bench_snapshot_and_binary, measure, warm  # noqa: E402


def inspect_bench(ours, snap, runs):
    warm(snap)
    rows = []
    ls = best([ours, "ls", snap], runs)
    rows.append(("ls", ls))
    page = os.path.join(HERE, "work", "inspect.html")
    for label, cmd in (("inspect", [ours, "inspect", snap]),
                       ("inspect -w json", [ours, "inspect", snap, "-w", "json"]),
                       ("inspect --html", [ours, "inspect", snap, "--html", page])):
        rows.append((label, best(cmd, runs)))
    print(f"| command on {os.path.basename(snap)} ({os.path.getsize(snap) >> 20} MiB) "
          "| seconds (best of {runs}) | x ls | peak anonymous MiB |".replace("{runs}", str(runs)))
    print("|---|---|---|---|")
    for label, (sec, _rss, anon, _out) in rows:
        print(f"| `etcdsnap {label}` | {sec:.2f} | {sec / ls[0]:.2f} | {anon / 1024:.0f} |")
    plain = dict(rows)["inspect"][0]
    html = dict(rows)["inspect --html"][0]
    print(f"\n`inspect --html` / `inspect`: {html / plain:.2f} (target <= 1.2); "
          f"the page: {os.path.getsize(page)} bytes (target <= 2 MiB)")
    return rows


def flat_memory(ours, small, large):
    print("| snapshot | size MiB | inspect peak anonymous MiB |")
    print("|---|---|---|")
    for snap in (small, large):
        warm(snap)
        _sec, _rss, anon, _out = measure([ours, "inspect", snap], sample=True)
        print(f"| {os.path.basename(snap)} | {os.path.getsize(snap) >> 20} | {anon / 1024:.0f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flat", nargs=2, metavar=("SMALL", "LARGE"))
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    inspect_bench(ours, snap, args.runs)
    if args.flat:
        flat_memory(ours, *args.flat)


if __name__ == "__main__":
    main()
