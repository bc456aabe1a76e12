"""OSC (real UDP through python-osc's own client), looks saved and loaded, and the control
flags. No model is built: these check what reaches ``Controls``, the one owner the dream
thread applies (the page's tests show a change reaching the output)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import wait_for
from pythonosc.udp_client import SimpleUDPClient

from livedream.cli import main
from livedream.control.bridge import ControlBridge
from livedream.control.config import Bind, ControlConfig, control_config, parse_bind
from livedream.control.looks import LookError, load_look, look_of, looks_folder, save_look
from livedream.control.osc import OscServer
from livedream.control.session import ControlSession
from livedream.controls import Controls
from livedream.models import get_spec
from livedream.preview import KeyHandler
from livedream.stats import Stats

SPEC = get_spec("vgg16_hed")


def make_bridge(folder: Path, *, face_tracking: bool = True) -> ControlBridge:
    controls = Controls(
        steps=2, step_size=0.012, flow=True, layers=SPEC.default_layers, face_strength=0.35
    )
    keys = KeyHandler(
        controls,
        list(SPEC.presets),
        channel_presets=[(p.name, p.selection) for p in SPEC.channel_presets],
    )
    return ControlBridge(
        controls,
        keys,
        Stats(),
        spec=SPEC,
        frame_size=(320, 240),
        start_size=(320, 240),
        looks_folder=folder / "looks",
        screenshot_folder=folder,
        face_tracking=face_tracking,
    )


@pytest.fixture
def bridge(tmp_path: Path) -> ControlBridge:
    return make_bridge(tmp_path)


@pytest.fixture
def osc(bridge: ControlBridge) -> Iterator[tuple[ControlBridge, SimpleUDPClient]]:
    with OscServer(bridge, Bind("127.0.0.1", 0)) as server:
        yield bridge, SimpleUDPClient("127.0.0.1", server.port)


# --- OSC -----------------------------------------------------------------------------------------


def test_osc_messages_change_the_live_settings(osc: tuple[ControlBridge, SimpleUDPClient]) -> None:
    bridge, client = osc
    c = bridge.controls
    client.send_message("/livedream/strength", 0.03)
    client.send_message("/livedream/steps", 4)
    client.send_message("/livedream/layer", 3)
    client.send_message("/livedream/face", 0.8)
    client.send_message("/livedream/blend", 0.5)
    client.send_message("/livedream/dream", 0)
    wait_for(lambda: not c.enabled, 5, "the last message")
    # OSC floats are 32-bit: taken to their 7 digits, 0.03 is 0.03.
    assert (c.step_size, c.steps, c.face_strength, c.blend) == (0.03, 4, 0.8, 0.5)
    assert c.layers == SPEC.presets[3]
    # A channel preset moves the dream onto its layer, as the c key does.
    client.send_message("/livedream/channels", 2)
    preset = SPEC.channel_presets[2]
    wait_for(lambda: c.channels == preset.selection, 5, "the channel preset")
    assert preset.layer in c.layers
    client.send_message("/livedream/reset", [])
    wait_for(c.take_reset, 5, "the reset")


@pytest.mark.parametrize(
    ("address", "value", "reason"),
    [
        ("/livedream/strength", 5.0, "strength: expected a number from 0.0005 to 0.2, got 5.0"),
        ("/livedream/steps", 2.5, "steps: expected a whole number, got 2.5"),
        ("/livedream/steps", "many", "steps: expected a whole number, got 'many'"),
        ("/livedream/dream", 2, "expected 0 or 1, got 2"),
        ("/livedream/layer", 99, "expected a layer preset from 0 to 3, got 99"),
        ("/livedream/look", "nobody-saved-this", "no look named 'nobody-saved-this'"),
        ("/livedream/brightness", 1.0, "unknown address"),
    ],
)
def test_a_bad_osc_message_is_ignored_with_one_log_line(
    osc: tuple[ControlBridge, SimpleUDPClient],
    caplog: pytest.LogCaptureFixture,
    address: str,
    value: object,
    reason: str,
) -> None:
    bridge, client = osc
    before = bridge.settings()
    with caplog.at_level(logging.WARNING, logger="livedream.control.osc"):
        client.send_message(address, value)
        client.send_message("/livedream/mirror", 1)  # a good one after it: then both were read
        wait_for(lambda: bridge.controls.mirror, 5, "the message after it")
    assert bridge.settings() == {**before, "mirror": True}
    lines = [r.getMessage() for r in caplog.records if r.name == "livedream.control.osc"]
    assert len(lines) == 1 and reason in lines[0] and "\n" not in lines[0]


def test_osc_beyond_loopback_warns_that_it_has_no_authentication(
    bridge: ControlBridge, caplog: pytest.LogCaptureFixture
) -> None:
    from rich.console import Console

    config = ControlConfig(osc=Bind("0.0.0.0", 0))
    with caplog.at_level(logging.WARNING), ControlSession(config, bridge, Console(quiet=True)) as s:
        assert s.osc is not None
        SimpleUDPClient("127.0.0.1", s.osc.port).send_message("/livedream/steps", 5)
        wait_for(lambda: bridge.controls.steps == 5, 5, "the message")
    assert any("no authentication" in r.getMessage() for r in caplog.records)


def test_a_look_loads_over_osc(osc: tuple[ControlBridge, SimpleUDPClient]) -> None:
    bridge, client = osc
    bridge.change({"strength": 0.05, "layers": "block3_conv3"})
    bridge.save_look("deep")
    bridge.change({"strength": 0.01, "layers": "block4_conv3"})
    client.send_message("/livedream/look", "deep")
    wait_for(lambda: bridge.controls.step_size == 0.05, 5, "the look")
    assert bridge.controls.layers == ("block3_conv3",)


# --- looks -------------------------------------------------------------------------------------


def test_a_look_round_trips_through_its_toml_file(bridge: ControlBridge, tmp_path: Path) -> None:
    c = bridge.controls
    bridge.change({"strength": 0.02, "steps": 3, "blend": 0.7, "flow": False, "channels": "eyes"})
    path = save_look(look_of("eyes-3", c), tmp_path)
    assert path == tmp_path / "eyes-3.toml"
    text = path.read_text()
    assert "strength = 0.02" in text and "[channels]" in text
    look = load_look("eyes-3", tmp_path, SPEC)
    assert look == look_of("eyes-3", c)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("steps = 0\n", "steps: expected a number from 1 to 20, got 0"),
        ("strength = 'high'\n", "strength: expected a number, got 'high'"),
        ("layers = ['mixed3']\n", "model vgg16_hed has no layer 'mixed3'"),
        ("colour = 1\n", "unknown key 'colour'"),
        ("steps = \n", "is not a readable TOML file"),
        ("layers = ['block4_conv3']\n[channels]\nblock4_conv3 = [9999]\n", "has 512 channels"),
    ],
)
def test_a_bad_look_file_is_one_line_naming_it(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(LookError) as caught:
        load_look("bad", tmp_path, SPEC)
    message = str(caught.value)
    assert reason in message and message.startswith("look 'bad'") and "\n" not in message


def test_the_v_key_saves_the_look_in_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    from functools import partial

    from livedream.control.looks import save_now

    controls = Controls(steps=5, step_size=0.04, flow=True, layers=("block3_conv3",))
    keys = KeyHandler(controls, list(SPEC.presets), save_look=partial(save_now, controls))
    note = keys.handle(ord("v"))
    assert looks_folder() == tmp_path / "livedream" / "looks"
    (saved,) = looks_folder().glob("look-*.toml")
    assert note == f"saved the look {saved.stem!r}"
    look = load_look(saved.stem, looks_folder(), SPEC)
    assert (look.steps, look.strength, look.layers) == (5, 0.04, ("block3_conv3",))


# --- flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bind"),
    [
        ("8080", Bind("127.0.0.1", 8080)),
        ("0.0.0.0:9000", Bind("0.0.0.0", 9000)),
        ("[::1]:0", Bind("::1", 0)),
        ("localhost:80", Bind("localhost", 80)),
    ],
)
def test_control_binds_parse(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind


def test_a_token_is_made_beyond_loopback_only_and_never_shown() -> None:
    assert control_config(Bind("127.0.0.1", 1), None, None).token is None
    config = control_config(Bind("0.0.0.0", 1), None, None)
    assert config.token and len(config.token) >= 20 and config.token_generated
    assert config.token not in repr(config)
    given = control_config(Bind("0.0.0.0", 1), "my-own-token", None)
    assert given.token == "my-own-token" and not given.token_generated


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--control", "99999"], "argument --control: expected a port from 0 to 65535, got 99999"),
        (["--control", "a:b:c"], "argument --control: expected [HOST:]PORT, with an IPv6 host"),
        (["--control-token", "abcdefghij"], "--control-token needs --control [HOST:]PORT"),
        (["--control", "1", "--control-token", "short"], "expected a token of 8 or more"),
        (["--look", "../etc"], "a look's name must be 1-64 letters"),
        (["--look", "missing"], "argument --look: no look named 'missing' in "),
    ],
)
def test_bad_control_flags_are_one_line_and_exit_2(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_the_doctor_says_how_to_open_the_page_from_a_phone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from livedream.control import session
    from livedream.doctor.control import check_control

    monkeypatch.setattr(session, "lan_address", lambda: "192.168.1.23")
    (row,) = check_control()
    assert row.status == "ok" and "aiohttp" in row.detail
    assert "--control 0.0.0.0:8080" in row.detail
    assert "http://192.168.1.23:8080/?token=" in row.detail and "whole network" in row.detail


def test_a_port_in_use_is_one_line_for_the_page_and_for_osc(bridge: ControlBridge) -> None:
    import socket

    from livedream.control.server import ControlError, ControlServer

    with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("127.0.0.1", 0))
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
        with pytest.raises(ControlError) as page:
            ControlServer(bridge, Bind("127.0.0.1", tcp_port)).start()
        with pytest.raises(ControlError) as osc:
            OscServer(bridge, Bind("127.0.0.1", udp_port)).start()
    assert str(page.value) == (
        f"cannot serve the control page on 127.0.0.1:{tcp_port}: Address already in use; "
        "pick another port or address with --control"
    )
    assert str(osc.value).startswith(f"cannot take OSC on 127.0.0.1:{udp_port}: Address already")
