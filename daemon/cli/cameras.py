"""`privmask cameras discover|list`: find ONVIF cameras, and show the daemon's inventory.

`discover` prints what the cameras answer now (and, with --state, merges it into the
inventory as the daemon's scheduled round does); `list` prints the inventory only, without
touching the network. Exit code 1 when any camera could not be described, so scripts see
a wrong password; every other camera is still printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from privmask.daemon.cli import options
from privmask.daemon.errors import EXIT_FAILED, EXIT_OK, UsageError


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cameras = commands.add_parser("cameras", help="discover ONVIF cameras; list the inventory")
    cameras.set_defaults(run=run)
    actions = cameras.add_subparsers(dest="action", required=True, metavar="ACTION")
    disc = actions.add_parser(
        "discover",
        help="WS-Discovery probe, then ask each camera for its identity and stream URIs",
        description="Credentials come from --secrets: a YAML/JSON file (mode 600) mapping a "
        "camera's address, host:port, serial or endpoint to {username, password}. They go "
        "only to cameras the file names: its '*' entry is never sent to a device that "
        "answered discovery (anyone on the network can answer).",
    )
    disc.add_argument("--interface", metavar="IP", help="probe on this interface's address")
    disc.add_argument("--timeout", type=float, default=3.0, metavar="S", help="seconds (3)")
    disc.add_argument("--secrets", type=Path, metavar="FILE", help="camera credentials file")
    disc.add_argument("--state", type=Path, metavar="DIR", help="also merge into this inventory")
    disc.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing = actions.add_parser("list", help="the inventory in the state folder")
    options.add_config(listing)
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")


def run(args: argparse.Namespace) -> int:
    from privmask.daemon.cameras import InventoryError

    try:
        return _discover(args) if args.action == "discover" else _list(args)
    except InventoryError as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _discover(args: argparse.Namespace) -> int:
    from privmask.adapters import onvif
    from privmask.daemon import cameras
    from privmask.daemon.logs import configure

    if not 0 < args.timeout <= 60:
        raise UsageError(f"--timeout must be in (0, 60] seconds, got {args.timeout}")
    configure(json=False)
    secrets = cameras.load_secrets(args.secrets) if args.secrets else None
    try:
        devices = onvif.discover(args.interface, args.timeout)
    except onvif.DiscoveryError as exc:
        print(f"privmask: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    known: dict[str, dict[str, Any]] = {}
    path = cameras.inventory_path(args.state) if args.state else None
    if path is not None:
        known = _inventory(path)
    results = cameras.describe_all(devices, secrets, known)
    if path is not None:
        cameras.record_round(path, results)
    rows = [_result_row(cameras.camera_id(r), r) for r in results]
    if args.json:
        print(json.dumps({"cameras": rows}, indent=2))
    elif not rows:
        print("no ONVIF cameras answered", file=sys.stderr)
    else:
        for row in rows:
            _print_row(row)
    return EXIT_FAILED if any(r["error"] for r in rows) else EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from privmask.daemon import cameras
    from privmask.daemon.config import load_config

    state = args.state or load_config(args.config).state
    records = _inventory(cameras.inventory_path(state))
    rows = [records[k] for k in sorted(records)]
    if args.json:
        print(json.dumps({"cameras": rows}, indent=2))
    elif not rows:
        print(f"no cameras in {cameras.inventory_path(state)}", file=sys.stderr)
    else:
        for row in rows:
            _print_row(row)
    return EXIT_OK


def _inventory(path: Path) -> dict[str, dict[str, Any]]:
    from privmask.daemon import cameras

    return cameras.load_inventory(path)


def _result_row(cid: str, result: Any) -> dict[str, Any]:
    from privmask.adapters.onvif import CameraError

    if isinstance(result, CameraError):
        return {
            "id": cid,
            "endpoint": result.endpoint,
            "address": result.address,
            "state": "error",
            "error": f"{result.kind}: {result.message}",
            "error_kind": result.kind,
        }
    return {"id": cid, **asdict(result), "state": "online", "error": None}


def _print_row(row: dict[str, Any]) -> None:
    state = row.get("state", "")
    print(f"{row['id']:20} {state:8} {row.get('address') or ''}")
    if row.get("error"):
        print(f"{'':20} error: {row['error']}")
        return
    maker = " ".join(x for x in (row.get("manufacturer"), row.get("model")) if x)
    print(f"{'':20} {maker}, firmware {row.get('firmware') or '?'}")
    for label in ("main_stream", "sub_stream", "snapshot"):
        if row.get(label):
            print(f"{'':20} {label.replace('_', ' ')}: {row[label]}")
    if row.get("last_seen"):
        print(f"{'':20} first seen {row.get('first_seen')}, last seen {row['last_seen']}")
