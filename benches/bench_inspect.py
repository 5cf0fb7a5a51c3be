#!/usr/bin/env python3
"""Benchmarks `etcdsnap inspect` (issue 12) on the ~1 GiB benchmark snapshot.

    python3 benches/bench_inspect.py [--snapshot FILE] [--size-mib 1024] [--runs 3]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1 if missing).
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs:
     etcdsnap ls FILE        (one full listing)
     etcdsnap inspect FILE   (target: <= 1.5 x ls)
     etcdsnap inspect FILE -w json
   and the peak anonymous memory (heap, not the mapped file) of each.
Prints a Markdown table for the README.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import WORK, best, make_snapshot, warm  # noqa: E402


def inspect_bench(ours, snap, runs):
    warm(snap)
    rows = []
    ls = best([ours, "ls", snap], runs)
    rows.append(("ls", ls))
    for label, cmd in (("inspect", [ours, "inspect", snap]),
                       ("inspect -w json", [ours, "inspect", snap, "-w", "json"])):
        rows.append((label, best(cmd, runs)))
    print(f"| command on {os.path.basename(snap)} ({os.path.getsize(snap) >> 20} MiB) "
          "| seconds (best of {runs}) | x ls | peak anonymous MiB |".replace("{runs}", str(runs)))
    print("|---|---|---|---|")
    for label, (sec, _rss, anon, _out) in rows:
        print(f"| `etcdsnap {label}` | {sec:.2f} | {sec / ls[0]:.2f} | {anon / 1024:.0f} |")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    snap = args.snapshot or os.path.join(WORK, f"bench-objects-{args.size_mib}MiB.db")
    if not os.path.exists(snap):
        os.makedirs(WORK, exist_ok=True)
        print(f"making {snap} with etcd 3.5 …", file=sys.stderr)
        make_snapshot(snap, args.size_mib, "3.5")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    inspect_bench(os.path.join(ROOT, "target", "release", "etcdsnap"), snap, args.runs)


if __name__ == "__main__":
    main()
