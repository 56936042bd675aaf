"""The tags a clip's container says about when it was recorded, read through PyAV.

Only the headers are read (no frame is decoded). The container's own tags come first; the
first video stream's fill in what the container lacks (MP4 writes `creation_time` in both,
some muxers only in the stream). Which tag is believed, and how, is decided in
`privmask.daemon.recording`; nothing here interprets a value.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.error

TIME_TAGS = ("creation_time",)


def container_metadata(path: Path | str) -> dict[str, str]:
    """The time tags of the clip at `path` (a name, or `untrusted.descriptor_path(fd)`);
    empty when it has none or cannot be read: the recording time then comes from elsewhere,
    and an unreadable clip fails its validation on its own."""
    try:
        with av.open(str(path), "r") as container:
            streams = container.streams.video[:1]
            found = [dict(container.metadata), *(dict(s.metadata) for s in streams)]
    except (av.error.FFmpegError, OSError, ValueError):
        return {}
    tags: dict[str, str] = {}
    for source in found:
        for tag in TIME_TAGS:
            if tag not in tags and isinstance(source.get(tag), str):
                tags[tag] = source[tag]
    return tags
