"""``sam-onnx amg``, ``embed`` and ``track`` (a folder of videos) on Ray Data: one machine or a
cluster (``[ray]`` extra).

The driver lists the inputs (files, folders, globs, or URIs such as ``s3://bucket/photos/``),
names and numbers them as the local command does (:func:`~sam_onnx.runtime.batch.jobs.plan_items`) and
drops those whose outputs exist. The rest flow through Ray Data as rows ``{path, name, index}``,
one item (an image, a video) per row: for images a read stage adds each file's encoded bytes
(pixels are decoded only on the worker); a video is opened by the worker at its path. Then an
actor pool runs :func:`~sam_onnx.runtime.batch.jobs.process_item`, the step the local loop runs.
Each actor opens one predictor, once, with onnxruntime's intra-op threads set to the CPUs the actor
holds (onnxruntime ignores ``OMP_NUM_THREADS``; its default of one thread per core
oversubscribes a node that runs several actors).

Failure semantics:

* an item that cannot be read, decoded or processed becomes a ``failed`` record carrying the
  typed error's class and message; the other items go on;
* a worker process that dies is replaced (``max_restarts=-1``) and its block, one item, is run
  again (``max_task_retries``); one that keeps dying on the same item is given up after
  :attr:`RayOptions.block_retries` retries and reported as failed, and the job goes on;
* a re-run skips items whose outputs exist (:meth:`JobSpec.is_done`), before reading them;
* outputs are written to a temporary name and renamed (a video's folder is built aside and
  swapped in), so an output is whole or absent, and an item run twice (a retried block) ends
  with one set of outputs.

Every worker must reach the model directory and the output folder at the same paths (a shared
filesystem on a cluster) and have sam-onnx installed. Importing this module does not import ray
(nor torch); :func:`run_job` does, and raises :class:`MissingDependencyError` without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sam_onnx.errors import InvalidInputError, MissingDependencyError

from .jobs import (
    IMAGE_SUFFIXES,
    Item,
    JobSpec,
    JobSummary,
    Record,
    find_images,
    open_job,
    plan_items,
    process_item,
)

RAY_INSTALL_HINT = "pip install '.[ray]' (in a sam-onnx clone)"
DEFAULT_THREADS = 4  # per worker: onnxruntime's encoder scales well to about 4 threads
MAX_BLOCKS = 100_000  # one item per block (a retry redoes one item) up to this many items
# Test hook: "NAME:MARKER" makes the worker that meets item NAME exit once (it creates MARKER first
# and exits only while MARKER is absent); "NAME:" makes it exit every time.
EXIT_ONCE_ENV = "SAM_ONNX_TEST_EXIT_ONCE"


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a job runs.

    Arguments:
      address: Ray cluster to join (``ray start --head`` prints it; ``auto`` finds a local one);
        ``None`` uses the Ray already started in this process, or starts one here.
      workers: actors, one predictor each (default: the cluster's CPUs // ``threads_per_worker``).
      threads_per_worker: CPUs each actor holds and onnxruntime threads it runs (default
        :data:`DEFAULT_THREADS`, at most the cluster's CPUs).
      block_retries: runs of an item after its worker died, before it is reported failed.
    """

    address: str | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    block_retries: int = 2

    def __post_init__(self) -> None:
        for name in ("workers", "threads_per_worker"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInputError(name, "an integer >= 1", repr(value))
        if self.block_retries < 0:
            raise InvalidInputError("block_retries", "an integer >= 0", repr(self.block_retries))


def import_ray():
    """``ray`` with Ray Data, or :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
        import ray.data  # the engine needs Ray Data, not only Ray core
    except ImportError as exc:
        raise MissingDependencyError(
            f"--engine ray needs Ray Data ({exc}); install it with `{RAY_INSTALL_HINT}`"
        ) from exc
    return ray


def is_uri(path: str) -> bool:
    return "://" in path


def list_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Image files of ``inputs``: local files, folders and globs as the local command finds them
    (:func:`~sam_onnx.runtime.batch.jobs.find_images`), URIs through pyarrow's filesystems (a URI of a
    folder lists its image files, sorted, not recursive). Local paths come back absolute."""
    found: list[str] = []
    for entry in map(os.fspath, inputs):
        if is_uri(entry):
            found += _list_uri(entry)
        else:
            found += [str(p.resolve()) for p in find_images([entry])]
    return found


def _list_uri(uri: str) -> list[str]:
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(inner)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(f"image {uri!r}", "a URI pyarrow can open", str(exc)) from None
    scheme = uri.split("://", 1)[0]
    if info.type == fs.FileType.File:
        return [uri]
    if info.type != fs.FileType.Directory:
        raise InvalidInputError(f"image {uri!r}", "an image file or a folder", "nothing there")
    files = filesystem.get_file_info(fs.FileSelector(inner, recursive=False))
    names = sorted(f.path for f in files if f.type == fs.FileType.File and f.extension.lower() in _EXTENSIONS)
    if not names:
        raise InvalidInputError(f"images in {uri!r}", f"files ending in {', '.join(IMAGE_SUFFIXES)}", "none")
    return [f"{scheme}://{name}" for name in names]


_EXTENSIONS = {s.lstrip(".") for s in IMAGE_SUFFIXES}


def read_bytes(path: str) -> bytes:
    """The encoded file at ``path`` (a local path or a URI pyarrow can open)."""
    if not is_uri(path):
        return Path(path).read_bytes()
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    with filesystem.open_input_stream(inner) as stream:
        return stream.readall()


def _with_bytes(row: dict) -> dict:
    """Read stage: add the image's encoded bytes; a read error travels on as ``error``."""
    try:
        return {**row, "data": read_bytes(row["path"]), "error": ""}
    except OSError as exc:
        return {**row, "data": b"", "error": f"{type(exc).__name__}: {exc}"}


class _Worker:
    """One Ray actor: one predictor, opened once, running the job on one item per call."""

    def __init__(self, spec: JobSpec, exit_once: str | None = None) -> None:
        self.job = open_job(spec)
        self.exit_once = exit_once

    def __call__(self, batch: dict) -> dict:
        records = []
        for values in zip(*batch.values(), strict=True):
            row = dict(zip(batch, values, strict=True))  # "data" and "error" only after a read stage
            item = Item(str(row["path"]), str(row["name"]), int(row["index"]))
            self._maybe_exit(item)
            if row.get("error"):
                records.append(Record(item.path, item.name, "failed", error=str(row["error"])))
            else:
                data = bytes(row["data"]) if "data" in row else None
                records.append(process_item(self.job, item, data))
        return {f.name: [getattr(r, f.name) for r in records] for f in dataclasses.fields(Record)}

    def _maybe_exit(self, item: Item) -> None:
        """The worker-death test hook (:data:`EXIT_ONCE_ENV`): die once, mid-block, at one item."""
        if not self.exit_once:
            return
        name, marker = self.exit_once.split(":", 1)
        if item.name == name and not (marker and os.path.exists(marker)):
            if marker:
                Path(marker).touch()
            os._exit(17)


CONNECT_TIMEOUT_S = 10.0  # ray.init keeps retrying an unreachable address for minutes


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) Ray address that nothing answers on.

    ``ray.init`` retries an unreachable cluster for minutes before it gives up, which looks like a
    hang; one TCP connection attempt tells at once. ``auto`` / ``local`` and other forms are left
    to Ray.
    """
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise InvalidInputError(
            "--address",
            "a reachable Ray cluster (`ray start --head` prints its address)",
            f"{address}: {exc}",
        ) from None


def run_job(
    spec: JobSpec,
    paths: Sequence[str],
    options: RayOptions | None = None,
    *,
    log: Callable[[str], None] = lambda msg: None,
) -> JobSummary:
    """Run ``spec`` on the items ``paths`` (image files or URIs, as :func:`list_inputs` gives
    them; videos as :func:`~sam_onnx.runtime.batch.jobs.find_videos` does) with Ray Data; returns
    the counts. Raises typed errors for bad options or a missing ray."""
    options = options or RayOptions()
    ray = import_ray()
    spec.check_model()  # a missing model fails here, typed, not in a worker
    items = plan_items(paths)
    todo = [item for item in items if not spec.is_done(item)]
    unit = spec.kind.unit
    if not spec.single_file:
        Path(spec.output).mkdir(parents=True, exist_ok=True)
    if not todo:  # a finished job re-run: nothing to start Ray for
        log(f"ray: all {len(items)} {unit}(s) done before")
        return JobSummary(total=len(items), skipped=len(items), unit=unit)
    started = not ray.is_initialized()
    if started:
        address = options.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_reachable(address)
        ray.init(**({"address": address} if address else {"include_dashboard": False}))
    try:
        summary = JobSummary(total=len(items), skipped=len(items) - len(todo), unit=unit)
        summary.workers, summary.threads_per_worker = _pool_size(ray, options)
        log(
            f"ray: {len(todo)} {unit}(s) to do, {summary.skipped} done before; "
            f"{summary.workers} worker(s) x {summary.threads_per_worker} thread(s)"
        )
        start = time.perf_counter()
        with _lost_blocks_allowed():  # the dataset keeps the context it was made in
            ds = _dataset(ray, spec, todo, options, summary)
            _collect(ds, todo, summary, runs=options.block_retries + 1)
        summary.seconds = time.perf_counter() - start
    finally:
        if started:
            ray.shutdown()
    return summary


def _pool_size(ray, options: RayOptions) -> tuple[int, int]:
    """(workers, threads per worker) from the options and the cluster's CPUs."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    threads = options.threads_per_worker or min(DEFAULT_THREADS, cpus)
    workers = options.workers or max(1, cpus // threads)
    if workers * threads > cpus:  # the actors that do not fit would wait for CPUs forever
        raise InvalidInputError(
            "--workers x --threads-per-worker",
            f"at most the {cpus} CPUs the Ray cluster has now",
            f"{workers} x {threads} = {workers * threads}",
        )
    return workers, threads


def _dataset(ray, spec: JobSpec, todo: list[Item], options: RayOptions, summary: JobSummary):
    """rows {path, name, index} -> (images: + encoded bytes) -> the actor pool -> one record per item."""
    threads = summary.threads_per_worker
    spec = dataclasses.replace(spec, threads=threads)
    rows = [dataclasses.asdict(item) for item in todo]
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    if spec.kind.reads_bytes:
        # Reading costs no CPU of the actors' budget; else reads wait for CPUs the actors hold forever.
        ds = ds.map(_with_bytes, num_cpus=0)
    with warnings.catch_warnings():
        # Retries have no named parameter yet; Ray 2.60 warns that the generic ones will go in
        # 2.64 (the [ray] extra stays below it). Ray Data's own default retries forever, which
        # would hang a job on an item that kills every worker it meets.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return ds.map_batches(
            _Worker,
            fn_constructor_kwargs={"spec": spec, "exit_once": os.environ.get(EXIT_ONCE_ENV)},
            batch_size=1,
            # One block (one item) in flight per actor: an actor that dies then takes only the
            # item it was running down with it, not items queued behind it, which would spend
            # their retries on a death that was not theirs.
            compute=ray.data.ActorPoolStrategy(size=summary.workers, max_tasks_in_flight_per_actor=1),
            num_cpus=threads,
            max_restarts=-1,
            max_task_retries=options.block_retries,
        )


def _collect(ds, todo: list[Item], summary: JobSummary, runs: int) -> None:
    """Count the records as they stream back; an item whose block was given up (its worker died
    on every retry) has no record and is counted failed."""
    seen: set[str] = set()
    for row in ds.iter_rows():
        record = Record(**{f.name: row[f.name] for f in dataclasses.fields(Record)})
        seen.add(record.path)
        summary.count(record)
    for item in todo:
        if item.path not in seen:
            why = f"the worker process died on each of {runs} run(s) of this {summary.unit}"
            why += " (out of memory? a crash?)"
            summary.count(Record(item.path, item.name, "failed", error=f"WorkerDied: {why}"))


@contextlib.contextmanager
def _lost_blocks_allowed():
    """Let Ray Data go on past blocks it gave up on (each is one item, counted failed), and put
    the driver's setting back afterwards."""
    from ray.data import DataContext

    context = DataContext.get_current()
    before, context.max_errored_blocks = context.max_errored_blocks, -1
    try:
        yield
    finally:
        context.max_errored_blocks = before
