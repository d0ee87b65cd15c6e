"""The Segmind backend's own `facesynth bench` section: the client's own time per call, against a local server."""

from __future__ import annotations

import time
from typing import Any

from engine.bench import DEFAULT_VIDEO, BenchContext, BenchSection, read_frames, summary
from engine.config import Settings
from engine.registry import Registry


def bench_segmind(registry: Registry, settings: Settings, calls: int = 20) -> dict[str, Any]:
    """The Segmind client's own time per call (everything but the server's work), against a local server
    that speaks the contract and answers at once."""
    import dataclasses
    import tempfile

    from engine.backend import SynthesisRequest
    from engine.faces import Landmarker
    from plugins.segmind import SegmindBackend
    from plugins.segmind.fake_server import FakeSegmind

    frame = read_frames(DEFAULT_VIDEO, 1)[0]
    with Landmarker(settings.landmarker_model) as landmarker:
        faces = tuple(landmarker.detect(frame))
    expression = registry.expression([("happy", 1.0)])
    backend = SegmindBackend()
    totals = []
    with tempfile.TemporaryDirectory() as cache, FakeSegmind(api_key="bench", credits=1e6, rpm=10**6) as server:
        local = dataclasses.replace(settings, segmind_api_key="bench", segmind_url=server.base_url,
                                    segmind_rpm=0.0, no_cache=True, cache_dir=cache)
        for _ in range(calls + 2):
            started = time.perf_counter()
            backend.synthesize(SynthesisRequest(frame, faces, expression, local))
            totals.append(time.perf_counter() - started)
        server_s = server.handling_s
    own = [total - handled for total, handled in zip(totals[2:], server_s[2:])]
    client = summary(own)
    return {"calls": calls, "client_ms": client, "server_ms": summary(server_s[2:]),
            "share_of_documented_round_trip": round(client["median"] / 2300.0, 4)}


def run_section(context: BenchContext) -> dict[str, Any]:
    """The `segmind` section's figures."""
    return {"segmind": bench_segmind(context.registry, context.settings)}


def render_section(results: dict[str, Any]) -> list[str]:
    """The `segmind` section's line for a terminal."""
    ms = results["segmind"]["client_ms"]
    return [f"segmind client (own time per call, 640x480 frame, one face): median {ms['median']} ms, "
            f"p95 {ms['p95']} ms = {100 * results['segmind']['share_of_documented_round_trip']:.1f}% "
            f"of the documented 2.3 s round trip"]


SECTIONS = {"segmind": BenchSection("Segmind client's own time per call, against a local server", run_section,
                                    render_section)}
