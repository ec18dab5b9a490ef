"""`unflat models` (list the zoo) and `unflat models pack RUN --name NAME --out DIR` (a run -> a zoo model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tyro.conf import Positional

from unflat.errors import UserError
from unflat.parsing import parse

USAGE = """usage: unflat models                 list the models that ship with unflat (and those in $UNFLAT_ZOO_DIR)
       unflat models pack RUN --name NAME --out DIR [--metrics FILE.json ...] [--recipe TEXT] [--command TEXT ...]

Use a model wherever a run directory goes: `unflat reconstruct --model NAME photo.jpg`, `unflat generate --model NAME`,
`unflat invert --model NAME IMAGE`, `unflat dataset from-generator --model NAME --out DIR` (or zoo:NAME as the run).
"""


@dataclass
class ListArgs:
    """List the zoo's models: name, method, kind, size, key metrics and the feature network of each."""

    verbose: bool = False
    """Also print each model's files, training commands and licences."""


@dataclass
class PackArgs:
    """Turn a trained run into a zoo model: NAME.safetensors (fp16 weights of the networks inference needs) and
    NAME.json (config, data recipe, commands, git hash, metrics, licences, sha256)."""

    run: Positional[Path]
    """Run directory (or checkpoint file) to pack."""
    name: str
    """Model name (lower-case letters, digits, '.', '_', '-'), e.g. mvtriplane-6cat."""
    out: Path
    """Folder to write NAME.safetensors and NAME.json into (src/unflat/zoo/shipped to ship it with unflat)."""
    metrics: tuple[Path, ...] = ()
    """`unflat evaluate` metrics.json files (or {"metrics": [{name, value, feature_network}]}) whose numbers go into the manifest."""
    recipe: str = ""
    """How the training data was made (e.g. the `unflat dataset synth ...` command and what it gives)."""
    command: tuple[str, ...] = ()
    """The exact commands that trained the model, in order (repeat --command)."""
    licence: tuple[str, ...] = ()
    """Licences of what the model used beyond unflat and its embedded data: WHAT=LICENCE (repeatable)."""
    description: str = ""
    """One line about the model (default: the method's description)."""
    git_commit: str | None = None
    """Commit of the unflat that trained the model (default: this checkout's, as it packs)."""
    overwrite: bool = False
    """Replace a model of the same name in --out."""


def size_text(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.0f} kB"


def metric_text(metrics: list[dict], limit: int = 3) -> str:
    if not metrics:
        return "no metrics recorded"
    parts = [f"{m['name']} {m['value']:.4g} [{m['feature_network']}]" for m in metrics[:limit]]
    return "; ".join(parts) + (f"; +{len(metrics) - limit} more" if len(metrics) > limit else "")


def cmd_list(args: list[str]) -> int:
    from unflat.zoo.format import ZOO_DIR_ENV, extra_dirs, shipped_dir
    from unflat.zoo.load import available

    a = parse(ListArgs, args, "unflat models", USAGE)
    models = available()
    if not models:
        print(f"no models: none ships with this unflat yet ({shipped_dir()}) and ${ZOO_DIR_ENV} names no folder "
              "of models; pack one with `unflat models pack RUN --name NAME --out DIR`")
        return 0
    total = 0
    print(f"{'name':<24} {'method':<12} {'kind':<14} {'size':>8}  key metrics [feature network]")
    for name, entry in models.items():
        m = entry.manifest
        total += m["weights"]["bytes"]
        where = "" if entry.shipped else f"  ({entry.manifest_path.parent})"
        print(f"{name:<24} {m['method']:<12} {m['kind']:<14} {size_text(m['weights']['bytes']):>8}  "
              f"{metric_text(m['metrics'])}{where}")
        if a.verbose:
            print(f"    {m['description']}; step {m['step']}, {m['parameters']:,} parameters, created {m['created']}, "
                  f"git {m['git'].get('commit')}")
            print(f"    files: {entry.manifest_path}, {entry.weights_path} (sha256 {m['weights']['sha256'][:16]}...)")
            for command in m["commands"]:
                print(f"    trained with: {command}")
            for licence in m["licences"]:
                print(f"    licence: {licence['what']}: {licence['licence']}")
    extra = extra_dirs()
    print(f"{len(models)} model{'s' if len(models) != 1 else ''}, {size_text(total)} of weights"
          + (f"; also searched ${ZOO_DIR_ENV}: {', '.join(map(str, extra))}" if extra else ""))
    return 0


def cmd_pack(args: list[str]) -> int:
    from unflat.zoo.metrics import read_metrics_file
    from unflat.zoo.pack import pack_run
    from unflat.zoo.format import check_name
    from unflat.zoo.load import load_model

    a = parse(PackArgs, args, "unflat models pack", PackArgs.__doc__)
    check_name(a.name)
    for suffix in (".json", ".safetensors"):
        target = a.out / f"{a.name}{suffix}"
        if target.exists() and not a.overwrite:
            raise UserError(f"{target} exists; pass --overwrite to replace model '{a.name}' or choose another --name")
    if not Path(a.run).exists():
        raise UserError(f"{a.run}: no such run directory or checkpoint")
    metrics = [m for path in a.metrics for m in read_metrics_file(path)]  # before the work: a bad file fails fast
    entry = pack_run(a.run, a.name, a.out, metrics, a.recipe, list(a.command), list(a.licence), a.description,
                     a.git_commit)
    load_model(entry, "cpu")  # the files just written load, hash and shapes checked
    m = entry.manifest
    print(f"packed {a.run} (step {m['step']}, {m['method']}) as '{a.name}': {entry.weights_path} "
          f"({size_text(m['weights']['bytes'])}, {m['parameters']:,} parameters, networks "
          f"{', '.join(m['networks'])}) and {entry.manifest_path}")
    return 0


def main(args: list[str]) -> int:
    if args and args[0] == "pack":
        return cmd_pack(args[1:])
    if args and args[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if args and not args[0].startswith("-"):
        raise UserError(f"unknown `unflat models` sub-command '{args[0]}' (use `unflat models` or `unflat models pack RUN ...`)")
    return cmd_list(args)
