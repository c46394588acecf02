"""FIX over TLS: the acceptor on QuickFIX's SSLSocketAcceptor with a self-signed certificate made
here by the openssl CLI; a QuickFIX SSLSocketInitiator that verifies it logs on and trades; plain
TCP and clients that do not trust the certificate get nowhere.

QuickFIX must be built with OpenSSL (the PyPI wheel is not: scripts/build-quickfix-ssl.sh). The
tests run when the installed quickfix has SSL, or when FIXBRIDGE_QUICKFIX_SSL_SITE names a
directory holding an SSL build (`pip install --target DIR <wheel>`): the bridge and the TLS client
then run as subprocesses on that build. Otherwise they are skipped, saying why.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import uuid

import pytest

from support import COUNTERPARTIES, ROOT
from security_support import RawFix, start_bridge, write_sessions

PROBE = """
import sys, tempfile, pathlib, quickfix as fix
d = pathlib.Path(tempfile.mkdtemp())
(d / "c.cfg").write_text("[DEFAULT]\\nConnectionType=initiator\\nStartTime=00:00:00\\nEndTime=00:00:00\\n"
    "HeartBtInt=30\\nUseDataDictionary=N\\nFileStorePath=%s\\n[SESSION]\\nBeginString=FIX.4.4\\nSenderCompID=A\\n"
    "TargetCompID=B\\nSocketConnectHost=127.0.0.1\\nSocketConnectPort=1\\n" % d)
s = fix.SessionSettings(str(d / "c.cfg"))
class App(fix.Application):
    def onCreate(self, s): pass
    def onLogon(self, s): pass
    def onLogout(self, s): pass
    def toAdmin(self, m, s): pass
    def fromAdmin(self, m, s): pass
    def toApp(self, m, s): pass
    def fromApp(self, m, s): pass
try:
    fix.SSLSocketInitiator(App(), fix.MemoryStoreFactory(), s)
except fix.ConfigError as e:
    sys.exit(3 if "HAVE_SSL" in str(e) else 4)
"""

CLIENT = """
import json, sys
from decimal import Decimal
from pathlib import Path
from fixbridge.fix.client import FixClient, new_order_single, order_status_request
port, comp, ca, data, cl = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4]), sys.argv[5]
c = FixClient("127.0.0.1", port, comp, data_dir=data, tls=True, ca_file=Path(ca))
try:
    c.start(timeout=8)
except TimeoutError:
    print(json.dumps({"logged_on": False}))
    sys.exit(0)
out = {"logged_on": True}
if cl != "-":
    c.send(new_order_single(cl, "WETH/USDC", "2", Decimal("0.01"), tif="3"))
    out["reports"] = [r.fields for r in c.reports_until_terminal(cl)]
    c.send(order_status_request(cl))
    out["status"] = c.receive(10, "8").fields
c.stop()
print(json.dumps(out))
"""


def _env(site: str | None) -> dict[str, str]:
    env = {**os.environ}
    if site:
        env["PYTHONPATH"] = os.pathsep.join([site, str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def quickfix_ssl_site() -> str | None:
    """'' if the installed quickfix has SSL, a site dir if FIXBRIDGE_QUICKFIX_SSL_SITE has one, else skip."""
    rc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=60).returncode
    if rc == 0:
        return ""
    site = os.environ.get("FIXBRIDGE_QUICKFIX_SSL_SITE")
    if site and subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=60,
                               env=_env(site)).returncode == 0:
        return site
    pytest.skip("quickfix is built without OpenSSL (HAVE_SSL not enabled): build it with "
                "scripts/build-quickfix-ssl.sh and install it, or point FIXBRIDGE_QUICKFIX_SSL_SITE at it")


def make_cert(d, cn: str = "127.0.0.1"):
    key, cert = d / f"{cn}-key.pem", d / f"{cn}-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=IP:{cn}"],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return cert, key


@pytest.fixture(scope="module")
def tls(request, tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make a certificate")
    site = quickfix_ssl_site()
    devnet = request.getfixturevalue("devnet")
    d = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(d)
    toml = write_sessions(d / "sessions", COUNTERPARTIES, acceptor_default=(
        "SocketUseSSL=Y\n"
        f"ServerCertificateFile={cert}\nServerCertificateKeyFile={key}\n"
        "SSLProtocol=all -SSLv2 -SSLv3 -TLSv1 -TLSv1_1\n"))
    b = start_bridge(devnet, toml, d / "state", env={"PYTHONPATH": _env(site)["PYTHONPATH"]} if site else None)
    yield b, cert, d, site
    b.stop()


def tls_client(tls, comp: str, ca, cl: str = "-") -> dict:
    b, _, d, site = tls
    r = subprocess.run([sys.executable, "-c", CLIENT, str(b.port), comp, str(ca), str(d / f"client-{uuid.uuid4().hex[:6]}"),
                        cl], capture_output=True, text=True, timeout=120, env=_env(site), cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.e2e
def test_tls_handshake_presents_our_certificate(tls):
    b, cert, _, _ = tls
    ctx = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            assert t.version() in ("TLSv1.2", "TLSv1.3")
            assert ssl.DER_cert_to_PEM_cert(t.getpeercert(binary_form=True)).strip() == cert.read_text().strip()


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_protocols_are_refused(tls):
    b, cert, _, _ = tls
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cert))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(s, server_hostname="127.0.0.1")


@pytest.mark.e2e
def test_tls_client_logs_on_and_trades(tls):
    _, cert, _, _ = tls
    cl = f"tls-{uuid.uuid4().hex[:8]}"
    out = tls_client(tls, "CLIENT1", cert, cl)
    assert out["logged_on"]
    last = out["reports"][-1]
    assert last["39"] == "2" and last.get("20001"), last  # filled on chain, over TLS
    assert out["status"]["39"] == "2"


@pytest.mark.e2e
def test_plain_tcp_gets_no_fix_session(tls):
    b = tls[0]
    with RawFix(b.port, "CLIENT2") as r:
        r.send("A", [(98, "0"), (108, "30"), (141, "Y")])
        with pytest.raises(TimeoutError):
            r.recv(3)  # no Logon answer in clear text


@pytest.mark.e2e
def test_client_that_does_not_trust_the_certificate_cannot_log_on(tls):
    b, _, d, _ = tls
    other, _ = make_cert(d, "10.0.0.1")  # a CA file without the acceptor's certificate
    assert tls_client(tls, "CLIENT3", other) == {"logged_on": False}
    assert b.proc.poll() is None
    assert tls_client(tls, "CLIENT3", tls[1])["logged_on"]  # the same session, trusting the right CA
