#!/usr/bin/env bash
# Build quickfix 1.16.0 (the version pyproject.toml pins) with OpenSSL, so that
# quickfix.SSLSocketAcceptor / SSLSocketInitiator work (the PyPI build has HAVE_SSL off and its SSL
# classes raise "HAVE_SSL not enabled"). Needs a C++ compiler and OpenSSL headers (libssl-dev).
#
#   scripts/build-quickfix-ssl.sh [OUT_DIR]            # the wheel lands in OUT_DIR (default build/quickfix-ssl)
#   .venv/bin/pip install --force-reinstall --no-deps build/quickfix-ssl/quickfix-1.16.0-*.whl
#
# The build takes about as long as the plain one (minutes). Nothing else changes: same API, same
# version; the acceptor turns TLS on when acceptor.cfg asks for it (see README, Security).
set -euo pipefail
OUT="$(realpath -m "${1:-build/quickfix-ssl}")"
PY="${PYTHON:-.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download --no-deps --no-binary :all: quickfix==1.16.0 -d "$WORK"
tar -xzf "$WORK"/quickfix-1.16.0.tar.gz -C "$WORK"
SRC="$WORK/quickfix-1.16.0"
sed -i 's|/\* #undef HAVE_SSL \*/|#define HAVE_SSL 1|' "$SRC/C++/config.h"
grep -q '#define HAVE_SSL 1' "$SRC/C++/config.h"
# QuickFIX 1.16 (C++) binds every acceptor to INADDR_ANY: it has no SocketAcceptHost. The acceptor
# binds to the address in QUICKFIX_ACCEPT_ADDRESS instead (set by fixbridge/fix/acceptor.py from
# SocketAcceptHost), so a port configured for 127.0.0.1 is not reachable from other machines.
"$PY" - "$SRC/C++/Utility.cpp" <<'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
old = "  address.sin_port = htons(port);\n  address.sin_addr.s_addr = INADDR_ANY;\n"
assert s.count(old) == 1, "Utility.cpp layout changed"
new = ("  address.sin_port = htons(port);\n"
       "  const char *bindTo = getenv(\"QUICKFIX_ACCEPT_ADDRESS\");\n"
       "  address.sin_addr.s_addr = (bindTo && *bindTo) ? inet_addr(bindTo) : INADDR_ANY;\n")
s = s.replace(old, new, 1)
if "#include <stdlib.h>" not in s:
    s = s.replace("#include <string.h>\n", "#include <string.h>\n#include <stdlib.h>\n", 1)
open(p, "w").write(s)
PYEOF
grep -q QUICKFIX_ACCEPT_ADDRESS "$SRC/C++/Utility.cpp"
"$PY" - "$SRC/setup.py" <<'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
anchor = "            glob.glob('C++/*.cpp'),\n"
assert anchor in s, "setup.py layout changed"
s = s.replace(anchor, anchor + "            libraries=['ssl', 'crypto'],\n", 1)
open(p, "w").write(s)
PYEOF
mkdir -p "$OUT"
"$PY" -m pip wheel --no-deps --no-build-isolation -w "$OUT" "$SRC"
echo "built: $(ls "$OUT"/quickfix-1.16.0-*.whl)"
