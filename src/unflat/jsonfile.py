"""Reading a JSON file the user handed over, with one-line errors that name it (what is missing or unreadable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unflat.errors import UserError


def read_json(path: str | Path, label: str, error: type[UserError] = UserError, hint: str = "") -> Any:
    """The parsed content of ``path``; ``error`` ("LABEL: no such file" or "LABEL: not readable JSON (why)", then
    "; HINT" when given) for a missing, unreadable, non-UTF-8 or malformed file. label: how the message names the
    file, e.g. the path itself or "--metrics PATH"."""
    tail = f"; {hint}" if hint else ""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{label}: no such file{tail}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{label}: not readable JSON ({type(exc).__name__}: {str(exc).splitlines()[0]}){tail}") from None
