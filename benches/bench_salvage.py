#!/usr/bin/env python3
"""Benchmarks `etcdsnap salvage` of a damaged copy against `etcdsnap verify`
of the intact file.

    python3 benches/bench_salvage.py [--snapshot FILE] [--size-mib 1024] [--runs 3] [--damage 1.0] [--seed 1]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1).
2. Builds etcdsnap in release mode.
3. Makes a damaged copy (benches/work/damaged-<pct>pct.db, not committed):
   --damage percent of its pages, picked with a seeded generator, overwritten
   with random bytes, as the damage suite's "1 % pages random" does.
4. Warm cache (both files read once): best of --runs of `verify` of the intact
   file and of `salvage` of the damaged copy, the output written once to the
   disk the input is on and once to /dev/shm (tmpfs: the same work without
   the disk's write and fsync), in one run, and the peak anonymous memory
   (heap; the mapped input is file-backed) and peak RSS of each; and
   `dd conv=fsync` of the output's bytes to that disk, the disk's floor.
Target: salvage <= 2 x verify. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import glob
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import WORK, best, bench_snapshot_and_binary, warm  # noqa: E402

PAGE = 4096


def damaged_copy(snap, pct, seed):
    out = os.path.join(WORK, f"damaged-{pct:g}pct-seed{seed}.db")
    if os.path.exists(out):
        return out
    size = os.path.getsize(snap)
    pages = size // PAGE
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(pages), max(1, int(pages * pct / 100))))
    tmp = out + ".tmp"
    with open(snap, "rb") as src, open(tmp, "wb") as dst:
        while True:
            b = src.read(64 << 20)
            if not b:
                break
            dst.write(b)
    with open(tmp, "r+b") as f:
        for p in picked:
            f.seek(p * PAGE)
            f.write(rng.randbytes(PAGE))
    os.rename(tmp, out)
    print(f"  {len(picked)} of {pages} pages overwritten in {out}", file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--damage", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    damaged = damaged_copy(snap, args.damage, args.seed)
    outs = {
        "disk": os.path.join(WORK, "salvaged.db"),
        "tmpfs": "/dev/shm/etcdsnap-bench-salvaged.db",
    }

    def clear():
        for o in outs.values():
            for f in glob.glob(glob.escape(o) + "*"):
                os.unlink(f)

    warm(snap)
    warm(damaged)
    rows = [("verify (intact file)", best([ours, "verify", snap, "-q"], args.runs))]
    for where, o in outs.items():
        # --force: the untimed memory run finds the last run's output (moved
        # aside, removed below).
        cmd = [ours, "salvage", damaged, "-o", o, "--force"]
        rows.append((f"salvage ({args.damage:g} % pages random), output on {where}",
                     best(cmd, args.runs, before=clear, ok=(0, 1))))
    # The disk's floor for the output: its bytes (the tmpfs copy, left by
    # the last run) written to the disk with an fsync, as dd does it.
    floor_out = os.path.join(WORK, "dd-floor.db")

    def clear_floor():
        if os.path.exists(floor_out):
            os.unlink(floor_out)

    rows.append(("dd conv=fsync of the salvaged output to the disk (its floor)",
                 best(["dd", f"if={outs['tmpfs']}", f"of={floor_out}", "bs=4M", "conv=fsync",
                       "status=none"], args.runs, before=clear_floor)))
    clear_floor()
    clear()
    size = os.path.getsize(snap)
    print(f"| command on {os.path.basename(snap)} ({size >> 20} MiB) | seconds (best of {args.runs}) "
          "| ratio to verify | peak RSS MiB | peak anonymous MiB |")
    print("|---|---|---|---|---|")
    base = rows[0][1][0]
    for label, (sec, rss, anon, _out) in rows:
        print(f"| `{label}` | {sec:.2f} | {sec / base:.2f} | {rss / 1024:.0f} | {anon / 1024:.0f} |")
    print("\ntarget: salvage <= 2 x verify", file=sys.stderr)


if __name__ == "__main__":
    main()
