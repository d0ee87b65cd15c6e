"""The HTTP client for Segmind's expression-editor model: payload, pacing, response checks, errors.

Only HTTP 200 is billed and there is no idempotency key, so a request is retried only when it surely did not
run: a 429 (rate limited) or a connection that was never made. Everything else is reported once.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import requests
import structlog
from requests.adapters import HTTPAdapter

from engine.config import api_key_problem, key_source
from engine.errors import BackendError, BackendUnavailable
from engine.expression import PARAMETERS, Expression
from plugins.segmind.pace import shared_pacer

log = structlog.get_logger()

ENDPOINT = "expression-editor"
# Our parameter -> (API field, sign). The API takes the same names. The cloud model's sign convention for
# pupil_x and rotate_yaw is unverified: if it turns out opposite to ours, flip the sign here and nowhere else.
FIELD_MAP: Mapping[str, tuple[str, float]] = {p.name: (p.name, 1.0) for p in PARAMETERS}
CONNECT_RETRIES = 2
MAX_RATE_LIMIT_WAIT_S = 20.0
DETAIL_CHARS = 160  # an error body is shown on one line, at most this long
FAR_RESET_S = 600  # a rate-limit reset further away than this is shown with its date
REDACTED = "[key hidden]"
# What an HTTP header value (and so an API key) may carry here: visible ASCII, no spaces or control characters.
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def build_payload(image_b64: str, expression: Expression, image_format: str = "png",
                  image_quality: int = 95) -> dict[str, Any]:
    """The JSON body for one request: the image as raw base64, every parameter, and the output options."""
    payload: dict[str, Any] = {"image": image_b64}
    for name, value in expression.as_dict().items():
        api_field, sign = FIELD_MAP[name]
        payload[api_field] = float(sign * value)
    payload.update({"image_format": image_format, "image_quality": int(image_quality),
                    "sample_parts": "OnlyExpression"})
    return payload


class Pacer:
    """Spaces request starts to a requests-per-minute budget (shared by every client in the process).

    A request that never reached the server (refused, unresolved, connect time-out) gives its turn back with
    `give_back`, so an unreachable server is reported at once instead of at the pace of the rate limit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0.0
        self._turn = threading.local()  # this thread's last turn: (start, next start after it)

    def wait(self, rpm: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Block until the next request may start; returns how long it waited."""
        interval = 60.0 / rpm if rpm > 0 else 0.0
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + interval
            self._turn.value = (start, self._next)
        delay = start - now
        if delay > 0:
            sleep(delay)
        return delay

    def give_back(self) -> None:
        """Return this thread's last turn (its request never reached the server), unless a later one was taken."""
        turn = getattr(self._turn, "value", None)
        self._turn.value = None
        with self._lock:
            if turn is not None and self._next == turn[1]:
                self._next = turn[0]


PACER = Pacer()


@dataclass
class Reply:
    """A decoded successful reply: the image and what the headers said."""

    image: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _header_info(headers: Mapping[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for header, key in (("x-remaining-credits", "remaining_credits"), ("x-cost", "cost"),
                        ("x-generation-time", "generation_time_s"), ("x-request-id", "request_id")):
        if header in headers:
            value = headers[header]
            try:
                info[key] = float(value) if key != "request_id" else value
            except ValueError:
                info[key] = value
    return info


def _reset_at(headers: Mapping[str, str]) -> dt.datetime | None:
    raw = headers.get("x-rate-limit-reset-at-utc")
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = dt.datetime.fromtimestamp(float(raw), dt.timezone.utc)
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def one_line(text: str, limit: int = DETAIL_CHARS) -> str:
    """`text` as one short line: HTML tags dropped, entities decoded, whitespace collapsed, cut at `limit`."""
    if "<" in text and ">" in text:
        text = html.unescape(_TAGS.sub(" ", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3].rstrip() + "..."


def redact(text: str, key: str) -> str:
    """`text` with the API key (as given, trimmed, or escaped as repr shows it) replaced by a marker."""
    for form in sorted({key, key.strip(), repr(key)[1:-1], repr(key.strip())[1:-1]}, key=len, reverse=True):
        if len(form) >= 4:  # a one-letter "key" would blank out every message
            text = text.replace(form, REDACTED)
    return text


def _error_detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return one_line(response.text)
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("error") or body.get("message") or body
        if isinstance(detail, list):  # FastAPI-style validation errors
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{where}: {item.get('msg', '')}".strip(": "))
            return one_line("; ".join(parts))
        return one_line(str(detail))
    return one_line(str(body))


def describe_reset(reset: dt.datetime, now: dt.datetime | None = None) -> str:
    """When a rate limit ends, for a message: the time of day when it is soon, with the date otherwise (UTC)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    reset = reset.astimezone(dt.timezone.utc)
    away = (reset - now).total_seconds()
    if reset.date() == now.date() and away <= FAR_RESET_S:
        return f"{reset:%H:%M:%S} UTC"
    hours = away / 3600
    span = f"in {hours:.1f} h" if hours >= 1 else f"in {max(0.0, away) / 60:.0f} min"
    return f"{reset:%Y-%m-%d %H:%M:%S} UTC, {span}" if away > 0 else f"{reset:%Y-%m-%d %H:%M:%S} UTC"


class _Deadline:
    """Cuts the connection a request is using when the request's overall time is up.

    The read time-out of requests counts per read, so a server that sends a byte every few seconds would hold
    a request for ever; a timer that shuts the socket down ends it whatever phase it is in.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: Any = None
        self._timer: threading.Timer | None = None
        self.expired = False

    def start(self, seconds: float) -> None:
        """Arm the deadline for one attempt (cancelling the previous one)."""
        self.stop()
        self.expired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Disarm the deadline (the attempt is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def track(self, sock: Any) -> None:
        """Remember the socket the current attempt uses (and cut it at once when time is already up)."""
        if sock is None:
            return
        with self._lock:
            self._sock = sock
            late = self.expired
        if late:
            self._cut()

    def _cut(self) -> None:
        with self._lock:
            self.expired = True
            sock = self._sock
        if sock is not None:
            try:
                # the plain socket's shutdown, also under TLS: it wakes a blocked read without touching TLS state
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections report themselves to a `_Deadline`."""

    def __init__(self, deadline: _Deadline) -> None:
        self.deadline = deadline
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool manager with pools whose connections are tracked."""
        super().init_poolmanager(*args, **kwargs)
        deadline = self.deadline
        pools = {}
        for scheme, pool_class in self.poolmanager.pool_classes_by_scheme.items():
            base = pool_class.ConnectionCls

            class Tracked(base):  # type: ignore[valid-type, misc]
                # the socket, not the connection: http.client lets go of it once a closing response is read
                def connect(self) -> None:
                    super().connect()
                    deadline.track(self.sock)

                def request(self, *args: Any, **kwargs: Any) -> Any:
                    deadline.track(self.sock)  # a kept-alive connection is not connected again
                    return super().request(*args, **kwargs)

            pools[scheme] = type(f"Tracked{pool_class.__name__}", (pool_class,), {"ConnectionCls": Tracked})
        self.poolmanager.pool_classes_by_scheme = pools


class SegmindClient:
    """One `requests.Session` to the Expression Editor, with the settings' key, URL and time-outs.

    Every error it raises carries a one-line message with the key hidden, whatever the server or the HTTP
    library put in it.
    """

    def __init__(self, settings: Any, pacer: Pacer = PACER, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.key = settings.segmind_api_key.strip()
        problem = api_key_problem(self.key)
        if problem:
            raise BackendUnavailable(f"the Segmind API key {problem}; it is read from {key_source()}")
        self.url = settings.segmind_url.rstrip("/") + "/" + ENDPOINT
        self.pacer = shared_pacer(pacer) if pacer is PACER else pacer  # one pace for a batch's workers
        self.sleep = sleep
        self.deadline_s = settings.segmind_connect_timeout + settings.segmind_read_timeout
        self.deadline = _Deadline()
        self.session = requests.Session()
        adapter = _DeadlineAdapter(self.deadline)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"x-api-key": self.key, "Content-Type": "application/json",
                                     "Accept": "image/png, image/jpeg, image/webp, application/json"})

    def close(self) -> None:
        """Close the HTTP session."""
        self.deadline.stop()
        self.session.close()

    def edit(self, image: np.ndarray, expression: Expression) -> Reply:
        """Send one BGR image with the expression; return the edited image (same size) and the accounting."""
        fmt = self.settings.segmind_image_format
        ok, encoded = cv2.imencode(".png", image)  # lossless upload whatever the output format
        if not ok:
            raise BackendError("could not encode the picture for upload")
        payload = build_payload(base64.b64encode(encoded.tobytes()).decode("ascii"), expression, fmt)
        body = json.dumps(payload)
        try:
            response = self._post(body)
            reply = self._read(response, image.shape[1], image.shape[0])
        except BackendError as exc:
            raise type(exc)(self._clean(str(exc)), retryable=exc.retryable) from None
        except (requests.RequestException, OSError, ValueError) as exc:
            if self.deadline.expired:
                raise self._deadline_error() from None
            raise BackendError(self._clean(f"the request to Segmind failed: {type(exc).__name__}: {exc}")) from None
        finally:
            self.deadline.stop()
        log.info("segmind_call", status=response.status_code, request_id=reply.info.get("request_id"),
                 credits=reply.info.get("remaining_credits"), cost=reply.info.get("cost"))
        return reply

    def _clean(self, message: str) -> str:
        return one_line(redact(message, self.key), 400)

    def _deadline_error(self) -> BackendError:
        return BackendError(f"Segmind did not finish answering within {self.deadline_s:g} s (settings "
                            "segmind_connect_timeout + segmind_read_timeout); not retried, since the call may "
                            "have run", retryable=True)

    def _post(self, body: str) -> requests.Response:
        timeouts = (self.settings.segmind_connect_timeout, self.settings.segmind_read_timeout)
        attempt = 0
        while True:
            attempt += 1
            self.pacer.wait(self.settings.segmind_rpm, self.sleep)
            self.deadline.start(self.deadline_s)
            try:
                # no redirects: requests would carry the x-api-key header to wherever the server points
                response = self.session.post(self.url, data=body, timeout=timeouts, stream=True,
                                             allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                if self.deadline.expired:
                    raise self._deadline_error() from None
                if isinstance(exc, requests.exceptions.ConnectTimeout) or _never_connected(exc):
                    # it never reached the server, so it neither ran nor counts against the rate limit
                    self.pacer.give_back()
                if isinstance(exc, requests.exceptions.ConnectTimeout):
                    # never connected, so never billed; but a slow network is not fixed by hammering it
                    raise BackendUnavailable(f"Segmind did not answer within {timeouts[0]:g} s "
                                             f"(connect time-out; setting segmind_connect_timeout)") from None
                if isinstance(exc, requests.exceptions.ReadTimeout):
                    raise BackendError(f"Segmind took longer than {timeouts[1]:g} s to answer (setting "
                                       "segmind_read_timeout); not retried, since the call may have run",
                                       retryable=True) from None
                if isinstance(exc, requests.exceptions.ConnectionError):
                    if attempt <= CONNECT_RETRIES and _never_connected(exc):
                        self.deadline.stop()
                        self.sleep(0.5 * 2 ** (attempt - 1))
                        continue
                    raise BackendUnavailable(f"cannot reach Segmind at {self.url} "
                                             f"(offline? {_reason(exc)})") from None
                raise
            if response.status_code == 429:
                wait = self._rate_limit_wait(response)
                response.close()
                self.deadline.stop()
                if wait is not None and attempt <= 3:
                    log.warning("segmind_rate_limited", wait_s=round(wait, 1))
                    self.sleep(wait)
                    continue
                reset = _reset_at(response.headers)
                when = f" until {describe_reset(reset)}" if reset else ""
                raise BackendError(f"Segmind rate limit reached (429){when}; lower segmind_rpm "
                                   f"(now {self.settings.segmind_rpm:g} per minute) or try later", retryable=True)
            return response

    def _rate_limit_wait(self, response: requests.Response) -> float | None:
        reset = _reset_at(response.headers)
        if reset is None:
            return 2.0
        wait = (reset - dt.datetime.now(dt.timezone.utc)).total_seconds()
        return max(0.0, wait) + 0.1 if wait <= MAX_RATE_LIMIT_WAIT_S else None

    def _read(self, response: requests.Response, width: int, height: int) -> Reply:
        status = response.status_code
        if 300 <= status < 400:
            response.close()
            where = one_line(response.headers.get("Location", "") or "nowhere said", 120)
            raise BackendUnavailable(f"Segmind answered {status}, a redirect to {where}; not followed, since it "
                                     "would carry the API key elsewhere; check the setting segmind_url")
        if status != 200:
            detail = _error_detail(response)
            response.close()
            raise _status_error(status, detail, self.url)
        # a server may echo the key anywhere, headers included, and these go to logs and meta.json
        info = {name: redact(value, self.key) if isinstance(value, str) else value
                for name, value in _header_info(response.headers).items()}
        limit = int(self.settings.segmind_max_response_mb * 1024 * 1024)
        chunks, size = [], 0
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > limit:
                response.close()
                raise BackendError(f"Segmind's answer is over {self.settings.segmind_max_response_mb:g} MB "
                                   "(setting segmind_max_response_mb); refused")
            chunks.append(chunk)
        data = b"".join(chunks)
        kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "application/json" or data[:1] in (b"{", b"["):
            data = _image_from_json(data)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
        if image is None:
            raise BackendError(f"Segmind's answer is not an image (Content-Type {kind or 'missing'}, "
                               f"{len(data)} bytes)")
        if image.shape[:2] != (height, width):
            if abs(image.shape[1] / image.shape[0] - width / height) > 0.02:
                raise BackendError(f"Segmind returned a {image.shape[1]}x{image.shape[0]} picture for a "
                                   f"{width}x{height} one")
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
        return Reply(image, info)


def _image_from_json(data: bytes) -> bytes:
    try:
        body = json.loads(data)
    except ValueError:
        raise BackendError("Segmind's answer is neither an image nor valid JSON") from None
    candidates = [body] if isinstance(body, str) else []
    if isinstance(body, dict):
        for key in ("image", "output", "data", "result", "images"):
            value = body.get(key)
            candidates += value if isinstance(value, list) else [value]
    for value in candidates:
        if isinstance(value, str) and value:
            text = value.split(",", 1)[1] if value.startswith("data:") else value
            try:
                return base64.b64decode(text, validate=True)
            except ValueError:
                continue
    raise BackendError("Segmind's JSON answer carries no base64 image")


def _never_connected(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(word in text for word in ("refused", "name or service", "nodename", "failed to resolve",
                                         "no route", "temporary failure"))


def _reason(exc: Exception) -> str:
    text = str(exc)
    for word in ("Connection refused", "Name or service not known", "Failed to resolve", "No route to host",
                 "Temporary failure in name resolution"):
        if word.lower() in text.lower():
            return word.lower()
    return type(exc).__name__


def _status_error(status: int, detail: str, url: str) -> BackendError:
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return BackendUnavailable(f"Segmind rejected the API key (401); it is read from {key_source()}")
    if status in (404, 405):
        return BackendUnavailable(f"Segmind has no expression editor at {url} ({status}); check the setting "
                                  f"segmind_url")
    if status == 406:
        return BackendUnavailable(f"Segmind refused the request (406): out of credits (top up your account), or "
                                  f"the request's content type was not accepted{suffix}")
    if status == 422:
        return BackendError(f"Segmind rejected a field of the request (422){suffix}")
    if status >= 500:
        return BackendError(f"Segmind failed on its side ({status}){suffix}; try again later", retryable=True)
    return BackendError(f"Segmind answered {status}{suffix}")
