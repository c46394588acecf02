"""QuickFIX session settings: read sessions/acceptor.cfg (or an initiator's), resolve its paths
relative to the file, apply overrides, and hand QuickFIX a resolved copy."""
from __future__ import annotations

import re
from pathlib import Path

from fixbridge.config.errors import ConfigError

PATH_KEYS = {"FileStorePath", "FileLogPath", "DataDictionary", "TransportDataDictionary", "AppDataDictionary",
             "SocketCertificateFile", "SocketPrivateKeyFile", "SocketCAFile", "CertificationAuthoritiesFile",
             "ServerCertificateFile", "ServerCertificateKeyFile"}


def parse(text: str) -> list[tuple[str, dict[str, str]]]:
    """QuickFIX .cfg as [(section, {key: value})]; [SESSION] may repeat, so no configparser."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            out.append((m.group(1).upper(), {}))
        elif "=" in line and out:
            k, v = line.split("=", 1)
            out[-1][1][k.strip()] = v.strip()
    return out


def render(sections: list[tuple[str, dict[str, str]]]) -> str:
    return "\n".join(f"[{name}]\n" + "".join(f"{k}={v}\n" for k, v in body.items()) for name, body in sections)


def resolve(cfg_path: Path, out_path: Path, overrides: dict[str, str]) -> tuple[Path, list[dict[str, str]]]:
    """Write a resolved copy of cfg_path to out_path. Returns it and the [SESSION] sections."""
    if not cfg_path.is_file():
        raise ConfigError(cfg_path, "-", "QuickFIX settings file not found")
    sections = parse(cfg_path.read_text())
    if not sections or sections[0][0] != "DEFAULT":
        raise ConfigError(cfg_path, "[DEFAULT]", "expected a [DEFAULT] section first")
    default = sections[0][1]
    default.update({k: v for k, v in overrides.items() if v is not None})
    for _, body in sections:
        for k, v in list(body.items()):
            if k in PATH_KEYS and not Path(v).is_absolute() and k not in overrides:
                body[k] = str((cfg_path.parent / v).resolve())
    sessions = [{**default, **body} for name, body in sections if name == "SESSION"]
    if not sessions:
        raise ConfigError(cfg_path, "[SESSION]", "no session defined")
    for s in sessions:
        for key in ("BeginString", "SenderCompID", "TargetCompID"):
            if not s.get(key):
                raise ConfigError(cfg_path, f"[SESSION].{key}", "required")
        dd = s.get("DataDictionary")
        if dd and not Path(dd).is_file():
            raise ConfigError(cfg_path, "DataDictionary", f"file {dd} not found")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(render(sections))
    return out_path, sessions
