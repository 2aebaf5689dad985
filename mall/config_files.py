"""Reading the mall's TOML files (fault profiles, risk-control rules) into their pydantic
models, with errors that name the file, the entry and the field, so a bad file stops the
mall at start with a message instead of a traceback."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_toml(path: Path, model: type[M], error: type[Exception]) -> M:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise error(f"{path}: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = [f"{path}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
                    f"{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        raise error("\n".join(problems)) from exc
