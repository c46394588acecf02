"""Progress of long operator work (reconcile over many blocks, replay, exports, the trail
benchmark's set-up) as a rich progress bar on a terminal, and nothing at all elsewhere: cron, a
pipe or a test reads only the result."""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def progress(description: str, total: int | None, *, console=None) -> Iterator[Callable[[int], None]]:
    """Yields advance(n=1). The bar goes to stderr (stdout stays the result's) and only when
    stderr is a terminal, or when a console is given (tests: a rich Console on a buffer)."""
    if console is None and not on_terminal():
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console or Console(stderr=True), transient=console is None) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def tracked(items: Iterable[T], description: str, total: int | None = None, *, console=None) -> Iterator[T]:
    """The items, one by one, advancing a progress bar as they are taken."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(description, total, console=console) as advance:
        for item in items:
            yield item
            advance(1)
