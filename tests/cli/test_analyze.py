"""`privmask analyze` and `privmask redact --analysis` on bad input: one clear line, exit
code 2, and nothing written. A small real clip with one face is analysed once."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from privmask.daemon.testing import FaceSpec, write_scene

from harness import privmask

ONE_FACE = (FaceSpec("a", 48, (0.5, 0.5), (1.0, 0.0)),)


def refused(result: subprocess.CompletedProcess[str], words: str) -> None:
    """Exit 2 and one error line, last, naming the problem; no traceback."""
    assert result.returncode == 2, result.stderr
    *before, last = result.stderr.strip().splitlines()
    assert last.startswith("privmask: error: ") and words in last, result.stderr
    assert all(line.startswith(("usage:", " ", "rules: ")) for line in before), result.stderr


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def case(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("case")
    clip = folder / "in.mp4"
    write_scene(clip, width=320, height=240, seconds=1.0, faces=ONE_FACE, pillar=None)
    out = folder / "analysis"
    done = privmask("analyze", clip, "--out", out, "--quiet", models=models_dir)
    assert done.returncode == 0, done.stderr
    subjects = json.loads((out / "analysis.json").read_text())["subjects"]
    assert [s["classes"] for s in subjects] == [["face"]]
    return clip, out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_redacting_from_the_analysis_masks_without_detecting(
    case: tuple[Path, Path], work: Path
) -> None:
    clip, analysis = case
    # no models at all: nothing is detected again
    done = privmask("redact", clip, work / "out.mp4", "--analysis", analysis, "--mask-only", "1",
                    "--report", work / "r.json", models=work)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((work / "r.json").read_text())
    assert [(t["subject"], t["masked"]) for t in report["tracks"]] == [(1, True)]
    assert report["plan"]["selection"] == {"mode": "only", "subjects": [1]}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--keep-visible", "7"), "no subject 7 in the analysis (its subjects: 1)"),
        (("--mask-only", "1,x"), "--mask-only takes subject ids"),
        (("--detect", "face"), "with --analysis, the analysis says what was detected"),
    ],
)
def test_unknown_ids_and_detection_flags_are_refused(
    case: tuple[Path, Path], work: Path, extra: tuple[str, ...], words: str, models_dir: Path
) -> None:
    clip, analysis = case
    result = privmask("redact", clip, work / "out.mp4", "--analysis", analysis, *extra,
                      models=models_dir)  # fmt: skip
    refused(result, words)
    assert listing(work) == []


def test_an_analysis_of_another_clip_is_refused(
    case: tuple[Path, Path], work: Path, models_dir: Path
) -> None:
    clip, analysis = case
    other = work / "other.mp4"
    shutil.copyfile(clip, other)
    with other.open("ab") as handle:
        handle.write(b"\0")  # other content, same pictures
    result = privmask("redact", other, work / "out.mp4", "--analysis", analysis,
                      "--keep-visible", "1", models=models_dir)  # fmt: skip
    refused(result, "the analysis is of another clip")
    assert listing(work) == ["other.mp4"]


def test_an_analysis_made_with_other_models_is_refused(
    case: tuple[Path, Path], work: Path, models_dir: Path
) -> None:
    clip, analysis = case
    rules = work / "r.yaml"
    rules.write_text("version: 1\nrules:\n  - {name: c, targets: {face: {model: centerface}}}\n")
    result = privmask("redact", clip, work / "out.mp4", "--analysis", analysis, "--rules", rules,
                      models=models_dir)  # fmt: skip
    refused(result, "the analysis was made with other models (yunet")
    assert listing(work) == ["r.yaml"]


def test_a_missing_or_damaged_analysis_is_refused(case: tuple[Path, Path], work: Path) -> None:
    clip, _ = case
    empty = work / "empty"
    empty.mkdir()
    refused(privmask("redact", clip, work / "o.mp4", "--analysis", empty), "no analysis there")
    (empty / "analysis.json").write_text('{"format": "privmask-analysis", "version": 1}')
    refused(
        privmask("redact", clip, work / "o.mp4", "--analysis", empty), "not a privmask analysis"
    )
    assert listing(work) == ["empty"]


def test_ids_need_an_analysis(case: tuple[Path, Path], work: Path) -> None:
    clip, _ = case
    result = privmask("redact", clip, work / "o.mp4", "--keep-visible", "1")
    refused(result, "--keep-visible needs --analysis DIR")


def test_analyze_refuses_a_folder_that_is_not_empty(
    case: tuple[Path, Path], work: Path, models_dir: Path
) -> None:
    clip, _ = case
    out = work / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    refused(privmask("analyze", clip, "--out", out, models=models_dir), "is not empty")
    # --force replaces a former analysis, never a folder holding anything else
    refused(
        privmask("analyze", clip, "--out", out, "--force", models=models_dir),
        "holds files other than an analysis",
    )
    assert listing(work) == ["out"] and listing(out) == ["notes.txt"]
    refused(privmask("analyze", clip, "--out", work / "no" / "out"), "folder does not exist")
    refused(
        privmask("analyze", clip, "--out", work / "x", "--detect", "none"), "nothing to analyse"
    )
    assert listing(work) == ["out"]


def test_analyze_force_replaces_a_former_analysis(
    case: tuple[Path, Path], work: Path, models_dir: Path
) -> None:
    clip, analysis = case
    out = work / "again"
    shutil.copytree(analysis, out)
    (out / "sheet.png").write_bytes(b"old")
    done = privmask("analyze", clip, "--out", out, "--force", "--quiet", models=models_dir)
    assert done.returncode == 0, done.stderr
    assert (out / "sheet.png").read_bytes().startswith(b"\x89PNG")
    assert listing(work) == ["again"]  # nothing left aside
