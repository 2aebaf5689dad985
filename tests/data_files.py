"""The mall's data files (membership, experiments, scenes) are checked when they are read:
a test writes a bad one and reads the loader's refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


def refusal(folder: Path, name: str, text: str, load: Callable[[Path], object],
            error: type[Exception]) -> str:
    """The message `load` refuses the file `text` with; it must name the file."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(error) as refused:
        load(path)
    message = str(refused.value)
    assert str(path) in message, message
    return message
