"""Online tracking for live streams: the offline tracker, run over a sliding window.

Offline, `tracker.link` and `tracker.fill` see the whole clip. Live, a frame must be masked
once it leaves the delay buffer, so this keeps the sightings of a recent window, relinks
them whenever a new sighting arrives and asks `fill` for the boxes of the frame that is
leaving. Frames in the buffer are thus masked with knowledge of the next `delay` frames:
a target first found at frame 40 is masked back to frame 40 - lead, as long as that frame
is still in the buffer.

One difference from offline: the window cannot know whether a track has ended, so a track
is kept masked past its last sighting for the whole hold time (offline: `tail` frames), or
a target missed by the detector for a while would show until it is found again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from privmask.adapters.detections import Detections, TargetClass
from privmask.daemon.pipeline.tracker import TrackerSettings, fill, link


def online_settings(
    settings: Mapping[TargetClass, TrackerSettings],
) -> dict[TargetClass, TrackerSettings]:
    """The offline settings with the tail held as long as a track may go unseen."""
    return {
        target: dataclasses.replace(s, tail=max(s.tail, s.max_gap))
        for target, s in settings.items()
    }


class OnlineTracker:
    """Sightings by frame index in, per-frame boxes out, for frames in index order.

    Memory is bounded: sightings older than what can still affect a frame to be masked
    (the longest gap a track may bridge, plus its tail) are dropped as frames are taken.
    """

    def __init__(self, settings: Mapping[TargetClass, TrackerSettings]) -> None:
        self.settings = online_settings(settings)
        longest = max((s.max_gap + s.tail for s in self.settings.values()), default=0)
        self.history = longest + 1
        self.sightings: dict[int, Detections] = {}
        self._filled: dict[int, Detections] | None = None

    def add(self, index: int, found: Detections) -> None:
        """Record what the detector found in frame `index` (empty detections count too)."""
        self.sightings[index] = found
        self._filled = None

    def boxes(self, index: int) -> Detections | None:
        """The boxes to mask in frame `index`, given every sighting recorded so far."""
        cutoff = index - self.history
        stale = [i for i in self.sightings if i < cutoff]
        for i in stale:
            del self.sightings[i]
        if stale:
            self._filled = None
        if self._filled is None:
            tracks = link(self.sightings, self.settings)
            self._filled = fill(tracks, self.settings) if tracks else {}
        return self._filled.get(index)
