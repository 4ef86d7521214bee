"""Progress bars for the stages that take seconds to minutes: export steps and validation cases,
encoder runs, automatic mask generation (crops, decoder batches), folder runs.

Library code shows nothing unless asked. Each long-running function takes ``progress``:
``False`` (the library default) shows nothing, ``True`` shows bars, ``None`` shows them only when
the stream (stderr unless given) is a terminal. The command lines pass ``None``, or ``False``
with ``-q``. The bars are tqdm's, written to stderr; importing this module prints nothing and
does not import tqdm.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import IO

REFRESH_S = 0.5  # a stage line's clock ticks this often while a single long call runs
# Seconds between a bar's redraws; None keeps tqdm's default (or $TQDM_MININTERVAL, which tqdm
# reads once, when it is first imported). Tests set 0 to see every update.
MIN_INTERVAL_S: float | None = None


def enabled(progress: bool | None, file: IO[str] | None = None) -> bool:
    """Whether to show bars: ``progress`` itself, or for ``None`` whether ``file`` (stderr) is a terminal."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(file or sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class _NoBar:
    """Stands in for a tqdm bar when progress is off: takes the same calls, shows nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def bar(
    *,
    total: float | None,
    desc: str,
    unit: str,
    progress: bool | None,
    leave: bool = False,
    file: IO[str] | None = None,
):
    """A tqdm bar counting ``unit`` up to ``total`` (``None``: a plain counter), or a no-op bar.

    Use it as a context manager and call ``update(n)``. ``leave``: keep the finished bar's line.
    """
    stream = file or sys.stderr
    if not enabled(progress, stream):
        return _NoBar()
    from tqdm import tqdm

    interval = {} if MIN_INTERVAL_S is None else {"mininterval": MIN_INTERVAL_S}
    return tqdm(total=total, desc=desc, unit=unit, file=stream, leave=leave, **interval, **_width(stream))


@contextlib.contextmanager
def stage(desc: str, *, progress: bool | None, file: IO[str] | None = None) -> Iterator[None]:
    """A line ``DESC: 0:12`` whose clock runs while one long call (an encoder run, a trace) is
    inside the ``with`` block; removed when the block ends. A no-op when progress is off."""
    stream = file or sys.stderr
    if not enabled(progress, stream):
        yield
        return
    from tqdm import tqdm

    line = tqdm(
        total=None, desc=desc, bar_format="{desc}: {elapsed}", file=stream, leave=False, **_width(stream)
    )
    done = threading.Event()

    def tick() -> None:  # the call inside holds no Python lock (onnxruntime releases the GIL)
        while not done.wait(REFRESH_S):
            line.refresh()

    ticker = threading.Thread(target=tick, name="sam-onnx-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
        line.close()


def _width(stream: IO[str]) -> dict:
    """Follow the terminal's size; where it reports none (0 x 0: a pty nobody sized, e.g. under
    ``script`` or some CI runners) tqdm would draw nothing, so 80 x 24 then."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        size = os.terminal_size((0, 0))
    return {"dynamic_ncols": True} if min(size) > 0 else {"ncols": 80, "nrows": 24}


def write(message: str, file: IO[str] | None = None) -> None:
    """Print one line to stderr (or ``file``) above any bars that are showing."""
    stream = file or sys.stderr
    if "tqdm" in sys.modules:  # a bar may be showing: let tqdm clear and redraw it
        from tqdm import tqdm

        tqdm.write(message, file=stream)
    else:
        print(message, file=stream, flush=True)


def counted(items, counter) -> Iterator:
    """Yield ``items``, calling ``counter.update()`` after each one is done (also after a ``continue``)."""
    for item in items:
        yield item
        counter.update()


def plural(count: int, noun: str) -> str:
    """``"1 mask"``, ``"2 masks"``, ``"0 masks"`` (nouns that take an s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
