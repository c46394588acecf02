"""The devnet's funding of the bridge's wallets, journaled as deposits.

`deploy_devnet` gives each funded wallet tokens (and ETH for gas when it has none): value that
entered the wallet without an order. `fixbridge run` journals each such transfer as a movement
(who ``devnet``, why ``devnet funding``) so that `fixbridge reconcile` finds it explained. A
funding transaction already in the journal is not journaled again (keyed on its hash), so a
devnet that keeps its state across restarts, and funds only on its first start, is journaled once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from fixbridge.devnet.deploy import Deployment, Funding
from fixbridge.journal.movements import ETH, Movement, MovementRow, movement

WHO = "devnet"
WHY = "devnet funding"


def spec_symbols(specs: Iterable[Path]) -> dict[tuple[int, str], str]:
    """(chain id, token address in lower case) -> the spec's symbol (e.g. 'WETH:devnet2'); empty
    when the specs cannot be read (the deployment's own symbols are used then)."""
    from fixbridge.config import ConfigError, load_spec
    paths = [Path(p) for p in specs if Path(p).is_file()]
    if not paths:
        return {}
    try:
        sp = load_spec(paths if len(paths) > 1 else paths[0])
    except ConfigError:
        return {}
    return {(sp.chains[t.chain].chain_id, t.address.lower()): t.symbol for t in sp.tokens.values()}


def deposits(dep: Deployment, symbols: Mapping[tuple[int, str], str] | None = None) -> list[Movement]:
    """One deposit per funding transfer of the deployment."""
    names = symbols or {}
    return [_deposit(dep.chain_id, f, names) for f in dep.fundings]


def _deposit(chain_id: int, f: Funding, names: Mapping[tuple[int, str], str]) -> Movement:
    symbol = ETH if f.token is None else names.get((chain_id, f.token.lower()), f.symbol)
    return movement(chain_id, f.wallet, symbol, f.token, f.decimals, f.units, "in", WHO, WHY,
                    tx_hash=f.tx_hash, block_number=f.block_number)


def journal_funding(journal_url: str, deployments: Iterable[Deployment],
                    specs: Iterable[Path] = ()) -> list[MovementRow]:
    """Journal the deployments' funding as deposits, those the journal does not have yet; returns
    the rows written."""
    from fixbridge.journal import Journal
    names = spec_symbols(specs)
    wanted = [m for dep in deployments for m in deposits(dep, names)]
    if not wanted:
        return []
    j = Journal(journal_url)
    try:
        return j.movements.record_new(wanted)
    finally:
        j.close()


__all__ = ["WHO", "WHY", "deposits", "journal_funding", "spec_symbols"]
