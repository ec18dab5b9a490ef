"""``unflat view RUN|DIR``: serve a run or output folder on http://127.0.0.1:PORT/."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Sequence

import tyro

from unflat.export.viewer.server import ViewerBackend, serve


@dataclass
class ViewArgs:
    """Browse samples, meshes (rotate/zoom in 3D), videos and training curves in a local web page."""

    path: Annotated[Path, tyro.conf.Positional]
    """A run directory or any folder of outputs (only files under it are served)."""
    port: int = 8000
    """Port to listen on (0 picks a free one)."""
    host: str = "127.0.0.1"
    """Address to bind. The default is reachable from this computer only; 0.0.0.0 exposes the folder to your network."""
    open_browser: bool = False
    """Open the page in the default web browser."""
    sampler: bool = True
    """When PATH is a run with a checkpoint, load its generator so the page can render any seed/class on demand."""
    device: str = "auto"
    """Device for the on-demand sampler: cpu, cuda, mps or auto."""


def main(argv: Sequence[str] | None = None) -> int:
    from unflat.parsing import parse  # the shared one-line-error parser

    args = parse(ViewArgs, list(sys.argv[1:] if argv is None else argv), "unflat view")
    from unflat.errors import ConfigError, UserError

    if not args.path.is_dir():
        raise UserError(f"{args.path} is not a folder")
    if not 0 <= args.port <= 65535:
        raise ConfigError("port", f"must be in [0, 65535] (0 picks a free one), got {args.port}")
    backend = load_backend(args.path, args.device) if args.sampler else None
    try:
        serve(args.path, host=args.host, port=args.port, open_browser=args.open_browser, backend=backend)
    except OSError as exc:  # binding: a port in use or reserved, a host name that does not resolve
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); choose another --port "
                        "(0 picks a free one) or --host") from None
    return 0


def find_run(folder: Path, depth: int = 3) -> Path | None:
    """``folder`` when it is a run with a checkpoint, else the first such run below it (sorted, up to ``depth``
    levels down, hidden folders skipped): `unflat view runs/demo` samples from runs/demo/run."""
    if (folder / "checkpoints" / "latest.pt").exists():
        return folder
    if depth == 0:
        return None
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))
    except OSError:
        return None
    return next((found for child in children if child.name != "checkpoints"
                 for found in [find_run(child, depth - 1)] if found is not None), None)


def load_backend(folder: Path, device: str = "auto") -> ViewerBackend | None:
    """A sampler over the latest checkpoint of the run at or below ``folder``, or None (with a note)."""
    run_dir = find_run(folder)
    if run_dir is None:
        return None
    from unflat.runs import load_run
    from unflat.export.viewer.backend import MethodSampleBackend

    print(f"loading the generator of {run_dir} for on-demand samples (--no-sampler skips this)", file=sys.stderr)
    try:
        loaded = load_run(run_dir, device)
    except Exception as error:  # noqa: BLE001 (the viewer is still useful without the sampler)
        print(f"note: on-demand sampling is off ({type(error).__name__}: {error})", file=sys.stderr)
        return None
    num_classes = loaded.method.info.num_classes
    return MethodSampleBackend(loaded.method, num_classes if num_classes > 1 else None)
