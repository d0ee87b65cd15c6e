"""A local HTTP server that speaks Segmind's expression-editor contract, for tests and `facesynth bench`.

It is a real server on loopback: it checks the key, the method, the content type and every field, keeps an
account of credits, enforces a requests-per-minute limit, and answers with image bytes and the documented
headers. Tests queue special answers (`script`) to reach every error path: "500", "422", "429", "slow:SECONDS",
"garbage", "json", "wrong_size", "huge", and hostile ones: "echo:STATUS" (an error body that repeats the key it
got), "echo_header" (a success whose x-request-id is the key), "html:STATUS" (a many-line HTML error page),
"429far:SECONDS" (a reset that far away), "redirect:URL" (a 307 to URL), "trickle:SECONDS" and
"trickle_headers:SECONDS" (one byte every SECONDS of the body or of the status line; it stops by itself after
TRICKLE_BYTES bytes or when the client hangs up).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from engine.expression import PARAMETERS

COST = 0.0016
PATH = "/v1/expression-editor"
TRICKLE_BYTES = 40
HTML_PAGE = """<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title>
<style>body { font-family: sans-serif; }</style></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<p>The upstream &amp; its key %s did not answer.</p>
<hr><center>nginx</center>
</body>
</html>
"""


def visible_edit(image: np.ndarray) -> np.ndarray:
    """What the fake model 'does': brighten an ellipse in the middle of the picture, so results are checkable."""
    height, width = image.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 5, height // 5), 0, 0, 360, 255, -1)
    edited = image.copy()
    edited[mask > 0] = np.clip(edited[mask > 0].astype(np.int16) + 60, 0, 255).astype(np.uint8)
    return edited


class FakeSegmind:
    """The server's state: key, credits, rate limit, recorded requests and scripted answers."""

    def __init__(self, api_key: str = "test-key", credits: float = 10.0, rpm: int = 1000,
                 generation_time: float = 0.0) -> None:
        self.api_key = api_key
        self.credits = credits
        self.rpm = rpm
        self.generation_time = generation_time
        self.requests: list[dict[str, Any]] = []
        self.script: deque = deque()
        self.billed = 0
        self.handling_s: list[float] = []  # the server's own time per POST (read, check, edit, answer)
        self._starts: deque = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The value for the `segmind_url` setting."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeSegmind":
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                state._record(self, None)
                self._send_json(405, {"error": "Method Not Allowed"})

            def do_POST(self) -> None:  # noqa: N802
                started = time.perf_counter()
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                state._answer(self, raw)
                state.handling_s.append(time.perf_counter() - started)

            def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _trickle(self, data: bytes, interval: float) -> None:
                try:
                    for position in range(min(len(data), TRICKLE_BYTES)):
                        self.wfile.write(data[position:position + 1])
                        self.wfile.flush()
                        time.sleep(interval)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass
                self.close_connection = True

            def _send_bytes(self, status: int, data: bytes, kind: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _record(self, handler: BaseHTTPRequestHandler, body: Any) -> None:
        with self._lock:
            self.requests.append({"method": handler.command, "path": handler.path,
                                  "headers": {k.lower(): v for k, v in handler.headers.items()}, "json": body})

    def _validate(self, body: Any) -> list[dict[str, Any]]:
        problems = []
        if not isinstance(body, dict):
            return [{"loc": ["body"], "msg": "must be a JSON object"}]
        image = body.get("image")
        try:
            decoded = cv2.imdecode(np.frombuffer(base64.b64decode(image, validate=True), np.uint8), cv2.IMREAD_COLOR)
        except (TypeError, ValueError):
            decoded = None
        if decoded is None and not (isinstance(image, str) and image.startswith("http")):
            problems.append({"loc": ["body", "image"], "msg": "must be an image URL or raw base64 of an image"})
        for spec in PARAMETERS:
            value = body.get(spec.name, spec.default)
            if not isinstance(value, (int, float)) or isinstance(value, bool) \
                    or not spec.minimum <= value <= spec.maximum:
                problems.append({"loc": ["body", spec.name],
                                 "msg": f"must be a number from {spec.minimum:g} to {spec.maximum:g}"})
        if body.get("image_format", "webp") not in ("png", "jpeg", "webp"):
            problems.append({"loc": ["body", "image_format"], "msg": "must be png, jpeg or webp"})
        quality = body.get("image_quality", 95)
        if not isinstance(quality, int) or not 1 <= quality <= 100:
            problems.append({"loc": ["body", "image_quality"], "msg": "must be an integer from 1 to 100"})
        return problems

    def _answer(self, handler: Any, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(handler, body)
        if handler.path.rstrip("/") != PATH:
            return handler._send_json(404, {"error": "Not Found"})
        if handler.headers.get("x-api-key") != self.api_key:
            return handler._send_json(401, {"error": "Invalid or missing API key"})
        if not handler.headers.get("Content-Type", "").startswith("application/json"):
            return handler._send_json(406, {"error": "Content type not acceptable"})
        scripted = self.script.popleft() if self.script else None
        verb, _, argument = (scripted or "").partition(":")
        if verb == "echo":
            key = handler.headers.get("x-api-key", "")
            return handler._send_json(int(argument), {"error": f"request with key {key} refused"})
        if verb == "html":
            page = (HTML_PAGE % handler.headers.get("x-api-key", "")).encode()
            return handler._send_bytes(int(argument), page, "text/html", {})
        if verb == "redirect":
            handler.send_response(307)
            handler.send_header("Location", argument)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        if verb == "trickle_headers":
            return handler._trickle(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n" + b"X" * 200, float(argument))
        if verb == "429far":
            reset = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=float(argument))
            return handler._send_json(429, {"error": "Rate limit exceeded"},
                                      {"x-rate-limit-reset-at-utc": reset.isoformat()})
        if scripted == "500":
            return handler._send_json(500, {"error": "Internal Server Error"})
        if scripted == "422":
            return handler._send_json(422, {"detail": [{"loc": ["body", "aaa"], "msg": "not accepted here"}]})
        now = time.time()
        with self._lock:
            while self._starts and now - self._starts[0] > 60:
                self._starts.popleft()
            limited = len(self._starts) >= self.rpm or scripted == "429"
            if not limited:
                self._starts.append(now)
        if limited:
            reset = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1 if scripted == "429" else 60)
            return handler._send_json(429, {"error": "Rate limit exceeded"},
                                      {"x-rate-limit-reset-at-utc": reset.isoformat()})
        problems = self._validate(body)
        if problems:
            return handler._send_json(422, {"detail": problems})
        if self.credits < COST:
            return handler._send_json(406, {"error": "Insufficient credits"})
        if scripted and scripted.startswith("slow"):
            time.sleep(float(scripted.split(":")[1]))
        if self.generation_time:
            time.sleep(self.generation_time)
        image = cv2.imdecode(np.frombuffer(base64.b64decode(body["image"]), np.uint8), cv2.IMREAD_COLOR)
        edited = visible_edit(image)
        if scripted == "wrong_size":
            edited = cv2.resize(edited, (edited.shape[1] // 2, edited.shape[0]))
        fmt = body.get("image_format", "png")
        ok, encoded = cv2.imencode({"png": ".png", "jpeg": ".jpg", "webp": ".webp"}[fmt], edited,
                                   [cv2.IMWRITE_JPEG_QUALITY, body.get("image_quality", 95)] if fmt == "jpeg" else [])
        data = encoded.tobytes()
        with self._lock:
            self.credits -= COST
            self.billed += 1
            headers = {"x-remaining-credits": f"{self.credits:.4f}", "x-cost": f"{COST}",
                       "x-generation-time": f"{self.generation_time:.3f}", "x-request-id": str(uuid.uuid4())}
        if scripted == "echo_header":
            headers["x-request-id"] = handler.headers.get("x-api-key", "")
        if scripted == "garbage":
            return handler._send_bytes(200, b"<html>gateway hiccup</html>", "text/html", headers)
        if scripted == "json":
            return handler._send_json(200, {"image": base64.b64encode(data).decode(), "status": "ok"}, headers)
        if verb == "trickle":
            handler.send_response(200)
            handler.send_header("Content-Type", f"image/{fmt}")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            return handler._trickle(data, float(argument))
        if scripted == "huge":
            return handler._send_bytes(200, data + b"\0" * (3 * 1024 * 1024), f"image/{fmt}", headers)
        return handler._send_bytes(200, data, f"image/{fmt}", headers)
