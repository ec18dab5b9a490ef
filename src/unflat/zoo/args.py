"""``--model NAME`` on the commands that load a run: it becomes the run positional ``zoo:NAME``, which
``unflat.methods.registry.load_run`` loads from the zoo (so no command needs a special case)."""

from __future__ import annotations

from unflat.errors import UserError

ZOO_PREFIX = "zoo:"
"""``zoo:NAME`` stands for a zoo model wherever a run directory is accepted."""
MODEL_HELP = "\n\nRUN may be --model NAME (or zoo:NAME): a trained model of the zoo (`unflat models` lists them)."


def with_model(args: list[str]) -> list[str]:
    """``args`` with ``--model NAME`` / ``--model=NAME`` replaced by a leading ``zoo:NAME`` positional."""
    rest, model = list(args), None
    for i, arg in enumerate(rest):
        if arg == "--model":
            if i + 1 >= len(rest) or rest[i + 1].startswith("-"):
                raise UserError("--model needs a model name (`unflat models` lists them)")
            model = rest[i + 1]
            del rest[i : i + 2]
            break
        if arg.startswith("--model="):
            model = arg.split("=", 1)[1]
            del rest[i]
            break
    if model is None:
        return rest
    if not model:
        raise UserError("--model needs a model name (`unflat models` lists them)")
    return [f"{ZOO_PREFIX}{model}", *rest]
