"""The control page (``--control``) in a real browser, and its API and guard over real HTTP.

The page runs in Debian's headless Chromium through Selenium with the system chromedriver (one
browser for the module), against a live run in this process (``controlrig``): a real dream at
64x48 on a moving synthetic scene. The guard and the API are checked with plain HTTP requests
whose Host and Origin headers the test sets; the token on a server bound to 0.0.0.0, reached
through 127.0.0.1 only. One real ``livedream`` process checks ``--look`` and the token.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from controlrig import Rig, request, start_rig, stop_rig
from helpers import FAST, LivedreamProcess, XScreen, wait_for, write_video

from livedream.control.config import Bind
from livedream.control.server import ControlServer
from livedream.control.upload import MAX_BYTES
from livedream.preview import PreviewWindow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MODEL_WAIT = 120.0  # seconds the rig's model may take to build and trace


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    rig = start_rig(tmp_path_factory.mktemp("control"))
    try:
        wait_for(lambda: len(rig.strengths) > 5, MODEL_WAIT, "the rig's first dreamed frames")
        yield rig
    finally:
        stop_rig(rig)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through the system chromedriver (never Selenium's own download)."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromium-driver are not installed (make install installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, rig: Rig) -> None:
    browser.get(rig.base + "/")
    wait_for(
        lambda: browser.execute_script("return document.getElementById('live').naturalWidth"),
        10,
        "the live view",
    )
    wait_for(lambda: browser.find_element("id", "steps").get_attribute("value"), 5, "the settings")


def page_value(browser: Any, element_id: str) -> str:
    return str(browser.find_element("id", element_id).get_attribute("value"))


# --- the page in the browser -------------------------------------------------------------------


def test_the_live_view_shows_the_run_moving(browser: Any, rig: Rig) -> None:
    open_page(browser, rig)
    live = browser.find_element("id", "live")

    def picture() -> np.ndarray:
        png = np.frombuffer(live.screenshot_as_png, np.uint8)
        return cv2.imdecode(png, cv2.IMREAD_COLOR).astype(np.float32)

    first = picture()
    assert first.std() > 10, "the live view shows no picture"
    wait_for(lambda: np.abs(picture() - first).mean() > 2.0, 10, "the live view to change")


def test_doubling_the_strength_on_the_page_strengthens_the_output(browser: Any, rig: Rig) -> None:
    open_page(browser, rig)
    settled = time.perf_counter()
    before = wait_for(lambda: rig.strength_since(settled), 20, "frames at today's strength")
    old = rig.controls.step_size
    box = browser.find_element("id", "strength")
    box.clear()
    box.send_keys(f"{2 * old:.4f}\n")  # Enter commits the number: a change event
    clicked = time.perf_counter()
    # The bar is 20% stronger within 3 s; a test does not time a loaded machine, so
    # 30 s bounds a change that never arrives.
    after = wait_for(
        lambda: (s := rig.strength_since(clicked)) is not None and s >= 1.2 * before and s,
        30.0,
        f"the output's strength to rise 20% above {before:.2f}",
    )
    status, body, _ = request(rig.server.port, "GET", "/api/state")
    assert status == 200
    assert json.loads(body)["settings"]["strength"] == pytest.approx(2 * old, rel=1e-3)
    assert after >= 1.2 * before
    rig.controls.step_size = old


def test_a_key_pressed_in_the_preview_shows_on_the_page(
    browser: Any, rig: Rig, x_screen: XScreen
) -> None:
    open_page(browser, rig)
    steps = rig.controls.steps
    assert page_value(browser, "steps") == str(steps)
    title = "livedream control test"
    window = PreviewWindow(title, keys=rig.keys)
    try:
        window.write(rig.source.frame_at(0))
        wait_for(lambda: (window.idle(), x_screen.find_window(title))[1], 10, "the window")
        x_screen.press_key("bracketright", window_title=title)  # ]: one more step
        wait_for(lambda: (window.idle(), rig.controls.steps == steps + 1)[1], 10, "the ] key")
    finally:
        window.close()
    # The page asks for the state twice a second: the key shows there within a second.
    wait_for(lambda: page_value(browser, "steps") == str(steps + 1), 5, "the page to show it")
    rig.controls.steps = steps


def test_a_look_saved_on_the_page_comes_back_with_the_look_flag(
    browser: Any, rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_page(browser, rig)
    old = rig.controls.step_size
    rig.bridge.change({"strength": 0.031, "steps": 3})
    browser.find_element("id", "look-name").send_keys("strong-eyes")
    browser.find_element("id", "save-look").click()
    wait_for(lambda: (rig.looks / "strong-eyes.toml").is_file(), 5, "the look's file")
    wait_for(
        lambda: browser.find_elements("css selector", "[data-look='strong-eyes']"), 5, "it listed"
    )
    rig.bridge.change({"strength": old, "steps": 2})

    clip = write_video(tmp_path / "clip.avi", frames=400)
    args = ["-i", str(clip), "--realtime", "-o", str(tmp_path / "out.mp4"), *FAST]
    args += ["--control", "0.0.0.0:0", "--look", "strong-eyes"]
    monkeypatch.setenv("XDG_CONFIG_HOME", str(rig.looks.parents[1]))  # the rig's looks
    proc = LivedreamProcess(args, cwd=tmp_path)
    try:
        found = wait_for(
            lambda: re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", proc.err),
            MODEL_WAIT,
            "the control page's address",
        )
        port, token = int(found[1]), found[2]
        assert request(port, "GET", "/api/state")[0] == 401
        status, body, _ = request(
            port, "GET", "/api/state", headers={"Authorization": "Bearer nope-nope"}
        )
        assert status == 401 and b"token" not in body.lower()
        status, body, _ = request(
            port, "GET", "/api/state", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200
        settings = json.loads(body)["settings"]
        assert settings["strength"] == pytest.approx(0.031) and settings["steps"] == 3
        # The printed address opens the page in a browser: the token becomes a cookie, the
        # live view runs on it.
        browser.get(f"http://127.0.0.1:{port}/?token={token}")
        assert token not in browser.current_url
        wait_for(lambda: page_value(browser, "strength") == "0.031", 10, "the page with the look")
        wait_for(
            lambda: browser.execute_script("return document.getElementById('live').naturalWidth"),
            30,
            "the run's live view",
        )
    finally:
        proc.close()
    printed = [line for line in proc.err.splitlines() if token in line]
    assert len(printed) == 1 and printed[0].startswith("control page: "), proc.err


# --- the guard and the API over plain HTTP -----------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_names_reach_the_page(rig: Rig, host: str) -> None:
    status, body, headers = request(rig.server.port, "GET", "/", host=host)
    assert status == 200 and b"<title>livedream</title>" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]


@pytest.mark.parametrize("host", ["evil.example", "rebound.attacker.test", "192.168.1.5"])
def test_a_foreign_host_gets_403_on_a_loopback_bind(rig: Rig, host: str) -> None:
    for method, path in (("GET", "/api/state"), ("GET", "/live.jpg"), ("POST", "/api/reset")):
        status, body, _ = request(rig.server.port, method, path, host=host)
        assert status == 403, (method, path)
        assert b"settings" not in body


def test_a_foreign_origin_gets_403_and_changes_nothing(rig: Rig) -> None:
    port, steps = rig.server.port, rig.controls.steps
    for origin in ("http://evil.example", "null", f"http://localhost:{port + 1}"):
        status, _, _ = request(port, "POST", "/api/settings", {"steps": 7}, {"Origin": origin})
        assert status == 403
    upgrade = {"Origin": "http://evil.example", "Upgrade": "websocket", "Connection": "Upgrade"}
    assert request(port, "GET", "/live.mjpg", headers=upgrade)[0] == 403
    assert rig.controls.steps == steps
    own = {"Origin": f"http://127.0.0.1:{port}"}
    assert request(port, "POST", "/api/settings", {"steps": steps}, own)[0] == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"strength": "strong"}, "strength: expected a number, got 'strong'"),
        ({"strength": 5}, "strength: expected a number from 0.0005 to 0.2, got 5"),
        ({"steps": 2.5}, "steps: expected a whole number, got 2.5"),
        ({"steps": 0}, "steps: expected a number from 1 to 20, got 0"),
        ({"dream": 1}, "dream: expected true or false, got 1"),
        ({"layers": "block9_conv9"}, "layers: expected one of block2_conv2, "),
        ({"strength": 0.05, "steps": 99}, "steps: expected a number from 1 to 20, got 99"),
        ({"brightness": 3}, "unknown setting 'brightness'"),
        ({"guide": True}, "guide: there is no guide image yet"),
    ],
)
def test_a_bad_value_gets_400_with_a_reason_and_changes_nothing(
    rig: Rig, change: dict[str, Any], reason: str
) -> None:
    before = rig.bridge.settings()
    status, body, _ = request(rig.server.port, "POST", "/api/settings", change)
    assert status == 400
    text = body.decode()
    assert text.startswith(reason) and "\n" not in text.strip()
    assert rig.bridge.settings() == before


def png(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(width, height) // 3, (0, 200, 255), -1)
    return bytes(cv2.imencode(".png", image)[1])


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"\0" * (MAX_BYTES + 1), 413, "guide: expected an image of at most 10 MB"),
        (png(4100, 8), 400, "guide: expected at most 4096x4096 pixels, got 4100x8"),
        (b"GIF89a not what it says", 400, "guide: expected a PNG, JPEG or WebP image"),
        (
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10 broken",
            400,
            "guide: the image could not",
        ),
    ],
)
def test_an_oversized_or_broken_upload_is_refused(
    rig: Rig, body: bytes, status: int, reason: str
) -> None:
    got, text, _ = request(
        rig.server.port, "POST", "/api/guide", body, {"Content-Type": "image/png"}
    )
    assert (got, text.decode()[: len(reason)]) == (status, reason)
    assert not rig.controls.has_guide


def test_an_uploaded_guide_becomes_the_dreams_guide(rig: Rig) -> None:
    status, body, _ = request(rig.server.port, "POST", "/api/guide", png(96, 64))
    assert status == 200 and json.loads(body)["settings"]["guide"] is True
    dreamer = rig.pipeline.dreamer
    assert dreamer is not None
    # The dream thread takes it before its next keyframe and dreams toward it.
    wait_for(
        lambda: rig.controls.guide_image is None and dreamer.guided, 10, "the dream to take it"
    )
    assert dreamer.step.guide is not None and dreamer.step.guide.shape == (64, 96, 3)
    assert request(rig.server.port, "POST", "/api/settings", {"guide": False})[0] == 200
    wait_for(lambda: not dreamer.guided, 10, "the guide off")


def test_a_screenshot_is_saved_where_the_run_is_and_offered_for_download(rig: Rig) -> None:
    status, body, _ = request(rig.server.port, "POST", "/api/screenshot")
    assert status == 200
    name = json.loads(body)["name"]
    assert (rig.shots / name).is_file()
    status, data, headers = request(rig.server.port, "GET", f"/screenshots/{name}")
    assert status == 200 and data.startswith(b"\x89PNG")
    assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    assert name in json.loads(request(rig.server.port, "GET", "/api/state")[1])["screenshots"]
    for other in ("..%2F..%2Fetc%2Fpasswd", "livedream-1.png", "notes.txt"):
        assert request(rig.server.port, "GET", f"/screenshots/{other}")[0] == 404


def test_the_mjpeg_view_sends_new_pictures_at_a_bounded_size(rig: Rig) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", rig.server.port, timeout=10)
    try:
        conn.request("GET", "/live.mjpg")
        response = conn.getresponse()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        pictures = []
        for _ in range(2):
            while not (line := response.readline()).startswith(b"Content-Length:"):
                pass
            length = int(line.split(b":")[1])
            response.readline()
            jpeg = response.read(length)
            pictures.append(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR))
    finally:
        conn.close()
    assert all(p.shape == (120, 160, 3) for p in pictures)
    assert np.abs(pictures[0].astype(np.float32) - pictures[1]).mean() > 0.5


def test_beyond_loopback_every_request_needs_the_token(rig: Rig) -> None:
    token = "a-token-for-this-test"
    with ControlServer(rig.bridge, Bind("0.0.0.0", 0), token=token) as server:
        port = server.port
        for headers in (
            {},
            {"Authorization": "Bearer wrong-token"},
            {"Cookie": "livedream_token=x"},
        ):
            for path in ("/", "/api/state", "/live.jpg", "/live.mjpg"):
                status, body, _ = request(port, "GET", path, headers=headers)
                assert (status, body) == (401, b"401: Unauthorized"), path
        assert request(port, "POST", "/api/settings?token=wrong", {"steps": 9})[0] == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert request(port, "GET", "/api/state", headers=bearer)[0] == 200
        # The address with ?token= moves the token into a cookie and out of the address bar.
        status, _, headers = request(port, "GET", f"/?token={token}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
        assert request(port, "GET", "/api/state", headers={"Cookie": cookie})[0] == 200
        # Beyond loopback any Host may reach it (a phone uses the LAN address), Origin is checked.
        assert request(port, "GET", "/api/state", headers=bearer, host="192.168.1.5")[0] == 200
        evil = {**bearer, "Origin": "http://evil.example"}
        assert request(port, "POST", "/api/reset", headers=evil)[0] == 403
    server.close()  # a second close is harmless
    with pytest.raises(ConnectionRefusedError):  # closed means closed
        request(port, "GET", "/api/state", headers=bearer)
