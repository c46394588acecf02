"""Record the session that tests/test_ops_replay.py replays: CLIENT1 on a fresh devnet and bridge
(`sessions/counterparties.toml`, as `make run` uses), trading the orders below one at a time.

    .venv/bin/python sessions/recorded/record.py

Writes, next to this file:
- client1-basic.messages.log: the bridge's QuickFIX messages log of the session (what
  `fixbridge replay --from-log` reads);
- client1-basic.json: the same application messages exported from the bridge's journal
  (`fixbridge replay --journal ... --export`).

Record again when the devnet's deployment or the bridge's answers change on purpose; the replay
test then checks the new behaviour from there on. Every order names its venue (ExDestination), so
the recording does not depend on which venue best execution would pick.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from fixbridge.fix.client import FixClient, new_order_single, order_cancel_request, order_status_request  # noqa: E402
from fixbridge.ops.harness import Stack  # noqa: E402
from fixbridge.ops.replay import export_json, load_from_journal  # noqa: E402

SESSION = "FIX.4.4:FIXBRIDGE->CLIENT1"
V2 = "uniswap_v2"
BUY, SELL, IOC, FOK = "1", "2", "3", "4"


def script():
    """(ClOrdID whose answers to wait for, message, how many answers); one at a time."""
    d = Decimal
    return [
        ("R-1", new_order_single("R-1", "WETH/USDC", BUY, d("0.5"), limit=d("3100"), tif=IOC, ex_destination=V2), 2),
        ("R-2", new_order_single("R-2", "WBTC/USDC", SELL, d("0.01"), limit=d("59000"), tif=FOK, ex_destination=V2), 2),
        ("R-3", new_order_single("R-3", "WBTC/WETH", BUY, d("0.001"), tif=IOC, ex_destination=V2), 2),
        ("R-4", new_order_single("R-4", "WETH/USDC", BUY, cash_qty=d("300"), limit=d("3200"), tif=IOC,
                                 ex_destination=V2), 2),
        ("R-5", new_order_single("R-5", "WETH/USDC", BUY, d("1"), limit=d("2000"), tif=FOK, ex_destination=V2), 2),
        ("R-6", new_order_single("R-6", "WETH/USDC", BUY, d("0.1234567890123456789"), limit=d("3100"), tif=IOC,
                                 ex_destination=V2), 1),
        ("R-1", new_order_single("R-1", "WETH/USDC", BUY, d("0.5"), limit=d("3100"), tif=IOC, ex_destination=V2), 1),
        ("R-1", order_status_request("R-1", req_id="S-1"), 1),
        ("R-7", order_cancel_request("R-7", "R-1"), 1),
        ("R-8", new_order_single("R-8", "WETH/USDC", SELL, d("0.1"), limit=d("2500"), tif="2", ex_destination=V2), 1),
        ("R-9", new_order_single("R-9", "WETH/USDC", SELL, d("0.2"), tif=IOC, ex_destination=V2), 2),
    ]


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="record-"))
    try:
        with Stack(ROOT / "sessions" / "counterparties.toml", workdir=work, log=print) as stack:
            client = FixClient("127.0.0.1", stack.port, "CLIENT1", "FIXBRIDGE", data_dir=work / "client").start()
            try:
                for cl, msg, answers in script():
                    client.send(msg)
                    got = [client.receive(60) for _ in range(answers)]
                    print(cl, [(m.msg_type, m.get(150), m.get(39), m.get(58)) for m in got])
            finally:
                client.stop()
            journal_url, log = stack.journal_url, stack.messages_log(SESSION)
            stack.proc.terminate()
            stack.proc.wait(20)
            shutil.copy(log, HERE / "client1-basic.messages.log")
            (HERE / "client1-basic.json").write_text(export_json(load_from_journal(journal_url, SESSION), SESSION))
        print(f"wrote {HERE / 'client1-basic.messages.log'} and {HERE / 'client1-basic.json'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
