"""The bridge's HTTP port (default 127.0.0.1:9877): /metrics, /healthz, /readyz and a read-only
live status page (/ and /orders/<order_id>).

Starlette on uvicorn, in a daemon thread of the bridge's process. Its handlers only read (the
journal through read snapshots, the engine's state without its lock); halting and resuming stay
with the CLI. Beyond loopback every path but /healthz needs the token (``check_exposure``).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import socket
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fixbridge.ops.health import Health
from fixbridge.ops.metrics import BridgeMetrics
from fixbridge.ops.trail import AmbiguousClOrdID, order_trail
from fixbridge.ops.view import BridgeView

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9877
TOKEN_ENV = "FIXBRIDGE_STATUS_TOKEN"
COOKIE = "fixbridge_token"
OPEN_PATHS = ("/healthz",)  # a load balancer's liveness probe needs no secret; it says nothing but "alive"


class ExposureError(ValueError):
    """Bound beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    """True if every address `host` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_exposure(host: str, token: str | None, token_env: str = TOKEN_ENV) -> None:
    """Anything beyond loopback shows orders, wallets and chains: it needs a token."""
    if not is_loopback(host) and not token:
        raise ExposureError(f"the status port on {host} is reachable from other machines: set a token in "
                            f"${token_env} (every request then needs it), or bind to 127.0.0.1")


def _json_default(o: Any) -> Any:
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    if isinstance(o, Decimal):
        return str(o)
    return str(o)


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_json_default, separators=(",", ":")).encode()


class _TokenGate(BaseHTTPMiddleware):
    """Bearer token, a cookie the page sets from ?token=, or ?token= itself; constant-time compare."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self._token = token.encode()

    def _ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token)

    async def dispatch(self, request: Request, call_next: Any) -> Response:
        if request.url.path in OPEN_PATHS:
            return await call_next(request)
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.lower().startswith("bearer ") else None
        query = request.query_params.get("token")
        if not (self._ok(bearer) or self._ok(request.cookies.get(COOKIE)) or self._ok(query)):
            return PlainTextResponse("token required (Authorization: Bearer …, or ?token=…)\n", status_code=401)
        response = await call_next(request)
        if self._ok(query):
            response.set_cookie(COOKIE, query, httponly=True, samesite="strict")
        return response


def status_document(view: BridgeView, metrics: BridgeMetrics, health: Health) -> dict[str, Any]:
    """Everything the status page shows, as one JSON document (polled by the page)."""
    now = time.time()
    snap = view.journal_snapshot()
    orders = view.orders()
    flights = sorted(snap.in_flight, key=lambda f: f["since"])
    return {
        "now": now,
        "sessions": view.sessions(),
        "orders": orders,
        "counts": {"orders": [{"status": st, "n": n} for st, n in sorted(snap.order_counts.items())],
                   "fills": snap.fills},
        "in_flight": [{**f, "age_s": round(now - f["since"].timestamp(), 1),
                       "max_fee_gwei": str(Decimal(f["max_fee_wei"]) / 10**9),
                       "tip_gwei": str(Decimal(f["tip_wei"]) / 10**9),
                       "max_fee_eth": str(Decimal(f["max_fee_wei"]) * f["gas_limit"] / 10**18)} for f in flights],
        "chains": view.chains(),
        "halts": snap.halts,
        "reconcile": snap.reconcile,
        "backlog": {"journal": view.journal_backlog(), "intake": view.intake_backlog()},
        "charts": {"fills_per_minute": view.fills_per_minute(),
                   "ack_latency": metrics.ack_recent.points(now),
                   "fill_latency": metrics.fill_recent.points(now)},
        "uptime_s": round(now - health.started, 1),
    }


def build_app(view: BridgeView, metrics: BridgeMetrics, health: Health, token: str | None = None) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    # Plain (def) handlers: Starlette runs them in its thread pool, so a journal read never blocks
    # the event loop, and they take the GIL only while they work.
    def index(request: Request) -> Response:
        # Inside <script>: a "</script>" in a client's ClOrdID or Text must not end it.
        doc = json.dumps(status_document(view, metrics, health), default=_json_default).replace("<", "\\u003c")
        return templates.TemplateResponse(request, "index.html", {"initial": doc})

    def api_status(request: Request) -> Response:
        return JSON(status_document(view, metrics, health))

    def order_page(request: Request) -> Response:
        key = request.path_params["order_id"]
        try:
            trail = order_trail(view.journal, key)
        except AmbiguousClOrdID as e:
            return HTMLResponse(f"<p>{e}</p>", status_code=409)
        if trail is None or trail.order["session_id"] not in view.session_ids():
            return templates.TemplateResponse(request, "order.html", {"trail": None, "key": key}, status_code=404)
        return templates.TemplateResponse(request, "order.html", {"trail": trail, "key": key})

    def api_order(request: Request) -> Response:
        trail = order_trail(view.journal, request.path_params["order_id"])
        if trail is None or trail.order["session_id"] not in view.session_ids():
            return JSON({"error": "unknown order"}, status_code=404)
        return JSON(trail.as_dict())

    def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(request: Request) -> Response:
        return JSON(health.live())

    def readyz(request: Request) -> Response:
        ok, doc = health.ready()
        return JSON(doc, status_code=200 if ok else 503)

    routes = [
        Route("/", index), Route("/api/status", api_status),
        Route("/orders/{order_id}", order_page), Route("/api/orders/{order_id}", api_order),
        Route("/metrics", metrics_endpoint), Route("/healthz", healthz), Route("/readyz", readyz),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(_TokenGate, token=token)] if token else []
    return Starlette(routes=routes, middleware=middleware)


class StatusServer:
    """uvicorn serving `app` on (host, port) from a daemon thread. The socket is bound in start(),
    so a port in use is known at once."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.host, self.port = host, port
        # log_config=None: leave the process's logging (structlog) as it is.
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                                     timeout_graceful_shutdown=1))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="status-http",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=3)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"
