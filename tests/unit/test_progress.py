"""Progress of long operator work: a bar on a terminal, nothing anywhere else."""
from __future__ import annotations

import io

from rich.console import Console

from fixbridge.ops.progress import progress, tracked


def test_quiet_when_not_on_a_terminal(capsys):
    # pytest's captured stderr is not a terminal: cron and pipes read the result only
    assert list(tracked(range(5), "reconciling")) == [0, 1, 2, 3, 4]
    with progress("exporting", 3) as advance:
        advance(3)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_a_bar_on_a_terminal_counts_what_was_done():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    assert list(tracked(["a", "b", "c"], "replaying CLIENT1", console=console)) == ["a", "b", "c"]
    shown = buf.getvalue()
    assert "replaying CLIENT1" in shown and "3/3" in shown
