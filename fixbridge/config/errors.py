from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic


class ConfigError(Exception):
    """A configuration problem, named by file and key, with what is expected."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(path, "-", "file not found")
    try:
        return tomllib.loads(path.read_text(), parse_float=Decimal)  # never a float near money
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "-", f"not valid TOML: {e}") from None


def validate(model: type[pydantic.BaseModel], data: dict[str, Any], path: Path) -> Any:
    """Validate with pydantic, turning the first error into a ConfigError naming the key."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as e:
        errors = e.errors()
        # A misspelt key also shows up as a missing one; name the misspelling, it is the cause.
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        key = ".".join(str(p) for p in err["loc"]) or "-"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        raise ConfigError(path, key, msg) from None
