"""Which cameras stream live, masked: one `LiveCamera` per camera whose rule says `live`.

The service calls `update` with the cameras it knows (from the ONVIF inventory and the
config's static streams) every few seconds, so live masking follows rule reloads, time
windows, and cameras that come, go or change address. Cameras whose rule turns live are
started, those that disappear or stop being live are stopped; one camera failing never
touches another. The cameras share one detection worker and the models they load
(`detecting`), so they take turns on the cores instead of competing. Finished segments,
each with the camera's own unmasked segment beside it, become signed, encrypted packages
through the same path as files (`packaging.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime

import structlog

from privmask.adapters import urls
from privmask.adapters.models import ModelError
from privmask.daemon.config import Config
from privmask.daemon.delivery import Custody, safe_name
from privmask.daemon.live.camera import LiveCamera
from privmask.daemon.live.detecting import SharedDetection
from privmask.daemon.live.outputs import LiveOutputs
from privmask.daemon.live.packaging import SegmentPackager, sweep_partials
from privmask.daemon.rulebook import current_snapshot
from privmask.rules.files import RuleFileError
from privmask.rules.match import Facts
from privmask.rules.plan import PlanError
from privmask.rules.ruleset import Decision, NoRuleApplies, RuleSet

log = structlog.get_logger("privmask.live")


class LiveSupervisor:
    def __init__(self, config: Config, password: bytes, custody: Custody) -> None:
        self.config = config
        self._packager = SegmentPackager(config, password, custody)
        self._detection = SharedDetection(config.models)
        sweep_partials(config.state / "live")  # no camera streams yet
        # camera -> its stream and what it was started with: rule set, rule, URL
        self._running: dict[str, tuple[LiveCamera, tuple[str, str, str]]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def update(self, streams: Mapping[str, str]) -> None:
        """`streams`: camera id -> main stream URL (credentials included where needed)."""
        with self._lock:
            if self._closed:
                return  # the service is stopping: start nothing new
            try:
                ruleset = current_snapshot(self.config.state / "rulesets")
            except (RuleFileError, OSError) as exc:
                log.error("live_rules_unavailable", error=str(exc))
                return
            for camera in [c for c in self._running if c not in streams]:
                self._stop(camera, "camera gone")
            for camera, url in streams.items():
                try:
                    self._follow(camera, url, ruleset)
                except Exception as exc:  # one camera's trouble never touches the others
                    log.error("live_camera_failed", camera=camera, error=urls.scrub(str(exc), url))

    def _follow(self, camera: str, url: str, ruleset: RuleSet) -> None:
        try:
            decision = ruleset.decide(Facts(camera=camera, when=datetime.now(self.config.timezone)))
        except NoRuleApplies:
            decision = None
        running = self._running.get(camera)
        if decision is None or decision.live is None:
            if running:
                self._stop(camera, "rule is no longer live")
            return
        started_with = (ruleset.digest, decision.rule.rule.name, url)
        if running and running[1] == started_with:
            return  # same rules, same rule, same address: keep streaming
        if running:
            self._stop(camera, "rules, rule or address changed")
        self._start(camera, url, decision, started_with)

    def _start(
        self, camera: str, url: str, decision: Decision, started_with: tuple[str, str, str]
    ) -> None:
        live = decision.live
        if live is None:
            return
        segments = self.config.state / "live" / safe_name(camera)
        outputs = LiveOutputs(
            publish_url=live.publish_url,
            segment_dir=segments if live.segments else None,
            segment_seconds=live.segment_seconds,
            on_segment=lambda segment: self._packager.finished(camera, url, segment, decision),
            originals=live.segments,
        )
        try:
            stream = LiveCamera(url, decision.plan, outputs, name=camera, detection=self._detection)
        except (PlanError, ModelError) as exc:  # this camera cannot run; the others still do
            log.error("live_camera_refused", camera=camera, error=str(exc))
            return
        stream.start()
        self._running[camera] = (stream, started_with)
        log.info("live_started", camera=camera, rule=decision.rule.rule.name)

    def _stop(self, camera: str, why: str) -> None:
        stream, _ = self._running.pop(camera)
        stream.stop()
        log.info("live_stopped", camera=camera, reason=why)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            for camera in list(self._running):
                self._stop(camera, "service stopping")
            self._detection.close()
