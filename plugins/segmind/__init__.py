"""The Segmind Expression Editor backend (cloud): a crop around each face goes up, the edit is pasted back.

Requests are paced to `segmind_rpm`, identical requests are answered from a local cache (so the same edit never
costs twice), and the account's remaining credits are kept from the response headers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import structlog

from engine import hookimpl
from engine.backend import SynthesisRequest, SynthesisResult
from engine.config import key_source
from engine.imageio import encode_png, write_atomic
from plugins.segmind.client import SegmindClient

log = structlog.get_logger()

CROP_FACTOR = 3.0  # the uploaded square is this many face sizes wide: room for the model's own crop
MAX_UPLOAD_SIDE = 1536


def upload_box(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int]:
    """The square (x0, y0, side) sent for a face: centred on it, inside the picture where possible."""
    x, y, w, h = box
    side = int(min(max(w, h) * CROP_FACTOR, width, height))
    side = max(side, min(64, width, height))
    x0 = int(round(x + w / 2 - side / 2))
    y0 = int(round(y + h / 2 - side / 2))
    return min(max(0, x0), width - side), min(max(0, y0), height - side), side


def feather(side: int, margin: float = 0.08) -> np.ndarray:
    """A side x side alpha mask: 1 inside, easing to 0 at the border (so a pasted crop leaves no seam)."""
    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / max(1.0, margin * side), 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)
    return np.minimum.outer(ramp, ramp).astype(np.float32)


def account_file(settings: Any) -> Path:
    """Where the last known account figures are kept."""
    return settings.resolved_cache_dir() / "segmind_account.json"


def read_account(settings: Any) -> dict[str, Any]:
    """The last known remaining credits (and when they were seen), or {}."""
    try:
        return json.loads(account_file(settings).read_text())
    except (OSError, ValueError):
        return {}


class SegmindBackend:
    """Sends each face's crop and the expression vector to Segmind's expression-editor model."""

    id = "segmind"
    label = "Segmind Expression Editor (cloud)"
    live = False  # about 2.3 s a call and a few calls a minute: stills only
    rank = 20  # `auto` tries the cloud model first for stills, when a key is set

    def bench_sections(self) -> dict[str, Any]:
        """This backend's own `facesynth bench` section: the client's own time per call."""
        from plugins.segmind.bench import SECTIONS

        return SECTIONS

    def availability(self, settings: Any) -> tuple[bool, str]:
        """Available when an API key is set (whether the service answers is learnt by calling it)."""
        if not settings.segmind_api_key:
            return False, f"no API key: set {key_source()}"
        return True, ""

    def account(self, settings: Any) -> dict[str, Any]:
        """Remaining credits as last reported by the service."""
        return read_account(settings)

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Edit each face through the API (or the cache) and paste the results into a copy of the image."""
        settings = request.settings
        output = request.image.copy()
        height, width = output.shape[:2]
        info: dict[str, Any] = {"calls": 0, "cached": 0, "cost": 0.0, "request_ids": []}
        client = SegmindClient(settings)
        try:
            regions = [(0, 0, width, height)] if settings.segmind_upload == "full" else \
                [(x0, y0, side, side) for x0, y0, side in (upload_box(f.box, width, height) for f in request.faces)]
            for x0, y0, w, h in regions:
                crop = request.image[y0:y0 + h, x0:x0 + w]
                scale = min(1.0, MAX_UPLOAD_SIDE / max(w, h))
                upload = crop if scale == 1.0 else cv2.resize(crop, (round(w * scale), round(h * scale)),
                                                              interpolation=cv2.INTER_AREA)
                edited = self._edit(client, upload, request, info)
                if edited.shape[:2] != crop.shape[:2]:
                    edited = cv2.resize(edited, (w, h), interpolation=cv2.INTER_CUBIC)
                if settings.segmind_upload == "full":
                    output = edited
                    continue
                alpha = feather(w)[..., None] if w == h else np.ones((h, w, 1), np.float32)
                region = output[y0:y0 + h, x0:x0 + w].astype(np.float32)
                output[y0:y0 + h, x0:x0 + w] = np.clip(region * (1 - alpha) + edited * alpha, 0, 255).astype(np.uint8)
        finally:
            client.close()
        info["cost"] = round(info["cost"], 6)
        return SynthesisResult(output, self.id, len(request.faces), info)

    def _edit(self, client: SegmindClient, upload: np.ndarray, request: SynthesisRequest,
              info: dict[str, Any]) -> np.ndarray:
        settings = request.settings
        png = encode_png(upload)
        key = hashlib.sha256(png + json.dumps([request.expression.as_dict(), settings.segmind_image_format,
                                               client.url], sort_keys=True).encode()).hexdigest()
        cache = settings.resolved_cache_dir() / "segmind" / f"{key}.png"
        if not settings.no_cache and cache.is_file():
            cached = cv2.imread(str(cache))
            if cached is not None:
                info["cached"] += 1
                log.info("segmind_cache_hit", key=key[:12])
                return cached
        reply = client.edit(upload, request.expression)
        info["calls"] += 1
        info["cost"] += float(reply.info.get("cost", 0.0) or 0.0)
        if "request_id" in reply.info:
            info["request_ids"].append(reply.info["request_id"])
        if "remaining_credits" in reply.info:
            info["remaining_credits"] = reply.info["remaining_credits"]
            self._remember_credits(settings, reply.info["remaining_credits"])
        if "generation_time_s" in reply.info:
            info["generation_time_s"] = reply.info["generation_time_s"]
        if not settings.no_cache:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(cache, encode_png(reply.image))
            except OSError as exc:  # a cache that cannot be written costs money later, not a capture now
                log.warning("segmind_cache_write_failed", error=str(exc))
        return reply.image

    @staticmethod
    def _remember_credits(settings: Any, credits: Any) -> None:
        try:
            path = account_file(settings)
            path.parent.mkdir(parents=True, exist_ok=True)
            seen = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            write_atomic(path, json.dumps({"remaining_credits": credits, "seen": seen}).encode())
        except OSError as exc:
            log.warning("segmind_account_write_failed", error=str(exc))


@hookimpl
def register_backends(register):
    """Register the Segmind backend."""
    register(SegmindBackend())
