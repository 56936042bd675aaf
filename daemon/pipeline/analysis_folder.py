"""An analysis folder made whole: analyse a clip, write `analysis.json` and its contact sheet.

`privmask analyze` and the daemon's review (a clip whose rule says `review: required`) both
make their folders here, so a reviewer's ids mean what `privmask analyze` would show.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from privmask.adapters.video import probe
from privmask.daemon.pipeline import analysis, sheet
from privmask.daemon.pipeline.offline import Progress, analyse
from privmask.rules.plan import RedactionPlan


def analyse_into(
    source: Path,
    out: Path,
    plan: RedactionPlan,
    models_dir: str | os.PathLike[str] | None,
    progress: Progress | None = None,
    force: bool = False,
    *,
    name: str | None = None,
    sha256: str | None = None,
) -> analysis.Analysis:
    """Analyse `source` and write the folder `out` whole (mode 700, files 600), or nothing;
    AnalysisError when `out` cannot be written. `name` and `sha256`: the clip's file name
    and hash where the caller knows them already (a worker reads through a descriptor)."""
    info = probe(source)
    found = analyse(source, info, plan, models_dir, progress)
    clip = {
        "file": name or source.name,
        "sha256": sha256 or analysis.sha256_of(source),
        "width": info.width,
        "height": info.height,
        "frame_rate": str(info.frame_rate),
        "rotation": info.rotation,
    }
    done = analysis.Analysis(
        found.tracks, found.dropped, found.models, found.detection, found.parts, found.frames,
        clip, found.subjects,
    )  # fmt: skip
    fps = float(info.frame_rate) or 25.0
    shown = sheet.tiles(source, info, done.subjects)
    contents = {
        analysis.ANALYSIS_FILE: (json.dumps(analysis.to_json(done), indent=1) + "\n").encode(),
        "sheet.html": sheet.sheet_html(shown, done.frames, fps, clip["sha256"]),
        "sheet.png": sheet.sheet_png(shown, done.frames, fps),
    }
    analysis.write_folder(out, contents, force)
    return done
