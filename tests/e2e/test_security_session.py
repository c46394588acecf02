"""The FIX edge protecting itself, on a real bridge: Logon passwords with lockout, the message
throttle, and the kill switch (`fixbridge halt` / `resume`) — each journaled with who and why,
none sending a transaction it should not."""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from decimal import Decimal

import pytest

import support
from support import ADDR, BACKENDS, FIXBRIDGE, ROOT
from fixbridge.fix.client import FixClient, new_order_single, order_status_request
from fixbridge.security.passwords import hash_password
from helpers import eventually, tx_count
from security_support import RawFix, start_bridge, write_sessions

pytestmark = pytest.mark.e2e
BUY, SELL = "1", "2"
PW3, PW4, PW5 = "correct horse 3", "battery staple 4", "tr0ub4dor 5"
COMP_IDS = ("CLIENT1", "CLIENT2", "CLIENT3", "CLIENT4", "CLIENT5")

COUNTERPARTIES = f"""
[wallets.w1]
chain = "devnet"
private_key = "{{k1}}"
[wallets.w2]
chain = "devnet"
private_key = "{{k2}}"

[sessions.CLIENT1]          # open (no password_hash): the devnet demo
wallets = ["w1"]
[sessions.CLIENT2]          # throttled
wallets = ["w2"]
max_messages_per_second = 5
max_messages_burst = 5
[sessions.CLIENT3]          # username + password, locks out after 3 failures for 4 s
wallets = ["w2"]
username = "desk3"
password_hash = "{hash_password(PW3)}"
max_logon_failures = 3
logon_failure_window_seconds = 60
lockout_seconds = 4
[sessions.CLIENT4]          # password only
wallets = ["w2"]
password_hash = "{hash_password(PW4)}"
[sessions.CLIENT5]          # password only, for the bad logons
wallets = ["w2"]
password_hash = "{hash_password(PW5)}"
"""


@pytest.fixture(scope="module")
def sbridge(devnet, tmp_path_factory):
    d = tmp_path_factory.mktemp("secbridge")
    b = start_bridge(devnet, write_sessions(d / "sessions", COUNTERPARTIES, comp_ids=COMP_IDS), d / "state")
    yield b
    b.stop()


@pytest.fixture(scope="module")
def sjournal(sbridge):
    from fixbridge.journal import Journal
    j = Journal(sbridge.journal_url)
    yield j
    j.close()


@pytest.fixture(scope="module")
def clients(sbridge, tmp_path_factory):
    made: dict[str, FixClient] = {}

    def make(sender: str, **kw) -> FixClient:
        if sender not in made:
            made[sender] = FixClient("127.0.0.1", sbridge.port, sender, "FIXBRIDGE",
                                     data_dir=tmp_path_factory.mktemp(f"sc-{sender}"), **kw).start()
        return made[sender]

    yield make
    for c in made.values():
        c.stop()


@pytest.fixture
def cl_id(request) -> str:
    return f"{request.node.name[:20]}-{uuid.uuid4().hex[:8]}"


def sid(comp: str) -> str:
    return f"FIX.4.4:FIXBRIDGE->{comp}"


def cli(*args: str, journal: str) -> subprocess.CompletedProcess:
    return subprocess.run(FIXBRIDGE + [*args, "--journal", journal], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "200"})


def raw_logon(port: int, comp: str, **kw):
    """One Logon attempt on a raw socket: the acceptor's answer (Logon or Logout) and whether it hung up."""
    with RawFix(port, comp) as r:
        ans = r.logon(**kw)
        if ans.type == "A":
            r.send("5")
            r.recv_until(lambda m: m.type == "5", 5)
            return ans, False
        return ans, r.closed_by_peer(5)


# ---- Logon authentication --------------------------------------------------------------------

def test_open_session_needs_no_password(clients, sjournal):
    assert clients("CLIENT1").logged_on
    a = sjournal.logon_attempts("CLIENT1")
    assert a and a[-1].outcome == "accepted" and "open session" in a[-1].reason


def test_password_logon_works(clients, sjournal):
    c = clients("CLIENT4", password=PW4)
    assert c.logged_on
    c.send(order_status_request("nothing-here"))
    assert c.receive(10, "8")[58] == "Unknown order"
    assert sjournal.logon_attempts("CLIENT4")[-1].outcome == "accepted"


@pytest.mark.parametrize("kw, outcome, words", [
    (dict(), "no_password", "Password (554) is required"),
    (dict(password="wrong"), "bad_password", "bad username or password"),
    (dict(username="x" * 5000, password="y" * 5000), "bad_password", "bad username or password"),
])
def test_bad_logon_gets_logout_with_reason(sbridge, sjournal, kw, outcome, words):
    before = len(sjournal.logon_attempts("CLIENT5"))
    ans, hung_up = raw_logon(sbridge.port, "CLIENT5", **kw)
    assert ans.type == "5" and words in ans[58], ans.raw
    assert hung_up
    new = sjournal.logon_attempts("CLIENT5")[before:]
    assert [a.outcome for a in new] == [outcome]
    # the refusal is journaled with its reason, and the Logout that carried it too
    outs = eventually(lambda: sjournal.fix_messages(session_id=sid("CLIENT5"), direction="out", msg_type="5"),
                      lambda outs: any(words in m.raw for m in outs))
    assert any(words in m.raw for m in outs)


def test_malformed_logon_is_not_served(sbridge, sjournal):
    """Password (554) present but empty: QuickFIX refuses the Logon as malformed (it cannot send a
    Reject before logon): no Logon answer, and the Application never sees it."""
    before = len(sjournal.logon_attempts("CLIENT5"))
    with RawFix(sbridge.port, "CLIENT5") as r:
        r.send("A", [(98, "0"), (108, "30"), (141, "Y"), (554, "")])
        assert [m for m in r.expect_silence(2.0) if m.type == "A"] == []
    assert len(sjournal.logon_attempts("CLIENT5")) == before


def test_lockout_after_repeated_failures_then_expiry(sbridge, sjournal):
    for i in range(3):
        ans, _ = raw_logon(sbridge.port, "CLIENT3", username="desk3", password=f"guess-{i}")
        assert ans.type == "5" and "bad username or password" in ans[58]
    assert "locked out" in ans[58]  # the third failure says so
    ans, _ = raw_logon(sbridge.port, "CLIENT3", username="desk3", password=PW3)  # right, but locked
    assert ans.type == "5" and "locked out until" in ans[58], ans.raw
    ans, _ = raw_logon(sbridge.port, "CLIENT3", username="someone", password=PW3)
    assert ans.type == "5" and "locked out" in ans[58]
    ev = sjournal.security_events(sid("CLIENT3"), "lockout")
    assert len(ev) == 1 and ev[0].detail["failures"] == 3
    outcomes = [a.outcome for a in sjournal.logon_attempts("CLIENT3")]
    assert outcomes == ["bad_password"] * 3 + ["locked_out"] * 2
    time.sleep(4.2)  # lockout_seconds
    ans, _ = raw_logon(sbridge.port, "CLIENT3", username="other", password=PW3)
    assert ans.type == "5" and "bad username or password" in ans[58]  # the username is checked too
    ans, _ = raw_logon(sbridge.port, "CLIENT3", username="desk3", password=PW3)
    assert ans.type == "A", ans.raw
    assert [a.outcome for a in sjournal.logon_attempts("CLIENT3")][-2:] == ["bad_username", "accepted"]


def test_passwords_never_reach_journal_or_logs(sbridge, sjournal):
    secrets = [PW3, PW4, PW5, "guess-0", "guess-1", "guess-2", "wrong"]
    for a in sjournal.logon_attempts():
        assert not any(s in repr(a) for s in secrets)
    for m in sjournal.fix_messages():
        assert not any(s in m.raw for s in secrets)
    files = [p for p in sbridge.state_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith("messages.current.log") for p in files)
    for p in files:
        data = p.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s!r} in {p}"
    # QuickFIX logged the Logons, with the password masked in place
    logs = b"".join(p.read_bytes() for p in files if p.name.endswith("messages.current.log"))
    assert b"\x01554=***" in logs


# ---- throttle ------------------------------------------------------------------------------

def test_throttle_rejects_the_excess_and_recovers(clients, sjournal, devnet):
    c = clients("CLIENT2")
    time.sleep(1.2)  # a full bucket
    before = tx_count(devnet.rpc_url, ADDR[2])
    sent = []
    for i in range(15):
        m = order_status_request(f"thr-{i}")
        c.send(m)
        sent.append(m.getHeader().getField(34))
    cl = f"thr-order-{uuid.uuid4().hex[:6]}"
    c.send(new_order_single(cl, "WETH/USDC", BUY, Decimal("0.01"), tif="3"))
    got = [c.receive(10) for _ in range(16)]
    served = [m for m in got if m.msg_type == "8" and m.get(150) == "I"]
    throttled = [m for m in got if m.msg_type == "j"]
    assert 5 <= len(served) <= 7 and len(served) + len(throttled) == 15, [m.raw for m in got]
    for j in throttled:
        assert j[380] == "0" and j[372] == "H" and "Throttle limit exceeded" in j[58]
    er = next(m for m in got if m.msg_type == "8" and m.get(11) == cl)
    assert (er[39], er[150]) == ("8", "8") and "Throttle limit exceeded" in er[58]
    assert sjournal.find_order(sid("CLIENT2"), cl) is None  # never became an order
    # every message is journaled, the throttled ones too; one security event for the spell
    ins = {m.seq_num for m in sjournal.fix_messages(session_id=sid("CLIENT2"), direction="in")}
    assert {int(s) for s in sent} <= ins
    ev = sjournal.security_events(sid("CLIENT2"), "throttle")
    assert len(ev) == 1 and "5 messages per second" in ev[0].reason
    time.sleep(1.2)
    c.send(order_status_request("after-the-flood"))
    assert c.receive(10)[150] == "I"  # served again
    assert tx_count(devnet.rpc_url, ADDR[2]) == before


def test_unthrottled_session_is_not_limited(clients):
    c = clients("CLIENT1")
    for i in range(30):
        c.send(order_status_request(f"free-{i}"))
    got = [c.receive(10) for _ in range(30)]
    assert all(m.msg_type == "8" and m[150] == "I" for m in got)


# ---- kill switch ---------------------------------------------------------------------------

def test_halt_one_session_then_resume(clients, sbridge, sjournal, devnet, cl_id):
    c1, c2 = clients("CLIENT1"), clients("CLIENT4", password=PW4)
    r = cli("halt", "--session", "CLIENT1", "--reason", "fat finger on desk 1", "--by", "alice",
            journal=sbridge.journal_url)
    assert r.returncode == 0 and "halted CLIENT1" in r.stdout, r.stderr
    time.sleep(0.7)  # the bridge's halt cache
    sent = tx_count(devnet.rpc_url, ADDR[1])
    c1.send(new_order_single(cl_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    rej = c1.reports_until_terminal(cl_id)
    assert len(rej) == 1 and (rej[0][39], rej[0][103]) == ("8", "2")
    assert "trading halted for CLIENT1 by alice: fat finger on desk 1" in rej[0][58]
    assert tx_count(devnet.rpc_url, ADDR[1]) == sent
    row = sjournal.find_order(sid("CLIENT1"), cl_id)
    assert any(e.kind == "risk" and "trading halted" in e.reason for e in sjournal.events(row.order_id))
    # another session is not halted: its order is judged on its own merits (w2 holds no tokens)
    c2.send(new_order_single(cl_id, "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    other = c2.reports_until_terminal(cl_id)[-1]
    assert "halted" not in other[58] and "Insufficient balance" in other[58]
    r = cli("resume", "--session", "CLIENT1", "--by", "bob", journal=sbridge.journal_url)
    assert r.returncode == 0, r.stdout + r.stderr
    time.sleep(0.7)
    c1.send(new_order_single(cl_id + "-2", "WETH/USDC", SELL, Decimal("0.01"), tif="3"))
    assert c1.reports_until_terminal(cl_id + "-2")[-1][39] == "2"  # trades again
    h = sjournal.halt_history()[0]
    assert (h.scope, h.halted_by, h.reason, h.resumed_by) == ("CLIENT1", "alice", "fat finger on desk 1", "bob")
    assert h.resumed_at > h.halted_at


def test_halt_all_sessions(clients, sbridge, sjournal, devnet, cl_id):
    r = cli("halt", "--reason", "chain incident", "--by", "ops", journal=sbridge.journal_url)
    assert r.returncode == 0, r.stderr
    time.sleep(0.7)
    before = {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR}
    for comp, kw in (("CLIENT1", {}), ("CLIENT4", dict(password=PW4))):
        c = clients(comp, **kw)
        c.send(new_order_single(f"{cl_id}-{comp}", "WETH/USDC", BUY, Decimal("0.01"), tif="3"))
        rej = c.reports_until_terminal(f"{cl_id}-{comp}")[-1]
        assert rej[39] == "8" and "trading halted for all sessions by ops: chain incident" in rej[58]
    # a halt stops new orders only: status requests are still answered
    clients("CLIENT1").send(order_status_request(f"{cl_id}-CLIENT1"))
    assert clients("CLIENT1").receive(10, "8")[150] == "I"
    r = cli("halts", journal=sbridge.journal_url)
    assert "all sessions" in r.stdout and "chain incident" in r.stdout
    assert cli("resume", "--session", "CLIENT1", journal=sbridge.journal_url).returncode == 2  # not halted alone
    r = cli("resume", journal=sbridge.journal_url)
    assert r.returncode == 0 and "resumed all sessions" in r.stdout
    assert sjournal.active_halts() == []
    assert {i: tx_count(devnet.rpc_url, ADDR[i]) for i in ADDR} == before


def test_bridge_still_up(sbridge):
    assert sbridge.proc.poll() is None


# ---- across a restart ------------------------------------------------------------------------

LOCKED_OUT = f"""
[wallets.w2]
chain = "devnet"
private_key = "{{k2}}"
[sessions.CLIENT3]
wallets = ["w2"]
username = "desk3"
password_hash = "{hash_password(PW3)}"
max_logon_failures = 3
lockout_seconds = 900
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_lockout_survives_a_restart(devnet, journal_url, tmp_path):
    """A CompID locked out stays locked out when the bridge is stopped and started again on its
    journal: the failures and the lockout are journal rows, not the process's memory."""
    toml = write_sessions(tmp_path / "sessions", LOCKED_OUT, comp_ids=("CLIENT3",))
    b = support.start_bridge([devnet.spec_path], toml, tmp_path / "state", journal=journal_url)
    try:
        for i in range(3):
            ans, _ = raw_logon(b.port, "CLIENT3", username="desk3", password=f"guess-{i}")
        assert ans.type == "5" and "locked out" in ans[58], ans.raw
    finally:
        b.stop()
    assert b.proc.returncode == 0
    b = support.start_bridge([devnet.spec_path], toml, tmp_path / "state", journal=journal_url)
    try:
        ans, _ = raw_logon(b.port, "CLIENT3", username="desk3", password=PW3)  # right, but still locked
        assert ans.type == "5" and "locked out until" in ans[58], ans.raw
    finally:
        b.stop()
    from fixbridge.journal import Journal
    j = Journal(journal_url)
    try:
        assert [a.outcome for a in j.logon_attempts("CLIENT3")] == ["bad_password"] * 3 + ["locked_out"]
    finally:
        j.close()
