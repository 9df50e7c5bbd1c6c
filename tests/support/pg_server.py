"""A throw-away PostgreSQL server started from Debian's binaries (tests and benchmarks).

Plain functions, no pytest: ``tests/conftest.py`` wraps :func:`start_postgres` in a fixture and
``benchmarks/page_speed.py --postgres`` uses it directly.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(
    *, databases: tuple[str, ...] = ("candor",), root: str | None = None, fsync: bool = False
) -> tuple[str, Callable[[], None]]:
    """Start a private PostgreSQL cluster on a unix socket; return (URL of the first database,
    stop). ``root`` keeps the cluster in that folder (made if missing) instead of a temporary
    one; ``stop`` then leaves its files."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise RuntimeError("PostgreSQL server binaries not installed (Debian package postgresql)")
    bindir = os.path.dirname(bins[-1])
    keep = root is not None
    root = root or tempfile.mkdtemp(prefix="candor-pg-")
    os.makedirs(root, exist_ok=True)
    datadir = os.path.join(root, "data")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use the postgres system user
        shutil.chown(root, user="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    fresh = not os.path.exists(os.path.join(datadir, "PG_VERSION"))
    if fresh:
        subprocess.run(
            run_as
            + [f"{bindir}/initdb", "-D", datadir, "-U", "postgres", "-A", "trust", "--no-sync"],
            check=True,
            capture_output=True,
        )
    sync = "on" if fsync else "off"
    subprocess.run(
        run_as
        + [
            f"{bindir}/pg_ctl",
            "-D",
            datadir,
            "-w",
            "-l",
            f"{root}/log",
            "-o",
            f"-p {port} -k {root} -c listen_addresses='' -c fsync={sync}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    if fresh:
        for name in databases:
            subprocess.run(
                run_as
                + [f"{bindir}/createdb", "-h", root, "-p", str(port), "-U", "postgres", name],
                check=True,
                capture_output=True,
            )

    def stop() -> None:
        subprocess.run(
            run_as
            + [f"{bindir}/pg_ctl", "-D", datadir, "-m", "fast" if keep else "immediate", "stop"],
            capture_output=True,
        )
        if not keep:
            shutil.rmtree(root, ignore_errors=True)

    return f"postgresql+psycopg://postgres@/{databases[0]}?host={root}&port={port}", stop


def clinic_databases(
    root: str, sizes: tuple[int, ...]
) -> tuple[dict[int, str], Callable[[], None]]:
    """One database ``candor_<N>`` per clinic size on a server kept in ``root`` (the benchmarks'
    seeded clinics): their URLs by size, and stop."""
    names = tuple(f"candor_{n}" for n in sizes)
    url, stop = start_postgres(databases=names, root=root)
    return {n: url.replace(f"/{names[0]}?", f"/candor_{n}?") for n in sizes}, stop
