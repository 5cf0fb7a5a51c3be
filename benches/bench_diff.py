#!/usr/bin/env python3
"""Benchmarks `etcdsnap diff` on two ~1 GiB snapshots of one cluster.

    python3 benches/bench_diff.py [--size-mib 1024] [--changes 3000] [--runs 3] [--flat-mib 64]

1. Makes (once; kept in benches/work/, not committed) two snapshots with a real
   etcd 3.5.1 on loopback: the benchmark cluster of benches/bench.py (the same
   Kubernetes objects from the API's serialization fixtures, written with its
   `txn` in batches of 100, with history), saved as BEFORE; then --changes
   changes (a third updates of ConfigMaps to other values, a third deletes, a
   third new objects), saved as AFTER.
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs:
     etcdsnap ls AFTER                 (one full listing of the larger file)
     etcdsnap diff BEFORE AFTER --stat (target: <= 2.5 x ls)
     etcdsnap diff BEFORE AFTER        (full field-level diff; target: <= 3 x ls)
     etcdsnap diff BEFORE AFTER -w json
   and the peak anonymous memory (heap, not the mapped files) of each diff,
   as MiB per 100k keys. With --flat-mib N, also a pair of N MiB and a pair
   with the same keys and changes but values 4x larger: the heap should not
   follow the value bytes.
Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
from bench import WORK, b64, object_values, pb_configmap, txn, warm  # noqa: E402
from etcd_tools import Server  # noqa: E402


def fill(s, pad, size_mib=None, count=None):
    """bench.py's benchmark cluster: Kubernetes-like keys in batched txns,
    with rewrites and deletes so the file holds history; until `size_mib` of
    keys and values, or `count` objects. With `pad` > 1 every value is a
    ConfigMap `pad` times the size of the object it stands for: the same
    keys, more value bytes."""
    target = (size_mib or 0) << 20
    written, i = 0, 0
    values = object_values()
    while (written < target) if count is None else (i < count):
        ops = []
        for _ in range(100):
            ns = f"ns-{i % 97}"
            kind, val = values[i % len(values)]
            if pad > 1:
                val = pb_configmap(len(val) * pad)
            key = f"/registry/{kind}/{ns}/obj-{i}".encode()
            ops.append({"requestPut": {"key": b64(key), "value": b64(val)}})
            written += len(key) + len(val)
            i += 1
        txn(s.endpoint, ops)
        if i % 1000 == 0:
            old = [f"/registry/configmaps/ns-{j % 97}/obj-{j}".encode() for j in range(i - 1000, i - 900, 8)]
            txn(s.endpoint, [{"requestPut": {"key": b64(k), "value": b64(values[0][1])}} for k in old])
            txn(s.endpoint, [{"requestDeleteRange": {"key": b64(k)}} for k in old[:5]])
    return i


def change(s, n, objects):
    """n changes: updates of ConfigMaps, deletes, new objects (a third each)."""
    third = max(1, n // 3)
    # Objects i with i % 8 == 0 are ConfigMaps (object_values' first kind).
    cms = [i for i in range(0, objects, 8)][: 2 * third]
    ops = []
    for j, i in enumerate(cms[:third]):
        key = f"/registry/configmaps/ns-{i % 97}/obj-{i}".encode()
        ops.append({"requestPut": {"key": b64(key), "value": b64(pb_configmap(300 + j % 500))}})
    for i in cms[third:]:
        key = f"/registry/configmaps/ns-{i % 97}/obj-{i}".encode()
        ops.append({"requestDeleteRange": {"key": b64(key)}})
    for j in range(third):
        key = f"/registry/configmaps/ns-new/added-{j}".encode()
        ops.append({"requestPut": {"key": b64(key), "value": b64(pb_configmap(200 + j % 300))}})
    for k in range(0, len(ops), 100):
        txn(s.endpoint, ops[k:k + 100])


def make_pair(before, after, changes, pad, size_mib=None, count=None):
    s = Server("3.5", extra_args=["--quota-backend-bytes", str(16 << 30),
                                "--max-request-bytes", str(4 << 20),
                                "--snapshot-count", "1000000"])
    try:
        t0 = time.time()
        objects = fill(s, pad, size_mib, count)
        print(f"  wrote {objects} objects in {time.time() - t0:.0f}s", file=sys.stderr)
        s.save_snapshot(before)
        change(s, changes, objects)
        s.save_snapshot(after)
    finally:
        s.stop()


def measure(cmd, sample=False):
    """(seconds, peak anonymous RSS KiB, stdout, CPU seconds) of cmd; exit 0 or 1 (diff's
    "differences") is success. Sampling /proc competes for the cores, so timed
    runs do not sample."""
    peak = [0]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    done = threading.Event()

    def sample_anon():
        while not done.is_set():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)

    th = threading.Thread(target=sample_anon, daemon=True)
    if sample:
        th.start()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - t0
    cpu = ru.ru_utime + ru.ru_stime
    done.set()
    if sample:
        th.join()
    if rc not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {rc}")
    return elapsed, peak[0], out, cpu


def best(cmd, runs):
    """(best wall seconds, peak heap KiB, stdout, best CPU seconds): on a
    shared machine the CPU time (user + system) is the steadier figure."""
    runs_ = [measure(cmd) for _ in range(runs)]
    t = min(r[0] for r in runs_)
    cpu = min(r[3] for r in runs_)
    _, anon, out, _ = measure(cmd, sample=True)
    return t, anon, out, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--changes", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--flat-mib", type=int, default=0,
                    help="also two value-bytes pairs: one of this size, one with the same keys and 4x the values")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "etcdsnap")
    pairs = [("", 1, args.size_mib, None)]
    rows = []
    objects_small = None
    if args.flat_mib:
        pairs += [("-small", 1, args.flat_mib, None), ("-small-x4", 4, None, "small")]
    for label, pad, size, count in pairs:
        tag = f"{size or args.flat_mib}MiB-{args.changes}c{label}"
        before = os.path.join(WORK, f"diff-before-{tag}.db")
        after = os.path.join(WORK, f"diff-after-{tag}.db")
        if not (os.path.exists(before) and os.path.exists(after)):
            print(f"making {before} and {after} …", file=sys.stderr)
            n = objects_small if count == "small" else None
            make_pair(before, after, args.changes, pad, size, n)
        larger = max(before, after, key=os.path.getsize)
        for f in (before, after):
            warm(f)
        ls = best([ours, "ls", larger], args.runs)
        keys = ls[2].count(b"\n") - 1
        if label == "-small":
            # Objects written: the live keys and the history's deletes.
            live = subprocess.run([ours, "ls", before], capture_output=True).stdout.count(b"\n") - 1
            objects_small = live * 1000 // 995
        stat = best([ours, "diff", before, after, "--stat"], args.runs)
        full = best([ours, "diff", before, after], args.runs)
        js = best([ours, "diff", before, after, "-w", "json"], args.runs)
        per = lambda kib: kib / 1024 / max(keys, 1) * 100_000  # noqa: E731
        rows.append((tag, os.path.getsize(larger), keys, ls, stat, full, js, per))
    print()
    print("| pair | larger file | live keys | ls | diff --stat | diff | diff -w json | heap, MiB per 100k keys (stat / full / json) |")
    print("|---|---|---|---|---|---|---|---|")
    for tag, size, keys, ls, stat, full, js, per in rows:
        cell = lambda r: (f"{r[0]:.2f} s ({r[0] / ls[0]:.2f}x), cpu {r[3]:.2f} s "  # noqa: E731
                          f"({r[3] / ls[3]:.2f}x)")
        print(f"| {tag} | {size / (1 << 30):.2f} GiB | {keys} | {ls[0]:.2f} s, cpu {ls[3]:.2f} s | "
              f"{cell(stat)} | {cell(full)} | {cell(js)} | "
              f"{per(stat[1]):.1f} / {per(full[1]):.1f} / {per(js[1]):.1f} |")
    print("\ntargets: diff --stat <= 2.5x ls, diff <= 3x ls (wall); cpu = user + system of all threads")

if __name__ == "__main__":
    main()
