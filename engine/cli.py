"""The `facesynth` command line: plugins, apply, analyze (live and bench arrive with their issues).

Every command takes `--json`, exits 0 on success, 1 when an input failed, 2 on a usage error, and prints a
one-line reason on stderr instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import structlog

from engine import log as logsetup
from engine.config import Settings, load_settings
from engine.errors import FaceSynthError, UsageError
from engine.expression import PARAMETERS, check_intensity, parse_assignment, parse_weighted_name
from engine.face import check_faces_option
from engine.imageio import IMAGE_SUFFIXES, list_images
from engine.plugins import load_plugins
from engine.registry import Registry
from engine.video import VIDEO_SUFFIXES

log = structlog.get_logger()


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument("--log-json", action="store_true", default=None, help="log as JSON lines")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), help="log level")
    parser.add_argument("--plugins-dir", action="append", default=[], metavar="DIR",
                        help="also load drop-in plugin files from DIR (repeatable; files there run as code)")


def _expression_options(parser: argparse.ArgumentParser) -> None:
    params = ", ".join(f"{p.name} [{p.minimum:g}, {p.maximum:g}]" for p in PARAMETERS)
    parser.add_argument("--emotion", action="append", default=[], metavar="NAME[:WEIGHT]",
                        help="an emotion preset; repeat to mix them (weights default to 1)")
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE", dest="assignments",
                        help=f"set one parameter exactly (after mixing). Parameters: {params}")
    parser.add_argument("--intensity", type=float, default=1.0, help="scale the emotions, 0 to 1.5 (default 1)")
    parser.add_argument("--backend", help="backend id or 'auto' (default: setting 'backend', landmark-warp)")
    parser.add_argument("--faces", help="faces to edit: all (default), largest, or numbers like 1,3 "
                                        "(1 = leftmost, as listed by analyze)")


def build_parser() -> ArgumentParser:
    """The argument parser for every sub-command."""
    parser = ArgumentParser(prog="facesynth", description="Edit facial expressions in photos, videos and "
                                                          "camera streams.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    plugins = commands.add_parser("plugins", help="list emotions and backends with their status")
    _common(plugins)

    apply = commands.add_parser("apply", help="edit the expression in image files and store each capture")
    apply.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    _expression_options(apply)
    apply.add_argument("--out", help="output folder for captures (default: setting output_dir, ./captures)")
    apply.add_argument("--no-cache", action="store_true", default=None,
                       help="always call the backend, even for a request answered before (cloud backends)")
    apply.add_argument("--sheet", metavar="FILE", help="instead of captures, write a contact sheet PNG: every face "
                                                       "x every emotion given (all emotions if none)")
    apply.add_argument("--sweep", metavar="PARAM", help="with --sheet: columns are values of PARAM across its range")
    apply.add_argument("--format", choices=("png", "jpg", "webp"), dest="output_format",
                       help="also save each edited photo as output.jpg/.webp (default: setting output_format, or the "
                            "input's own format: a JPEG stays a JPEG, with its EXIF and colour profile)")
    apply.add_argument("--crf", type=int, metavar="N", help="video quality, 0-51, lower is better (default: setting "
                                                            "video_crf, 20)")
    batch = apply.add_argument_group("batches", "many inputs run on worker processes (or a Ray cluster)")
    batch.add_argument("--workers", type=int, metavar="N",
                       help="worker processes for many inputs (default: the cores here; each loads the models once)")
    batch.add_argument("--unordered", action="store_true", help="report each input as it finishes, not in input order")
    batch.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run on Ray: 'auto', 'ray://host:10001', or nothing for a Ray started here (inputs, "
                            "--out and --plugins-dir on a folder every node sees)")
    batch.add_argument("--manifest", metavar="FILE.jsonl", help="one line per input as it finishes; a rerun of the "
                                                                "same command skips inputs already done")
    batch.add_argument("--retry-failed", action="store_true", help="with --manifest: run failed inputs again")
    batch.add_argument("--index", metavar="FILE.csv", help="one row per edited face of every output (input, face, "
                                                           "emotion, parameters, backend, output, scores)")
    _common(apply)

    analyze = commands.add_parser("analyze", help="find faces, their pose, blendshapes and expression")
    analyze.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of them")
    analyze.add_argument("--draw", metavar="OUT_DIR", help="write each picture with landmarks and boxes drawn")
    analyze.add_argument("--faces", help="faces to report: all (default), largest, or numbers like 1,3")
    _common(analyze)

    live = commands.add_parser("live", help="edit a camera, stream or video in real time")
    live.add_argument("--source", required=True, help="camera number (0), video file, stream URL or image file")
    _expression_options(live)
    view = live.add_mutually_exclusive_group()
    view.add_argument("--window", action="store_true", help="show input and output in a window (default with a "
                                                            "display); keys 1-9 emotion, +/- intensity, space "
                                                            "snapshot, q quit")
    view.add_argument("--headless", action="store_true", help="no window (default without a display)")
    live.add_argument("--record", metavar="OUT.mp4", help="write the edited frames to a video file (H.264)")
    live.add_argument("--crf", type=int, metavar="N", help="--record's quality, 0-51 (default: setting video_crf)")
    live.add_argument("--virtual-camera", nargs="?", const="", default=None, metavar="DEVICE",
                      help="send the edited frames to a virtual camera (v4l2loopback on Linux, OBS's elsewhere); "
                           "optionally which device, e.g. /dev/video10")
    live.add_argument("--size", metavar="WxH", help="ask the camera for this size, e.g. 1920x1080 (setting "
                                                    "camera_size)")
    live.add_argument("--fps", type=float, metavar="N", help="ask the camera for this frame rate (setting camera_fps)")
    live.add_argument("--max-frames", type=int, default=0, metavar="N", help="stop after N frames")
    live.add_argument("--stats-json", metavar="FILE", help="write the final figures as JSON")
    live.add_argument("--loop", action="store_true", help="play a video file again and again")
    live.add_argument("--out", help="folder for snapshots (default: setting output_dir)")
    _common(live)

    bench = commands.add_parser("bench", help="measure and print the speed figures")
    bench.add_argument("--source", help="a face video (default: samples/face.mp4)")
    bench.add_argument("--frames", type=int, default=150, help="frames to measure (default 150)")
    bench.add_argument("--only", action="append", metavar="SECTION",
                       help="run only this section (repeatable): preprocess, still, live, batch (only when "
                            "named), and the backends' own (warp, segmind)")
    bench.add_argument("--live", action="store_true", help="the live section only (same as --only live)")
    bench.add_argument("--batch", action="store_true", help="the batch section only (same as --only batch): "
                                                            "photos per second with 1 and 2 workers and Ray")
    _common(bench)

    panel = commands.add_parser("panel", help="open the desktop panel (needs a display)")
    from ui.app import add_arguments

    add_arguments(panel)
    return parser


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    flags.update(log_json=args.log_json, log_level=args.log_level)
    settings = load_settings(flags)
    logsetup.configure(settings.log_level, True if settings.log_json else None)
    return settings


def _emit(args: argparse.Namespace, payload: Any, human: Callable[[], None]) -> None:
    if args.json:
        print(json.dumps(payload, indent=2 if isinstance(payload, dict) else None))
    else:
        human()


def cmd_plugins(args: argparse.Namespace) -> int:
    """`facesynth plugins`: every emotion and backend with id, label, source, status and reason."""
    settings = _settings(args)
    registry = load_plugins(settings, args.plugins_dir)
    listing = registry.listing(settings)

    def human() -> None:
        for kind in ("emotions", "backends"):
            print(f"{kind}:")
            for row in listing[kind]:
                reason = f"  ({row['reason']})" if row["reason"] else ""
                print(f"  {row['id']:<16} {row['status']:<12} {row['source']}{reason}")
                if row.get("account", {}).get("remaining_credits") is not None:
                    print(f"  {'':<16} credits left: {row['account']['remaining_credits']} "
                          f"(as of {row['account'].get('seen', '?')})")

    _emit(args, listing, human)
    return 0


def _recipe(args: argparse.Namespace, registry: Registry) -> tuple[Any, dict[str, Any], str]:
    """The expression vector asked for on the command line, what to record about it, and a caption."""
    weighted = [parse_weighted_name(text) for text in args.emotion]
    overrides = dict(parse_assignment(text) for text in args.assignments)
    intensity = check_intensity(args.intensity)
    if not weighted and not overrides:
        known = ", ".join(sorted(registry.emotions))
        raise UsageError(f"say what to change: --emotion NAME (one of {known}) or --set PARAM=VALUE")
    expression = registry.expression(weighted, intensity, overrides)
    recipe = {"emotion": [{"name": name, "weight": weight} for name, weight in weighted], "intensity": intensity,
              "overrides": overrides}
    caption = " + ".join(name if weight == 1 else f"{name}:{weight:g}" for name, weight in weighted)
    if overrides:
        caption = " ".join(filter(None, [caption, ", ".join(f"{k}={v:g}" for k, v in overrides.items())]))
    return expression, recipe, caption


def _inputs(paths: Sequence[str], videos: bool = False) -> list[Path]:
    """The input files: those named, and the images (and with `videos`, the videos) in the folders named."""
    files = list_images(list(paths), IMAGE_SUFFIXES + (VIDEO_SUFFIXES if videos else ()))
    if not files:
        raise UsageError("no image files found in " + ", ".join(paths))
    return files


def recipe_emotions(recipe: dict[str, Any]) -> list[tuple[str, float]]:
    """The (name, weight) pairs of a recipe."""
    return [(item["name"], item["weight"]) for item in recipe["emotion"]]


def _with_input(path: str, message: str) -> str:
    """`message` prefixed by the input's path, unless it already names it."""
    return message if message.startswith(path) else f"{path}: {message}"


def cmd_apply(args: argparse.Namespace) -> int:
    """`facesynth apply`: edit each input (x each emotion with `--emotion all`), store a capture per output, report
    one record per output. Many inputs run on worker processes (`--workers`) or on Ray (`--ray`)."""
    from engine import batch

    settings = _settings(args, backend=args.backend, faces=args.faces, output_dir=args.out, no_cache=args.no_cache,
                         output_format=args.output_format, video_crf=args.crf)
    check_faces_option(settings.faces)
    registry = load_plugins(settings, args.plugins_dir)
    if settings.backend != "auto":
        registry.backend(settings.backend)
    if args.sweep and not args.sheet:
        raise UsageError("--sweep goes with --sheet FILE")
    if args.sheet:
        return _sheet(args, settings, registry)
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers takes 1 or more")
    if args.retry_failed and not args.manifest:
        raise UsageError("--retry-failed goes with --manifest FILE (the record of the earlier run)")
    each = batch.dataset_emotions(args.emotion, registry.emotions)
    if each is None:
        _, recipe, caption = _recipe(args, registry)
        recipes = [(recipe, caption, "")]
    else:
        recipes = []
        for name, weight in each:
            args.emotion = [f"{name}:{weight:g}"]
            _, recipe, caption = _recipe(args, registry)
            recipes.append((recipe, caption, registry.emotion(name).id))
    inputs = _inputs(args.inputs, videos=True)
    from engine.storage import check_output_dir

    check_output_dir(settings.output_dir)
    if args.ray:  # Ray workers start in folders of their own: paths must not depend on this one
        settings = dataclasses.replace(settings, output_dir=str(Path(settings.output_dir).expanduser().resolve()))
        inputs = [path.resolve() for path in inputs]
    many = len(inputs) * len(recipes) > 1 or bool(args.ray)  # pooled tasks get folders named by the job
    tasks = batch.build_tasks(inputs, recipes, settings, name_folders=many)
    plugin_dirs = tuple(str(Path(d).resolve()) if args.ray else d for d in args.plugins_dir)
    job = batch.JobSpec(settings, plugin_dirs)

    out = sys.stdout  # captured now: Ray prints its own notes on sys.stdout, which the job turns to stderr

    def emit(record: dict[str, Any]) -> None:
        if args.json:
            print(json.dumps(record), flush=True, file=out)
        elif record.get("resumed") and record["status"] == "ok":
            print(f"done    {record['input']} -> {record['output_dir']} (before; skipped)", file=out)
        elif record["status"] == "ok":
            note = f", fell back: {record['fallback']}" if record.get("fallback") else ""
            if "frames" in record:  # a video
                what = f"{record['frames']} frames, {record['frames_with_face']} with a face"
            else:
                what = f"{sum(1 for face in record['faces'] if face['edited'])} face(s)"
            if record.get("emotion"):
                what = f"{record['emotion']}, {what}"
            print(f"ok      {record['input']} -> {record['output_dir']} ({what}, {record['backend']}, "
                  f"{record['timings_ms'].get('total', 0):.0f} ms{note})", flush=True, file=out)

    from engine.storage import check_output_file

    for flag, path in (("--index", args.index), ("--manifest", args.manifest)):
        if path:  # written as the batch goes or at its end: proved writable before any work
            check_output_file(path, flag)
    workers = args.workers if args.workers is not None else settings.workers or batch.default_workers()
    result = batch.run_job(job, tasks, workers=workers, ray_address=args.ray, manifest_path=args.manifest,
                           retry_failed=args.retry_failed, index_path=args.index, ordered=not args.unordered,
                           emit=emit, registry=registry)
    for record in result.records:
        if record["status"] != "ok":
            what = f"{record['input']} ({record['emotion']})" if record.get("emotion") else record["input"]
            print(f"facesynth: {_with_input(what, record['error'])}", file=sys.stderr)
    if result.stopped:
        print(f"facesynth: {batch.summary_line(result, len(tasks))}", file=sys.stderr)
    return 0 if result.ok else 1


def _sheet(args: argparse.Namespace, settings: Settings, registry: Registry) -> int:
    """`apply --sheet`: a contact sheet of every face found x emotions (or x values of one parameter)."""
    from engine.capture import Frame
    from engine.expression import Expression, parameter
    from engine.imageio import encode_png, read_image, write_atomic
    from engine.pipeline import Pipeline
    from engine.preprocess import choose_faces
    from engine.sheet import contact_sheet, emotion_columns, sweep_columns

    intensity = check_intensity(args.intensity)
    if args.sweep:
        name = parameter(args.sweep).name
        base = registry.expression([parse_weighted_name(t) for t in args.emotion], intensity,
                                   dict(parse_assignment(t) for t in args.assignments)) \
            if args.emotion or args.assignments else Expression.neutral()
        columns = sweep_columns(base, name)
    else:
        names = [parse_weighted_name(t)[0] for t in args.emotion] or sorted(registry.emotions)
        columns = emotion_columns(registry, [registry.emotion(n).id for n in names], intensity)
    sheet_path = Path(args.sheet)
    if sheet_path.suffix.lower() != ".png":
        raise UsageError(f"--sheet writes a PNG file; give a name ending in .png, not '{sheet_path.name}'")
    from engine.storage import check_output_dir

    check_output_dir(sheet_path.parent if str(sheet_path.parent) else ".", "--sheet")
    pipeline = Pipeline(registry, settings)
    pictures, failures = [], []  # (path, image, faces found)
    try:
        for path in _inputs(args.inputs):
            try:
                image = read_image(path, settings.max_megapixels)
            except FaceSynthError as exc:
                failures.append(_with_input(str(path), str(exc)))
                continue
            found = pipeline.preprocessor.detect(Frame(image, source=str(path)))
            faces, skipped = choose_faces(found, settings)
            failures += [f"{path}: {item['reason']}" for item in skipped]  # too small, or overlapping another
            if faces:
                pictures.append((path, image, faces))
            elif not found:
                failures.append(f"{path}: no face found")
        results: dict[tuple[int, int], Any] = {}
        used: set[str] = set()

        def synthesize(image: Any, faces: list[Any], expression: Any) -> Any:
            key = (id(image), id(expression))
            if key not in results:
                synthesis = pipeline.synthesizer(Frame(image), faces, expression, settings.backend)
                results[key] = synthesis.result
                used.add(synthesis.backend)
            return results[key]

        # A face the backend will not edit (in profile, say) gets no row: the reason is reported instead, and the
        # other faces still make the sheet.
        rows = []
        for path, image, faces in pictures:
            try:
                skipped = synthesize(image, faces, columns[0][1]).info.get("skipped", [])
            except FaceSynthError as exc:
                failures.append(f"{path}: {exc}")
                continue
            for number, face in enumerate(faces, 1):
                reason = next((item["reason"] for item in skipped if list(item["box"]) == list(face.box)), None)
                if reason:
                    failures.append(f"{path}: {reason}")
                else:
                    rows.append((f"{path.stem}#{number}" if len(faces) > 1 else str(path), image, face.box, faces))
        if not rows:
            raise FaceSynthError("no face to put on a sheet; " + "; ".join(failures))
        faces_of = {id(image): faces for _, image, _, faces in rows}

        def render(image: Any, expression: Any) -> Any:
            return synthesize(image, faces_of[id(image)], expression).image

        sheet = contact_sheet([(name, image, box) for name, image, box, _ in rows], columns, render)
        write_atomic(sheet_path, encode_png(sheet))
    finally:
        pipeline.close()
    backend = ", ".join(sorted(used))
    result = {"sheet": str(sheet_path), "faces": len(rows), "columns": [c for c, _ in columns],
              "backend": backend, "errors": failures}
    _emit(args, result, lambda: print(f"sheet   {sheet_path} ({len(rows)} face(s) x {len(columns)} columns, "
                                      f"{backend})"))
    for failure in failures:
        print(f"facesynth: {failure}", file=sys.stderr)
    return 1 if failures else 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """`facesynth analyze`: faces with box, pose, main blendshapes and expression estimate per input."""
    from engine.analysis import analyze_inputs

    settings = _settings(args, faces=args.faces)
    check_faces_option(settings.faces)
    registry = load_plugins(settings, args.plugins_dir)
    return analyze_inputs(_inputs(args.inputs), settings, registry, args.json, args.draw)


def cmd_bench(args: argparse.Namespace) -> int:
    """`facesynth bench`: per-stage timings measured on this machine."""
    from engine import bench

    settings = _settings(args)
    if args.frames < 10:
        raise UsageError("--frames must be at least 10")
    registry = load_plugins(settings, args.plugins_dir)
    only = [*(args.only or []), *(["live"] if args.live else []), *(["batch"] if args.batch else [])]
    results = bench.run(settings, registry, args.source, args.frames, only,
                        lambda name: None if args.json else print(f"measuring {name} ...", file=sys.stderr))
    _emit(args, results, lambda: print(bench.render_text(results, registry)))
    return 0


def parse_size(text: str) -> tuple[int, int] | None:
    """`WxH` as (width, height); None for an empty text (the setting was checked when it was read)."""
    if not text:
        return None
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def cmd_live(args: argparse.Namespace) -> int:
    """`facesynth live`: the real-time loop, in a window or headless."""
    import os

    from engine.capture import FrameSource
    from engine.live import LivePipeline, LiveState, Recorder, check_record_path
    from engine.storage import check_output_file

    settings = _settings(args, backend=args.backend, faces=args.faces, output_dir=args.out, video_crf=args.crf,
                         camera_size=args.size, camera_fps=args.fps)
    check_faces_option(settings.faces)
    registry = load_plugins(settings, args.plugins_dir)
    if settings.backend != "auto":
        registry.backend(settings.backend)
    weighted = [parse_weighted_name(text) for text in args.emotion] or [("happy", 1.0)]
    state = LiveState(weighted, dict(parse_assignment(t) for t in args.assignments), check_intensity(args.intensity))
    registry.expression(state.emotions, state.intensity, state.overrides)  # validate before opening anything
    if args.max_frames < 0:
        raise UsageError("--max-frames must be 0 (no limit) or more")
    window = args.window or (not args.headless and bool(os.environ.get("DISPLAY")))
    if args.window and not os.environ.get("DISPLAY"):
        raise UsageError("no display for --window: use --headless, or run under a display (e.g. xvfb-run)")
    # Files written at the end are checked now: a bad name must not cost a run, nor leave threads behind.
    if args.record:
        check_record_path(args.record)
    if args.stats_json:
        check_output_file(args.stats_json, "--stats-json")
    source = FrameSource(args.source, loop=args.loop, retries=settings.camera_retries,
                         max_megapixels=settings.max_megapixels, camera_size=parse_size(settings.camera_size),
                         camera_fps=settings.camera_fps)
    if source.kind == "camera" and not args.json:
        print(f"camera {args.source}: {source.size[0]}x{source.size[1]} at {source.fps:g} fps"
              f"{source.format_note}", file=sys.stderr)
    pipeline: LivePipeline | None = None
    recorder: Recorder | None = None
    camera: Any = None
    interrupted = False
    try:  # every exit path stops the workers, then the source, then finishes the recording, in that order
        from engine.events import Event

        if args.virtual_camera is not None:
            from engine.virtualcam import open_virtual_camera

            camera = open_virtual_camera(source.size[0], source.size[1], source.fps, args.virtual_camera or None)
        pipeline = LivePipeline(registry, settings, state, settings.backend)
        if args.record:
            recorder = Recorder(args.record, source.fps, source.size, crf=settings.video_crf, follow=source)
            pipeline.bus.on(Event.RENDER, recorder)
        if camera is not None:
            pipeline.bus.on(Event.RENDER, lambda event: camera.send(event.output))
        try:
            if window:
                from ui.live_window import run_window

                figures = run_window(pipeline, source, registry, settings, args.max_frames)
            else:
                figures = pipeline.run(source, args.max_frames)
        except KeyboardInterrupt:  # Ctrl+C or SIGTERM ends a stream: the figures and the recording are kept
            interrupted = True
            pipeline.stop(wait=5.0)
            figures = pipeline.figures()
    finally:
        if pipeline is not None:
            pipeline.stop()
        source.close()
        if recorder is not None:
            recorder.close()
        if camera is not None:
            camera.close()
    if camera is not None:
        figures["virtual_camera"] = {"device": camera.device, "sent": camera.sent, "dropped": camera.dropped}
    if recorder is not None:
        figures["recorded"] = {"file": str(args.record) if recorder.written else None, "frames": recorder.written,
                               "dropped": recorder.dropped}
    if args.stats_json:
        from engine.imageio import write_atomic

        write_atomic(Path(args.stats_json), json.dumps(figures, indent=2).encode())
    _emit(args, figures, lambda: print(
        f"{figures['frames']} frames ({figures['frames_with_face']} with a face), {figures['fps']} fps, latency "
        f"median {figures['latency_ms']['median']} ms, p95 {figures['latency_ms']['p95']} ms, "
        f"{figures['dropped']} dropped, backend {figures['backend']}"))
    if interrupted:
        print("facesynth: interrupted; the figures and the recording hold what ran", file=sys.stderr)
        return 130
    if pipeline.error:
        raise FaceSynthError(pipeline.error)
    if figures["failed_frames"]:
        print(f"facesynth: {figures['failed_frames']} of {figures['frames_with_face']} frames with a face were "
              f"left unedited: {figures['last_error']}", file=sys.stderr)
        return 1
    return 0


def cmd_panel(args: argparse.Namespace) -> int:
    """`facesynth panel`: the desktop panel (the `ui` package)."""
    from ui.app import run_args

    return run_args(args)


COMMANDS = {"plugins": cmd_plugins, "apply": cmd_apply, "analyze": cmd_analyze, "live": cmd_live,
            "bench": cmd_bench, "panel": cmd_panel}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `facesynth` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return COMMANDS[args.command](args)
    except FaceSynthError as exc:
        print(f"facesynth: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("facesynth: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # last resort: one line, and the traceback only in debug logs
        log.debug("internal_error", exc_info=True)
        print(f"facesynth: internal error: {type(exc).__name__}: {exc} (run with --log-level debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
