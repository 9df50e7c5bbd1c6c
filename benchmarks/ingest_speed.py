"""Ingest speed, each figure beside its naive baseline measured in the same run.

1. ``read_photo`` on a 12 MP (4032 x 3024) JPEG with ``max_side=1280``: libjpeg DCT-scaled decode
   (``Image.draft``) then a resize, versus the naive full decode + resize, and versus Pillow's
   ``ImageOps.exif_transpose`` + ``thumbnail`` recipe. Peak resident memory of each is measured in a
   fresh child process (rise of ``VmHWM`` over ``VmRSS`` after the imports, Linux), so the runs
   do not share a heap.
2. The isolated worker: ``analyse_in_worker`` (fork-server child, limits, default target
   ``read_photo`` + ``measure_photo``) with no standby (a cold child imports mediapipe and builds
   FaceMesh) and with the warm standby ready, versus the same two calls in-process.
3. A multi-file upload: ``--uploads`` 12 MP JPEGs through ``analyse_in_worker`` one after another
   (the first takes the warm standby, each next one the standby started after the job before),
   versus the same files measured in-process.

The photos are skimage's ``astronaut()`` scaled up (no patient data). Timings are medians of
``--repeat`` runs; the machine is shared, so compare columns within one run, not across runs.

Usage::

    .venv/bin/python -m benchmarks.ingest_speed [--repeat 5] [--worker-repeat 3] [--uploads 5]
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import statistics
import time
from collections.abc import Callable
from functools import partial

from PIL import Image, ImageOps
from skimage import data


def _jpeg_12mp() -> bytes:
    image = Image.fromarray(data.astronaut()).resize((4032, 3024), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 1
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def _ours(raw: bytes) -> None:
    from analysis.photos.ingest import read_photo

    read_photo(raw, max_side=1280)


def _naive_full(raw: bytes) -> None:
    with Image.open(io.BytesIO(raw)) as image:
        full = image.convert("RGB")
        full.resize((1280, 960), Image.Resampling.LANCZOS)


def _naive_thumbnail(raw: bytes) -> None:
    with Image.open(io.BytesIO(raw)) as image:
        upright = ImageOps.exif_transpose(image)
        upright.thumbnail((1280, 1280))


def _peak_rss_mb(name: str, raw: bytes) -> float:
    """Peak RSS (MiB) of a fresh process that imports the stack and runs ``name`` once."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[float] = context.Queue()
    process = context.Process(target=_rss_child, args=(name, raw, queue))
    process.start()
    result: float = queue.get(timeout=120)
    process.join()
    return result


def _rss_child(name: str, raw: bytes, queue: multiprocessing.Queue[float]) -> None:
    import analysis.photos.ingest  # noqa: F401 - same imports in every column

    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # Linux: reset the peak-RSS mark (VmHWM) after the imports
    before = _status_kib("VmRSS")
    FUNCTIONS[name](raw)
    queue.put((_status_kib("VmHWM") - before) / 1024)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


FUNCTIONS: dict[str, Callable[[bytes], None]] = {
    "read_photo (draft + resize)": _ours,
    "naive: full decode + resize": _naive_full,
    "naive: exif_transpose + thumbnail": _naive_thumbnail,
}


def _median_s(function: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--worker-repeat", type=int, default=3)
    parser.add_argument("--standby-wait-s", type=float, default=8.0)
    parser.add_argument(
        "--uploads", type=int, default=5, help="files in the multi-file upload of part 3"
    )
    args = parser.parse_args()

    raw = _jpeg_12mp()
    print(
        f"1) 12 MP JPEG ({len(raw) / 2**20:.1f} MiB) -> longest side 1280, median of {args.repeat}"
    )
    print(f"   {'method':36s} {'time ms':>8s} {'extra peak RSS MiB':>19s}")
    for name, function in FUNCTIONS.items():
        function(raw)  # warm-up
        ms = _median_s(partial(function, raw), args.repeat) * 1000
        print(f"   {name:36s} {ms:8.0f} {_peak_rss_mb(name, raw):19.0f}")

    from analysis.photos.ingest import read_photo
    from analysis.photos.worker import analyse_in_worker

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG", quality=90)
    small = buffer.getvalue()
    measure_photo: Callable[..., object] | None
    try:
        from analysis.photos.measure import measure_photo
    except ImportError:
        measure_photo = None

    def in_process() -> None:
        photo = read_photo(small)
        if measure_photo is not None:
            measure_photo(photo, view="face_frontal")

    from analysis.photos import worker

    in_process()  # warm-up: imports and model set-up are paid once in the server process
    inproc_s = _median_s(in_process, args.worker_repeat)

    def cold() -> None:
        worker.stop_standby()
        analyse_in_worker(small, view="face_frontal")

    def warm() -> None:
        time.sleep(args.standby_wait_s)  # uploads are seconds apart: the standby is ready
        started = time.perf_counter()
        analyse_in_worker(small, view="face_frontal")
        warm_times.append(time.perf_counter() - started)

    cold_s = _median_s(cold, args.worker_repeat)
    warm_times: list[float] = []
    for _ in range(args.worker_repeat):
        warm()
    warm_s = statistics.median(warm_times)
    worker.stop_standby()
    print(
        f"\n2) astronaut 512 x 512 JPEG, read_photo + measure_photo, median of {args.worker_repeat}"
    )
    print(f"   in-process (models already loaded)          {inproc_s * 1000:8.0f} ms")
    print(f"   analyse_in_worker, no standby (cold child)  {cold_s * 1000:8.0f} ms")
    print(f"   analyse_in_worker, warm standby child       {warm_s * 1000:8.0f} ms")

    # 3) a multi-file upload: the Capture page analyses its files one after another, each in a
    # fresh sandboxed child; the first takes the warm standby, the next ones wait for the standby
    # started after the previous job, so from the second on each pays an engine start
    uploads = [raw] * args.uploads
    in_process_each = []
    for upload in uploads:
        started = time.perf_counter()
        photo = read_photo(upload)
        if measure_photo is not None:
            measure_photo(photo, view="face_frontal")
        in_process_each.append(time.perf_counter() - started)
    worker.start_standby()
    time.sleep(args.standby_wait_s)
    each = []
    for upload in uploads:
        started = time.perf_counter()
        analyse_in_worker(upload, view="face_frontal")
        each.append(time.perf_counter() - started)
    worker.stop_standby()
    print(
        f"\n3) {args.uploads} uploads of the 12 MP JPEG one after another (a multi-file upload), "
        "seconds"
    )
    print(
        f"   in-process (models loaded, no sandbox)     {sum(in_process_each):8.2f} "
        f"(each {', '.join(f'{t:.2f}' for t in in_process_each)})"
    )
    print(
        f"   analyse_in_worker, warm standby first      {sum(each):8.2f} "
        f"(each {', '.join(f'{t:.2f}' for t in each)})"
    )


if __name__ == "__main__":
    main()
