"""Packaging checks: the Debian package and its systemd service.

Building the .deb, a debootstrap chroot and a booted nspawn container take minutes, so tests
marked `packaging` run only with PRIVMASK_PACKAGING=1 (as `packaging/deb/check` sets it,
which `.ci/run` calls after the default suite). Quick tests here carry no mark and run always.
"""

import os

import pytest

ENABLED = os.environ.get("PRIVMASK_PACKAGING") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "packaging: slow packaging check, run by packaging/deb/check only"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="packaging check: run packaging/deb/check")
    for item in items:
        if item.get_closest_marker("packaging"):
            item.add_marker(skip)
