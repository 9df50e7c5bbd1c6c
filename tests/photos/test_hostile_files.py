"""Hostile input: a committed corpus of malformed files, and a worker that crashes or hangs.

The corpus in ``tests/data/hostile/`` is made by ``tests/data/make_hostile_corpus.py`` (run it to
see, or rebuild, how each file was made). Every file must be refused by ``read_photo`` and
``clean_original`` with an ``IngestError`` whose message names the problem, quickly, and without
writing anything. The worker tests prove that a child process that segfaults, aborts, hangs or
runs out of memory yields a clear message while the calling process carries on.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import json
import os
import sys
import time
import types
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from analysis.photos.ingest import IngestError, clean_original, read_photo
from analysis.photos.types import PhotoMeasurement
from analysis.photos.worker import WorkerResult, analyse_in_worker, clean_in_worker

HERE = "tests.photos.test_hostile_files"


# ---- worker targets (module-level so the child process can import them by name) ----------------


def _segfault(data: bytes, *, view: str | None) -> None:
    ctypes.string_at(0)  # read from the null pointer: SIGSEGV


def _abort(data: bytes, *, view: str | None) -> None:
    os.abort()


def _hang(data: bytes, *, view: str | None) -> None:
    time.sleep(3600)


def _allocate(data: bytes, *, view: str | None) -> int:
    block = bytearray(4 * 1024**3)  # 4 GiB, above any limit the tests set
    return len(block)


def _raise(data: bytes, *, view: str | None) -> None:
    raise RuntimeError("bug in the analysis code")


def _echo(data: bytes, *, view: str | None) -> tuple[int, str | None, int]:
    return len(data), view, os.getpid()


# ---- worker ------------------------------------------------------------------------------------


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG")
    return buffer.getvalue()


def _echoed(result: WorkerResult) -> tuple[int, str | None, int]:
    """What ``_echo`` sent back: (length of the bytes, view, the worker's pid)."""
    assert isinstance(result.measurement, tuple), result
    length, view, pid = result.measurement
    return int(length), view, int(pid)


@pytest.mark.timeout(60)
def test_worker_returns_the_target_value_from_another_process() -> None:
    result = analyse_in_worker(b"abc", view="face_frontal", target=f"{HERE}:_echo")
    assert result.ok and result.outcome == "ok" and result.error is None
    length, view, pid = _echoed(result)
    assert (length, view) == (3, "face_frontal")
    assert pid != os.getpid()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target, signal_name", [("_segfault", "SIGSEGV"), ("_abort", "SIGABRT")])
def test_worker_crash_gives_a_clear_error_and_the_parent_survives(
    target: str, signal_name: str
) -> None:
    result = analyse_in_worker(b"x", view=None, target=f"{HERE}:{target}")
    assert not result.ok and result.outcome == "crashed"
    assert result.error is not None
    assert result.error.startswith("The photo analysis crashed")
    assert signal_name in result.error
    # the parent is alive and the next upload is served normally
    after = analyse_in_worker(b"abc", view=None, target=f"{HERE}:_echo")
    assert after.ok


@pytest.mark.timeout(60)
def test_worker_hang_is_killed_after_the_timeout() -> None:
    started = time.monotonic()
    result = analyse_in_worker(b"x", view=None, timeout_s=1.5, target=f"{HERE}:_hang")
    assert not result.ok and result.outcome == "timeout"
    assert result.error is not None
    assert result.error.startswith("The photo could not be analysed in time")
    assert result.exit_code is not None and result.exit_code < 0  # killed, not left running
    assert time.monotonic() - started < 30


@pytest.mark.timeout(60)
def test_worker_memory_limit_is_enforced_in_the_child_only() -> None:
    result = analyse_in_worker(b"x", view=None, memory_mb=512, target=f"{HERE}:_allocate")
    assert not result.ok and result.outcome == "out_of_memory"
    assert result.error is not None
    assert "memory" in result.error and "512 MB" in result.error
    bytearray(600 * 1024**2)  # the parent's own limit is untouched


@pytest.mark.timeout(60)
def test_worker_exception_is_reported_without_a_traceback() -> None:
    result = analyse_in_worker(b"x", view=None, target=f"{HERE}:_raise")
    assert not result.ok and result.outcome == "failed"
    assert result.error is not None
    assert "Traceback" not in result.error and "bug in the analysis" not in result.error


@pytest.mark.timeout(60)
def test_worker_default_target_reads_the_photo_and_rejects_a_pdf() -> None:
    import analysis.photos.worker as worker

    try:
        worker.start_standby()
        worker.start_standby()  # idempotent
        standby = next(iter(worker._STANDBY.values())).process.pid
        good = analyse_in_worker(_jpeg(), view="face_frontal")  # served by the warm standby
        assert good.ok, good.error
        assert good.exit_code == 0
        assert isinstance(good.measurement, PhotoMeasurement)
        assert (good.measurement.width_px, good.measurement.height_px) == (512, 512)
        assert good.measurement.face_found
        assert next(iter(worker._STANDBY.values())).process.pid != standby  # a new one is up
        bad = analyse_in_worker(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n", view=None)
        assert bad.error is not None
        assert bad.outcome == "rejected" and "PDF" in bad.error
    finally:
        worker.stop_standby()


def test_worker_refuses_a_malformed_target_name() -> None:
    with pytest.raises(ValueError, match="package.module:function"):
        analyse_in_worker(b"x", view=None, target="no_colon_here")


# ---- the committed corpus ------------------------------------------------------------------

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"
MANIFEST: dict[str, dict] = json.loads((CORPUS / "MANIFEST.json").read_text())
REJECT = sorted(name for name, entry in MANIFEST.items() if entry["expect"] == "reject")
ACCEPT = sorted(name for name, entry in MANIFEST.items() if entry["expect"] == "accept")
EITHER = sorted(name for name, entry in MANIFEST.items() if entry["expect"] == "either")


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def sealed(tmp_path: Path, candor_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty working directory with an empty data dir; tests check both stay empty."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_corpus_manifest_lists_every_file_and_stays_small() -> None:
    on_disk = {p.name for p in CORPUS.iterdir()} - {"MANIFEST.json"}
    assert on_disk == set(MANIFEST)
    assert sum(p.stat().st_size for p in CORPUS.iterdir()) < 2_000_000
    assert len(REJECT) >= 25 and ACCEPT and EITHER


def test_corpus_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(CORPUS.parent))
    try:
        import make_hostile_corpus  # type: ignore[import-not-found]  # tests/data is not a package
    finally:
        sys.path.remove(str(CORPUS.parent))
    rebuilt = make_hostile_corpus.build(tmp_path)
    assert {k: (v["how"], v["expect"]) for k, v in rebuilt.items()} == {
        k: (v["how"], v["expect"]) for k, v in MANIFEST.items()
    }
    for name in MANIFEST:
        if name.endswith(".heic"):
            continue  # x265 output may differ between builds of the encoder
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", REJECT)
def test_hostile_file_is_refused_with_a_message_naming_the_problem(name: str, sealed: Path) -> None:
    path = CORPUS / name
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    pattern = MANIFEST[name]["match"]
    with pytest.raises(IngestError, match=pattern) as by_path:
        read_photo(path)
    with pytest.raises(IngestError, match=pattern):
        read_photo(path.read_bytes())
    with pytest.raises(IngestError, match=pattern):
        clean_original(path.read_bytes())
    message = str(by_path.value)
    assert "Traceback" not in message and "Error" not in message and len(message) < 300
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # the upload is untouched
    assert _tree(sealed) == ["cwd", "data"]  # nothing written, not even partially


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", ACCEPT)
def test_photo_with_private_metadata_is_read_and_scrubbed(name: str, sealed: Path) -> None:
    raw = (CORPUS / name).read_bytes()
    photo = read_photo(raw)
    assert photo.rgb.shape == (256, 256, 3)
    clean = clean_original(raw)
    for secret in MANIFEST[name]["must_not_contain"]:
        assert secret.encode() not in clean.data
    for marker in (b"Exif\x00\x00", b"http://ns.adobe.com/xap", b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
        assert marker not in clean.data
    with Image.open(io.BytesIO(clean.data)) as stored:
        assert len(stored.getexif()) == 0
        assert not {"exif", "comment", "xmp", "Comment", "Author"} & set(stored.info)
        assert stored.size == (256, 256)
    assert _tree(sealed) == ["cwd", "data"]


def test_gps_photo_keeps_its_capture_time_and_focal_length() -> None:
    photo = read_photo(CORPUS / "accept_gps_exif.jpg")
    assert photo.taken_at_utc == datetime(2025, 3, 14, 8, 26, 53, tzinfo=UTC)
    assert photo.focal_length_mm == pytest.approx(4.25)
    assert photo.focal_length_35mm == 26


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", EITHER)
def test_damage_a_decoder_may_tolerate_gives_a_photo_or_a_clear_error(name: str) -> None:
    try:
        photo = read_photo(CORPUS / name)
    except IngestError as exc:
        assert "damaged" in str(exc) or "incomplete" in str(exc)
    else:
        assert photo.rgb.dtype == np.uint8 and photo.rgb.ndim == 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name",
    [
        "bomb_100000x100000.png",
        "zipbomb_12000x12000.png",
        "truncated.heic",
        "polyglot_jpeg_zip.jpg",
        "pdf_renamed.jpg",
    ],
)
def test_worker_gives_the_same_clear_message_as_direct_ingest(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analysis.photos.worker as worker

    monkeypatch.setattr(worker, "STANDBY_TARGETS", frozenset())  # no warm-up cost per case
    raw = (CORPUS / name).read_bytes()
    result = analyse_in_worker(raw, view=None, timeout_s=30, memory_mb=1024)
    assert result.outcome == "rejected"
    with pytest.raises(IngestError) as direct:
        read_photo(raw)
    assert result.error == str(direct.value)


@pytest.mark.timeout(60)
def test_worker_does_not_rerun_the_callers_main_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under Streamlit ``__main__`` is the page script; a child must not execute it again."""
    page = tmp_path / "page.py"
    marker = tmp_path / "page_ran"
    page.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    fake_main.__spec__ = None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    result = analyse_in_worker(b"abc", view=None, target=f"{HERE}:_echo")
    assert result.ok, result.error
    assert not marker.exists()
    assert sys.modules["__main__"] is fake_main  # restored for the caller


@pytest.mark.timeout(60)
def test_clean_in_worker_scrubs_like_clean_original_and_refuses_like_it() -> None:
    raw = (CORPUS / "accept_gps_exif.jpg").read_bytes()
    clean = clean_in_worker(raw)
    assert clean == clean_original(raw)
    assert b"CandorTestCam" not in clean.data and b"Jane Example" not in clean.data
    with pytest.raises(IngestError, match="ZIP archive hidden"):
        clean_in_worker((CORPUS / "polyglot_jpeg_zip.jpg").read_bytes())


@pytest.mark.timeout(120)
def test_a_heic_upload_is_cleaned_and_measured_in_the_worker() -> None:
    """The sandboxed child reads HEIF (its opener is registered on the first HEIF, or preloaded by
    the fork server: analysis.photos.heif): the stored copy is a JPEG and the face is measured."""
    import pillow_heif

    face = data.astronaut()
    raw = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB", size=(512, 512), data=face.tobytes()).save(raw, quality=90)
    clean = clean_in_worker(raw.getvalue())
    assert clean.media_type == "image/jpeg" and (clean.width_px, clean.height_px) == (512, 512)
    result = analyse_in_worker(raw.getvalue(), view="face_frontal")
    assert result.ok, result.error
    assert isinstance(result.measurement, PhotoMeasurement)
    assert result.measurement.ok and result.measurement.face_found, result.measurement.error


@pytest.mark.timeout(120)
def test_warm_standby_still_runs_one_job_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a standby kept ahead, each upload still gets its own process, and a crash in one
    job does not reach the next."""
    import analysis.photos.worker as worker

    echo, crash = f"{HERE}:_echo", f"{HERE}:_segfault"
    monkeypatch.setattr(worker, "STANDBY_TARGETS", frozenset({echo, crash}))
    try:
        pids = [_echoed(analyse_in_worker(b"abc", view=None, target=echo))[2] for _ in range(3)]
        assert len(set(pids)) == 3 and os.getpid() not in pids
        assert analyse_in_worker(b"x", view=None, target=crash).outcome == "crashed"
        assert analyse_in_worker(b"x", view=None, target=crash).outcome == "crashed"
        after = analyse_in_worker(b"abc", view="scalp_vertex", target=echo)
        assert after.ok and _echoed(after)[1] == "scalp_vertex"
    finally:
        worker.stop_standby()
    assert not worker._STANDBY


@pytest.mark.timeout(120)
def test_concurrent_sessions_get_the_same_answers_and_leave_warning_filters_alone() -> None:
    """Streamlit serves sessions from threads: ingest must give each the serial answer."""
    from concurrent.futures import ThreadPoolExecutor

    def outcome(name: str) -> str:
        try:
            return read_photo(CORPUS / name, max_side=128).original_sha256
        except IngestError as exc:
            return str(exc)

    names = sorted(MANIFEST) * 3
    serial = [outcome(name) for name in names]
    filters_before = list(warnings.filters)
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(outcome, names))
    assert threaded == serial
    assert list(warnings.filters) == filters_before
