"""The Segmind backend against a real HTTP server on loopback that speaks the documented contract."""

import base64
import datetime as dt
import json
import os
import re
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from engine.backend import SynthesisRequest
from engine.config import load_settings
from engine.errors import BackendError, BackendUnavailable
from engine.expression import PARAMETERS, Expression
from plugins.segmind import SegmindBackend, upload_box
from plugins.segmind.client import Pacer, SegmindClient, build_payload
from plugins.segmind.fake_server import FakeSegmind
from plugins.segmind.pace import FilePacer
from tests.helpers import SAMPLE, assert_one_line_error, clean_env, json_lines, run_cli

KEY = "sk-test-7f3a9c-secret"


@pytest.fixture
def server():
    with FakeSegmind(api_key=KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def face(landmarker):
    return landmarker.detect(cv2.imread(str(SAMPLE)))[0]


def settings_for(server_url, tmp_path, **extra):
    values = {"segmind_api_key": KEY, "segmind_url": server_url, "segmind_rpm": 6000, "cache_dir": str(tmp_path),
              "segmind_read_timeout": 5.0}
    values.update(extra)
    return load_settings(values, {"XDG_CONFIG_HOME": "/nonexistent"})


def synthesize(settings, face, expression=None):
    image = cv2.imread(str(SAMPLE))
    request = SynthesisRequest(image, (face,), expression or Expression({"smile": 1.0, "aaa": 20}), settings)
    return image, SegmindBackend().synthesize(request)


def test_payload_has_every_field_with_its_type():
    payload = build_payload("QUJD", Expression({"smile": 0.5, "rotate_yaw": -4}), "jpeg", 90)
    assert payload["image"] == "QUJD" and payload["image_format"] == "jpeg" and payload["image_quality"] == 90
    assert payload["sample_parts"] == "OnlyExpression"
    for spec in PARAMETERS:
        assert isinstance(payload[spec.name], float)
    assert payload["smile"] == 0.5 and payload["rotate_yaw"] == -4.0 and payload["aaa"] == 0.0


def test_exact_request_and_pasted_result(server, tmp_path, face):
    image, result = synthesize(settings_for(server.base_url, tmp_path), face)
    (sent,) = server.requests
    assert sent["method"] == "POST" and sent["path"] == "/v1/expression-editor"
    assert sent["headers"]["x-api-key"] == KEY and sent["headers"]["content-type"] == "application/json"
    body = sent["json"]
    assert set(body) == {"image", "image_format", "image_quality", "sample_parts", *(p.name for p in PARAMETERS)}
    assert body["smile"] == 1.0 and body["aaa"] == 20.0 and body["image_format"] == "png"
    assert not body["image"].startswith("data:")
    uploaded = cv2.imdecode(np.frombuffer(base64.b64decode(body["image"]), np.uint8), cv2.IMREAD_COLOR)
    x0, y0, side = upload_box(face.box, image.shape[1], image.shape[0])
    assert uploaded.shape == (side, side, 3) and side < image.shape[0]  # a crop, not the whole photo
    assert np.array_equal(uploaded, image[y0:y0 + side, x0:x0 + side])  # exactly the pixels around the face
    output = result.image
    centre = (y0 + side // 2, x0 + side // 2)
    assert int(output[centre].sum()) > int(image[centre].sum()) + 100  # the server's edit is pasted in
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y0 + side, x0:x0 + side] = False
    assert np.array_equal(output[outside], image[outside])  # nothing outside the crop changes
    edge = np.abs(output[y0:y0 + side, x0 + 1].astype(int) - image[y0:y0 + side, x0 + 1]).max()
    assert edge <= 3  # the crop's border blends in: no seam
    assert result.info["calls"] == 1 and result.info["remaining_credits"] == pytest.approx(10 - 0.0016)
    assert result.info["cost"] == pytest.approx(0.0016) and result.info["request_ids"]


def test_same_request_is_answered_from_the_cache(server, tmp_path, face):
    settings = settings_for(server.base_url, tmp_path)
    synthesize(settings, face)
    _, again = synthesize(settings, face)
    assert len(server.requests) == 1 and again.info["cached"] == 1 and again.info["calls"] == 0
    synthesize(settings_for(server.base_url, tmp_path, no_cache=True), face)
    assert len(server.requests) == 2 and server.billed == 2


def test_whole_image_upload_setting(server, tmp_path, face):
    image, result = synthesize(settings_for(server.base_url, tmp_path, segmind_upload="full"), face)
    uploaded = base64.b64decode(server.requests[0]["json"]["image"])
    assert cv2.imdecode(np.frombuffer(uploaded, np.uint8), cv2.IMREAD_COLOR).shape == image.shape


def test_json_answer_with_base64_image(server, tmp_path, face):
    server.script.append("json")
    image, result = synthesize(settings_for(server.base_url, tmp_path), face)
    assert result.image.shape == image.shape and result.info["calls"] == 1


@pytest.mark.parametrize("setup, error, fragments, requests", [
    (lambda s: setattr(s, "api_key", "other"), BackendUnavailable,
     ["rejected the API key (401)", "SEGMIND_API_KEY"], 1),
    (lambda s: setattr(s, "credits", 0.0), BackendUnavailable, ["406", "out of credits"], 1),
    (lambda s: s.script.append("422"), BackendError, ["422", "aaa: not accepted here"], 1),
    (lambda s: s.script.append("500"), BackendError, ["500", "try again later"], 1),
    (lambda s: s.script.append("garbage"), BackendError, ["not an image", "text/html"], 1),
    (lambda s: s.script.append("wrong_size"), BackendError, ["returned a"], 1),
    (lambda s: s.script.append("slow:3"), BackendError, ["longer than 0.5 s", "not retried"], 1),
    (lambda s: s.script.append("huge"), BackendError, ["over 1 MB"], 1),
])
def test_errors_are_explained_and_never_retried(server, tmp_path, face, setup, error, fragments, requests):
    setup(server)
    settings = settings_for(server.base_url, tmp_path, segmind_read_timeout=0.5, segmind_max_response_mb=1.0)
    with pytest.raises(error) as caught:
        synthesize(settings, face)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(server.requests) == requests  # one bill at most for one capture


def test_wrong_path_names_the_url_setting(server, tmp_path, face):
    with pytest.raises(BackendUnavailable, match="segmind_url"):
        synthesize(settings_for(server.base_url + "/nope", tmp_path), face)


def test_rate_limit_waits_for_the_reset_then_succeeds_once(server, tmp_path, face):
    server.script.append("429")
    _, result = synthesize(settings_for(server.base_url, tmp_path), face)
    assert result.info["calls"] == 1 and server.billed == 1 and len(server.requests) == 2


def test_long_rate_limit_is_reported_with_its_reset_time(server, tmp_path, face):
    server.rpm = 1
    synthesize(settings_for(server.base_url, tmp_path), face)
    with pytest.raises(BackendError, match=r"rate limit reached \(429\) until \d\d:\d\d:\d\d UTC") as caught:
        synthesize(settings_for(server.base_url, tmp_path, no_cache=True), face)
    assert caught.value.retryable and server.billed == 1


def test_connection_refused_is_offline(tmp_path, face):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnavailable, match="cannot reach Segmind.*connection refused"):
        synthesize(settings_for(f"http://127.0.0.1:{port}/v1", tmp_path), face)


def test_unreachable_server_fails_fast_at_the_default_pace(tmp_path, face):
    # a refused connection never reached the server: its retries and the next photo are not paced (5 a minute
    # would space them 12 s apart, 25 s per photo)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(f"http://127.0.0.1:{port}/v1", tmp_path, segmind_rpm=5)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match="cannot reach Segmind.*connection refused"):
            synthesize(settings, face)
        assert time.monotonic() - started < 6.0


def test_a_request_that_reached_the_server_is_still_paced(server, tmp_path):
    sleeps, pacer = [], Pacer()
    client = SegmindClient(settings_for(server.base_url, tmp_path, segmind_rpm=5), pacer=pacer, sleep=sleeps.append)
    image = cv2.imread(str(SAMPLE))[:128, :128]
    try:
        client.edit(image, Expression({"smile": 1.0}))
        client.edit(image, Expression({"smile": 1.0}))
    finally:
        client.close()
    assert server.billed == 2 and len(sleeps) == 1 and sleeps[0] == pytest.approx(12.0, abs=0.5)


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_a_turn_given_back_is_free_again_unless_a_later_one_was_taken(tmp_path, kind):
    waits = []
    if kind == "memory":
        pacer = Pacer()

        def other_takes_a_turn():  # another thread of the process
            thread = threading.Thread(target=pacer.wait, args=(5, waits.append))
            thread.start()
            thread.join()
    else:
        pacer, other = FilePacer(tmp_path / "pace"), FilePacer(tmp_path / "pace")  # as two processes

        def other_takes_a_turn():
            other.wait(5, waits.append)
    assert pacer.wait(5, waits.append) <= 0
    pacer.give_back()
    assert pacer.wait(5, waits.append) <= 0  # the turn given back is free: no 12 s wait
    other_takes_a_turn()
    pacer.give_back()  # a later turn was taken, so this one stays taken
    pacer.wait(5, waits.append)
    assert waits == [pytest.approx(12.0, abs=0.5), pytest.approx(24.0, abs=0.5)]


def test_pacer_spaces_requests():
    waits = []
    pacer = Pacer()
    for _ in range(3):
        pacer.wait(120, waits.append)
    assert waits[0] == pytest.approx(0.5, abs=0.05) and waits[1] == pytest.approx(1.0, abs=0.05)


def _env(server, tmp_path, **extra):
    values = {"SEGMIND_API_KEY": KEY, "FACESYNTH_SEGMIND_URL": server.base_url, "FACESYNTH_SEGMIND_RPM": "6000",
              "FACESYNTH_CACHE_DIR": str(tmp_path / "cache")}
    return clean_env(**{**values, **extra})


def test_cli_stores_capture_and_never_writes_the_key(server, tmp_path):
    out = tmp_path / "out"
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "segmind", "--out", out, "--json",
                     "--log-level", "debug", "--log-json", env=_env(server, tmp_path))
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["status"] == "ok" and record["backend"] == "segmind"
    folder = record["output_dir"]
    assert sorted(os.listdir(folder)) == ["compare.png", "input.png", "meta.json", "output.png"]
    meta = json.loads(open(os.path.join(folder, "meta.json")).read())
    assert meta["backend_info"]["remaining_credits"] == pytest.approx(10 - 0.0016)
    assert '"event": "segmind_call"' in result.stderr  # debug logs were on, and still no key below
    assert KEY not in result.stdout and KEY not in result.stderr
    for root, _, files in os.walk(tmp_path):
        for name in files:
            assert KEY.encode() not in open(os.path.join(root, name), "rb").read(), name
    listing = run_cli("plugins", "--json", env=_env(server, tmp_path))
    segmind = [row for row in json.loads(listing.stdout)["backends"] if row["id"] == "segmind"][0]
    assert segmind["status"] == "loaded" and segmind["account"]["remaining_credits"] == pytest.approx(9.9984)


def test_cli_error_keeps_the_input_and_exits_1(server, tmp_path):
    server.credits = 0.0
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "segmind", "--out", tmp_path / "out",
                     "--json", env=_env(server, tmp_path))
    assert result.returncode == 1
    (record,) = json_lines(result.stdout)
    assert "out of credits" in record["error"]
    assert sorted(os.listdir(record["output_dir"])) == ["input.png", "meta.json"]
    assert "out of credits" in result.stderr and "Traceback" not in result.stderr


def test_auto_falls_back_and_says_so(server, tmp_path):
    server.credits = 0.0
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "auto", "--out", tmp_path / "out",
                     env=_env(server, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "landmark-warp" in result.stdout and "fell back" in result.stdout and "out of credits" in result.stdout
    folder = result.stdout.split("-> ")[1].split(" (")[0]
    meta = json.loads(open(os.path.join(folder, "meta.json")).read())
    assert meta["backend"] == "landmark-warp" and "out of credits" in meta["fallback"]
    assert "backend_fallback" in result.stderr


def test_auto_without_key_uses_the_local_backend(tmp_path):
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "auto", "--out", tmp_path, "--json")
    (record,) = json_lines(result.stdout)
    assert record["backend"] == "landmark-warp" and "no API key" in record["fallback"]


@pytest.mark.parametrize("script", ["trickle:0.25", "trickle_headers:0.25"])
def test_trickling_server_is_cut_at_the_overall_deadline(server, tmp_path, face, script):
    """A byte every 0.25 s never trips the 0.5 s per-read time-out; the 1 s deadline (connect + read) ends it."""
    import time

    server.script.append(script)
    settings = settings_for(server.base_url, tmp_path, segmind_connect_timeout=0.5, segmind_read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"did not finish answering within 1 s") as caught:
        synthesize(settings, face)
    assert time.monotonic() - started < 2.5  # the server would go on for 10 s
    assert caught.value.retryable and len(server.requests) == 1


def test_html_error_page_is_one_short_line(server, tmp_path, face):
    server.script.append("html:502")
    with pytest.raises(BackendError) as caught:
        synthesize(settings_for(server.base_url, tmp_path), face)
    message = str(caught.value)
    assert "\n" not in message and "<" not in message and "font-family" not in message
    assert "502 Bad Gateway" in message and "upstream & its key" in message and len(message) < 300
    assert KEY not in message


def test_far_rate_limit_reset_is_shown_with_its_date(server, tmp_path, face):
    server.script.append("429far:90000")  # 25 hours away
    with pytest.raises(BackendError) as caught:
        synthesize(settings_for(server.base_url, tmp_path), face)
    assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, in 25\.0 h", str(caught.value)), caught.value


def test_redirect_is_not_followed_with_the_key(server, tmp_path, face):
    with FakeSegmind(api_key="other") as elsewhere:
        server.script.append(f"redirect:{elsewhere.base_url}/expression-editor")
        with pytest.raises(BackendUnavailable, match="redirect to http://127.0.0.1:.*not followed") as caught:
            synthesize(settings_for(server.base_url, tmp_path), face)
        assert not elsewhere.requests and KEY not in str(caught.value)


def test_reset_description():
    from plugins.segmind.client import describe_reset

    now = dt.datetime(2026, 11, 29, 23, 58, tzinfo=dt.timezone.utc)
    assert describe_reset(now + dt.timedelta(seconds=90), now) == "23:59:30 UTC"
    assert describe_reset(now + dt.timedelta(minutes=3), now) == "2026-11-30 00:01:00 UTC, in 3 min"  # tomorrow
    assert describe_reset(now - dt.timedelta(hours=25), now) == "2026-11-28 22:58:00 UTC"  # a stale header


def test_client_refuses_a_key_a_header_cannot_carry(tmp_path):
    import dataclasses

    from plugins.segmind.client import SegmindClient

    settings = dataclasses.replace(load_settings({}, {"XDG_CONFIG_HOME": "/nonexistent"}),
                                   segmind_api_key="sk-in\nside")  # built around load_settings' checks
    with pytest.raises(BackendUnavailable, match="control character") as caught:
        SegmindClient(settings)
    assert "sk-in" not in str(caught.value)


# Every way a call can fail, one input each, in one CLI run: (scripted answer, fragment of the reason).
HOSTILE_ANSWERS = [
    ("echo:401", "rejected the API key (401)"),
    ("echo:404", "no expression editor"),
    ("echo:406", "406"),
    ("echo:422", "422"),
    ("echo:500", "(500)"),
    ("html:502", "502 Bad Gateway"),
    ("500", "(500)"),
    ("429far:90000", "rate limit reached (429) until 20"),
    ("garbage", "not an image"),
    ("wrong_size", "returned a"),
    ("huge", "over 1 MB"),
    ("trickle:0.25", "did not finish answering within 1.5 s"),
    ("echo_header", None),  # a success, with the key as its request id (stored in meta.json, logged)
]


def test_cli_never_shows_the_key_on_any_error_path(server, tmp_path):
    """Key given with stray whitespace (trimmed), servers that echo it: stdout, stderr, debug logs and every
    file written hold no trace of it, and each failure is one line on stderr."""
    import shutil

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for number in range(len(HOSTILE_ANSWERS)):
        shutil.copy(SAMPLE, inputs / f"{number:02d}.png")
    server.script.extend(script for script, _ in HOSTILE_ANSWERS)
    env = _env(server, tmp_path, SEGMIND_API_KEY=f" {KEY}\r\n", FACESYNTH_SEGMIND_MAX_RESPONSE_MB="1",
               FACESYNTH_SEGMIND_CONNECT_TIMEOUT="0.5", FACESYNTH_SEGMIND_READ_TIMEOUT="1")
    # One worker: the server's scripted answers then meet the inputs in their order.
    result = run_cli("apply", inputs, "--emotion", "happy", "--backend", "segmind", "--out", tmp_path / "out",
                     "--json", "--no-cache", "--log-level", "debug", "--log-json", "--workers", "1", env=env)
    assert result.returncode == 1, result.stderr
    records = json_lines(result.stdout)
    assert len(records) == len(HOSTILE_ANSWERS)
    for record, (script, fragment) in zip(records, HOSTILE_ANSWERS):
        if fragment is None:
            assert record["status"] == "ok", (script, record["error"])
        else:
            assert record["status"] == "failed" and fragment in record["error"], (script, record["error"])
    reasons = [line for line in result.stderr.splitlines() if line.startswith("facesynth:")]
    assert len(reasons) == len(HOSTILE_ANSWERS) - 1  # one line per failure, the HTML page included
    assert not [line for line in result.stderr.splitlines() if line.strip().startswith("<")]
    assert "Traceback" not in result.stderr and '"event": "error_event"' in result.stderr  # verbose logs on
    for text in (result.stdout, result.stderr):
        assert KEY not in text and KEY[3:15] not in text
    written = [os.path.join(root, name) for root, _, files in os.walk(tmp_path) for name in files]
    assert any(path.endswith("meta.json") for path in written)
    for path in written:
        assert KEY.encode() not in open(path, "rb").read(), path
    assert {request["headers"]["x-api-key"] for request in server.requests} == {KEY}  # trimmed before sending


def test_cli_refuses_a_key_with_an_inner_line_break_without_showing_it(tmp_path):
    result = run_cli("apply", SAMPLE, "--emotion", "happy", "--backend", "segmind", "--out", tmp_path,
                     "--log-level", "debug", env=clean_env(SEGMIND_API_KEY="sk-test-7f3a\n9c-secret"))
    assert result.returncode == 2
    assert_one_line_error(result, "SEGMIND_API_KEY", "control character")
    assert "7f3a" not in result.stderr + result.stdout and "9c-secret" not in result.stderr + result.stdout
