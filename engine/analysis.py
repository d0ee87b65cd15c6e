"""Expression analysis: how much a face looks like each known emotion, from its blendshapes.

Each emotion plugin may say how it is recognised (`recognise`: blendshape -> weight). The score is the
weighted mean of those blendshapes, in [0, 1]; `neutral` is what is left over.
"""

from __future__ import annotations

from typing import Any, Mapping

# For emotions registered without `recognise`: blendshapes that follow each expression parameter.
PARAMETER_SIGNS: Mapping[str, Mapping[str, float]] = {
    "smile": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
    "aaa": {"jawOpen": 1.0},
    "eyebrow": {"browInnerUp": 0.5, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25},
    "blink": {"eyeBlinkLeft": -0.5, "eyeBlinkRight": -0.5},
    "woo": {"mouthPucker": 0.5, "mouthFunnel": 0.5},
    "eee": {"mouthStretchLeft": 0.5, "mouthStretchRight": 0.5},
    "wink": {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5},
}


def recognition_weights(params: Mapping[str, float], recognise: Mapping[str, float]) -> dict[str, float]:
    """The blendshape weights for one emotion: its own, else derived from the signs of its parameters."""
    if recognise:
        return dict(recognise)
    weights: dict[str, float] = {}
    for name, value in params.items():
        for shape, sign in PARAMETER_SIGNS.get(name, {}).items():
            if value * sign > 0:
                weights[shape] = weights.get(shape, 0.0) + abs(sign)
    return weights


def score(blendshapes: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """The weighted mean of the named blendshape scores (0 when nothing is known)."""
    total = sum(abs(w) for w in weights.values())
    if not total or not blendshapes:
        return 0.0
    return max(0.0, min(1.0, sum(w * blendshapes.get(name, 0.0) for name, w in weights.items()) / total))


def estimate(blendshapes: Mapping[str, float], emotions: Mapping[str, Any]) -> dict[str, Any]:
    """Scores for every emotion in the registry's `emotions` table, the best one, and a sentence.

    Returns `{"scores": {...}, "label": "happy", "score": 0.82, "text": "looks happy (0.82)"}`; the label is
    `neutral` when no emotion scores 0.3 or more.
    """
    scores = {emotion_id: round(score(blendshapes, recognition_weights(entry.params, entry.recognise)), 3)
              for emotion_id, entry in emotions.items()}
    best = max(scores, key=lambda name: scores[name]) if scores else "neutral"
    value = scores.get(best, 0.0)
    if value < 0.3:
        best, value = "neutral", round(1.0 - value, 3)
    return {"scores": scores, "label": best, "score": value, "text": f"looks {best} ({value:.2f})"}


MAIN_BLENDSHAPES = ("mouthSmileLeft", "mouthSmileRight", "jawOpen", "browInnerUp", "browDownLeft", "browDownRight",
                    "eyeBlinkLeft", "eyeBlinkRight", "eyeWideLeft", "eyeWideRight", "mouthPucker",
                    "mouthStretchLeft", "mouthStretchRight", "mouthFrownLeft", "mouthFrownRight")


def analyze_inputs(paths: Any, settings: Any, registry: Any, as_json: bool, draw_dir: str | None) -> int:
    """`facesynth analyze`: print the faces of each input (JSON lines or text); 1 if any input failed."""
    import json
    import sys
    from pathlib import Path

    from engine.errors import InputError
    from engine.face import select_faces
    from engine.faces import Landmarker
    from engine.imageio import encode_png, read_image, write_atomic

    failed = False
    out = Path(draw_dir) if draw_dir else None
    if out is not None:
        from engine.storage import check_output_dir

        check_output_dir(out, "--draw")
    drawn_names: set[str] = set()
    with Landmarker(settings.landmarker_model) as landmarker:
        for path in paths:
            record: dict[str, Any] = {"input": str(path), "faces": [], "error": None}
            try:
                image = read_image(path, settings.max_megapixels)
                faces = select_faces(landmarker.detect(image), settings.faces)
                record["faces"] = [face_summary(face, registry.emotions) for face in faces]
                if out is not None:
                    drawn = out / unique_name(f"{Path(path).stem}_faces", ".png", drawn_names)
                    write_atomic(drawn, encode_png(draw_faces(image, faces)))
                    record["drawn"] = str(drawn)
            except InputError as exc:
                record["error"] = str(exc)
                failed = True
            if as_json:
                print(json.dumps(record), flush=True)
            elif record["error"]:
                print(f"facesynth: {record['error']}", file=sys.stderr)
            else:
                print(f"{path}: {len(record['faces'])} face(s)" if record["faces"] else f"{path}: no face found")
                for number, face in enumerate(record["faces"], 1):
                    pose = face["pose"]
                    print(f"  face {number}: box {face['box']}, yaw {pose['yaw']:+.0f} pitch {pose['pitch']:+.0f} "
                          f"roll {pose['roll']:+.0f}, {face['expression']['text']}")
                    strongest = sorted(face["blendshapes"].items(), key=lambda item: -item[1])[:4]
                    print("    " + ", ".join(f"{name} {value:.2f}" for name, value in strongest))
    return 1 if failed else 0


def unique_name(stem: str, suffix: str, taken: set[str]) -> str:
    """`stem + suffix`, or `stem-2 + suffix`, ... : the first not in `taken` (which it joins). Two inputs with the
    same file name in different folders get drawings of their own."""
    name, number = f"{stem}{suffix}", 1
    while name in taken:
        number += 1
        name = f"{stem}-{number}{suffix}"
    taken.add(name)
    return name


def face_summary(face: Any, emotions: Mapping[str, Any]) -> dict[str, Any]:
    """What `analyze` reports of one face: box, pose, main blendshapes, expression estimate."""
    return {"box": list(face.box), "pose": face.pose, "inter_ocular_px": round(face.inter_ocular_px, 1),
            "blendshapes": {name: round(face.blendshapes.get(name, 0.0), 3) for name in MAIN_BLENDSHAPES},
            "expression": estimate(face.blendshapes, emotions)}


def draw_faces(image: Any, faces: Any) -> Any:
    """A copy of `image` with each face's box, number and landmarks drawn."""
    import cv2

    canvas = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 600))
    for number, face in enumerate(faces, 1):
        x, y, w, h = face.box
        cv2.rectangle(canvas, (x, y), (x + w, y + h), (0, 200, 255), thickness, cv2.LINE_AA)
        cv2.putText(canvas, str(number), (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thickness,
                    (0, 200, 255), thickness, cv2.LINE_AA)
        radius = max(1, round(face.inter_ocular_px / 60))
        for px, py in face.landmarks[:, :2]:
            cv2.circle(canvas, (int(round(px)), int(round(py))), radius, (80, 255, 80), -1, cv2.LINE_AA)
    return canvas
