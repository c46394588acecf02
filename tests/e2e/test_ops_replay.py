"""Session replay as a regression check: the recorded CLIENT1 session (sessions/recorded/, made by
sessions/recorded/record.py) replayed on a fresh devnet and bridge gives the same answers; and a
recording that says something else is reported field by field, with exit status 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import ROOT
from fixbridge.ops.replay import attribute, load_from_log

pytestmark = pytest.mark.e2e
SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"
RECORDED = ROOT / "sessions" / "recorded"


def replay(*args: str) -> tuple[int, dict]:
    p = subprocess.run([sys.executable, "-m", "fixbridge.cli", "replay", "--session", SESSION, "-f", "json", *args],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"}, timeout=300)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)


def test_recordings_agree():
    """The QuickFIX log and the journal export of the recording hold the same application messages."""
    log = load_from_log(RECORDED / "client1-basic.messages.log", SESSION)
    exported = load_from_log(RECORDED / "client1-basic.json", SESSION)
    key = lambda m: (m.direction, m.msg_type, m.get(11), m.get(150), m.get(39), m.get(37))  # noqa: E731
    assert [key(m) for m in log] == [key(m) for m in exported]
    groups = attribute(log)
    assert [(g.inbound.msg_type, g.inbound.get(11), len(g.expected)) for g in groups] == [
        ("D", "R-1", 2), ("D", "R-2", 2), ("D", "R-3", 2), ("D", "R-4", 2), ("D", "R-5", 2), ("D", "R-6", 1),
        ("D", "R-1", 1), ("H", "R-1", 1), ("F", "R-7", 1), ("D", "R-8", 1), ("D", "R-9", 2)]


def test_replay_of_the_recorded_session_is_the_same():
    rc, doc = replay("--from-log", str(RECORDED / "client1-basic.messages.log"))
    assert rc == 0 and doc["status"] == "same" and doc["differences"] == [], doc
    assert (doc["inbound"], doc["recorded_answers"], doc["replayed_answers"]) == (11, 17, 17)
    assert len(doc["order_ids"]) == 7 and all(a != b for a, b in doc["order_ids"].items())


def test_a_different_answer_is_reported_field_by_field(tmp_path):
    doc = json.loads((RECORDED / "client1-basic.json").read_text())
    msgs = doc["messages"]

    def find(cl, exec_type):
        return next(i for i, m in enumerate(msgs) if m["direction"] == "out" and f"|11={cl}|" in m["raw"]
                    and f"|150={exec_type}|" in m["raw"])

    trade = find("R-1", "F")
    qty = next(p for p in msgs[trade]["raw"].split("|") if p.startswith("32="))
    msgs[trade]["raw"] = msgs[trade]["raw"].replace(f"|{qty}|", "|32=0.75|")
    cancel = find("R-5", "4")
    msgs[cancel]["raw"] = msgs[cancel]["raw"].replace("EXCESSIVE_INPUT_AMOUNT", "INSUFFICIENT_OUTPUT_AMOUNT")
    del msgs[find("R-9", "0")]  # the recording has no New for R-9: the replay's is an extra answer
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))

    rc, out = replay("--from-log", str(tampered))
    assert rc == 1 and out["status"] == "different"
    got = [(d["cl_ord_id"], d["answer"] if "answer" in d else d["report"], d["tag"], d["recorded"], d["replayed"],
            d["note"]) for d in out["differences"] if d["cl_ord_id"] in ("R-1", "R-5") and d["tag"] != 137]
    assert got[0] == ("R-1", 2, 32, "0.75", qty[3:], "different value")
    assert got[1][:3] == ("R-5", 2, 58) and "INSUFFICIENT_OUTPUT_AMOUNT" in got[1][3] and "EXCESSIVE" in got[1][4]
    assert len(got) == 2
    # R-9's recorded answers are [Trade] now: the replay's [New, Trade] differ in type/values, then one extra
    r9 = [d for d in out["differences"] if d["cl_ord_id"] == "R-9"]
    assert any(d["note"] == "extra answer in the replay" for d in r9)
    assert all(d["cl_ord_id"] in ("R-1", "R-5", "R-9") for d in out["differences"])
