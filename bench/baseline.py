"""Ceilings and floors, run as a child like the tools so they are measured the same way.

  python3 -m bench.baseline put   --auth URL --user U --key K --bucket B --threads N --tree DIR
  python3 -m bench.baseline put   ... --big FILE --segment BYTES   (segments only, no manifest)
  python3 -m bench.baseline floor --auth URL --user U --key K --bucket B --tree DIR

``put``: a minimal threaded client, one requests.Session per thread, no hashing, no checks;
with ``--md5`` it also hashes each body before sending it, which is the least any client
that checks what the server stored must add (the CPU it costs, on CPUs the server shares).
``get``: the restore ceiling, the same minimal client reading: every object under the
tree's prefix into ``--dest`` (no hashing, no checks); with ``--big``, the one large object
as parallel ranged GETs of ``--segment`` bytes, each written where it belongs.
``floor``: what a no-change rerun cannot avoid: os.walk + stat of the tree, and the paged
JSON listing of the bucket. Both print one JSON line with their own split timings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import requests

from bench.store import Store

_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "s"):
        _local.s = requests.Session()
    s: requests.Session = _local.s
    return s


def put(args: argparse.Namespace) -> dict[str, object]:
    store = Store(args.auth, args.user, args.key)
    token, url = store.auth()
    tree = Path(args.tree)

    def send(container: str, name: str, data: bytes) -> None:
        if args.md5:
            hashlib.md5(data).hexdigest()
        r = _session().put(
            f"{url}/{quote(container)}/{quote(name)}",
            data=data,
            headers={"X-Auth-Token": token},
            timeout=600,
        )
        r.raise_for_status()

    if args.big:
        container, size, seg = f"{args.bucket}_segments", os.path.getsize(args.big), args.segment
        store.create(container)

        def one_segment(i: int) -> None:
            with open(args.big, "rb") as f:
                f.seek(i * seg)
                send(container, f"{tree.name}/big.bin/{i:08d}", f.read(seg))

        jobs = range((size + seg - 1) // seg)
        work = one_segment
    else:
        store.create(args.bucket)
        files = [Path(d, n) for d, _, names in os.walk(tree) for n in names]

        def one_file(path: Path) -> None:
            send(args.bucket, f"{tree.name}/{path.relative_to(tree)}", path.read_bytes())

        jobs, work = files, one_file  # type: ignore[assignment]
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(work, jobs))
    return {"objects": len(jobs)}


def get(args: argparse.Namespace) -> dict[str, object]:
    store = Store(args.auth, args.user, args.key)
    token, url = store.auth()
    prefix = f"{Path(args.tree).name}/"
    dest = Path(args.dest)
    headers = {"X-Auth-Token": token}

    def fetch(name: str, out: Path, offset: int = 0, length: int = 0) -> None:
        h = dict(headers)
        if length:
            h["Range"] = f"bytes={offset}-{offset + length - 1}"
        r = _session().get(f"{url}/{quote(args.bucket)}/{quote(name)}", headers=h,
                           stream=True, timeout=600)  # fmt: skip
        r.raise_for_status()
        fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            pos = offset
            for chunk in r.raw.stream(1 << 20, decode_content=False):
                os.pwrite(fd, chunk, pos)
                pos += len(chunk)
        finally:
            os.close(fd)
            r.close()

    if args.big:
        name = f"{prefix}big.bin"
        size = int(
            store._req("HEAD", f"/{quote(args.bucket)}/{quote(name)}").headers["Content-Length"]
        )
        out = dest / "big.bin"
        out.parent.mkdir(parents=True, exist_ok=True)
        seg = args.segment
        ranges = [(o, min(seg, size - o)) for o in range(0, size, seg)]
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda r: fetch(name, out, *r), ranges))
        return {"objects": 1, "ranges": len(ranges)}
    names = [str(o["name"]) for page in store.pages(args.bucket, prefix) for o in page]
    for d in {str(Path(n[len(prefix) :]).parent) for n in names}:
        (dest / d).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(lambda n: fetch(n, dest / n[len(prefix) :]), names))
    return {"objects": len(names)}


def floor(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.perf_counter()
    files = 0
    for d, _, names in os.walk(args.tree):
        for n in names:
            os.stat(os.path.join(d, n))
            files += 1
    t1 = time.perf_counter()
    store = Store(args.auth, args.user, args.key)
    objects = sum(len(page) for page in store.pages(args.bucket))
    t2 = time.perf_counter()
    return {"files": files, "objects": objects, "walk_s": t1 - t0, "list_s": t2 - t1}


def md5_rate(mib: int) -> float:
    """MB/s (10^6) of hashlib.md5 on one core over a ``mib`` MiB buffer (best of 3)."""
    buf = os.urandom(mib << 20)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        hashlib.md5(buf).hexdigest()
        best = min(best, time.perf_counter() - t0)
    return len(buf) / best / 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("put", "get", "floor"))
    p.add_argument("--auth", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--tree", required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--big")
    p.add_argument("--segment", type=int, default=64 << 20)
    p.add_argument("--md5", action="store_true", help="put: hash each body before sending")
    p.add_argument("--dest", help="get: the directory to write into")
    args = p.parse_args()
    mode = {"put": put, "get": get, "floor": floor}[args.mode]
    print(json.dumps(mode(args)), flush=True)


if __name__ == "__main__":
    main()
