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
