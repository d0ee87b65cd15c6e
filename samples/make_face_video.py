"""Make samples/face.mp4: the public-domain sample photo with natural head motion, 640x480, 30 fps.

The head turns, nods and tilts (the landmark-warp backend's rotation) and drifts across the frame, so the
benchmark and the live-mode tests have a real face in motion without a camera. Run from the repo root:
`.venv/bin/python samples/make_face_video.py`. `--size 1280x720 --out /tmp/face-720p.mp4` makes the same
motion at another size (the photo cropped to that shape), for measuring at other resolutions.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.expression import Expression  # noqa: E402
from engine.faces import Landmarker  # noqa: E402
from engine.video import VideoWriter  # noqa: E402
from plugins.landmark_warp.warp import edit_face  # noqa: E402

WIDTH, HEIGHT, FPS, SECONDS = 640, 480, 30, 20  # 600 frames: `live --max-frames 600` without --loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}", help="WxH (default 640x480)")
    parser.add_argument("--out", default=str(ROOT / "samples" / "face.mp4"), help="the video to write")
    args = parser.parse_args()
    width, height = (int(side) for side in args.size.lower().split("x"))
    photo = cv2.imread(str(ROOT / "samples" / "astronaut.png"))
    # Head and shoulders, framed as a webcam would (the face about a third of the frame's height); the crop
    # is 270 rows high and as wide as the shape asks (360 columns, 45:405, for the default 4:3).
    crop_width = min(photo.shape[1], round(270 * width / height))
    left = max(0, min(photo.shape[1] - crop_width, 225 - crop_width // 2))
    canvas = cv2.resize(photo[0:270, left:left + crop_width], (width, height), interpolation=cv2.INTER_CUBIC)
    with Landmarker() as landmarker:
        face = landmarker.detect(canvas)[0]
    writer = VideoWriter(args.out, (width, height), FPS)  # H.264, as a phone or a camera app writes
    rng = np.random.default_rng(7)
    for index in range(FPS * SECONDS):
        t = index / FPS
        pose = {"rotate_yaw": 9 * math.sin(0.9 * t), "rotate_pitch": 4 * math.sin(1.3 * t + 1),
                "rotate_roll": 5 * math.sin(0.7 * t + 2), "blink": -20.0 if index % 75 in (40, 41, 42) else 0.0}
        frame = canvas.copy()
        edit_face(frame, face.landmarks, Expression(pose).as_dict())
        scale = width / WIDTH  # the same drift, in proportion
        shift = np.float32([[1, 0, 18 * scale * math.sin(0.5 * t)], [0, 1, 8 * scale * math.sin(0.8 * t)]])
        frame = cv2.warpAffine(frame, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
        noise = rng.normal(0, 1.5, frame.shape)  # a little sensor noise, as a camera has
        writer.write(np.clip(frame + noise, 0, 255).astype(np.uint8))
    writer.close()


if __name__ == "__main__":
    main()
