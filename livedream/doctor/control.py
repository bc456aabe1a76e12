"""The doctor's control-page row: whether ``--control`` and ``--osc`` can start here, and how
to open the page from a phone on the same network."""

from __future__ import annotations

import importlib.metadata

from livedream.doctor.rows import CheckResult, ok, problem

PHONE_PORT = 8080  # the port the advice uses; any free port works


def check_control() -> list[CheckResult]:
    """aiohttp and python-osc import, and the address a phone on this network would open."""
    from livedream.control.session import lan_address

    missing = []
    versions = []
    for module, package in (("aiohttp", "aiohttp"), ("pythonosc", "python-osc")):
        try:
            __import__(module)
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except ImportError:
            missing.append(package)
    if missing:
        return [
            problem(
                "control page",
                f"--control and --osc cannot start: {', '.join(missing)} missing",
                f"pip install {' '.join(missing)} (or reinstall livedream: make install)",
            )
        ]
    lan = lan_address()
    where = (
        f"on a phone on the same network open http://{lan}:{PHONE_PORT}/?token=... as the run "
        "prints it"
        if lan is not None
        else "this machine has no network address a phone could reach"
    )
    return [
        ok(
            "control page",
            f"{', '.join(versions)}; livedream --control 0.0.0.0:{PHONE_PORT}, then {where}; "
            "0.0.0.0 opens the page (the live picture and every setting) to the whole network, "
            "behind a token: keep --control 8080 (this machine only) otherwise",
        )
    ]
