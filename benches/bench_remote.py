#!/usr/bin/env python3
"""Benchmarks remote reads against the floor, on the ~1.4 GB benchmark file in
a real S3 gateway (versitygw v1.8.0, as the tests use it) on loopback.

    python3 benches/bench_remote.py [--snapshot FILE] [--size-mib 1024] [--runs 3] [--key KEY]

1. Uses FILE, else benches/work/bench-objects-<size>MiB.db (made once by
   benches/bench.py's make_snapshot with a real etcd 3.5.1), and a release
   build of etcdsnap.
2. Starts versitygw (posix backend in benches/work/s3, not committed) and
   uploads the file with curl.
3. Times, best of --runs, in one run:
     curl GET of the object to /dev/null   (the floor)
     etcdsnap verify s3://…                (target: <= 1.2 x the floor)
   (and again with loopback shaped to each --link-gbit rate, as a network
   link would limit it: unshaped, server and client share the two cores)
   and `etcdsnap get s3://… KEY -v`: the first (no key index: the object is
   read whole and the index cached) and then with the index (read by
   ranges): time, and requests and bytes as the server's access log and
   etcdsnap's -v count them (target: <= 40 requests, <= 4 MiB); `ls` of
   the key's namespace, by ranges with the cached index and read whole.
Prints Markdown tables for BENCHMARKS.md.
"""

import argparse
import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench import WORK, bench_snapshot_and_binary, warm  # noqa: E402

ACCESS, SECRET = "etcdsnapBENCHKEY", "etcdsnap-bench-secret-51c2"
BUCKET, OBJECT = "bench", "nightly/snap.db"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def versitygw():
    cache = os.environ.get("ETCDSNAP_CI_CACHE", os.path.expanduser("~/.cache/etcdsnap-ci"))
    b = os.path.join(cache, "versitygw-v1.8.0", "versitygw")
    if not os.path.isfile(b):
        raise SystemExit(f"{b} is missing: run bash .ci/versitygw")
    return b


def curl(endpoint, method, path, *extra):
    cmd = ["curl", "-sS", "-f", "-X", method, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
           "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{ACCESS}:{SECRET}", *extra,
           f"{endpoint}{path}"]
    return cmd


@contextlib.contextmanager
def shaped(rate_gbit):
    """Loopback limited to RATE_GBIT by a token bucket (tc tbf) while in the
    block; nothing when None. On loopback the server, curl and etcdsnap share
    the machine's cores, so the unshaped rows measure CPU, not a link."""
    if not rate_gbit:
        yield
        return
    subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", f"{rate_gbit:g}gbit",
                    "burst", "4mb", "latency", "100ms"], check=True)
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], check=True)


def timed(cmd, env=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode()[-500:]}")
    return dt, p.stderr.decode()


def log_requests(log, start):
    with open(log) as f:
        lines = f.read().splitlines()[start:]
    ops = [next((w for w in l.split() if w.startswith("s3_")), "?") for l in lines]
    return ops, len(lines) + start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshot")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--key", default="/registry/configmaps/ns-71/obj-211240")
    ap.add_argument("--link-gbit", type=float, nargs="*", default=[],
                    help="also time the verify rows with loopback shaped to each rate "
                         "(tc tbf on lo; needs root): a link, not the shared cores, as the limit")
    ap.add_argument("--skip-verify", action="store_true",
                    help="only the get rows (request counts do not depend on the machine's load)")
    args = ap.parse_args()
    snap, ours = bench_snapshot_and_binary(args.snapshot, args.size_mib)
    size = os.path.getsize(snap)
    root = os.path.join(WORK, "s3")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    log = os.path.join(WORK, "s3-access.log")
    if os.path.exists(log):
        os.unlink(log)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, ROOT_ACCESS_KEY=ACCESS, ROOT_SECRET_KEY=SECRET)
    gw = subprocess.Popen([versitygw(), "--port", f"127.0.0.1:{port}", "--quiet",
                           "--access-log", log, "posix", root],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tempfile.mkdtemp(prefix="etcdsnap-bench-cache-")
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        subprocess.run(curl(endpoint, "PUT", f"/{BUCKET}"), check=True)
        subprocess.run(curl(endpoint, "PUT", f"/{BUCKET}/{OBJECT}", "-T", snap), check=True,
                       stdout=subprocess.DEVNULL)
        warm(os.path.join(root, BUCKET, OBJECT))
        ours_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        ours_env.update(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                        AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true", ETCDSNAP_CACHE_DIR=cache)
        url = f"s3://{BUCKET}/{OBJECT}"
        print(f"| on {os.path.basename(snap)} ({size >> 20} MiB) in versitygw | link | seconds (best of {args.runs}) | ratio | target |")
        print("|---|---|---|---|---|")
        for rate in ([] if args.skip_verify else [None] + args.link_gbit):
            with shaped(rate):
                floor = min(timed(curl(endpoint, "GET", f"/{BUCKET}/{OBJECT}", "-o", "/dev/null"))[0]
                            for _ in range(args.runs))
                # What any check that hashes the object costs at least: the
                # GET with a sha256 of its bytes as they arrive.
                hashed = min(timed(["bash", "-c", "set -o pipefail; " + " ".join(
                    shlex.quote(a) for a in curl(endpoint, "GET", f"/{BUCKET}/{OBJECT}"))
                    + " | openssl dgst -sha256 >/dev/null"])[0] for _ in range(args.runs))
                verify = min(timed([ours, "verify", url, "-q"], ours_env)[0] for _ in range(args.runs))
                said = timed([ours, "verify", url, "-q", "-v"], ours_env)[1]
            link = f"loopback shaped to {rate:g} Gbit/s" if rate else "loopback"
            print(f"| curl GET to /dev/null (the floor) | {link} | {floor:.2f} | 1.00 | |")
            print(f"| curl GET \\| openssl dgst -sha256 | {link} | {hashed:.2f} | {hashed / floor:.2f} | |")
            print(f"| `etcdsnap verify s3://…` | {link} | {verify:.2f} | {verify / floor:.2f} | <= 1.2 |")
            beside = [l.split(": read while it streamed in ")[-1] for l in said.splitlines()
                      if "read while it streamed in" in l]
            print(f"|   checked beside the transfer: {beside[0].strip('()') if beside else 'no'} | | | | |")
        print()
        _, mark = log_requests(log, 0)
        first, err1 = timed([ours, "get", url, args.key, "-o", "raw", "-v"], ours_env)
        ops1, mark = log_requests(log, mark)
        rows = []
        best = None
        for _ in range(args.runs):
            t, err = timed([ours, "get", url, args.key, "-o", "raw", "-v"], ours_env)
            time.sleep(0.3)
            ops, mark = log_requests(log, mark)
            best = t if best is None else min(best, t)
            rows.append((ops, err))
        ops, err = rows[-1]
        said = [l for l in err.splitlines() if "read by ranges" in l]
        print(f"| `etcdsnap get s3://… KEY` | seconds | server's log | etcdsnap -v |")
        print("|---|---|---|---|")
        print(f"| first (no key index: read whole, index cached) | {first:.2f} | {', '.join(sorted(set(ops1)))} ({len(ops1)}) | |")
        print(f"| with the cached index (best of {args.runs}) | {best:.3f} | {ops.count('s3_GetObject')} GetObject, {ops.count('s3_HeadObject')} HeadObject | {said[0].split(': read by ranges: ')[-1] if said else '?'} |")
        # `ls` of the key's namespace: with the cached index (by ranges), and
        # with the ranges refused (ETCDSNAP_CACHE_DIR empty: read whole).
        prefix = args.key.rsplit("/", 1)[0] + "/"
        ls = [ours, "ls", url, prefix, "-v"]
        best = None
        for _ in range(args.runs):
            time.sleep(0.3)
            _, mark = log_requests(log, mark)
            t, err = timed(ls, ours_env)
            best = t if best is None else min(best, t)
        time.sleep(0.3)
        ops, mark = log_requests(log, mark)
        rows_ranged = subprocess.run(ls, env=ours_env, capture_output=True, check=True).stdout
        said = [l for l in err.splitlines() if "read by ranges" in l]
        empty = tempfile.mkdtemp(prefix="etcdsnap-bench-cache-")
        try:
            whole, _ = timed(ls, dict(ours_env, ETCDSNAP_CACHE_DIR=empty))
            rows_whole = subprocess.run(ls, env=dict(ours_env, ETCDSNAP_CACHE_DIR=empty),
                                        capture_output=True, check=True).stdout
        finally:
            shutil.rmtree(empty, ignore_errors=True)
        time.sleep(0.3)
        _, mark = log_requests(log, mark)
        same = "same rows" if rows_ranged == rows_whole else "ROWS DIFFER"
        n = max(len(rows_ranged.splitlines()) - 1, 0)
        print(f"| `ls s3://… {prefix}` ({n} keys, {same}), cached index (best of {args.runs}) | {best:.3f} | {ops.count('s3_GetObject')} GetObject, {ops.count('s3_HeadObject')} HeadObject | {said[0].split(': read by ranges: ')[-1] if said else '?'} |")
        print(f"| the same `ls`, no index (read whole) | {whole:.2f} | | |")
        # The index beside the object in the bucket, and a machine whose
        # cache is empty: the index is fetched once, then ranges.
        made = subprocess.run([ours, "index", url, "--beside"], env=ours_env, check=True,
                              capture_output=True, text=True).stdout.strip()
        index_bytes = made.split(" revisions, ")[-1].split(" bytes")[0]
        time.sleep(0.3)
        _, mark = log_requests(log, mark)
        fresh = tempfile.mkdtemp(prefix="etcdsnap-bench-cache-")
        try:
            t, err = timed([ours, "get", url, args.key, "-o", "raw", "-v"],
                           dict(ours_env, ETCDSNAP_CACHE_DIR=fresh))
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
        time.sleep(0.3)
        ops, mark = log_requests(log, mark)
        said = [l for l in err.splitlines() if "read by ranges" in l]
        print(f"| empty cache, index beside the object ({index_bytes} bytes) | {t:.3f} | {ops.count('s3_GetObject')} GetObject (one the index), {ops.count('s3_HeadObject')} HeadObject | {said[0].split(': read by ranges: ')[-1] if said else '?'} |")
    finally:
        gw.kill()
        gw.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
