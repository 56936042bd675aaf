"""A terminal progress bar for the two passes of a redaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from privmask.daemon.pipeline.offline import Progress

_LABELS = {"detect": "detecting", "mask": "masking  "}


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=_LABELS.get(stage, stage), unit="frame")
        if done > bar.total:
            bar.total = done
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()
