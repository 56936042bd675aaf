"""A sweep's configured source made a `SweepSource`; each kind imported only when used (a
folder sweep never loads the ONVIF, RTSP or HTTP clients). Recorder passwords are read here,
from their secret reference, and handed to the source object alone: never logged, never on
a command line."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from privmask.daemon.secrets import read_secret
from privmask.daemon.sweeps.settings import DahuaSpec, FolderSpec, IsapiSpec, OnvifSpec, SweepSpec
from privmask.daemon.sweeps.source import SweepSource


def build_source(sweep: SweepSpec, zone: tzinfo) -> SweepSource:
    """The source `sweep` names; SecretError when its password cannot be read."""
    spec = sweep.source
    if isinstance(spec, FolderSpec):
        from privmask.daemon.sweeps.folder_source import FolderSource

        return FolderSource(sweep.name, Path(spec.folder), zone, spec.pattern)
    password = read_secret(spec.password.to_source()).decode("utf-8", "surrogateescape")
    if isinstance(spec, OnvifSpec):
        from privmask.daemon.sweeps.onvif_source import OnvifSource

        recordings = frozenset(spec.recordings) if spec.recordings is not None else None
        return OnvifSource(
            sweep.name,
            spec.onvif,
            spec.username,
            password,
            recordings=recordings,
            timeout=spec.timeout,
        )
    if isinstance(spec, IsapiSpec):
        from privmask.daemon.sweeps.isapi_source import IsapiSource

        tracks = tuple(spec.tracks) if spec.tracks is not None else None
        return IsapiSource(
            sweep.name,
            spec.isapi,
            spec.username,
            password,
            tracks=tracks,
            timezone=zone,
            timeout=spec.timeout,
        )
    assert isinstance(spec, DahuaSpec)  # the discriminator admits these four only
    from privmask.daemon.sweeps.dahua_source import DahuaSource

    channels = tuple(spec.channels) if spec.channels is not None else None
    return DahuaSource(
        sweep.name,
        spec.dahua,
        spec.username,
        password,
        channels=channels,
        timezone=zone,
        timeout=spec.timeout,
    )
