#!/usr/bin/env python3
"""Benchmarks `etcdsnap hashkv` on the ~1 GiB benchmark snapshot.

    python3 benches/bench_hashkv.py [--snapshot FILE] [--size-mib 1024] [--runs 3]
                                    [--also FILE ...]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1 if missing).
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs:
     etcdsnap ls FILE                 (one full listing)
     etcdsnap hashkv FILE             (target: <= 1.5 x ls)
     etcdsnap hashkv FILE --revision R (R: half the snapshot's revision)
   and the peak anonymous memory (heap, not the mapped file) of each; then
   checks the hash against `etcdutl hashkv` of etcd 3.6.16 (if .ci/etcd-build
   built it) and times that too, on a copy: etcdutl opens the file read-write
   and changes it.
4. --also FILE …: the same for other snapshots (a compacted one exercises the
   key-index path: the benchmark file was never compacted).
Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
from bench import WORK, best, bench_snapshot_and_binary, warm  # noqa: E402


def etcdutl36():
    try:
        from etcd_tools import built_bin
        return built_bin("3.6", "etcdutl")
    except SystemExit:
        return None


def hashkv_bench(ours, snap, runs):
    warm(snap)
    info = json.loads(subprocess.run([ours, "hashkv", snap, "-w", "json"], check=True,
                                     capture_output=True).stdout)[0]["HashKV"]
    current, compact = info["header"]["revision"], info["compact_revision"]
    half = max(compact, current // 2, 1)
    rows = [("ls", best([ours, "ls", snap], runs))]
    rows.append(("hashkv", best([ours, "hashkv", snap], runs)))
    rows.append((f"hashkv --revision {half}", best([ours, "hashkv", snap, "--revision", str(half)], runs)))
    ls = rows[0][1][0]
    print(f"\n{os.path.basename(snap)} ({os.path.getsize(snap) >> 20} MiB, revision {current}, "
          f"compact revision {compact}):\n")
    print(f"| command | seconds (best of {runs}) | x ls | peak anonymous MiB |")
    print("|---|---|---|---|")
    for label, (sec, _rss, anon, _out) in rows:
        print(f"| `etcdsnap {label}` | {sec:.2f} | {sec / ls:.2f} | {anon / 1024:.0f} |")
    eu = etcdutl36()
    if eu:
        # etcdutl opens the file read-write (bbolt) and changes it: it gets a
        # copy, never the benchmark file.
        copy = os.path.join(WORK, "hashkv-etcdutl-copy.db")
        shutil.copyfile(snap, copy)
        try:
            r = best([eu, "hashkv", copy, "-w", "json"], 1)
        finally:
            os.unlink(copy)
        theirs = json.loads(r[3])
        same = theirs["hash"] == info["hash"] and theirs["compactRevision"] == compact
        print(f"| `etcdutl hashkv` 3.6.16 | {r[0]:.2f} | {r[0] / ls:.2f} | {r[2] / 1024:.0f} |")
        print(f"\nhash {info['hash']}: {'equal to' if same else 'DIFFERENT FROM'} etcdutl 3.6.16's "
              f"({theirs['hash']})")
        if not same:
            sys.exit(1)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--also", nargs="*", default=[])
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    for s in [snap, *args.also]:
        hashkv_bench(ours, s, args.runs)


if __name__ == "__main__":
    main()
