#!/usr/bin/env python3
"""Benchmarks `etcdsnap save` against `etcdctl snapshot save` on a
live ~1 GiB etcd 3.5.1 member.

    python3 benches/bench_save.py [--snapshot FILE] [--runs 3] [--no-build]

1. Builds etcdsnap in release mode (unless --no-build).
2. Restores FILE (default: benches/work/bench-objects-1024MiB.db, which
   benches/bench.py makes) with `etcdsnap restore` into a
   temporary data dir under benches/work, and starts etcd 3.5.1 on it.
3. Times, alternately, best of --runs: `etcdctl snapshot save OUT` (3.5.1) and
   `etcdsnap save OUT --no-verify --force` (target <= 1.1 x etcdctl); checks
   that both files have the same `etcdutl snapshot status` hash and revision.
4. Stops etcd and deletes the data dir and the saved files.
Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
from etcd_tools import VERSIONS  # noqa: E402

WORK = os.path.join(HERE, "work")
DEFAULT_SNAPSHOT = os.path.join(WORK, "bench-objects-1024MiB.db")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, ETCDCTL_API="3"))
    return time.perf_counter() - t0


def status(etcdutl, path):
    out = subprocess.run([etcdutl, "snapshot", "status", "-w", "json", path],
                         check=True, capture_output=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    snap = args.snapshot or DEFAULT_SNAPSHOT
    if not os.path.exists(snap):
        sys.exit("no benchmark snapshot: run benches/bench.py first (it makes one), or pass --snapshot")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "etcdsnap")
    etcd, etcdctl = VERSIONS["3.5"]["etcd"](), VERSIONS["3.5"]["etcdctl"]()
    etcdutl = os.path.join(os.path.dirname(etcdctl), "etcdutl")
    os.makedirs(WORK, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-save-", dir=WORK)
    proc = None
    try:
        data = os.path.join(tmp, "data")
        peer, client = free_port(), free_port()
        purl, curl = f"http://127.0.0.1:{peer}", f"http://127.0.0.1:{client}"
        subprocess.run([ours, "restore", snap, "--data-dir", data, "--name", "bench",
                        "--initial-cluster", f"bench={purl}", "--initial-advertise-peer-urls", purl],
                       check=True, stdout=subprocess.DEVNULL)
        log = open(os.path.join(tmp, "etcd.log"), "wb")
        proc = subprocess.Popen([etcd, "--name", "bench", "--data-dir", data,
                                 "--listen-client-urls", curl, "--advertise-client-urls", curl,
                                 "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                                 "--initial-cluster", f"bench={purl}", "--quota-backend-bytes",
                                 str(8 << 30)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while subprocess.run([etcdctl, "--endpoints", curl, "endpoint", "health"],
                             capture_output=True).returncode != 0:
            if time.time() > deadline or proc.poll() is not None:
                sys.exit(f"etcd did not start; log in {log.name}")
            time.sleep(0.5)
        theirs_out, ours_out = os.path.join(tmp, "etcdctl.db"), os.path.join(tmp, "etcdsnap.db")
        theirs, mine = [], []
        for _ in range(args.runs):
            for p in (theirs_out, ours_out):
                if os.path.exists(p):
                    os.remove(p)
            theirs.append(timed([etcdctl, "--endpoints", curl, "snapshot", "save", theirs_out]))
            mine.append(timed([ours, "save", ours_out, "--endpoints", curl, "--no-verify", "--force"]))
        a, b = status(etcdutl, theirs_out), status(etcdutl, ours_out)
        if (a["hash"], a["revision"]) != (b["hash"], b["revision"]):
            sys.exit(f"files differ: etcdctl {a}, etcdsnap {b}")
        size = os.path.getsize(ours_out) >> 20
        t, m = min(theirs), min(mine)
        print(f"| command ({size} MiB, etcd 3.5.1 on loopback) | seconds (best of {args.runs}) | x etcdctl |")
        print("|---|---|---|")
        print(f"| `etcdctl snapshot save` | {t:.2f} | 1.00 |")
        print(f"| `etcdsnap save --no-verify` | {m:.2f} | {m / t:.2f} |")
        print(f"\nall runs: etcdctl {', '.join(f'{x:.2f}' for x in theirs)}; "
              f"etcdsnap {', '.join(f'{x:.2f}' for x in mine)}; same hash {a['hash']} and revision "
              f"{a['revision']}")
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
