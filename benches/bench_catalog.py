#!/usr/bin/env python3
"""Benchmarks the backup catalog on the ~1 GiB benchmark snapshot.

    python3 benches/bench_catalog.py [--snapshot FILE] [--size-mib 1024] [--runs 3]
                                     [--entries 1000]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1 if missing).
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs:
     etcdsnap check FILE --policy P        (P: the snapshot's own namespaces
                                            required, so the rules pass)
     etcdsnap catalog add FILE             (a new catalog each run; target:
                                            <= 1.3 x check)
4. Fills a catalog with --entries synthetic entries: the real entry of FILE,
   copied with other sha256es, revisions and counts, in 10 label series,
   through the hidden `catalog import-entries` (what `catalog list -w json`
   prints, read back); times `catalog check` over them (target: < 50 ms).
Prints Markdown tables for BENCHMARKS.md. Temporary catalogs are deleted.
"""

import argparse
import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import bench_snapshot_and_binary, warm  # noqa: E402


def run_ok(cmd):
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r.stdout


def timed_best(cmd, runs, before=None, codes=(0, 1)):
    """Best wall time of `runs` runs and its peak RSS (KiB). Exit 1 is
    accepted: `verify`/`check` of a file that fails a check still read it
    all (benchmark files have been seen with a stale sha256 trailer)."""
    results = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code not in codes:
            raise SystemExit(f"{' '.join(cmd)} exited {code}")
        results.append((elapsed, ru.ru_maxrss))
    return min(results)


def add_vs_check(ours, snap, runs, tmp):
    catalog = os.path.join(tmp, "add.redb")

    def fresh():
        if os.path.exists(catalog):
            os.remove(catalog)

    # Rules that pass on the benchmark file (its own namespaces), so that
    # `check` exits 0 and is timed doing the same reading `catalog add` does.
    fresh()
    run_ok([ours, "catalog", "add", snap, "--catalog", catalog])
    entry = json.loads(run_ok([ours, "catalog", "list", "--catalog", catalog, "-w", "json"]))[0]
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write("minNamespaces: 0\nrequiredNamespaces: []\n")
    warm(snap)
    verify = timed_best([ours, "verify", snap], runs)
    check = timed_best([ours, "check", snap, "--policy", policy], runs)
    add = timed_best([ours, "catalog", "add", snap, "--catalog", catalog], runs, before=fresh,
                     codes=(0,))
    print(f"| command on {os.path.basename(snap)} ({os.path.getsize(snap) >> 20} MiB) "
          f"| seconds (best of {runs}) | x check | peak RSS MiB (mapped file included) |")
    print("|---|---|---|---|")
    for label, (sec, rss) in (("verify", verify), ("check", check), ("catalog add", add)):
        print(f"| `etcdsnap {label}` | {sec:.2f} | {sec / check[0]:.2f} | {rss / 1024:.0f} |")
    fresh()
    return entry


def synthetic(entry, n):
    """n entries like `entry`, in 10 series, each series growing slowly and
    verified (a healthy history: `catalog check` passes, all rules run)."""
    out = []
    for i in range(n):
        e = copy.deepcopy(entry)
        series, step = i % 10, i // 10
        e["sha256"] = hashlib.sha256(f"bench-{i}".encode()).hexdigest()
        e["path"] = f"/backups/series-{series}/snap-{step:04d}.db"
        e["labels"] = {"cluster": f"c{series}", "env": "bench"}
        e["added"] = entry["added"] + step * 3600
        e["revision"] = entry["revision"] + step * 1000
        e["verify"] = {"passed": True, "problems": 0}
        e["objects"] = {r: c + step for r, c in entry["objects"].items()}
        e["namespaces"] = {ns: {r: c + step for r, c in per.items()}
                           for ns, per in entry["namespaces"].items()}
        out.append(e)
    return out


def trend_bench(ours, entry, n, runs, tmp):
    catalog = os.path.join(tmp, "trend.redb")
    entries = os.path.join(tmp, "entries.json")
    with open(entries, "w") as f:
        json.dump(synthetic(entry, n), f)
    run_ok([ours, "catalog", "import-entries", entries, "--catalog", catalog])
    size = os.path.getsize(catalog)
    check = timed_best([ours, "catalog", "check", "--catalog", catalog], runs, codes=(0,))
    lst = timed_best([ours, "catalog", "list", "--catalog", catalog, "-w", "json"], runs,
                     codes=(0,))
    print()
    print(f"| command on a catalog of {n} entries ({size >> 10} KiB; "
          f"{len(entry['objects'])} resources, {len(entry['namespaces'])} namespaces each) "
          f"| ms (best of {runs}) |")
    print("|---|---|")
    print(f"| `etcdsnap catalog check` (10 series) | {check[0] * 1000:.0f} |")
    print(f"| `etcdsnap catalog list -w json` | {lst[0] * 1000:.0f} |")
    os.remove(catalog)
    os.remove(entries)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--entries", type=int, default=1000)
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    with tempfile.TemporaryDirectory(prefix="etcdsnap-bench-catalog-") as tmp:
        entry = add_vs_check(ours, snap, args.runs, tmp)
        trend_bench(ours, entry, args.entries, max(args.runs, 5), tmp)


if __name__ == "__main__":
    main()
