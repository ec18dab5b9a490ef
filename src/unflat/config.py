"""Run configuration: dataclasses whose field docstrings become ``--help`` text.

Every method's config subclasses :class:`RunConfig`: the engine's flags (``--max-steps``, ``--batch-size``,
``--device`` ...) sit at the top, and a method groups its own fields by component in nested dataclasses
(``--generator.channel-max``, ``--discriminator.lr``), each group a section of ``--help``.

A config class may name ``flat_names`` (old flat field -> its dotted place, or None for a field that no longer
applies): runs saved before the nesting load through :func:`migrate_flat_keys`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from unflat.errors import ConfigError, UserError

C = TypeVar("C", bound="RunConfig")


@dataclass
class RunConfig:
    """Settings every training run has, whatever the method."""

    data: Path | None = None
    """Dataset directory made by `unflat dataset ...` (synth, render, images or from-generator)."""
    out: Path | None = None
    """Run directory; default runs/METHOD-YYYYmmdd-HHMMSS."""
    seed: int = 0
    """One seed for everything: initialisation, data order, noise, cameras."""
    max_steps: int = 1000
    """Total training steps (one step = one update of every network of the method)."""
    batch_size: int = 8
    """Images per step on each process (the global batch is this times the number of processes)."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where to train; auto picks cuda, then mps, then cpu."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Autocast precision: auto = bf16 on CUDA, fp32 elsewhere."""
    compile: bool = False
    """Compile the networks with torch.compile (CUDA; first steps are slower)."""
    tf32: bool = True
    """Allow TF32 matrix maths on NVIDIA GPUs."""
    num_workers: int = 0
    """Data loader worker processes (0 = load in the main process)."""
    checkpoint_every: int = 500
    """Write a checkpoint every N steps (and at the end, and on Ctrl-C / SIGTERM)."""
    keep_checkpoints: int = 3
    """How many step-XXXXXXXX.pt checkpoints to keep besides latest.pt (0 keeps all)."""
    log_every: int = 10
    """Write metrics.jsonl / TensorBoard and print a summary line every N steps."""
    sample_every: int = 500
    """Save a sample grid every N steps (0 = only at the end)."""
    grad_clip: float = 0.0
    """Clip each network's gradient norm to this value before its update (0 = off)."""
    nan_policy: Literal["stop", "rollback"] = "stop"
    """On NaN/Inf losses or gradients: stop (keeping the last good checkpoint), or roll back to it and lower the learning rates."""
    rollback_lr_factor: float = 0.5
    """Learning-rate multiplier applied at each rollback (nan_policy=rollback)."""
    max_rollbacks: int = 3
    """Give up after this many rollbacks."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    eval_every: int = 0
    """Every N steps, log a quick FID/KID of eval_samples samples on the domain backbone (backbone runs: held-out accuracy); 0 = off."""
    eval_samples: int = 256
    """Samples for the --eval-every FID/KID."""
    eval_backbone: Path | None = None
    """Domain backbone for --eval-every; default DATA/backbone.safetensors (made by `unflat train backbone --data DATA`)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field. Subclasses extend this."""
        positive = ["max_steps", "batch_size", "checkpoint_every", "log_every"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)}")
        for name in ["keep_checkpoints", "sample_every", "num_workers", "max_rollbacks", "eval_every"]:
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if self.eval_samples <= 0:
            raise ConfigError("eval_samples", f"must be > 0, got {self.eval_samples}")
        if self.grad_clip < 0:
            raise ConfigError("grad_clip", f"must be >= 0, got {self.grad_clip}")
        if not 0 < self.rollback_lr_factor <= 1:
            raise ConfigError("rollback_lr_factor", f"must be in (0, 1], got {self.rollback_lr_factor}")


def field_value(cfg: object, path: str) -> Any:
    """The value of a dotted field path ("discriminator.lr") of a (nested) config."""
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return cfg


def replace_fields(cfg: C, changes: dict[str, Any]) -> C:
    """A copy of ``cfg`` with each dotted field path in ``changes`` set ("export.mesh_resolution": 64); the groups
    on the way are copied, so ``cfg`` itself stays as it was."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in changes.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = value
    for head, inner in nested.items():
        top[head] = replace_fields(getattr(cfg, head), inner)
    return dataclasses.replace(cfg, **top)


def require_positive(cfg: object, *names: str) -> None:
    """Helper for subclasses' validate(): each named (dotted) field must be > 0."""
    for name in names:
        value = field_value(cfg, name)
        if not value > 0:
            raise ConfigError(name, f"must be > 0, got {value}")


# ---------------------------------------------------------------------------------------------
# YAML round trip
# ---------------------------------------------------------------------------------------------
def to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def check_finite(cfg: object, prefix: str = "") -> None:
    """No config value is NaN or infinite: every float field means a size, rate or angle (``--radius inf``
    wrote a dataset its own validator rejects; ``--lr nan`` trains nothing). Raises ConfigError naming the field."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(prefix + f.name, f"must be a finite number, got {value!r}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_finite(value, f"{prefix}{f.name}.")


def config_to_yaml(cfg: object) -> str:
    return yaml.safe_dump(to_plain(cfg), sort_keys=False)


def _coerce(kind: Any, value: Any, field: str) -> Any:
    """``value`` (plain YAML data) as the type ``kind`` of the field at dotted path ``field``."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value, field) if len(non_none) == 1 else value
    if origin is Literal:
        if value not in args:
            raise ConfigError(field, f"must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if origin is tuple:
        if args and args[-1] is Ellipsis:
            return tuple(_coerce(args[0], v, field) for v in value)
        return tuple(_coerce(a, v, field) for a, v in zip(args, value))
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise ConfigError(field, f"must be a mapping of {kind.__name__} fields, got {value!r}")
        return config_from_dict(kind, value, f"{field}.")
    if kind is Path:
        return Path(value)
    if kind is float and isinstance(value, int):
        return float(value)
    if kind in (int, float, str, bool) and not isinstance(value, kind):
        raise ConfigError(field, f"must be a {kind.__name__}, got {value!r}")
    return value


def migrate_flat_keys(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each flat key that ``cls.flat_names`` lists (a run saved before the configs nested) moved to
    its dotted place (``d_channel_base: 64`` -> ``discriminator: {channel_base: 64}``); a name mapped to None no
    longer applies to the method and is dropped. Keys that are fields of ``cls`` stay as they are."""
    table: dict[str, str | None] = dict(getattr(cls, "flat_names", {}))
    names = {f.name for f in dataclasses.fields(cls)}
    if not table or not (set(data) - names) & set(table):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in names or key not in table:
            both = isinstance(out.get(key), dict) and isinstance(value, dict)
            out[key] = merge_nested(out[key], value) if both else value
        elif table[key] is not None:
            set_path(out, str(table[key]), value)
    return out


def set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    """tree[a][b][c] = value for path "a.b.c" (making the inner mappings)."""
    *parents, leaf = path.split(".")
    for part in parents:
        inner = tree.get(part)
        if not isinstance(inner, dict):
            inner = tree[part] = {} if inner is None else inner
        tree = inner
    tree[leaf] = value


def nest_dotted_keys(data: dict[str, Any]) -> dict[str, Any]:
    """``{"discriminator.lr": 0.1}`` -> ``{"discriminator": {"lr": 0.1}}`` (config files may write either)."""
    if not any("." in key for key in data):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if "." in key:
            set_path(out, key, value)
        else:
            out[key] = merge_nested(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def merge_nested(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s values, mappings merged key by key (a partial group keeps the others' values)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = merge_nested(out[key], value) if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out


def config_from_dict(cls: type[C], data: dict[str, Any], prefix: str = "") -> C:
    """Build a config dataclass from plain data (as read from YAML), checking names and types.

    Flat keys of runs saved before the configs nested move to their groups (:func:`migrate_flat_keys`). A field
    missing from ``data`` takes the class's ``defaults_of_older_runs`` value where it names one (a field whose
    default changed: a saved config without it was written before the field existed, when the old behaviour was
    the only one; a group's field is named inside its group's mapping), else its default. ``prefix``: the dotted
    path of a nested group, for error messages.
    """
    data = migrate_flat_keys(cls, nest_dotted_keys(data))
    data = merge_nested(dict(getattr(cls, "defaults_of_older_runs", {})), data)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(prefix + sorted(unknown)[0], f"is not a field of {cls.__name__}")
    kwargs = {name: _coerce(hints[name], value, prefix + name) for name, value in data.items()}
    cfg = cls(**kwargs)
    if not prefix:
        check_finite(cfg)
    return cfg


def config_from_yaml(cls: type[C], text: str) -> C:
    return config_from_dict(cls, yaml.safe_load(text) or {})


# ---------------------------------------------------------------------------------------------
# Config files (`unflat train --config FILE.yaml`)
# ---------------------------------------------------------------------------------------------
RUN_CONFIG_HEADER = "# unflat run config (method: {method})\n"
_HEADER = re.compile(r"^# unflat run config \(method: ([^)\s]+)\)")


def run_config_text(method: str, cfg: object) -> str:
    """RUN/config.yaml: the header naming the method, then every field."""
    return RUN_CONFIG_HEADER.format(method=method) + config_to_yaml(cfg)


@dataclass(frozen=True)
class ConfigFile:
    """A YAML config file: its fields, the method it names (the run header or a ``method:`` key) and whether it
    is a run's saved config.yaml (every field, read exactly as resume reads it)."""

    path: Path
    fields: dict[str, Any]
    method: str | None
    saved_run: bool

    def on(self, base: C) -> C:
        """``base`` (a preset) with this file's fields; a saved run's config stands alone, as resume reads it."""
        cls = type(base)
        try:
            fields = migrate_flat_keys(cls, nest_dotted_keys(self.fields))
            cfg = config_from_dict(cls, fields if self.saved_run else merge_nested(to_plain(base), fields))
            check_finite(cfg)  # here, so that a NaN in the file is reported with the file's name
            return cfg
        except ConfigError as exc:
            raise UserError(f"{self.path}: {exc}") from None


def read_config_file(path: Path) -> ConfigFile:
    """Read ``path`` (YAML mapping of config fields; optional ``method: NAME``); one-line errors."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--config {path}: cannot read it ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"--config {path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UserError(f"--config {path}: must be a mapping of config fields (name: value)")
    header = _HEADER.match(text)
    method = data.pop("method", None)
    if header and method is not None and method != header.group(1):
        raise UserError(f"--config {path}: names two methods ({header.group(1)} in its header, {method} as a key)")
    method = header.group(1) if header else method
    if method is not None and not isinstance(method, str):
        raise UserError(f"--config {path}: method must be a name, got {method!r}")
    return ConfigFile(path, data, method, saved_run=header is not None)
