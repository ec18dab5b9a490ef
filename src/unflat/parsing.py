"""tyro parsing of a dataclass config with one-line errors: what every `unflat` command (and `unflat view`,
`unflat evaluate`, the demo) parses its options with. Its own module so that no part of unflat imports the CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import io
from typing import Sequence, TypeVar

from unflat.config import check_finite
from unflat.errors import UserError

T = TypeVar("T")


def parse(cls: type[T], args: Sequence[str], prog: str, description: str | None = None, default: T | None = None) -> T:
    """tyro parse with one-line errors. --help prints the full generated help and exits 0."""
    buffer = io.StringIO()
    wants_help = any(a in ("-h", "--help") for a in args)
    kwargs = {"default": default} if default is not None else {}
    try:
        with contextlib.redirect_stderr(buffer), contextlib.redirect_stdout(buffer):
            parsed = tyro_cli(cls, args=list(args), prog=prog, description=description, **kwargs)
    except SystemExit as exc:
        text = buffer.getvalue()
        if wants_help or exc.code == 0:
            print(text, end="")
            raise SystemExit(0) from None
        detail = _first_error_line(text)
        raise UserError(f"{detail} (see `{prog} --help`)") from None
    if dataclasses.is_dataclass(parsed):
        check_finite(parsed)  # tyro accepts 'nan' and 'inf' for a float
    return parsed


def _first_error_line(text: str) -> str:
    """The message inside tyro's error box: the lines between the title and the first rule, joined."""
    lines = [line.strip().strip("│|").strip() for line in text.splitlines()]
    body: list[str] = []
    started = False
    for line in lines:
        is_rule = bool(line) and set(line) <= set("─━╭╮╰╯-+ ")
        if not started:
            started = bool(line) and not is_rule and not line.startswith("usage")
            continue  # skip the title line
        if is_rule:
            if body:
                break
            continue
        if line:
            body.append(line)
    return " ".join(body) or "invalid arguments"


def tyro_cli(cls, **kwargs):
    import tyro

    return tyro.cli(cls, **kwargs)
