"""Looks that last: the dream's settings saved under a name, as a small TOML file.

A look lives in the user's config folder, ``$XDG_CONFIG_HOME/livedream/looks/NAME.toml``
(``~/.config/livedream/looks`` by default; ``~/Library/Application Support/livedream/looks``
on macOS, ``%APPDATA%\\livedream\\looks`` on Windows). The page and the preview's ``v`` key save
one, ``--look NAME`` starts a run with one and the page loads them. A look holds the dream's
look (steps, strength, blend, flow, layers, channels, guide on/off, faces), not the machine's
settings (size, rate) nor the camera's (mirror). A file written by hand may hold any of them.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from livedream.control.values import BadValue, check_value
from livedream.controls import Controls
from livedream.errors import UsageError
from livedream.models import Channels, ModelSpec, check_layers
from livedream.resolve import check_channels

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # a file name on every system, no path
NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
SCALARS = ("steps", "strength", "blend", "flow", "guide", "faces", "face_strength")


class LookError(UsageError):
    """A look that is not there, badly named or whose file does not fit the model."""


@dataclass(frozen=True)
class SavedLook:
    """A look saved under a name (not the resolved dream); None: that setting is left as it is."""

    name: str
    steps: int | None = None
    strength: float | None = None
    blend: float | None = None
    flow: bool | None = None
    guide: bool | None = None
    faces: bool | None = None
    face_strength: float | None = None
    layers: tuple[str, ...] | None = None
    channels: Channels | None = None


def looks_folder() -> Path:
    """Where looks are kept on this system (see the module's docstring)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "livedream" / "looks"


def check_name(name: str) -> str:
    """``name`` when it can name a look file; raises ``LookError``."""
    if not NAME.fullmatch(name):
        raise LookError(f"a look's name must be {NAME_RULE}, got {name!r}")
    return name


def list_looks(folder: Path) -> list[str]:
    """The saved looks' names, sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml") if NAME.fullmatch(p.stem))


def look_of(name: str, controls: Controls) -> SavedLook:
    """The look ``controls`` show now, named ``name``."""
    c = controls
    return SavedLook(
        name=check_name(name),
        steps=c.steps,
        strength=c.step_size,
        blend=c.blend,
        flow=c.flow,
        guide=c.guide,
        faces=c.faces,
        face_strength=c.face_strength,
        layers=c.layers,
        channels=c.channels,
    )


def new_name(now: datetime | None = None) -> str:
    """A fresh name for a look saved with no name given (the ``v`` key)."""
    return f"look-{(now or datetime.now()):%Y%m%d-%H%M%S}"


def save_look(look: SavedLook, folder: Path) -> Path:
    """Writes ``look`` as ``folder/NAME.toml`` (replacing one of that name); returns the path.

    Raises:
        OSError: the folder cannot be made or written.
    """
    lines = [f"# livedream look {look.name!r}, saved {datetime.now():%Y-%m-%d %H:%M}"]
    for key in SCALARS:
        value = getattr(look, key)
        if value is not None:
            lines.append(f"{key} = {_toml(value)}")
    if look.layers is not None:
        lines.append(f"layers = {_toml(list(look.layers))}")
    if look.channels is not None:
        lines += ["", "[channels]  # layer = [channel numbers]; none: every channel"]
        lines += [f"{json.dumps(layer)} = {_toml(list(c))}" for layer, c in look.channels]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{check_name(look.name)}.toml"
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)  # never a half-written look under its name
    return path


def _toml(value: object) -> str:
    """A TOML value for a bool, number, string or list of them (all livedream writes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def load_look(name: str, folder: Path, spec: ModelSpec | None) -> SavedLook:
    """Reads look ``name`` from ``folder`` and checks it against ``spec``'s model (None: the
    model is not decided yet; ``check_saved_look`` checks it at the door).

    Raises:
        LookError: no such look, a file that is not TOML, or a value that does not fit
            (one line, naming the look and what to do).
    """
    path = folder / f"{check_name(name)}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        saved = ", ".join(list_looks(folder)) or "none yet"
        raise LookError(
            f"no look named {name!r} in {folder} (saved: {saved}); save one with the control "
            "page or the preview's v key"
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LookError(f"look {name!r} ({path}) is not a readable TOML file: {exc}") from None
    try:
        return _parse(name, data, spec)
    except (BadValue, UsageError) as exc:
        raise LookError(f"look {name!r} ({path}): {exc}; fix or delete the file") from None


def check_saved_look(look: SavedLook, spec: ModelSpec) -> None:
    """Checks a look read before the model was decided against ``spec``'s model.

    Raises:
        LookError: its layers or channels do not fit the model (one line).
    """
    try:
        layers = check_layers(spec, look.layers) if look.layers else spec.default_layers
        if look.channels:
            check_channels(spec, layers, look.channels)
    except UsageError as exc:
        raise LookError(f"look {look.name!r}: {exc}; fix or delete the file") from None


def _parse(name: str, data: dict[str, Any], spec: ModelSpec | None) -> SavedLook:
    unknown = set(data) - {*SCALARS, "layers", "channels"}
    if unknown:
        raise BadValue(
            f"unknown key {sorted(unknown)[0]!r}: expected {', '.join(SCALARS)}, layers, channels"
        )
    values: dict[str, Any] = {k: check_value(k, data[k]) for k in SCALARS if k in data}
    layers = None
    if "layers" in data:
        raw = data["layers"]
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
            raise BadValue(f"layers: expected a list of layer names, got {raw!r}")
        layers = tuple(raw) if spec is None else check_layers(spec, raw)
    channels = None
    if "channels" in data:
        raw = data["channels"]
        if not isinstance(raw, dict) or not all(
            isinstance(c, list) and c and all(type(n) is int and n >= 0 for n in c)
            for c in raw.values()
        ):
            raise BadValue(f"channels: expected a table of layer = [channel numbers], got {raw!r}")
        chosen: Channels = tuple((layer, tuple(c)) for layer, c in raw.items())
        channels = chosen
        if spec is not None and chosen:
            channels = check_channels(spec, layers or spec.default_layers, chosen)
    return SavedLook(name=name, layers=layers, channels=channels, **values)


def apply_look(look: SavedLook, controls: Controls) -> None:
    """Sets ``controls`` to ``look`` (what it holds); the guide only where there is one."""
    c = controls
    c.steps = c.steps if look.steps is None else look.steps
    c.step_size = c.step_size if look.strength is None else look.strength
    c.blend = c.blend if look.blend is None else look.blend
    c.flow = c.flow if look.flow is None else look.flow
    c.faces = c.faces if look.faces is None else look.faces
    c.face_strength = c.face_strength if look.face_strength is None else look.face_strength
    if look.guide is not None and c.has_guide:
        c.guide = look.guide
    if look.layers is not None:
        c.layers = look.layers
    if look.channels is not None:
        c.channels = look.channels


def save_now(controls: Controls, folder: Path | None = None) -> str:
    """Saves the settings now under a fresh name (the preview's ``v`` key); returns the name.

    Raises:
        OSError: the looks folder cannot be written.
    """
    name = new_name()
    save_look(look_of(name, controls), folder or looks_folder())
    return name
