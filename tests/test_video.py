"""Video files through engine.video: real clips made with PyAV (H.264 + a tone), read, edited, written, checked."""

from __future__ import annotations

import json
import math
import os
import stat
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engine.errors import InputError, UsageError
from engine.video import VideoReader, VideoWriter, check_video_path, is_video, transcode
from tests.helpers import SAMPLE, VIDEO, audio_tracks, json_lines, read_video, run_cli, sweep, where_in

RATE = 48000


def make_clip(path: Path, frames: int = 45, fps: int = 30, size: tuple[int, int] = (320, 240),
              tones: tuple[float, ...] = (440.0,), audio_codec: str = "aac", pts: list[int] | None = None,
              time_base: Fraction | None = None, rotation: int = 0,
              pictures: list[np.ndarray] | None = None, sweeps: bool = False) -> Path:
    """A clip whose frames are numbered by their brightness and a white corner, with one audio stream per tone.

    `pts` (in `time_base` units) makes it variable-frame-rate; `rotation` tags a display matrix (degrees
    counter-clockwise, as PyAV reads it back); with `sweeps` each tone rises as the clip goes on (any stretch of
    the sound then tells where in the clip it comes from).
    """
    time_base = time_base or Fraction(1, fps)
    if pictures is not None:
        frames, size = len(pictures), (pictures[0].shape[1], pictures[0].shape[0])
    pts = pts if pts is not None else list(range(frames))
    output = av.open(str(path), "w")
    video = output.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.codec_context.time_base = time_base
    if rotation:
        video.set_display_rotation(rotation)
    audio = []
    for _ in tones:
        stream = output.add_stream(audio_codec, rate=RATE)
        stream.layout = "mono"
        audio.append(stream)
    for index, stamp in enumerate(pts):
        picture = pictures[index] if pictures is not None else _picture(index, size)
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        frame.pts, frame.time_base = stamp, time_base
        for packet in video.encode(frame):
            output.mux(packet)
    duration = float((pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)) * time_base)
    total = int(RATE * duration)
    for stream, tone in zip(audio, tones):
        samples = sweep(total, RATE, tone) if sweeps else \
            (0.5 * np.sin(2 * math.pi * tone * np.arange(total) / RATE)).astype(np.float32)
        for start in range(0, total, 1024):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = RATE, start
            for packet in stream.encode(chunk):
                output.mux(packet)
    for stream in (video, *audio):
        for packet in stream.encode(None):
            output.mux(packet)
    output.close()
    return path


def _picture(index: int, size: tuple[int, int]) -> np.ndarray:
    image = np.full((size[1], size[0], 3), 20 + (index * 5) % 200, np.uint8)
    image[: size[1] // 4, : size[0] // 4] = 255  # a white top-left corner shows which way is up
    return image


def video_times(path: Path) -> list[float]:
    """The presentation times (s) of every decoded video frame, in order."""
    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a signal (Hz)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def invert(image: np.ndarray, index: int) -> np.ndarray:
    """A per-frame edit whose effect is easy to check."""
    return 255 - image


def test_tone_clip_keeps_video_frames_timestamps_and_audio(tmp_path):
    source = make_clip(tmp_path / "tone.mp4", frames=60)
    seen = []
    summary = transcode(source, tmp_path / "out.mp4", invert, progress=lambda done, total: seen.append(done))
    output = tmp_path / "out.mp4"
    assert summary["frames"] == 60 and summary["audio_streams"] == 1 and summary["stopped_early"] is None
    assert seen[-1] == 60
    with av.open(str(output)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert video.codec_context.profile == "High"
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert container.format.name.startswith("mov,mp4")
    data = output.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart: the index first, so a browser can stream it
    assert video_times(output) == pytest.approx(video_times(source), abs=1e-3)
    [(codec_in, start_in, samples_in, rate_in)] = audio_tracks(source)
    [(codec_out, start_out, samples_out, rate_out)] = audio_tracks(output)
    assert codec_out == codec_in == "aac"
    assert np.array_equal(samples_in, samples_out)  # copied, not re-encoded
    assert dominant_hz(samples_out, rate_out) == pytest.approx(440, abs=2)
    assert abs(start_out - start_in) < 1 / 30 and abs(len(samples_out) - len(samples_in)) / rate_in < 1 / 30
    # the edit reached every frame: the output is the negative of the input
    with VideoReader(source) as original, VideoReader(output) as edited:
        for before, after in zip(original, edited):
            assert np.abs((255 - before.image.astype(int)) - after.image).mean() < 3


def test_variable_frame_rate_timestamps_kept(tmp_path):
    gaps = [33, 17, 50, 33, 100, 16, 67, 33, 33, 250, 33, 20]
    pts = list(np.cumsum([0] + gaps * 3))
    source = make_clip(tmp_path / "vfr.mp4", pts=pts, time_base=Fraction(1, 1000))
    summary = transcode(source, tmp_path / "out.mp4", invert)
    before, after = video_times(source), video_times(tmp_path / "out.mp4")
    assert summary["frames"] == len(before) == len(after) == len(pts)
    assert after == pytest.approx([p / 1000 for p in pts], abs=1e-3)
    steps = np.diff(after)
    assert steps.max() > 5 * steps.min()  # still variable: not resampled to a constant rate


def test_header_frame_count_is_only_an_estimate(tmp_path):
    pts = [0, 40, 50, 60, 200, 210, 220, 400, 410, 420, 430, 440]
    source = make_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), tones=())
    with VideoReader(source) as reader:
        assert reader.frame_count_estimate != len(pts)  # Matroska has no frame count: duration x rate
    summary = transcode(source, tmp_path / "out.mkv", invert)
    assert summary["frames"] == len(pts) and summary["stopped_early"] is None
    assert video_times(tmp_path / "out.mkv") == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_rotated_clip_read_upright_and_written_upright(tmp_path):
    source = make_clip(tmp_path / "phone.mp4", frames=10, rotation=-90)  # portrait phone: turn 90 clockwise
    capture = cv2.VideoCapture(str(source))  # OpenCV applies the display matrix: an independent reference
    ok, reference = capture.read()
    capture.release()
    assert ok and reference.shape[:2] == (320, 240)
    with VideoReader(source) as reader:
        assert reader.rotation == -90 and reader.size == (240, 320)
        first = next(iter(reader)).image
    assert first.shape[:2] == (320, 240) and np.abs(first.astype(int) - reference).mean() < 2
    assert first[:40, -30:].mean() > 240 and first[-40:, :30].mean() < 100  # white corner now top-right
    summary = transcode(source, tmp_path / "out.mp4", lambda image, index: image)
    assert summary["size"] == [240, 320] and summary["rotation"] == -90
    with VideoReader(tmp_path / "out.mp4") as reader:
        assert reader.rotation == 0 and reader.size == (240, 320)
        assert np.abs(next(iter(reader)).image.astype(int) - reference).mean() < 3
    # frames written as stored, tagged with the rotation instead: read back upright the same
    with VideoWriter(tmp_path / "tagged.mp4", (320, 240), 30, rotation=-90) as writer:
        writer.write(_picture(0, (320, 240)))
    with VideoReader(tmp_path / "tagged.mp4") as reader:
        assert reader.rotation == -90 and np.abs(next(iter(reader)).image.astype(int) - reference).mean() < 3


def test_webm_reencodes_audio_to_opus_in_sync(tmp_path):
    source = make_clip(tmp_path / "tone.mp4", frames=45, tones=(660.0,))
    summary = transcode(source, tmp_path / "out.webm", invert)
    assert summary["audio"] == [{"codec": "aac", "mode": "encode", "to": "libopus"}]
    with av.open(str(tmp_path / "out.webm")) as container:
        assert container.streams.video[0].codec_context.name == "vp9"
    [(_, start_in, samples_in, rate_in)] = audio_tracks(source)
    [(codec, start_out, samples_out, rate_out)] = audio_tracks(tmp_path / "out.webm")
    assert codec == "opus" and dominant_hz(samples_out, rate_out) == pytest.approx(660, abs=2)
    assert abs(start_out - start_in) < 1 / 30
    assert abs(len(samples_out) / rate_out - len(samples_in) / rate_in) < 1 / 30
    assert len(video_times(tmp_path / "out.webm")) == 45


def test_pcm_audio_reencoded_to_aac_and_several_streams_kept(tmp_path):
    source = make_clip(tmp_path / "two.mkv", frames=30, tones=(440.0, 880.0), audio_codec="pcm_s16le")
    summary = transcode(source, tmp_path / "out.mp4", invert)
    assert [a["to"] for a in summary["audio"]] == ["aac", "aac"]
    tracks = audio_tracks(tmp_path / "out.mp4")
    assert [t[0] for t in tracks] == ["aac", "aac"]
    assert [round(dominant_hz(t[2], t[3])) for t in tracks] == pytest.approx([440, 880], abs=2)
    for _, _, samples, rate in tracks:
        assert abs(len(samples) / rate - 1.0) < 1 / 30
    # .mkv takes PCM as it is: copied
    summary = transcode(source, tmp_path / "out.mkv", invert)
    assert [a["mode"] for a in summary["audio"]] == ["copy", "copy"]


def test_no_audio_gives_no_audio(tmp_path):
    source = make_clip(tmp_path / "silent.mp4", frames=12, tones=())
    summary = transcode(source, tmp_path / "out.mov", invert)
    assert summary["audio_streams"] == 0
    with av.open(str(tmp_path / "out.mov")) as container:
        assert len(container.streams.audio) == 0 and len(container.streams.video) == 1
    assert len(video_times(tmp_path / "out.mov")) == 12


def test_decoding_error_keeps_frames_so_far_and_says_where(tmp_path):
    source = make_clip(tmp_path / "clip.mp4", frames=30, tones=())
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 4  # garble the middle of the coded frames (the index stays intact)
    end = data.find(b"moov") if data.find(b"moov") > start else len(data)
    middle = (start + end) // 2
    span = (end - start) // 8
    data[middle:middle + span] = np.random.default_rng(1).integers(0, 255, span, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with VideoReader(damaged) as reader:
        got = []
        with pytest.raises(InputError, match=r"decoding stopped at frame \d+"):
            for frame in reader:
                got.append(frame.index)
    assert 0 < len(got) < 30 and got == list(range(len(got)))
    summary = transcode(damaged, tmp_path / "out.mp4", invert)
    assert summary["frames"] == len(got) and f"frame {len(got)}" in summary["stopped_early"]
    assert len(video_times(tmp_path / "out.mp4")) == len(got)


def test_native_logs_silenced_unless_asked_for(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT, clean_env

    source = make_clip(tmp_path / "clip.mp4", frames=30, tones=())
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 4
    middle, span = (start + len(data)) // 2, (len(data) - start) // 8
    data[middle:middle + span] = np.random.default_rng(1).integers(0, 255, span, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    script = ("import sys\nfrom engine.video import VideoReader\nfrom engine.errors import InputError\n"
              "try:\n    [f for f in VideoReader(sys.argv[1])]\nexcept InputError as e:\n    print(e)\n")
    quiet = subprocess.run([sys.executable, "-c", script, str(damaged)], capture_output=True, text=True,
                           cwd=ROOT, env=clean_env(), timeout=60)
    chatty = subprocess.run([sys.executable, "-c", script, str(damaged)], capture_output=True, text=True,
                            cwd=ROOT, env=clean_env(FACESYNTH_NATIVE_LOGS="1"), timeout=60)
    assert "decoding stopped" in quiet.stdout and "decoding stopped" in chatty.stdout
    assert quiet.stderr == "" and "NAL unit" in chatty.stderr  # FFmpeg's h264 decoder complaining


def test_bad_inputs_and_outputs_are_clear_errors(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(InputError, match="not a video FaceSynth can read"):
        VideoReader(text)
    with pytest.raises(InputError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    with pytest.raises(UsageError, match=r"\.mp4, \.mkv, \.webm, \.mov"):
        check_video_path(tmp_path / "out.avi")
    with pytest.raises(UsageError, match="does not exist"):
        check_video_path(tmp_path / "nowhere" / "out.mp4")
    source = make_clip(tmp_path / "clip.mp4", frames=5, tones=())
    with pytest.raises(UsageError, match=r"\.mp4, \.mkv"):
        transcode(source, tmp_path / "out.gif", invert)
    assert not (tmp_path / "out.gif").exists()
    assert is_video("a/b.MKV") and not is_video("photo.jpg")


def test_writer_abort_removes_the_file_and_close_honours_umask(tmp_path):
    writer = VideoWriter(tmp_path / "gone.mp4", (64, 48), 25)
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    # odd sizes are padded to even (yuv420p needs it); frames of another size are resized
    with VideoWriter(tmp_path / "kept.mkv", (65, 49), 25) as writer:
        for index in range(5):
            writer.write(np.full((100, 130, 3), index * 40, np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["kept.mkv"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "kept.mkv").stat().st_mode) == 0o666 & ~umask
    with VideoReader(tmp_path / "kept.mkv") as reader:
        assert reader.size == (66, 50) and len(list(reader)) == 5
    # a frame the encoder cannot take: a clear error at close, and no file
    broken = VideoWriter(tmp_path / "broken.mp4", (64, 48), 25)
    broken.write(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(InputError, match="writing the video failed"):
        broken.close()
    assert not any(p.name.startswith((".broken", "broken")) for p in tmp_path.iterdir())


def test_writer_takes_the_sound_from_where_the_pictures_start_and_again_when_they_loop(tmp_path):
    # A recording of a looping 2 s clip begun at its second 1.0: frames 30-59, then the clip again from 0
    source = make_clip(tmp_path / "sweep.mp4", frames=60, tones=(300.0,), sweeps=True)
    pictures = read_video(source)
    output = tmp_path / "recording.mp4"
    writer = VideoWriter(output, (320, 240), 30, audio_from=source, audio_start_s=1.0, audio_loops=True)
    for number, index in enumerate([*range(30, 60), *range(0, 30)]):
        if number == 30:
            writer.restart_audio(1.0)  # the first frame of the new round is at 1.0 s of the recording
        writer.write(pictures[index])
    writer.close(audio_until_s=2.0)
    [(_, _, heard, rate)] = audio_tracks(source)
    [(codec, start, samples, rate_out)] = audio_tracks(output)
    assert codec == "aac" and rate_out == rate and abs(start) < 1 / 30
    assert abs(len(samples) / rate - 2.0) < 1.5 / 30  # as long as the pictures
    # each half of the recording sounds as the clip did where its pictures came from
    assert where_in(heard, samples[rate // 10: rate // 2]) / rate - 0.1 == pytest.approx(1.0, abs=1 / 30)
    assert where_in(heard, samples[rate + rate // 10: rate + rate // 2]) / rate - 0.1 == pytest.approx(0.0, abs=1 / 30)
    assert len(video_times(output)) == 60
    # re-encoded (PCM into .mp4) the same way
    source = make_clip(tmp_path / "sweep.mkv", frames=60, tones=(300.0,), sweeps=True, audio_codec="pcm_s16le")
    writer = VideoWriter(tmp_path / "pcm.mp4", (320, 240), 30, audio_from=source, audio_start_s=1.0,
                         audio_loops=True)
    for number, index in enumerate([*range(30, 60), *range(0, 30)]):
        if number == 30:
            writer.restart_audio(1.0)
        writer.write(pictures[index])
    writer.close(audio_until_s=2.0)
    [(_, _, heard, rate)] = audio_tracks(source)
    [(codec, _, samples, _)] = audio_tracks(tmp_path / "pcm.mp4")
    assert codec == "aac" and abs(len(samples) / rate - 2.0) < 1.5 / 30
    assert where_in(heard, samples[rate // 10: rate // 2]) / rate - 0.1 == pytest.approx(1.0, abs=1 / 30)
    assert where_in(heard, samples[rate + rate // 10: rate + rate // 2]) / rate - 0.1 == pytest.approx(0.0, abs=1 / 30)


# `facesynth apply` on real face clips: the whole command, as a user runs it.

def face_pictures(count: int, turn: int = 0) -> list[np.ndarray]:
    """The first frames of the sample face video (turned by `turn` degrees counter-clockwise, as a phone held
    sideways stores them)."""
    frames = read_video(VIDEO, count)
    if turn == 90:
        frames = [cv2.rotate(frame, cv2.ROTATE_90_CLOCKWISE) for frame in frames]
    return frames


def apply_clip(source: Path, out: Path, *extra: str) -> tuple[dict, Path]:
    result = run_cli("apply", source, "--emotion", "surprised", "--out", out, "--json", *extra, timeout=300)
    assert result.returncode == 0, result.stderr
    [record] = json_lines(result.stdout)
    folder = Path(record["output_dir"])
    return record, folder / json.loads((folder / "meta.json").read_text())["video"]


def test_apply_on_a_clip_with_sound_keeps_frames_timestamps_and_the_tone(tmp_path):
    source = make_clip(tmp_path / "talk.mp4", pictures=face_pictures(40))
    record, output = apply_clip(source, tmp_path / "out")
    assert record["status"] == "ok" and record["frames"] == 40 and record["audio_streams"] == 1
    assert record["faces"][0]["frames"] == 40 and record["faces"][0]["inter_ocular_px_median"] > 20
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert video_times(output) == pytest.approx(video_times(source), abs=1e-3)  # every frame, in time
    [(_, start_in, samples_in, rate)] = audio_tracks(source)
    [(codec, start_out, samples_out, _)] = audio_tracks(output)
    assert codec == "aac" and np.array_equal(samples_in, samples_out)  # the same tone, untouched
    assert abs(start_out - start_in) < 1 / 30 and dominant_hz(samples_out, rate) == pytest.approx(440, abs=2)
    # and the faces were edited: the mouth opened (surprised), frame after frame
    edited = read_video(output)
    original = face_pictures(40)
    assert len(edited) == 40
    assert np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(original, edited)]) > 0.5


def test_apply_keeps_a_variable_frame_rate(tmp_path):
    gaps = [33, 17, 50, 33, 100, 16, 67, 33, 33, 250, 33, 20]
    stamps = list(np.cumsum([0] + gaps))
    source = make_clip(tmp_path / "vfr.mkv", pictures=face_pictures(len(stamps)), pts=stamps,
                       time_base=Fraction(1, 1000))
    record, output = apply_clip(source, tmp_path / "out")
    assert output.suffix == ".mkv" and record["frames"] == len(stamps)
    assert video_times(output) == pytest.approx([s / 1000 for s in stamps], abs=1e-3)


def test_apply_turns_a_rotated_clip_upright(tmp_path):
    source = make_clip(tmp_path / "phone.mp4", pictures=face_pictures(12, turn=90), rotation=90)
    record, output = apply_clip(source, tmp_path / "out")
    assert record["frames_with_face"] == 12  # found upright, so the face was found
    with VideoReader(output) as reader:
        assert reader.rotation == 0 and reader.size == (640, 480)


def test_a_video_in_a_folder_is_edited_not_skipped(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    make_clip(folder / "clip.mp4", pictures=face_pictures(10))
    (folder / "face.png").write_bytes(SAMPLE.read_bytes())
    result = run_cli("apply", folder, "--emotion", "happy", "--out", tmp_path / "out", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    records = {Path(r["input"]).name: r for r in json_lines(result.stdout)}
    assert set(records) == {"clip.mp4", "face.png"} and records["clip.mp4"]["frames"] == 10


def test_live_records_h264(tmp_path):
    record = tmp_path / "rec.mp4"
    result = run_cli("live", "--source", VIDEO, "--headless", "--max-frames", 20, "--record", record, timeout=120)
    assert result.returncode == 0, result.stderr
    with av.open(str(record)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(read_video(record)) > 0


def test_a_recording_stopped_before_its_first_frame_leaves_no_file(tmp_path):
    # Ctrl+C in the first second of `live --record`: the writer has no frame; closing it must not fail (it tried
    # to rename a temporary file that was never made) and must leave nothing behind.
    writer = VideoWriter(tmp_path / "k.mp4", (320, 240), 30)
    assert writer.close() is None
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_recording_s_sound_ends_with_its_frames(tmp_path):
    # A video edit interrupted after 10 of 60 frames: the file holds those frames and their sound, not the
    # whole input's sound after them (which played on over a frozen picture).
    from engine.live import Recorder

    source = make_clip(tmp_path / "tone.mp4", frames=60)
    recorder = Recorder(tmp_path / "out.mp4", 30, (320, 240), blocking=True, audio_from=source)
    for index in range(10):
        recorder.writer.write(_picture(index, (320, 240)))
    recorder.close(cut_audio=True)
    with av.open(str(tmp_path / "out.mp4")) as container:
        audio = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(audio))
    assert abs(samples / RATE - 10 / 30) < 0.2 + 2 * 1024 / RATE, samples / RATE  # (muxed up to 0.2 s ahead)


def test_live_record_of_a_looping_file_keeps_its_sound_in_step(tmp_path):
    # `live --source FILE --loop --record`: the recording had pictures only. Now each frame sits at its time in the
    # file and the sound comes along, from the file's start again when it loops: 45 frames (1.5 s), 75 recorded.
    source = make_clip(tmp_path / "sweep.mp4", frames=45, tones=(300.0,), sweeps=True)
    output = tmp_path / "live.mp4"
    result = run_cli("live", "--source", source, "--headless", "--loop", "--max-frames", "75", "--record", output,
                     "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["recorded"]["frames"] == 75 and figures["recorded"]["dropped"] == 0
    [(_, _, heard, rate)] = audio_tracks(source)
    [(codec, start, samples, _)] = audio_tracks(output)
    assert codec == "aac" and abs(start) < 1 / 30
    assert abs(len(samples) / rate - 2.5) < 2 / 30, len(samples) / rate  # as long as the pictures
    times = video_times(output)
    assert len(times) == 75
    assert times[44] == pytest.approx(44 / 30, abs=1e-3) and times[45] == pytest.approx(1.5, abs=1e-3)
    # the first round sounds as the clip did at the same time, and so does the second, from the clip's start
    assert where_in(heard, samples[rate // 10: rate // 2]) / rate - 0.1 == pytest.approx(0.0, abs=1.5 / 30)
    second = int(1.6 * rate)
    assert where_in(heard, samples[second: second + rate // 3]) / rate == pytest.approx(0.1, abs=1.5 / 30)
