"""Batches: many inputs (x many emotions) edited by worker processes on this machine, or by Ray actors on a cluster.

A job is a list of tasks, one per output capture (an input, or an input x an emotion in data-set mode). Each
worker (a `spawn`ed process, or a Ray actor) loads the plugins, the landmarker and the backend once, then edits
one task at a time; the parent hands out tasks, so it always knows which input a worker holds. A worker that
dies (a plugin calling `os._exit`, a native library's segfault, a kill) costs only that input: it is tried once
more on a fresh worker, and recorded as failed if that dies too; the job goes on.

The manifest (`--manifest jobs.jsonl`) gets one line per finished task as it finishes (flushed and synced), so a
rerun of the same command skips what is complete and an interrupted job loses only the tasks in flight. The
index (`--index out.csv`) has one row per edited face: the shape a training pipeline reads.

Capture folders are named by the parent before a task is handed out; a retried task reuses its folder (emptied
first), and a task that could not be finished has its `meta.json` marked `failed` or `interrupted`, never left
`pending`. A full disk (ENOSPC) fails the input it hit with "no space left on ...", and the job stops handing out
work, says what was stored, and leaves the rest for a rerun.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import hashlib
import io
import json
import os
import re
import shutil
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import structlog

from engine.config import Settings
from engine.errors import FaceSynthError, UsageError

if TYPE_CHECKING:
    from engine.storage import Capture, CaptureStore

log = structlog.get_logger()

CRASH_ATTEMPTS = 2  # a task whose worker dies is tried once more on a fresh worker before it is recorded failed
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
INDEX_COLUMNS = ("input", "face", "emotion", "parameters", "backend", "output", "capture", "input_score",
                 "output_score", "input_label", "output_label")
PACE_FILE_VARIABLE = "FACESYNTH_SEGMIND_PACE_FILE"  # read by plugins/segmind/pace.py in every worker (same name)


@dataclass(frozen=True)
class Task:
    """One output of the job: an input edited with one recipe, stored in the capture folder `folder`."""

    number: int  # position in the job: records are reported in this order
    input: str
    recipe: dict[str, Any]  # emotion [{name, weight}], intensity, overrides
    caption: str
    emotion: str  # the emotion this output shows ("" for a mix or --set only)
    key: str  # the manifest's key: input, recipe, backend and face choice
    video: bool = False
    folder: str = ""  # capture folder name under the output folder ("" = named by the store)


@dataclass(frozen=True)
class JobSpec:
    """What every worker needs to start: settings and plugin folders (all picklable)."""

    settings: Settings
    plugins_dir: tuple[str, ...] = ()
    one_core: bool = False  # a pooled worker: the pool gives the parallelism, so no thread pools of its own


@dataclass
class JobResult:
    """What a job did: records in input order, and its figures."""

    records: list[dict[str, Any]] = field(default_factory=list)
    ran: int = 0
    resumed: int = 0
    stopped: str = ""  # why the job stopped early ("" when it ran to the end)
    not_started: int = 0
    startup_s: float = 0.0  # until every worker had loaded its models
    work_s: float = 0.0  # from the first task handed out to the last result
    peak_worker_mb: float = 0.0
    workers: int = 0
    runner: str = "inline"

    @property
    def ok(self) -> bool:
        """True when every task produced its capture."""
        return not self.stopped and all(record["status"] == "ok" for record in self.records)


# ---------------------------------------------------------------- building the job

def dataset_emotions(texts: list[str], known: Iterable[str]) -> list[tuple[str, float]] | None:
    """`--emotion all` or `--emotion a,b,c`: the emotions to make one output each of; None for a plain recipe."""
    from engine.expression import parse_weighted_name

    listed = [text for text in texts if text.strip() == "all" or "," in text]
    if not listed:
        return None
    if len(texts) != 1:
        raise UsageError("--emotion all (or a comma-separated list) makes one output per emotion; give it alone, "
                         "not mixed with other --emotion flags")
    if texts[0].strip() == "all":
        return [(name, 1.0) for name in sorted(known)]
    return [parse_weighted_name(item) for item in texts[0].split(",") if item.strip()]


def task_key(path: Path, recipe: dict[str, Any], settings: Settings) -> str:
    """A task's identity in the manifest: the same input, recipe, backend and face choice make the same key."""
    identity = json.dumps([str(path.resolve()), recipe, settings.backend, settings.faces], sort_keys=True)
    return hashlib.sha1(identity.encode()).hexdigest()[:16]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40] or "capture"


def build_tasks(inputs: list[Path], recipes: list[tuple[dict[str, Any], str, str]], settings: Settings,
                name_folders: bool) -> list[Task]:
    """Every input x every recipe (recipe, caption, emotion), numbered in that order."""
    from engine.video import is_video

    tasks: list[Task] = []
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # one per job: a rerun never meets this job's names
    for path in inputs:
        for recipe, caption, emotion in recipes:
            number = len(tasks)
            folder = ""
            if name_folders:  # unique within the job by its number; the stamp keeps jobs apart
                folder = f"{stamp}_{number:05d}_{_slug(path.stem)}" + (f"_{_slug(emotion)}" if len(recipes) > 1 else "")
            tasks.append(Task(number, str(path), recipe, caption, emotion, task_key(path, recipe, settings),
                              is_video(path), folder))
    return tasks


# ---------------------------------------------------------------- the manifest and the index

class Manifest:
    """The job's journal: one JSON line per finished task, appended, flushed and synced as each finishes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for number, line in enumerate(self.path.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self.done[entry["key"]] = entry  # a later line for the same task wins
                except (ValueError, KeyError, TypeError):  # a line cut by a crash of the parent: ignore it
                    log.warning("manifest_line_unreadable", file=str(self.path), line=number)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write the manifest {self.path}: {exc.strerror or exc}") from None

    def complete(self, task: Task, retry_failed: bool) -> dict[str, Any] | None:
        """The earlier entry of `task` if a rerun should skip it: its capture is complete (or it failed for a
        reason of its own and `retry_failed` is off). Tasks stopped by the job (full disk, interrupted) rerun."""
        entry = self.done.get(task.key)
        if entry is None:
            return None
        record = entry.get("record", {})
        if record.get("status") == "ok":
            folder = record.get("output_dir")
            try:
                meta = json.loads((Path(folder) / "meta.json").read_text()) if folder else {}
            except (OSError, ValueError):
                return None
            return entry if meta.get("status") == "ok" else None
        if retry_failed or entry.get("rerun"):
            return None
        return entry

    def write(self, task: Task, record: dict[str, Any], rows: list[dict[str, Any]], rerun: bool) -> None:
        """Append the line of a finished task (raises OSError when the disk is full)."""
        entry = {"key": task.key, "number": task.number, "input": task.input, "emotion": task.emotion,
                 "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "record": record,
                 "rows": rows, "rerun": rerun}
        self._stream.write(json.dumps(entry) + "\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())
        self.done[task.key] = entry

    def close(self) -> None:
        """Close the file."""
        self._stream.close()


def write_index(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """The index CSV: one row per edited face of every output, columns `INDEX_COLUMNS`."""
    from engine.imageio import write_atomic

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=INDEX_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_atomic(Path(path), text.getvalue().encode())


def _centre(box: list[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def index_rows(task: Task, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The index rows of one finished task, from its capture's meta.json (input and output analysis)."""
    if record.get("status") != "ok" or not record.get("output_dir"):
        return []
    folder = Path(record["output_dir"])
    meta = json.loads((folder / "meta.json").read_text())
    base = {"input": task.input, "emotion": task.emotion or task.caption,
            "parameters": json.dumps(meta.get("parameters", {}), sort_keys=True), "backend": record.get("backend"),
            "capture": str(folder)}
    if task.video:
        return [{**base, "face": "", "output": str(folder / "output.mp4")}]
    scored = task.emotion or (task.recipe["emotion"][0]["name"] if task.recipe["emotion"] else "")
    outputs = meta.get("output_faces", [])
    rows = []
    for number, face in enumerate(meta.get("faces", []), 1):
        if not face.get("edited"):
            continue
        row = {**base, "face": number, "output": str(folder / "output.png"), "input_score": "", "output_score": "",
               "input_label": face.get("expression", {}).get("label", ""), "output_label": ""}
        if scored:
            row["input_score"] = face.get("expression", {}).get("scores", {}).get(scored, "")
        if outputs:  # the output face found nearest to this one
            cx, cy = _centre(face["box"])
            match = min(outputs, key=lambda o: (_centre(o["box"])[0] - cx) ** 2 + (_centre(o["box"])[1] - cy) ** 2)
            row["output_label"] = match.get("expression", {}).get("label", "")
            if scored:
                row["output_score"] = match.get("expression", {}).get("scores", {}).get(scored, "")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- captures left unfinished

def close_capture(folder: str | Path, status: str, reason: str) -> bool:
    """Mark an unfinished capture `failed` or `interrupted` (never left `pending`). On a full disk, the capture's
    images go first to make room for its meta.json, and the folder last. Returns False when it is gone."""
    folder = Path(folder)
    if not (folder / "meta.json").exists():  # stopped before its meta.json: not a capture yet, leave nothing
        shutil.rmtree(folder, ignore_errors=True)
        return False
    from engine.imageio import write_atomic

    room = (("compare.png", "output.png", "output.mp4"), ("input.png",))  # what goes, in turn, to fit meta.json
    for attempt in range(len(room) + 1):
        try:
            meta = json.loads((folder / "meta.json").read_text())
            if meta.get("status") not in ("pending", None) and attempt == 0 and status == "interrupted":
                return True  # it finished after all
            meta["status"] = status
            meta["errors"] = [*meta.get("errors", []), reason]
            write_atomic(folder / "meta.json", json.dumps(meta, indent=2).encode())
            return True
        except OSError as exc:
            if exc.errno not in DISK_FULL or attempt == len(room):
                break
            for name in room[attempt]:
                (folder / name).unlink(missing_ok=True)
        except ValueError:
            break
    shutil.rmtree(folder, ignore_errors=True)  # nothing honest can be written: leave no half capture behind
    log.warning("capture_removed", folder=str(folder), reason=reason)
    return False


def disk_full_reason(exc: OSError, folder: str | Path | None = None) -> str:
    """'no space left on device (PATH)' for a full disk."""
    place = exc.filename or folder
    where = f" ({place})" if place else ""
    return f"{os.strerror(exc.errno or errno.ENOSPC).lower()}{where}"


# ---------------------------------------------------------------- what runs in a worker

def _job_store(root: str) -> "CaptureStore":
    """A `CaptureStore` whose next capture goes in the folder the job chose (`next_folder`, emptied first if a
    crashed attempt left one), remembering the last capture made (`last`). Made here, not at import: a worker
    imports this module before it tunes itself, and the store brings numpy."""
    from engine.storage import META_VERSION, Capture, CaptureStore

    class JobStore(CaptureStore):
        next_folder = ""
        last: Capture | None = None

        def new(self, source: str, meta: Mapping[str, Any] | None = None) -> Capture:
            if not self.next_folder:
                self.last = super().new(source, meta)
                return self.last
            folder = self.root / self.next_folder
            if folder.exists() and _status(folder) == "ok":  # never overwrite a finished capture
                folder = self.root / f"{self.next_folder}-{os.getpid()}"
            if folder.exists():  # what a crashed attempt at this task left
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
            self.last = Capture(folder, {"version": META_VERSION, "time": created, "source": str(source),
                                         **(meta or {})})
            return self.last

    return JobStore(root)


def _status(folder: Path) -> str:
    try:
        return str(json.loads((folder / "meta.json").read_text()).get("status", ""))
    except (OSError, ValueError):
        return ""


def peak_memory_mb() -> float:
    """This process's peak resident memory, megabytes."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def failed_record(task: Task, reason: str, folder: Path | None) -> dict[str, Any]:
    """The record of a task that failed outside the pipeline (a dead worker, a write error)."""
    record: dict[str, Any] = {"input": task.input, "status": "failed", "output_dir": str(folder) if folder else None,
                              "backend": None, "faces": [], "timings_ms": {}, "error": reason}
    if task.emotion:
        record["emotion"] = task.emotion
    return record


class WorkerContext:
    """A worker's state: plugins, the still pipeline (landmarker) and the backend, loaded once."""

    def __init__(self, job: JobSpec, registry: Any = None, warm: bool = True) -> None:
        from engine.pipeline import Pipeline
        from engine.plugins import load_plugins

        started = time.perf_counter()
        if job.one_core:  # OpenCV's thread pool in each of N workers on N cores would only contend
            import cv2

            cv2.setNumThreads(1)
        self.job = job
        self.settings = job.settings
        self.registry = registry if registry is not None else load_plugins(job.settings, job.plugins_dir)
        self.pipeline = Pipeline(self.registry, self.settings)
        self.store: Any = _job_store(self.settings.output_dir)
        if warm:  # load now, so that startup is measured apart from the work
            self.pipeline.landmarker
            self.pipeline.prepare(self.settings.backend)
        self.load_s = time.perf_counter() - started

    def close(self) -> None:
        """Release the landmarker."""
        self.pipeline.close()

    def run(self, task: Task) -> dict[str, Any]:
        """Edit one task; returns {record, rows, stop, peak_mb}. Never raises for a failure of the input."""
        settings, recipe = self.settings, task.recipe
        self.store.next_folder, self.store.last = task.folder, None
        weighted = [(item["name"], item["weight"]) for item in recipe["emotion"]]
        stop = ""
        try:
            if task.video:
                from engine.live import LiveState, apply_video

                state = LiveState(weighted, dict(recipe["overrides"]), recipe["intensity"])
                record: dict[str, Any] = apply_video(Path(task.input), self.registry, settings, state,
                                                     self.store, recipe, settings.backend, settings.video_crf)
            else:
                expression = self.registry.expression(weighted, recipe["intensity"], recipe["overrides"])
                record = self.pipeline.apply_file(task.input, expression, settings.backend, self.store, recipe,
                                                  task.caption)
        except OSError as exc:  # writing the capture failed: this input fails, a full disk stops the job
            folder = self.store.last.folder if self.store.last is not None else None
            reason = disk_full_reason(exc, folder or self.store.root) if exc.errno in DISK_FULL else \
                f"cannot write the capture: {exc}"
            if folder is not None and not close_capture(folder, "failed", reason):
                folder = None
            record = failed_record(task, reason, folder)
            stop = reason if exc.errno in DISK_FULL else ""
            log.warning("capture_write_failed", input=task.input, reason=reason)
        except Exception as exc:  # a fault of ours: this input fails, the worker and the job go on
            log.debug("task_failed", input=task.input, exc_info=True)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            folder = self.store.last.folder if self.store.last is not None else None
            if folder is not None and not close_capture(folder, "failed", reason):
                folder = None
            record = failed_record(task, reason, folder)
        if task.emotion:
            record["emotion"] = task.emotion
        rows: list[dict[str, Any]] = []
        if not stop:  # (kept in the manifest too, so that a later run's index covers what it skips)
            try:
                rows = index_rows(task, record)
            except (OSError, ValueError) as exc:
                log.warning("index_rows_failed", input=task.input, reason=str(exc))
        return {"record": record, "rows": rows, "stop": stop, "peak_mb": peak_memory_mb()}


def _worker_main(connection: Any, job: JobSpec) -> None:
    """A local worker process: tune it like the CLI, load once, then edit the tasks the parent sends."""
    from engine.allocator import tune_process

    tune_process()  # before numpy loads, as the CLI's entry point does
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the job cleanly
    from engine import log as logsetup
    from engine.progress import quiet_in_this_process

    quiet_in_this_process()
    logsetup.configure(job.settings.log_level, True if job.settings.log_json else None)
    try:
        context = WorkerContext(job)
    except FaceSynthError as exc:
        connection.send(("fatal", str(exc)))
        return
    connection.send(("ready", {"load_s": context.load_s, "pid": os.getpid(), "peak_mb": peak_memory_mb()}))
    while True:
        try:
            task = connection.recv()
        except EOFError:  # the parent went away
            break
        if task is None:
            break
        connection.send(("done", task.number, context.run(task)))
    context.close()


# ---------------------------------------------------------------- the scheduler shared by the runners

class _Scheduler:
    """Hands out tasks, counts attempts of tasks whose worker died, and passes results on."""

    def __init__(self, tasks: list[Task], on_result: Callable[[Task, dict[str, Any]], str]) -> None:
        self.pending = deque(tasks)
        self.attempts: dict[int, int] = {}
        self.on_result = on_result
        self.stopped = ""
        self.started = 0.0
        self.finished = 0.0
        self.peak_mb = 0.0

    def next_task(self) -> Task | None:
        """The next task to hand out, or None (none left, or the job is stopping)."""
        if self.stopped or not self.pending:
            return None
        if not self.started:
            self.started = time.perf_counter()
        task = self.pending.popleft()
        self.attempts[task.number] = self.attempts.get(task.number, 0) + 1
        return task

    def done(self, task: Task, result: dict[str, Any]) -> None:
        """A task finished (ok or failed): report it; a full disk stops the job."""
        self.finished = time.perf_counter()
        self.peak_mb = max(self.peak_mb, float(result.get("peak_mb", 0.0)))
        stop = self.on_result(task, result)
        if stop and not self.stopped:
            self.stopped = stop

    def crashed(self, task: Task, how: str, output_root: Path) -> None:
        """The worker holding `task` died: try it again on a fresh worker, or record it failed."""
        folder = output_root / task.folder if task.folder else None
        if self.attempts.get(task.number, 0) < CRASH_ATTEMPTS and not self.stopped:
            log.warning("worker_died_retrying", input=task.input, how=how)
            self.pending.appendleft(task)
            return
        reason = f"the worker editing it {how} ({self.attempts.get(task.number, 0)} attempts)"
        log.warning("worker_died", input=task.input, how=how)
        kept = folder is not None and folder.exists() and close_capture(folder, "failed", reason)
        record = failed_record(task, reason, folder if kept else None)
        self.done(task, {"record": record, "rows": [], "stop": ""})


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"crashed ({signal.Signals(-exitcode).name})"
        except ValueError:
            return f"crashed (signal {-exitcode})"
    return f"exited unexpectedly (exit code {exitcode})"


# ---------------------------------------------------------------- runners

def run_inline(job: JobSpec, tasks: list[Task], scheduler: _Scheduler, registry: Any = None) -> dict[str, Any]:
    """Run the tasks in this process, one after the other (a single input: no pool needed)."""
    context = WorkerContext(job, registry, warm=False)
    try:
        while (task := scheduler.next_task()) is not None:
            scheduler.done(task, context.run(task))
    finally:
        context.close()
    return {"workers": 1, "startup_s": 0.0}


class _LocalWorker:
    def __init__(self, context: Any, job: JobSpec, number: int) -> None:
        self.parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, job), name=f"facesynth-worker-{number}",
                                       daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.task: Task | None = None


def run_local(job: JobSpec, tasks: list[Task], scheduler: _Scheduler, workers: int) -> dict[str, Any]:
    """Run the tasks on `workers` spawned processes; a dead worker is replaced and its task tried again."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # MediaPipe and threads do not survive fork
    job = replace(job, one_core=True)
    workers = max(1, min(workers, len(tasks)))
    started = time.perf_counter()
    pool = [_LocalWorker(context, job, number) for number in range(workers)]
    startup_s = 0.0
    output_root = Path(job.settings.output_dir)
    spawned = workers
    finished = False
    try:
        while True:
            if not startup_s and all(worker.ready for worker in pool):
                startup_s = time.perf_counter() - started
            if startup_s:  # work is handed out once every worker has loaded, so that load time stays apart
                for worker in pool:
                    if worker.ready and worker.task is None and (task := scheduler.next_task()) is not None:
                        worker.task = task
                        worker.parent.send(task)
            if not any(worker.task for worker in pool) and (scheduler.stopped or not scheduler.pending):
                break
            waitables: list[Any] = [worker.parent for worker in pool] + [worker.process.sentinel for worker in pool]
            wait(waitables)
            for worker in list(pool):
                alive = True
                while alive and worker.parent.poll():
                    try:
                        message = worker.parent.recv()
                    except (EOFError, OSError):
                        alive = False
                        break
                    if message[0] == "fatal":
                        raise FaceSynthError(message[1])
                    if message[0] == "ready":
                        worker.ready = True
                        scheduler.peak_mb = max(scheduler.peak_mb, message[1]["peak_mb"])
                        log.info("worker_ready", pid=message[1]["pid"], load_s=round(message[1]["load_s"], 2))
                    elif message[0] == "done" and worker.task is not None:
                        task, worker.task = worker.task, None
                        scheduler.done(task, message[2])
                if worker.process.is_alive() and alive:
                    continue
                worker.process.join(1)
                how = _death(worker.process.exitcode)
                pool.remove(worker)
                if worker.task is not None:
                    scheduler.crashed(worker.task, how, output_root)
                elif not worker.ready:
                    raise FaceSynthError(f"a worker process {how} while loading the models")
                if scheduler.pending and not scheduler.stopped:
                    replacement = _LocalWorker(context, job, spawned)
                    spawned += 1
                    pool.append(replacement)
        finished = True
    finally:
        for worker in pool:
            try:
                worker.parent.send(None)
            except OSError:
                pass
        for worker in pool:
            if finished:  # idle workers exit on their own; an interrupted job stops its workers at once
                worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            if worker.task is not None and worker.task.folder:  # in flight when interrupted: stopped, then marked
                close_capture(output_root / worker.task.folder, "interrupted", "the job was interrupted")
    return {"workers": workers, "startup_s": startup_s}


class RayWorker:
    """A Ray actor: one worker context (plugins, landmarker, backend) loaded once, editing one task per call."""

    def __init__(self, job: JobSpec) -> None:
        from engine.allocator import keep_freed_memory
        from engine.progress import quiet_in_this_process

        keep_freed_memory()  # the BLAS thread variables come with the runtime environment
        quiet_in_this_process()
        model = _shipped_model()
        if model is not None and not job.settings.landmarker_model:
            job = replace(job, settings=replace(job.settings, landmarker_model=str(model)))
        self.model = str(model or job.settings.landmarker_model)
        self.context = WorkerContext(job)

    def ready(self) -> dict[str, Any]:
        """Load figures: seconds, pid, the model file used, peak memory."""
        return {"load_s": self.context.load_s, "pid": os.getpid(), "model": self.model, "peak_mb": peak_memory_mb()}

    def run(self, task: Task) -> dict[str, Any]:
        """Edit one task (see `WorkerContext.run`)."""
        return self.context.run(task)


MODEL_MODULE = "facesynth_shipped_model"  # the landmarker model, shipped to Ray workers as a runtime-env module


def _shipped_model() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec(MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "face_landmarker.task"
    return path if path.is_file() else None


def _model_module(settings: Settings, scratch: Path) -> Path:
    """A folder holding the landmarker model as a Python package, for the runtime environment's py_modules."""
    from engine.landmarker_model import model_path

    package = scratch / MODEL_MODULE
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""The face landmarker model, shipped by facesynth to Ray workers."""\n')
    shutil.copyfile(model_path(settings.landmarker_model), package / "face_landmarker.task")
    return package


def run_ray(job: JobSpec, tasks: list[Task], scheduler: _Scheduler, address: str, workers: int) -> dict[str, Any]:
    """Run the tasks on Ray actors (`address`: 'local' for a Ray started here, 'auto', or 'ray://host:10001')."""
    import logging
    import tempfile

    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install -e '.[ray]'") from None
    started = time.perf_counter()
    job = replace(job, one_core=True)
    scratch = Path(tempfile.mkdtemp(prefix="facesynth-ray-"))
    env_vars = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if os.environ.get(PACE_FILE_VARIABLE):
        env_vars[PACE_FILE_VARIABLE] = os.environ[PACE_FILE_VARIABLE]
    runtime_env = {"py_modules": [str(_model_module(job.settings, scratch))], "env_vars": env_vars}
    options: dict[str, Any] = {"runtime_env": runtime_env, "logging_level": logging.WARNING,
                               "log_to_driver": False, "include_dashboard": False}
    if address == "local":
        options.update(address="local", num_cpus=workers)
    else:
        options["address"] = address
    with contextlib.redirect_stdout(sys.stderr):  # Ray's driver prints worker deaths on stdout: keep it for records
        return _run_ray(ray, job, tasks, scheduler, address, workers, options, scratch, started)


def _run_ray(ray: Any, job: JobSpec, tasks: list[Task], scheduler: _Scheduler, address: str, workers: int,
             options: dict[str, Any], scratch: Path, started: float) -> dict[str, Any]:
    count = 0
    in_flight: list[Task] = []
    output_root = Path(job.settings.output_dir)
    try:
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot reach the Ray cluster at {address}: {exc}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        count = max(1, min(workers if address == "local" else cpus, len(tasks)))
        actor_class = ray.remote(num_cpus=1, max_restarts=0)(RayWorker)
        actors = [actor_class.remote(job) for _ in range(count)]
        info = _ray_ready(ray, actors)
        for item in info:
            scheduler.peak_mb = max(scheduler.peak_mb, item["peak_mb"])
        log.info("ray_workers_ready", workers=count, model=info[0]["model"] if info else "")
        startup_s = time.perf_counter() - started
        running: dict[Any, tuple[Any, Task]] = {}
        idle = list(actors)
        try:
            while True:
                while idle and (task := scheduler.next_task()) is not None:
                    actor = idle.pop()
                    running[actor.run.remote(task)] = (actor, task)
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    actor, task = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                        scheduler.crashed(task, f"died ({type(exc).__name__})", output_root)
                        ray.kill(actor)
                        replacement = actor_class.remote(job)
                        _ray_ready(ray, [replacement])
                        idle.append(replacement)
                        continue
                    idle.append(actor)
                    scheduler.done(task, result)
        finally:
            in_flight = [task for _, task in running.values()]
    finally:
        if ray.is_initialized():
            ray.shutdown()  # stops the actors (a local Ray entirely) before their captures are marked
        shutil.rmtree(scratch, ignore_errors=True)
        for task in in_flight:
            if task.folder:  # (a task without a chosen folder never reaches a pool)
                close_capture(output_root / task.folder, "interrupted", "the job was interrupted")
    return {"workers": count, "startup_s": startup_s}


def _ray_ready(ray: Any, actors: list[Any]) -> list[dict[str, Any]]:
    try:
        return ray.get([actor.ready.remote() for actor in actors])
    except ray.exceptions.RayActorError as exc:
        cause = getattr(exc, "cause", None) or exc
        message = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
        raise FaceSynthError(f"a Ray worker could not load the models: {message}") from None


# ---------------------------------------------------------------- the job

def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_job(job: JobSpec, tasks: list[Task], *, workers: int, ray_address: str | None = None,
            manifest_path: str | None = None, retry_failed: bool = False, index_path: str | None = None,
            ordered: bool = True, emit: Callable[[dict[str, Any]], None] = lambda record: None,
            registry: Any = None, progress_label: str = "apply") -> JobResult:
    """Run `tasks`, emitting each record (in input order unless `ordered` is off), writing the manifest and the
    index as asked. One task runs in this process; more run on `workers` processes or on Ray."""
    from engine.progress import Progress

    result = JobResult()
    manifest = Manifest(manifest_path) if manifest_path else None
    records: dict[int, dict[str, Any]] = {}
    rows: dict[int, list[dict[str, Any]]] = {}
    to_run = []
    for task in tasks:
        earlier = manifest.complete(task, retry_failed) if manifest else None
        if earlier is None:
            to_run.append(task)
        else:
            records[task.number] = {**earlier["record"], "resumed": True}
            rows[task.number] = earlier.get("rows", [])
            result.resumed += 1
    emitted = 0
    progress = Progress(len(to_run), progress_label, unit="input", show=len(to_run) > 1)

    def report(record: dict[str, Any]) -> None:  # records are printed with the bar stepping aside
        with progress.writing():
            emit(record)

    def flush() -> None:
        nonlocal emitted
        while emitted < len(tasks) and tasks[emitted].number in records:
            if ordered or records[tasks[emitted].number].get("resumed"):
                report(records[tasks[emitted].number])
            emitted += 1

    def on_result(task: Task, outcome: dict[str, Any]) -> str:
        record, stop = outcome["record"], outcome.get("stop", "")
        records[task.number], rows[task.number] = record, outcome.get("rows", [])
        result.ran += 1
        progress.advance()
        progress.note(Path(task.input).name)
        if manifest is not None:
            try:
                manifest.write(task, record, rows[task.number], rerun=bool(stop))
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                stop = stop or f"{disk_full_reason(exc)} while writing the manifest"
        if not ordered:
            report(record)
        flush()
        return stop

    # Largest files first: the last inputs are then short ones, and no worker idles long at the end (reports keep
    # the input order all the same).
    to_run.sort(key=lambda task: (-_size(task.input), task.number))
    scheduler = _Scheduler(to_run, on_result)
    flush()
    previous_pace = os.environ.get(PACE_FILE_VARIABLE)
    try:
        if to_run:
            pooled = bool(ray_address) or (len(to_run) > 1 and workers > 0)
            if pooled and not previous_pace:  # every worker paces cloud requests through one file: one account
                root = Path(job.settings.output_dir) if ray_address else job.settings.resolved_cache_dir()
                os.environ[PACE_FILE_VARIABLE] = str(root / ".facesynth-segmind-pace")
            if ray_address:
                figures = run_ray(job, to_run, scheduler, ray_address, workers)
                result.runner = "ray"
            elif len(to_run) == 1 or workers <= 0:
                figures = run_inline(job, to_run, scheduler, registry)
            else:
                figures = run_local(job, to_run, scheduler, workers)
                result.runner = "local"
            result.workers, result.startup_s = figures["workers"], figures["startup_s"]
    finally:
        if previous_pace is None:
            os.environ.pop(PACE_FILE_VARIABLE, None)
        progress.close()
        if manifest is not None:
            manifest.close()
    if emitted < len(tasks):  # a stopped job leaves gaps: what did finish after a gap is still reported, in order
        for task in tasks[emitted:]:
            if task.number in records and (ordered or records[task.number].get("resumed")):
                report(records[task.number])
    result.stopped = scheduler.stopped
    result.not_started = len(scheduler.pending) if scheduler.stopped else 0
    result.work_s = max(0.0, scheduler.finished - scheduler.started) if scheduler.started else 0.0
    result.peak_worker_mb = scheduler.peak_mb
    result.records = [records[task.number] for task in tasks if task.number in records]
    if index_path:
        try:
            write_index(index_path, [row for task in tasks for row in rows.get(task.number, [])])
        except OSError as exc:
            if exc.errno not in DISK_FULL:
                raise
            result.stopped = result.stopped or f"{disk_full_reason(exc)} while writing the index"
    return result


def summary_line(result: JobResult, total: int) -> str:
    """One line about a stopped job: why, what was stored, what was left."""
    stored = sum(1 for record in result.records if record["status"] == "ok")
    return (f"stopped: {result.stopped}; {stored} of {total} outputs stored, {result.not_started} not started "
            "(free some space and run the same command again: with --manifest it carries on where it stopped)")

