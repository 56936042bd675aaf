"""Delivery: the one path from a rule's decision and a redacted file to a package on a share.

Clips from the inbox (`worker.py`) and live segments (`live/supervisor.py`) both come here,
so both get the same destination rules, the same file-safe names, the same password
lookup and the same manifest. A package's name is fixed by the job (its id and input hash),
which is what makes delivery idempotent: a job retried after a crash finds its package and
records it instead of making a second one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from privmask.adapters.models import sha256_of
from privmask.adapters.package import PackageContents, PackageError, read_package, write_package
from privmask.adapters.video import probe
from privmask.daemon import __version__
from privmask.daemon.pipeline.report import Redaction, build_report, video_summary
from privmask.daemon.secrets import read_secret
from privmask.rules.ruleset import Decision


def safe_name(camera: str | None) -> str:
    """A camera id as it may appear in a file name: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", camera or "camera").strip("-") or "camera"


@dataclass(frozen=True)
class Delivery:
    """Where one result goes, under which name, and with which password."""

    outbox: Path
    name: str
    password: bytes

    @property
    def package(self) -> Path:
        return self.outbox / f"{self.name}.zip"

    def published(self, input_sha256: str) -> dict[str, Any] | None:
        """The manifest of this same input's package, if an earlier try already delivered
        it; raises PackageError when a package of another input holds the name."""
        if not self.package.exists():
            return None
        _, manifest = read_package(self.package, self.password)
        if manifest.get("input", {}).get("sha256") != input_sha256:
            raise PackageError(f"{self.package.name}: a different package already has this name")
        return manifest

    def publish(self, video: Path, manifest: dict[str, Any]) -> Path:
        contents = PackageContents(video, manifest)
        return write_package(contents, self.outbox, self.name, self.password)


def plan_delivery(
    decision: Decision,
    *,
    default_outbox: Path,
    default_password: bytes,
    camera: str | None,
    when: datetime,
    job: str,
    input_sha256: str,
) -> Delivery:
    """The rule's destination, name template and password, or the site's defaults."""
    output = decision.output
    outbox = Path(output.destination) if output.destination else default_outbox
    password = default_password if output.password is None else read_secret(output.password)
    name = output.name_template.format(
        camera=safe_name(camera),
        date=when.strftime("%Y%m%d"),
        time=when.strftime("%H%M%S"),
        id=job,
        hash=input_sha256[:12],
    )
    return Delivery(outbox, name, password)


def manifest(
    decision: Decision,
    *,
    job: int | str,
    camera: str | None,
    source: dict[str, Any],
    redacted: Path,
    redaction: Redaction | None,
    times: dict[str, float],
    models: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """What a package says about itself. `source` describes the input (its sha256 and size
    for a file; the stream for live video). `redaction` is None for live segments, whose
    masks were drawn frame by frame by `models`; no track list is kept for them."""
    plan = decision.plan
    report = build_report(redaction, plan) if redaction is not None else None
    output = report["output"] if report else video_summary(probe(redacted))
    output = {"sha256": sha256_of(redacted), "bytes": redacted.stat().st_size, **output}
    output.pop("file")  # file names may hold personal data
    return {
        "privmask_version": __version__,
        "job": job,
        "camera": camera,
        "live": redaction is None,
        "input": source,
        "output": output,
        "rule": decision.rule.rule.name,
        "rule_set_sha256": decision.ruleset_hash,
        "models": report["models"] if report else (models or []),
        "masked": report["totals"] if report else {"frames": None},
        "tracks": [
            {k: t[k] for k in ("id", "class", "masked_from", "masked_to", "masked")}
            for t in (report["tracks"] if report else [])
        ],
        "times": {**times, "packaged": time.time()},
    }
