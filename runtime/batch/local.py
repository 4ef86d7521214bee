"""The local engine of a batch job: one item after another in this process, one predictor.

:func:`run_local` is :func:`~sam_onnx.runtime.batch.distributed.run_job` without Ray: the same
:class:`~.jobs.JobSpec`, the same per-item step (:func:`~.jobs.process_item`), the same records,
skips and :class:`~.jobs.JobSummary`, so a job's files and its report do not depend on the engine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sam_onnx.progress import bar as progress_bar

from .jobs import JobSpec, JobSummary, Record, open_job, plan_items, process_item


def run_local(
    spec: JobSpec,
    paths: Sequence[str | Path],
    *,
    log: Callable[[str], None] = lambda msg: None,
    progress: bool | None = False,
) -> JobSummary:
    """Run ``spec`` on ``paths`` here, skipping the items whose outputs exist; a failed item is a
    record in the summary and the others go on. ``log`` gets a line per item; ``progress``: a bar
    over the items. Raises typed errors for a bad model (before any item)."""
    spec.check_model()
    items = plan_items(paths)
    unit = spec.kind.unit
    threads = spec.threads or os.cpu_count() or 1  # 0: onnxruntime runs one thread per core
    summary = JobSummary(total=len(items), unit=unit, workers=1, threads_per_worker=threads)
    todo = [item for item in items if not spec.is_done(item)]
    summary.skipped = len(items) - len(todo)
    if not todo:
        log(f"all {len(items)} {unit}(s) done before")
        return summary
    Path(spec.output).mkdir(parents=True, exist_ok=True)
    job = open_job(spec)
    start = time.perf_counter()
    with progress_bar(total=len(todo), desc=f"{unit}s", unit=unit, progress=progress) as bar:
        for i, item in enumerate(todo, 1):
            record = _run_one(job, spec, item)
            summary.count(record)
            outcome = f"failed ({record.error})" if record.error else f"{record.masks} masks"
            log(f"[{i}/{len(todo)}] {item.name}: {outcome} ({record.seconds:.2f} s)")
            bar.update()
    summary.seconds = time.perf_counter() - start
    return summary


def _run_one(job, spec: JobSpec, item) -> Record:
    try:
        data = spec.read(item)
    except OSError as exc:  # as the Ray engine's read stage: a failed record
        return Record(item.path, item.name, "failed", error=f"{type(exc).__name__}: {exc}")
    return process_item(job, item, data)
