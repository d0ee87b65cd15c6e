"""Live at HD: the work does not grow with the frame's size, frames are never queued, cameras are asked for
what the user wants."""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from engine.bench import group_frame, scaled_frame
from engine.capture import Frame, FrameSource
from engine.config import load_settings
from engine.events import EventBus
from engine.faces import Landmarker
from engine.live import LivePipeline, LiveState
from engine.plugins import load_plugins
from engine.preprocess import Preprocessor
from tests.helpers import VIDEO, read_video

SETTINGS = load_settings({}, env={})


def noisy(image: np.ndarray, seed: int) -> np.ndarray:
    """A frame of a still scene as a camera delivers it: the same picture with a little sensor noise."""
    noise = np.random.default_rng(seed).normal(0, 1.5, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def stream_landmarks(image: np.ndarray, frames: int = 20) -> np.ndarray:
    """The landmarks the stream pre-process gives for a still scene, frame after frame: (frames, 478, 2)."""
    found = []
    with Preprocessor(SETTINGS, EventBus(), video=True) as preprocessor:
        for index in range(frames):
            faces = preprocessor(Frame(noisy(image, index), index), index * 33).faces
            found.append(faces[0].landmarks[:, :2])
    return np.array(found)


def full_frame_landmarks(image: np.ndarray, frames: int = 20) -> np.ndarray:
    """The same, landmarked on the whole frame at full resolution (the old stream path), no region."""
    found = []
    with Landmarker(video=True, max_faces=1) as landmarker:
        for index in range(frames):
            found.append(landmarker.detect(noisy(image, index), index * 33)[0].landmarks[:, :2])
    return np.array(found)


def test_landmarks_at_1080p_match_the_full_frame_within_a_pixel_and_jitter_no_more_than_at_480p():
    clip = read_video(VIDEO, 60)
    errors, jitter = [], {}
    for index in (10, 40):
        hd = scaled_frame(clip[index], (1920, 1080))
        tracked = stream_landmarks(hd)
        reference = full_frame_landmarks(hd)
        # after the smoothing settles, the region's landmarks against the full frame's, at full resolution
        errors.append(float(np.linalg.norm(tracked[-5:].mean(0) - reference[-5:].mean(0), axis=1).mean()))
        for name, image in (("480p", clip[index]), ("1080p", hd)):
            marks = stream_landmarks(image, 30)[10:]
            inter_ocular = float(np.linalg.norm(marks[:, 33] - marks[:, 263], axis=1).mean())
            jitter.setdefault(name, []).append(float(marks.std(axis=0).mean()) / inter_ocular)
    assert np.mean(errors) <= 1.0, errors
    assert np.mean(jitter["1080p"]) <= np.mean(jitter["480p"]) * 1.1 + 1e-4, jitter


def test_three_faces_in_a_stream_are_all_landmarked_on_every_frame():
    # Three copies of one face side by side: the regions are landmarked at once (one per core), and each face
    # must come back on every frame with the same landmarks as the first, shifted by one tile's width.
    clip = read_video(VIDEO, 20)
    settings = dataclasses.replace(SETTINGS, faces="all", live_max_faces=3)
    tile = 1280 // 3
    with Preprocessor(settings, EventBus(), video=True) as preprocessor:
        for index, image in enumerate(clip):
            faces = preprocessor(Frame(group_frame(image), index), index * 33).faces
            if index == 0:
                continue
            assert len(faces) == 3, f"frame {index}: {len(faces)} faces"
            first = faces[0].landmarks[:, :2]
            for copy, face in enumerate(faces[1:], start=1):
                shifted = face.landmarks[:, :2] - (copy * tile, 0)
                assert float(np.linalg.norm(shifted - first, axis=1).mean()) < 1.5, (index, copy)


class FastCamera:
    """A stand-in for a webcam (none exists here) that delivers frames far faster than the pipeline edits them."""

    def __init__(self, target, frames=None):
        self.frames = frames or [scaled_frame(f, (1280, 720)) for f in read_video(VIDEO, 30)]
        self.count = 0

    def isOpened(self):  # noqa: N802 - OpenCV's name
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 240, cv2.CAP_PROP_FRAME_WIDTH: 1280, cv2.CAP_PROP_FRAME_HEIGHT: 720}.get(prop, 0)

    def set(self, prop, value):
        return False

    def read(self):
        time.sleep(1 / 240)
        self.count += 1
        return True, self.frames[self.count % len(self.frames)]

    def release(self):
        pass


def test_a_source_faster_than_the_pipeline_drops_frames_instead_of_queueing_them():
    registry = load_plugins(SETTINGS)
    pipeline = LivePipeline(registry, SETTINGS, LiveState([("happy", 1.0)]))
    source = FrameSource("0", opener=FastCamera)
    try:
        figures = pipeline.run(source, max_frames=150)
    finally:
        source.close()
    assert figures["dropped"] > 50  # 240 frames a second in, far fewer edited: the rest were dropped, counted
    latency = np.frombuffer(pipeline.samples["latency"], np.float32)
    early, late = np.median(latency[10:50]), np.median(latency[-40:])
    assert late < early * 1.5 + 10, (early, late)  # no queue: latency does not grow over the run
    assert figures["latency_ms"]["median"] < 250


def test_a_camera_is_asked_for_the_size_and_rate_wanted_and_says_what_it_delivers():
    asked = {}

    class Camera(FastCamera):
        def set(self, prop, value):
            asked[prop] = value
            return True

    source = FrameSource("0", opener=Camera, camera_size=(1920, 1080), camera_fps=60)
    source.close()
    assert asked[cv2.CAP_PROP_FRAME_WIDTH] == 1920 and asked[cv2.CAP_PROP_FRAME_HEIGHT] == 1080
    assert asked[cv2.CAP_PROP_FPS] == 60
    assert asked[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")  # HD at 30 fps needs MJPG
    assert "asked for 1920x1080 at 60 fps" in source.format_note and source.size == (1280, 720)


def test_a_stream_composite_is_the_two_labelled_previews_side_by_side():
    # The stream's side-by-side is composed straight into one canvas; it must show exactly what labelling each
    # reduced picture and joining them would.
    from engine.render import GAP, label_panel, preview, side_by_side

    rng = np.random.default_rng(3)
    for height, width in ((480, 640), (720, 1280), (1080, 1920), (1081, 1921)):
        left, right = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(2))
        panels = [label_panel(preview(image, 960), text) for image, text in ((left, "input"), (right, "output"))]
        gap = np.full((panels[0].shape[0], GAP, 3), 255, np.uint8)
        expected = np.hstack([panels[0], gap, panels[1]])
        assert np.array_equal(side_by_side(left, right, "input", "output", 960, whole_steps=True), expected)


def test_a_file_s_next_frame_is_read_only_when_the_render_side_can_take_it(tmp_path):
    # Nothing is dropped from a file. When the render side is the slower one, a frame read as soon as the last
    # was posted waits behind it in the mailbox: three frames in flight, a latency of about three render times
    # (255 ms for 83 ms here). Read when the render side has taken the last one, it is about two (168 ms).
    from engine.backend import SynthesisResult
    from engine.registry import DROP_IN, BackendEntry
    from tests.helpers import clip

    class Slow:
        id, label, live = "slow", "Takes 80 ms a frame", True

        def availability(self, settings):
            return True, ""

        def synthesize(self, request):
            time.sleep(0.08)
            return SynthesisResult(request.image.copy(), self.id, len(request.faces))

    registry = load_plugins(SETTINGS)
    registry.add_backend(BackendEntry("slow", "Slow", Slow(), "test", DROP_IN))
    pipeline = LivePipeline(registry, SETTINGS, LiveState([("happy", 1.0)]), "slow")
    source = FrameSource(str(clip(tmp_path / "c.mp4", 25)))
    try:
        figures = pipeline.run(source)
    finally:
        source.close()
    assert figures["frames"] == 25 and figures["dropped"] == 0
    render_side = figures["stages_ms"]["synthesize"]["median"] + figures["stages_ms"]["render"]["median"]
    assert render_side >= 80
    assert figures["latency_ms"]["median"] < 2.3 * render_side, figures
