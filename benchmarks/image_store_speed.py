"""Image store throughput (issue #18): photos per second written, read and de-duplicated, on a
local directory and on S3-compatible object storage, plaintext and sealed (CANDOR_DB_KEY), side by
side in one run.

The object store here is moto's standalone S3 server on loopback (tests/s3_server.py): a Python
server, so its figures are a floor for the client side of Candor, not a measurement of AWS S3,
MinIO or Ceph. Bounded: ``--photos`` blobs (default 60) of ``--mb`` MB (default 1.5, a clinic JPEG)
per case; loopback only.

    .venv/bin/python benchmarks/image_store_speed.py
    .venv/bin/python benchmarks/image_store_speed.py --photos 100 --mb 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:7.1f}/s ({seconds / count * 1e3:6.1f} ms)"


def run_case(store: object, blobs: list[bytes]) -> dict[str, str]:
    from analysis.store.images import ImageStore

    assert isinstance(store, ImageStore)
    t0 = time.perf_counter()
    names = [store.put(b) for b in blobs]
    t1 = time.perf_counter()
    for b in blobs:  # de-duplicated: already stored, not rewritten
        store.put(b)
    t2 = time.perf_counter()
    for n in names:
        store.get(n, verify=True)
    t3 = time.perf_counter()
    for n in names:
        for _ in store.stream(n, chunk_size=256 * 1024):
            pass
    t4 = time.perf_counter()
    n = len(blobs)
    return {
        "put": _rate(n, t1 - t0),
        "put again": _rate(n, t2 - t1),
        "get+verify": _rate(n, t3 - t2),
        "stream": _rate(n, t4 - t3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--mb", type=float, default=1.5)
    args = parser.parse_args()
    if not 1 <= args.photos <= 1000 or not 0 < args.mb <= 20:
        parser.error("--photos 1..1000, --mb up to 20")

    from analysis.config import S3Settings
    from analysis.store.images import ImageStore, S3ImageStore
    from tests.support import s3_server

    size = int(args.mb * 1024 * 1024)
    print(
        f"{args.photos} blobs of {size / 1e6:.2f} MB per case; {os.cpu_count()} CPUs; "
        "S3 = moto on loopback"
    )
    endpoint, stop = s3_server.start_s3_server()
    try:
        settings = S3Settings(
            endpoint=endpoint,
            region=s3_server.REGION,
            access_key_id=s3_server.ACCESS_KEY,
            secret_access_key=s3_server.SECRET_KEY,
            session_token=None,
        )
        key = os.urandom(32)
        with tempfile.TemporaryDirectory(prefix="candor-store-bench-") as tmp:
            rows = []
            for sealed in (False, True):
                for backend in ("file", "s3"):
                    blobs = [os.urandom(size) for _ in range(args.photos)]  # fresh names
                    if backend == "file":
                        store: ImageStore = ImageStore(
                            Path(tmp) / f"img-{sealed}", key=key if sealed else None
                        )
                    else:
                        bucket = f"bench-{int(sealed)}-{os.getpid()}"
                        s3_server.make_bucket(endpoint, bucket)
                        store = S3ImageStore(
                            f"s3://{bucket}/clinic", settings, key=key if sealed else None
                        )
                    rows.append((backend, "sealed" if sealed else "plain", run_case(store, blobs)))
        cols = ["put", "put again", "get+verify", "stream"]
        print(f"{'store':6} {'form':7} " + " ".join(f"{c:>24}" for c in cols))
        for backend, form, res in rows:
            print(f"{backend:6} {form:7} " + " ".join(f"{res[c]:>24}" for c in cols))
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
