"""python -m fixbridge.devnet --port 8545 --spec specs/devnet.toml

Starts anvil, deploys the devnet venues, writes the spec, and runs until
Ctrl-C (or SIGTERM), then stops anvil.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from fixbridge.devnet.anvil import Anvil, AnvilError
from fixbridge.devnet.deploy import DeployError, deploy_devnet, write_spec


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fixbridge.devnet", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address anvil listens on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8545, help="RPC port; 0 picks a free one (default 8545)")
    p.add_argument("--chain-id", type=int, default=31337)
    p.add_argument("--block-time", type=float, default=None, help="seconds per block (default: automine)")
    p.add_argument("--spec", type=Path, default=None, help="write the venue/instrument spec TOML here")
    p.add_argument(
        "--fund",
        action="append",
        metavar="ADDRESS",
        help="wallet to fund with 100 WETH, 1,000,000 USDC, 10 WBTC (repeatable; default anvil account #1)",
    )
    p.add_argument("--anvil-log", type=Path, default=None, help="keep anvil's output in this file")
    p.add_argument("--verbose", action="store_true", help="let anvil log every request (to --anvil-log)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)

    node = Anvil(
        args.host,
        args.port,
        chain_id=args.chain_id,
        block_time=args.block_time,
        silent=not args.verbose,
        log_path=args.anvil_log,
    )
    try:
        try:
            node.start()
            dep = deploy_devnet(node.rpc_url, fund=args.fund, log=lambda m: print(m, flush=True))
        except (AnvilError, DeployError) as exc:
            print(f"devnet: {exc}", file=sys.stderr)
            return 1
        if args.spec:
            write_spec(dep, args.spec)
            print(f"wrote {args.spec}")
        print(f"devnet ready: {dep.rpc_url} (chain id {dep.chain_id}, anvil pid {node.pid})")
        for name in ("weth", "usdc", "wbtc", "factory", "router"):
            print(f"  {name:8} {getattr(dep, name)}")
        for key, pair in dep.pairs.items():
            print(f"  {key:8} {pair}")
        print("Ctrl-C to stop", flush=True)
        while node.poll() is None:
            time.sleep(0.5)
        print(f"devnet: anvil exited with code {node.poll()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping anvil")
        return 0
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
