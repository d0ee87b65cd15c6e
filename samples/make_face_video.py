"""Make samples/face.mp4: the public-domain sample photo with natural head motion, 640x480, 30 fps.

The head turns, nods and tilts (the landmark-warp backend's rotation) and drifts across the frame, so the
benchmark and the live-mode tests have a real face in motion without a camera. Run from the repo root:
`.venv/bin/python samples/make_face_video.py`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.expression import Expression  # noqa: E402
from engine.faces import Landmarker  # noqa: E402
from plugins.landmark_warp.warp import edit_face  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS = 640, 480, 30, 20  # 600 frames: `live --max-frames 600` without --loop


def main() -> None:
    photo = cv2.imread(str(ROOT / "samples" / "astronaut.png"))
    # Head and shoulders, framed as a webcam would (the face about a third of the frame's height).
    canvas = cv2.resize(photo[0:270, 45:405], (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    with Landmarker() as landmarker:
        face = landmarker.detect(canvas)[0]
    writer = cv2.VideoWriter(str(ROOT / "samples" / "face.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS,
                             (WIDTH, HEIGHT))
    rng = np.random.default_rng(7)
    for index in range(FPS * SECONDS):
        t = index / FPS
        pose = {"rotate_yaw": 9 * math.sin(0.9 * t), "rotate_pitch": 4 * math.sin(1.3 * t + 1),
                "rotate_roll": 5 * math.sin(0.7 * t + 2), "blink": -20.0 if index % 75 in (40, 41, 42) else 0.0}
        frame = canvas.copy()
        edit_face(frame, face.landmarks, Expression(pose).as_dict())
        shift = np.float32([[1, 0, 18 * math.sin(0.5 * t)], [0, 1, 8 * math.sin(0.8 * t)]])
        frame = cv2.warpAffine(frame, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        noise = rng.normal(0, 1.5, frame.shape)  # a little sensor noise, as a camera has
        writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    writer.release()


if __name__ == "__main__":
    main()
