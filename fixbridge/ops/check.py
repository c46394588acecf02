"""`fixbridge check`: validate a deployment without trading.

Loads the spec(s) and sessions exactly as `fixbridge run` does, then asks each chain's node what
the bridge would rely on: the chain id, code at every contract address, what the routers and the
quoter were deployed against (their factory and WETH), each token's decimals, a pool for each
instrument on each venue that lists it, each wallet's key, ETH, token balances and allowances to
the routers; with a journal URL, its schema revision against the Alembic head. One row per
check: ok, warn (works, but look at it) or FAIL (the bridge would not start, or would trade
wrongly).

It only reads: eth_chainId, eth_getBlockByNumber, eth_getCode, eth_getBalance and eth_call on the
nodes, and a SELECT of the journal's alembic_version. It never signs, sends or migrates anything.
A node URL usually carries an API key, so rows name a node by scheme and host only.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from eth_utils import to_checksum_address

from fixbridge.chain.rpc import FastRPC
from fixbridge.config import ConfigError, SessionsConfig, Spec, load_sessions, load_spec
from fixbridge.config.spec import Chain
from fixbridge.ops.output import text
from fixbridge.orders.units import from_units
from fixbridge.venues.abi import decode, encode
from fixbridge.venues.base import selector

Status = Literal["ok", "warn", "FAIL"]
UNLIMITED = 2**255        # a standing approval is 2**256-1; anything this large is "unlimited"
STALE_HEAD_SECONDS = 300  # a head older than this on a live chain: the node is not following it
_BATCH = 50               # JSON-RPC batch size most providers accept


@dataclass(frozen=True)
class Row:
    check: str   # what was checked, named like the config key it comes from
    status: Status
    detail: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, check: str, status: Status, detail: str) -> None:
        self.rows.append(Row(check, status, detail))

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.rows)

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows) for s in ("ok", "warn", "FAIL")}


class NodeError(Exception):
    """A node that did not answer, or answered a request with an error."""


def node_name(url: str) -> str:
    """scheme://host[:port] of a node URL: its path and query often hold an API key."""
    u = urlsplit(url)
    return f"{u.scheme}://{u.hostname or '?'}" + (f":{u.port}" if u.port else "")


# ---- reading a node ------------------------------------------------------------------------
class Node:
    """Reads from one node (a bare JSON-RPC client: nothing here can sign); every failure is a
    NodeError that never contains the URL."""

    def __init__(self, url: str, timeout: float) -> None:
        self.rpc = FastRPC(url, timeout=timeout)

    def call(self, method: str, params: list[Any]) -> Any:
        try:
            res = self.rpc.call(method, params)
        except Exception as e:  # refused, timed out, not JSON: say what kind, not where
            raise NodeError(f"{method}: {type(e).__name__}") from None
        if "error" in res:
            raise NodeError(f"{method}: {_error_text(res['error'])}")
        return res.get("result")

    def many(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results of several requests (batched); a failed one is a NodeError in its place."""
        out: list[Any] = []
        for i in range(0, len(calls), _BATCH):
            part = list(calls[i:i + _BATCH])
            try:
                answers = self.rpc.batch(part)
            except Exception as e:
                raise NodeError(f"batch of {len(part)} requests: {type(e).__name__}") from None
            out += [NodeError(f"{m}: {_error_text(a['error'])}") if "error" in a else a.get("result")
                    for (m, _), a in zip(part, answers)]
        return out


def _error_text(err: Any) -> str:
    return str(err.get("message", err) if isinstance(err, dict) else err)[:200]


def _call_data(signature: str, types: list[str] | None = None, args: list[Any] | None = None) -> str:
    return "0x" + (selector(signature) + (encode(types, args) if types else b"")).hex()


def _eth_call(to: str, signature: str, types: list[str] | None = None,
              args: list[Any] | None = None) -> tuple[str, list[Any]]:
    return "eth_call", [{"to": to, "data": _call_data(signature, types, args)}, "latest"]


def _hex_bytes(value: Any) -> bytes:
    """A node's 0x-hex answer as bytes; anything else is the node's fault, said as a NodeError."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise NodeError(f"answered {value!r:.40}, not 0x-hex")
    try:
        return bytes.fromhex(value[2:] if len(value) % 2 == 0 else "0" + value[2:])
    except ValueError:
        raise NodeError(f"answered {value!r:.40}, not 0x-hex") from None


def _hex_int(value: Any) -> int:
    return int.from_bytes(_hex_bytes(value), "big")


def _word(result: Any, kind: str) -> Any:
    """One ABI word of an eth_call result (address or uint256); NodeError if it is not one."""
    if isinstance(result, NodeError):
        raise result
    raw = _hex_bytes(result)
    if len(raw) < 32:
        raise NodeError(f"answered {len(raw)} bytes, not an ABI word (no such function there?)")
    try:
        value = decode([kind], raw[:32])[0]
    except Exception as e:  # e.g. an address word with bytes in its padding: not this function
        raise NodeError(f"answered a word that is not an ABI {kind} ({type(e).__name__})") from None
    return to_checksum_address(value) if kind == "address" else int(value)


# ---- config --------------------------------------------------------------------------------
def load_config(report: Report, specs: Sequence[Path],
                sessions: Path) -> tuple[Spec | None, SessionsConfig | None]:
    """The spec(s) and sessions as the bridge loads them; a ConfigError is a FAIL row."""
    try:
        spec = load_spec(list(specs))
    except ConfigError as e:
        report.add("config: spec", "FAIL", str(e))
        return None, None
    report.add("config: spec", "ok", f"{spec.path}: {len(spec.chains)} chains, {len(spec.tokens)} tokens, "
               f"{len(spec.venues)} venues, {len(spec.instruments)} instruments")
    try:
        cfg = load_sessions(sessions, spec)
    except ConfigError as e:
        report.add("config: sessions", "FAIL", str(e))
        return spec, None
    report.add("config: sessions", "ok", f"{cfg.path}: {len(cfg.sessions)} sessions, {len(cfg.wallets)} wallets")
    acceptor = Path(cfg.acceptor_cfg)
    if acceptor.is_file():
        report.add("config: acceptor.cfg", "ok", str(acceptor))
    else:
        report.add("config: acceptor.cfg", "FAIL", f"{acceptor} not found (QuickFIX settings, beside the sessions file)")
    return spec, cfg


def wallet_addresses(report: Report, cfg: SessionsConfig) -> dict[str, str]:
    """wallet name -> address, from its key as the bridge resolves it (the key is dropped at once).
    A keystore whose password is missing still names its address, so its balances get checked."""
    from eth_account import Account

    from fixbridge.config.sessions import wallet_key
    out = {}
    for name, w in cfg.wallets.items():
        try:
            out[name] = Account.from_key(wallet_key(cfg, name)).address
            source = "keystore" if w.keystore else ("private_key_env" if w.private_key_env else "private_key")
            report.add(f"wallets.{name}: key", "ok", f"{out[name]} ({source})")
        except ConfigError as e:
            report.add(f"wallets.{name}: key", "FAIL", e.problem)
            address = _keystore_address(w.keystore)
            if address:
                out[name] = address
    return out


def _keystore_address(path: str | None) -> str | None:
    """The address a keystore file states in the clear (geth and eth-account write it)."""
    import json
    if path is None:
        return None
    try:
        return to_checksum_address(json.loads(Path(path).read_text())["address"])
    except Exception:
        return None


# ---- one chain -------------------------------------------------------------------------------
def check_chain(report: Report, spec: Spec, name: str, node: Node) -> bool:
    """The node answers with the spec's chain id and follows the head. False: skip this chain."""
    chain = spec.chains[name]
    where = f"chains.{name}"
    try:
        got = _hex_int(node.call("eth_chainId", []))
        head = node.call("eth_getBlockByNumber", ["latest", False])
    except NodeError as e:
        report.add(f"{where}: node", "FAIL", f"no answer from {node_name(chain.rpc_url)} ({e}): start it or fix rpc_url")
        return False
    if got != chain.chain_id:
        report.add(f"{where}: chain_id", "FAIL", f"the node at {node_name(chain.rpc_url)} is chain {got}, "
                   f"the spec says {chain.chain_id}: wrong rpc_url, or a wrong chain_id")
        return False
    if not isinstance(head, dict):
        report.add(f"{where}: node", "FAIL", f"the node at {node_name(chain.rpc_url)} has no latest block")
        return False
    number, age = _hex_int(head.get("number")), int(time.time()) - _hex_int(head.get("timestamp"))
    detail = f"chain id {got} at {node_name(chain.rpc_url)}, head #{number} ({age} s old)"
    stale = age > STALE_HEAD_SECONDS and not chain.devnet  # an idle devnet mines nothing: not stale
    report.add(f"{where}: node", "warn" if stale else "ok",
               detail + (": is the node synced?" if stale else ""))
    return True


def check_code(report: Report, spec: Spec, chain: str, node: Node) -> set[str]:
    """Code at every address of the spec on the chain; returns the keys that have none."""
    items = list(spec.contracts_on(chain).items())
    codes = node.many([("eth_getCode", [addr, "latest"]) for _, addr in items])
    missing = set()
    for (key, addr), code in zip(items, codes):
        if isinstance(code, NodeError):
            report.add(f"{key}: code", "FAIL", f"{addr}: {code}")
            missing.add(key)
        elif not code or code in ("0x", "0x0"):
            report.add(f"{key}: code", "FAIL", f"no contract at {addr} on chain {spec.chains[chain].chain_id} "
                       "(a wrong address, or another chain's)")
            missing.add(key)
        else:
            report.add(f"{key}: code", "ok", f"{addr} ({(len(code) - 2) // 2} bytes)")
    return missing


def check_decimals(report: Report, spec: Spec, chain: str, node: Node, skip: set[str]) -> None:
    """Each token's decimals() against the spec: every amount the bridge converts depends on it."""
    tokens = [(s, t) for s, t in spec.tokens.items() if t.chain == chain and f"tokens.{s}" not in skip]
    answers = node.many([_eth_call(t.address, "decimals()") for _, t in tokens])
    for (sym, tok), ans in zip(tokens, answers):
        key = f"tokens.{sym}.decimals"
        try:
            got = _word(ans, "uint256")
        except NodeError as e:
            report.add(key, "FAIL", f"decimals() of {tok.address}: {e}")
            continue
        if got == tok.decimals:
            report.add(key, "ok", f"{got}")
        else:
            report.add(key, "FAIL", f"the token says {got}, the spec says {tok.decimals}")


def _token_keys(spec: Spec, chain: str) -> dict[str, str]:
    """address -> token key, for the spec's tokens on `chain`."""
    return {t.address: s for s, t in spec.tokens.items() if t.chain == chain}


def _is_weth(symbol: str) -> bool:
    return symbol.split(":")[0].upper() == "WETH"


def check_wiring(report: Report, spec: Spec, chain: str, node: Node, skip: set[str]) -> None:
    """What each router and quoter was deployed against (immutable in the contract) must be the
    spec's factory and WETH; and a V3 router must be SwapRouter, the ABI the adapter encodes."""
    probes: list[tuple[str, str, str, str, str]] = []   # (venue, check key, contract, function, what)
    for n, v in spec.venues.items():
        if v.chain != chain:
            continue
        wrapped = "WETH()" if v.kind == "uniswap_v2" else "WETH9()"
        for role in ("router", "quoter"):
            addr = getattr(v, role)
            if addr is None or f"venues.{n}.{role}" in skip:
                continue
            key = f"venues.{n}.{role}"
            probes += [(n, key, addr, "factory()", "factory"), (n, key, addr, wrapped, "weth")]
            if v.kind == "uniswap_v3" and role == "router":
                probes.append((n, key, addr, "factoryV2()", "router02"))
    answers = node.many([_eth_call(addr, fn) for _, _, addr, fn, _ in probes])
    tokens = _token_keys(spec, chain)
    for (n, key, _, fn, kind), ans in zip(probes, answers):
        venue = spec.venues[n]
        if kind == "router02":
            _router02(report, key, ans)
        elif kind == "factory":
            _factory(report, f"{key}.{fn}", ans, venue.factory)
        else:
            _weth(report, f"{key}.{fn}", ans, tokens)


def _factory(report: Report, key: str, ans: Any, expected: str) -> None:
    try:
        got = _word(ans, "address")
    except NodeError as e:
        report.add(key, "FAIL", f"{e}: not the contract the spec says")
        return
    if got == expected:
        report.add(key, "ok", f"{got} = the venue's factory")
    else:
        report.add(key, "FAIL", f"{got}, but the spec's factory is {expected}: router and factory "
                   "belong to different deployments")


def _weth(report: Report, key: str, ans: Any, tokens: dict[str, str]) -> None:
    try:
        got = _word(ans, "address")
    except NodeError as e:
        report.add(key, "FAIL", f"{e}: not the contract the spec says")
        return
    if got in tokens:
        report.add(key, "ok", f"{got} = tokens.{tokens[got]}")
        return
    weth = [f"tokens.{s} {a}" for a, s in tokens.items() if _is_weth(s)]
    if weth:
        report.add(key, "FAIL", f"{got}, but the spec has {', '.join(weth)}")
    else:
        report.add(key, "warn", f"{got} is not a token of the spec")


def _router02(report: Report, key: str, ans: Any) -> None:
    """SwapRouter02 has factoryV2(); SwapRouter has not. The adapter speaks SwapRouter's ABI
    (the swap struct with a deadline), so a SwapRouter02 would revert every swap."""
    if isinstance(ans, NodeError) or not ans or ans == "0x":
        report.add(f"{key}: ABI", "ok", "SwapRouter (exactInputSingle with deadline), as the adapter calls it")
    else:
        report.add(f"{key}: ABI", "FAIL", "this is SwapRouter02 (it has factoryV2()): the adapter encodes "
                   "SwapRouter's swap struct with a deadline, which SwapRouter02 does not take")


def check_pools(report: Report, spec: Spec, chain: str, node: Node, skip: set[str]) -> None:
    """Each instrument has a pool on each venue that lists it (V2: the pair; V3: a pool in at least
    one configured fee tier). A venue without one never quotes the instrument: a warn, since the
    others may still trade it."""
    probes: list[tuple[str, str, int | None]] = []   # (instrument, venue, V3 fee tier or None)
    calls = []
    for sym, ins in spec.instruments.items():
        base, quote = spec.tokens[ins.base].address, spec.tokens[ins.quote].address
        for n in ins.venues:
            v = spec.venues[n]
            if v.chain != chain or f"venues.{n}.factory" in skip:
                continue
            if v.kind == "uniswap_v2":
                probes.append((sym, n, None))
                calls.append(_eth_call(v.factory, "getPair(address,address)", ["address", "address"], [base, quote]))
            for fee in v.fee_tiers if v.kind == "uniswap_v3" else ():
                probes.append((sym, n, fee))
                calls.append(_eth_call(v.factory, "getPool(address,address,uint24)", ["address", "address", "uint24"],
                                       [base, quote, fee]))
    found: dict[tuple[str, str], list[str]] = {(s, n): [] for s, n, _ in probes}
    broken: dict[tuple[str, str], str] = {}
    for (sym, n, fee), ans in zip(probes, node.many(calls)):
        try:
            pool = _word(ans, "address")
        except NodeError as e:
            broken[(sym, n)] = f"the factory's getPair/getPool: {e}"
            continue
        if int(pool, 16):
            found[(sym, n)].append(pool if fee is None else f"{fee}: {pool}")
    for (sym, n), pools in found.items():
        if (sym, n) in broken:
            report.add(f"instruments.{sym}: {n}", "FAIL", broken[(sym, n)])
        elif pools:
            report.add(f"instruments.{sym}: {n}", "ok", ("pair " if spec.venues[n].kind == "uniswap_v2" else
                                                         "pools by fee tier ") + ", ".join(pools))
        else:
            report.add(f"instruments.{sym}: {n}", "warn", "no pool for the pair on this venue: it never quotes it")


# ---- wallets ---------------------------------------------------------------------------------
def check_wallets(report: Report, spec: Spec, cfg: SessionsConfig, chain: str, node: Node,
                  addresses: dict[str, str], skip: set[str]) -> None:
    """ETH, token balances and allowances to each router of the chain, per wallet."""
    tokens = [(s, t) for s, t in spec.tokens.items() if t.chain == chain and f"tokens.{s}" not in skip]
    routers = sorted({(n, v.router) for n, v in spec.venues.items() if v.chain == chain})
    for name, w in cfg.wallets.items():
        if w.chain != chain or name not in addresses:
            continue
        owner = addresses[name]
        calls: list[tuple[str, list[Any]]] = [("eth_getBalance", [owner, "latest"])]
        for _, t in tokens:
            calls.append(_eth_call(t.address, "balanceOf(address)", ["address"], [owner]))
            calls += [_eth_call(t.address, "allowance(address,address)", ["address", "address"], [owner, r])
                      for _, r in routers]
        answers = iter(node.many(calls))
        _eth_row(report, name, next(answers))
        for sym, tok in tokens:
            _token_row(report, name, sym, tok.decimals, [n for n, _ in routers], answers)


def _eth_row(report: Report, wallet: str, ans: Any) -> None:
    if isinstance(ans, NodeError):
        report.add(f"wallets.{wallet}: ETH", "FAIL", str(ans))
        return
    try:
        wei = _hex_int(ans)
    except NodeError as e:
        report.add(f"wallets.{wallet}: ETH", "FAIL", f"eth_getBalance: {e}")
        return
    if wei == 0:
        report.add(f"wallets.{wallet}: ETH", "warn", "0: it cannot pay gas for an approval or a swap")
    else:
        report.add(f"wallets.{wallet}: ETH", "ok", text(from_units(wei, 18)))


def _token_row(report: Report, wallet: str, sym: str, decimals: int, routers: list[str],
               answers: Iterable[Any]) -> None:
    it = iter(answers)
    mine = [next(it) for _ in range(1 + len(routers))]  # this token's answers: balance, then allowances
    try:
        balance = text(from_units(_word(mine[0], "uint256"), decimals))
        allowances = [_allowance(_word(a, "uint256"), decimals) for a in mine[1:]]
    except NodeError as e:
        report.add(f"wallets.{wallet}: {sym}", "FAIL", f"balanceOf/allowance: {e}")
        return
    to = ", ".join(f"{r} {a}" for r, a in zip(routers, allowances))
    report.add(f"wallets.{wallet}: {sym}", "ok", f"balance {balance}" + (f"; allowance to {to}" if routers else ""))


def _allowance(units: int, decimals: int) -> str:
    return "unlimited" if units >= UNLIMITED else text(from_units(units, decimals))


# ---- journal ---------------------------------------------------------------------------------
def check_journal(report: Report, url: str) -> None:
    """The journal's Alembic revision against this code's head, read without migrating."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from fixbridge.journal.store import alembic_config

    key = "journal: schema"
    try:
        u = make_url(url)
    except Exception as e:
        report.add(key, "FAIL", f"not a SQLAlchemy URL ({type(e).__name__})")
        return
    shown = u.render_as_string(hide_password=True)
    db = u.database or ""
    if u.get_backend_name() == "sqlite" and db not in ("", ":memory:") and not db.startswith("file:") \
            and not Path(db).expanduser().is_file():
        report.add(key, "warn", f"no journal at {shown}: `fixbridge run` creates it")
        return
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    engine = create_engine(u)
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as e:
        report.add(key, "FAIL", f"cannot read {shown}: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
        return
    finally:
        engine.dispose()
    report.add(key, *_schema_verdict(script, current, heads, shown))


def _schema_verdict(script: Any, current: set[str], heads: set[str], shown: str) -> tuple[Status, str]:
    head = ", ".join(sorted(heads))
    if current == heads:
        return "ok", f"{shown} at revision {head} (head)"
    if not current:
        return "warn", f"{shown} has no schema yet: `fixbridge run` creates it (revision {head})"
    unknown = sorted(r for r in current if not _known(script, r))
    if unknown:
        return "FAIL", (f"{shown} is at revision {', '.join(unknown)}, which this fixbridge does not know "
                        f"(written by a newer version?); this code's head is {head}")
    return "warn", (f"{shown} is at revision {', '.join(sorted(current))}, behind head {head}: "
                    "`fixbridge run` migrates it at start (back it up first)")


def _known(script: Any, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


# ---- all of it -------------------------------------------------------------------------------
def run_check(specs: Sequence[Path], sessions: Path, journal: str | None = None,
              timeout: float = 10.0) -> Report:
    report = Report()
    spec, cfg = load_config(report, specs, sessions)
    addresses = wallet_addresses(report, cfg) if cfg is not None else {}
    for name in (spec.chains if spec is not None else {}):
        _check_one_chain(report, spec, cfg, name, addresses, timeout)
    if journal is not None:
        check_journal(report, journal)
        if spec is not None:
            check_journal_chains(report, spec, journal, timeout)
    return report


def check_journal_chains(report: Report, spec: Spec, url: str, timeout: float) -> None:
    """Each chain the journal recorded (`chain_identities`) is the node's: the bridge refuses to
    start otherwise, and this says so before anyone tries. Read with a plain SELECT, no migration."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from fixbridge.journal.chains import ChainIdentity, compare

    try:
        engine = create_engine(make_url(url))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, chain_id, genesis_hash FROM chain_identities")).all()
        engine.dispose()
    except Exception:
        return  # no journal, or one from before chain identities: the schema row said what matters
    recorded = {r[0]: ChainIdentity(r[0], int(r[1]), r[2]) for r in rows}
    for name, chain in spec.chains.items():
        key = f"journal: chain {name}"
        if name not in recorded:
            report.add(key, "ok", "not recorded yet: the first start records it")
            continue
        try:
            node = Node(chain.rpc_url, timeout)
            first = node.call("eth_getBlockByNumber", ["0x1", False])
            genesis = first["parentHash"] if first else node.call("eth_getBlockByNumber", ["0x0", False])["hash"]
            found = ChainIdentity(name, _hex_int(node.call("eth_chainId", [])), genesis)
        except Exception as e:
            report.add(key, "warn", f"could not read the node's genesis ({type(e).__name__})")
            continue
        what = compare(recorded[name], found)
        if what is None:
            report.add(key, "ok", f"the journal's chain: {found.describe()}")
        else:
            report.add(key, "FAIL", f"the journal was written against {recorded[name].describe()}, the node has "
                       f"{found.describe()} ({what}); the bridge will refuse to start")


def _check_one_chain(report: Report, spec: Spec, cfg: SessionsConfig | None, name: str,
                     addresses: dict[str, str], timeout: float) -> None:
    chain: Chain = spec.chains[name]
    node = Node(chain.rpc_url, timeout)
    if not check_chain(report, spec, name, node):
        return
    try:
        missing = check_code(report, spec, name, node)
        check_decimals(report, spec, name, node, missing)
        check_wiring(report, spec, name, node, missing)
        check_pools(report, spec, name, node, missing)
        if cfg is not None:
            check_wallets(report, spec, cfg, name, node, addresses, missing)
    except NodeError as e:  # the node went away halfway: one row says so
        report.add(f"chains.{name}: node", "FAIL", f"stopped answering {node_name(chain.rpc_url)} ({e})")
    except Exception as e:  # an answer of a shape no node should give: a row, not a traceback
        report.add(f"chains.{name}: node", "FAIL", f"unexpected answer from {node_name(chain.rpc_url)} "
                   f"({type(e).__name__})")

