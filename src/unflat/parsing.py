"""tyro parsing of a dataclass config with one-line errors: what every `unflat` command (and `unflat view`,
`unflat evaluate`, the demo) parses its options with. Its own module so that no part of unflat imports the CLI.

tyro reports a parse failure as a structured event (``tyro._errors.on_parse_error``, tyro >= 1.0.17) just before
it would draw its error box: :func:`error_line` turns that event into one line, and the hook raises it as a
``UserError``, so tyro never prints the box and nothing here reads tyro's printed text.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence, TypeVar, overload, Literal

from unflat.config import check_finite
from unflat.errors import UserError

T = TypeVar("T")


class ParseError(UserError):
    """tyro rejected the command line; the message is one line and names the flag."""


def _flag(argument: Any) -> str:
    """How the user spells ``argument`` (a tyro ArgumentDefinition): its flags, or its metavar if positional."""
    lowered = getattr(argument, "lowered", None)
    names = tuple(getattr(lowered, "name_or_flags", ()) or ())
    if names and str(names[0]).startswith("-"):
        return "/".join(map(str, names))
    metavar = getattr(lowered, "metavar", None)
    return str(metavar or (names[0] if names else "argument"))


def error_line(event: Any) -> str:
    """One line describing a tyro ``ParseErrorEvent`` (new event kinds tyro may add fall back to their name)."""
    from tyro import _errors as e

    if isinstance(event, e.UnrecognizedArgs):
        return "unrecognized arguments: " + " ".join(event.tokens)
    if isinstance(event, e.MissingArgs):
        missing = ", ".join(_flag(ctx.arg) for ctx in event.missing_arguments)
        extra = f" (unrecognized: {' '.join(event.unrecognized_tokens)})" if event.unrecognized_tokens else ""
        return f"missing required argument{'s' if len(event.missing_arguments) != 1 else ''}: {missing}{extra}"
    if isinstance(event, e.InvalidChoice):
        return f"{_flag(event.argument)}: invalid choice {event.value!r} (choose from {', '.join(event.choices)})"
    if isinstance(event, e.BadValue):
        if event.offending_value is not None:
            return f"{_flag(event.argument)}: unexpected value {event.offending_value!r}"
        return f"{_flag(event.argument)}: expected more values"
    if isinstance(event, e.InstantiationFailure):
        where = _flag(event.argument) if event.argument is not None else "arguments"
        message = " ".join(str(event.message).split())
        return f"{where}: {message}"
    if isinstance(event, e.MissingSubcommand):
        choices = ", ".join(getattr(event.subcommand_spec, "parser_from_name", {}) or ())
        found = f"unknown {event.found_token!r}; " if event.found_token else ""
        return f"{found}choose one of: {choices}"
    if isinstance(event, e.MutexConflict):
        return f"{event.first_token} and {event.second_token} cannot be given together"
    if isinstance(event, e.SubcommandConflict):
        return f"{event.attempted} conflicts with {event.already_selected} (selected by {event.trigger_flag})"
    return f"invalid arguments ({type(event).__name__})"


def renamed_flags(cls: type, tokens: Sequence[str]) -> list[str]:
    """For each of ``tokens`` that is a flag of ``cls``'s flat era (its ``flat_names``): where it went ("--d-lr is
    now --discriminator.lr"), or that it no longer applies."""
    table: dict[str, str | None] = dict(getattr(cls, "flat_names", {}) or {})
    notes = []
    for token in tokens:
        flag = token.split("=", 1)[0]
        name = flag[2:].replace("-", "_") if flag.startswith("--") else ""
        negated = name not in table and name.startswith("no_") and name[3:] in table
        key = name[3:] if negated else name
        if key not in table:
            continue
        place = table[key]
        if place is None:
            notes.append(f"{flag} no longer applies to this method")
            continue
        group, _, leaf = place.rpartition(".")
        notes.append(f"{flag} is now --{group}.{'no-' if negated else ''}{leaf}".replace("_", "-"))
    return notes


@overload
def parse(cls: type[T], args: Sequence[str], prog: str, description: str | None = None, default: T | None = None,
          *, known_only: Literal[False] = False) -> T: ...
@overload
def parse(cls: type[T], args: Sequence[str], prog: str, description: str | None = None, default: T | None = None,
          *, known_only: Literal[True]) -> tuple[T, list[str]]: ...
def parse(cls, args, prog, description=None, default=None, *, known_only=False):
    """tyro parse with one-line errors. --help prints the full generated help and exits 0.

    ``known_only``: parse only ``cls``'s flags and return ``(parsed, the other arguments)`` (tyro's
    ``return_unknown_args``; no --help of its own, so --help stays among the other arguments).
    """
    import tyro
    from tyro._errors import on_parse_error

    def hook(event: Any) -> None:
        from tyro import _errors as e

        moved = renamed_flags(cls, event.tokens) if isinstance(event, e.UnrecognizedArgs) else []
        raise ParseError(f"{error_line(event)} ({'; '.join([*moved, f'see `{prog} --help`'])})")

    kwargs: dict[str, Any] = {"default": default} if default is not None else {}
    if known_only:
        kwargs |= {"return_unknown_args": True, "add_help": False}
    with on_parse_error(hook):
        parsed = tyro.cli(cls, args=list(args), prog=prog, description=description, **kwargs)
    value = parsed[0] if known_only else parsed
    if dataclasses.is_dataclass(value):
        check_finite(value)  # tyro accepts 'nan' and 'inf' for a float
    return parsed
