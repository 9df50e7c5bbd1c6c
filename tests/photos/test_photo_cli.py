"""The ``python -m analysis measure|compare`` JSON contract, run as a user would (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest
from PIL import Image
from skimage import data

from tests.conftest import PROJECT_ROOT

CONTRACT_KEYS = {
    "path",
    "ok",
    "error",
    "face_found",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "ipd_px",
    "exposure_l",
    "light_side",
    "sharpness",
}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "analysis", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    paths = {
        "face": folder / "astronaut.jpg",
        "rolled": folder / "astronaut rolled.png",
        "noface": folder / "coffee.jpg",
        "text": folder / "notes.jpg",
        "truncated": folder / "cut.jpg",
    }
    Image.fromarray(astronaut).save(paths["face"], quality=92)
    matrix = cv2.getRotationMatrix2D((225, 125), -12, 1.0)  # 12 degrees clockwise
    Image.fromarray(
        cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT)
    ).save(paths["rolled"])
    Image.fromarray(data.coffee()).save(paths["noface"], quality=92)
    paths["text"].write_text("this is not a photo\n")
    paths["truncated"].write_bytes(paths["face"].read_bytes()[:2500])
    return paths


def parse_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


ORDER = ("text", "face", "noface", "truncated", "rolled")


@pytest.fixture(scope="module")
def two_workers(photos: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    return run_cli("measure", *[str(photos[k]) for k in ORDER], "--json", "--workers", "2")


def test_measure_prints_one_json_line_per_image_in_order_and_exits_0(
    photos: dict[str, Path], two_workers: subprocess.CompletedProcess[str]
) -> None:
    proc = two_workers
    assert proc.returncode == 0, proc.stderr
    lines = parse_lines(proc.stdout)
    assert [line["path"] for line in lines] == [str(photos[k]) for k in ORDER]
    for line in lines:
        assert CONTRACT_KEYS <= set(line)
    by = dict(zip(ORDER, lines, strict=True))
    assert (
        by["face"]["ok"] is True
        and by["face"]["face_found"] is True
        and by["face"]["error"] is None
    )
    assert by["rolled"]["roll_deg"] - by["face"]["roll_deg"] == pytest.approx(12, abs=1.0)
    assert isinstance(by["face"]["ipd_px"], float) and isinstance(by["face"]["sharpness"], float)
    for bad in ("text", "truncated", "noface"):
        assert by[bad]["ok"] is False and by[bad]["error"], bad
    assert "no face" in by["noface"]["error"]
    assert "Traceback" not in proc.stderr


def test_one_and_two_workers_give_the_same_figures(
    photos: dict[str, Path], two_workers: subprocess.CompletedProcess[str]
) -> None:
    one = parse_lines(run_cli("measure", *[str(photos[k]) for k in ORDER], "--json").stdout)
    assert one == parse_lines(two_workers.stdout)


def test_compare_prints_one_verdict_per_followup(photos: dict[str, Path]) -> None:
    proc = run_cli(
        "compare",
        str(photos["face"]),
        str(photos["face"]),
        str(photos["rolled"]),
        str(photos["text"]),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    lines = parse_lines(proc.stdout)
    assert [line["path"] for line in lines] == [str(photos[k]) for k in ("face", "rolled", "text")]
    for line in lines:
        assert {"path", "verdict", "checks"} <= set(line)
        for check in line["checks"]:
            assert {"name", "status", "value", "message"} <= set(check)
    same, rolled, text = lines
    assert same["verdict"] == "pass"
    assert rolled["verdict"] == "fail"  # 12 degrees of roll
    pose = next(c for c in rolled["checks"] if c["name"] == "pose")
    assert pose["status"] == "fail" and pose["value"] == pytest.approx(12, abs=1.0)
    assert text["verdict"] == "fail"


def test_compare_with_a_bad_baseline_fails_every_line_with_the_reason(
    photos: dict[str, Path],
) -> None:
    proc = run_cli(
        "compare", str(photos["text"]), str(photos["face"]), str(photos["rolled"]), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    lines = parse_lines(proc.stdout)
    assert len(lines) == 2
    for line in lines:
        assert line["verdict"] == "fail"
        assert any("baseline" in c["message"] and c["status"] == "fail" for c in line["checks"])


def test_human_readable_tables(photos: dict[str, Path]) -> None:
    measured = run_cli("measure", str(photos["face"]), str(photos["text"]))
    assert measured.returncode == 0
    rows = measured.stdout.splitlines()
    assert len(rows) == 3 and "yaw" in rows[0] and "not a photo" in rows[2]
    compared = run_cli("compare", str(photos["face"]), str(photos["rolled"]))
    assert compared.returncode == 0 and "fail" in compared.stdout


def test_scalp_view_option_is_passed_through(photos: dict[str, Path]) -> None:
    line = parse_lines(
        run_cli("measure", str(photos["face"]), "--json", "--view", "scalp_vertex").stdout
    )[0]
    assert line["ok"] is True and line["view"] == "scalp_vertex" and line["yaw_deg"] is None
    bad = run_cli("measure", str(photos["face"]), "--view", "elbow")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_hostile_corpus_gives_one_clean_line_per_file() -> None:
    corpus = PROJECT_ROOT / "tests" / "data" / "hostile"
    files = sorted(p for p in corpus.glob("*") if p.suffix in {".jpg", ".png", ".heic"})
    if len(files) < 10:
        pytest.skip("hostile-file corpus not present")
    proc = run_cli("measure", *map(str, files), "--json", "--workers", "2")
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr
    lines = parse_lines(proc.stdout)
    assert [line["path"] for line in lines] == list(map(str, files))
    manifest = json.loads((corpus / "MANIFEST.json").read_text())
    for path, line in zip(files, lines, strict=True):
        expect = manifest.get(path.name, {}).get("expect")
        if expect == "reject":
            assert line["ok"] is False and line["error"], path.name
        assert line["ok"] is True or line["error"], path.name
