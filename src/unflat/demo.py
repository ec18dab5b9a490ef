"""`unflat demo`: the whole product on embedded data, on a CPU, in minutes.

1. ``unflat dataset synth``: render procedural chairs (exact ground-truth meshes) with the OpenGL renderer.
2. ``unflat train iggan --preset small`` (1,500 steps): a voxel GAN trained through that non-differentiable renderer.
3. ``unflat generate`` / ``unflat export``: sample grid, voxel grids, GLB meshes, and a turntable.

Re-running continues where it stopped (the dataset is reused, the run resumes from its checkpoint).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from unflat.engine.progress import console


@dataclass
class DemoConfig:
    """Run unflat end to end on embedded data: make a dataset, train a 3D generator, sample meshes."""

    out: Path = Path("runs/demo")
    """Where everything goes: data/, run/, samples/, meshes/, turntable.gif."""
    method: Literal["iggan", "mvtriplane"] = "iggan"
    """Which 3D generator to train (its `small` preset)."""
    category: tuple[str, ...] = ("chair",)
    """Embedded categories to learn (see `unflat dataset synth --help`)."""
    num_shapes: int = 300
    """Shapes per category in the demo dataset (one unposed view each)."""
    resolution: int = 32
    """Image side of the demo dataset."""
    material: Literal["parts", "grey"] = "grey"
    """Surface colours of the demo data: grey suits iggan (its generator makes shape only); parts for mvtriplane."""
    max_steps: int = 1500
    """Training steps (the small preset's own schedule is longer; this keeps the demo to minutes)."""
    train_args: tuple[str, ...] = ()
    """Extra `unflat train METHOD` flags for the demo run. iggan's proxy-renderer pre-training is a tenth of
    --max-steps, at most 150, unless these flags set --renderer.pretrain-steps."""
    num_samples: int = 16
    """Samples in the final grid and meshes exported."""
    seed: int = 0
    """Seed for data, training and sampling."""
    device: str = "auto"
    """cpu, cuda, mps or auto."""


DEMO_ENTRIES = {"data", "data.partial", "run", "samples", "meshes", "turntable.gif"}


def claim_demo_dir(out: Path) -> None:
    """The demo writes data/, run/, samples/, meshes/ and turntable.gif into --out: only into a new or empty
    folder, one it wrote before (marker or nothing but those names), never among a user's files."""
    from unflat.errors import UserError
    from unflat.outputs import OUTPUT_MARKER, claim_output_dir, refuse_file

    refuse_file(out)
    if out.is_dir() and not (out / OUTPUT_MARKER).exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in DEMO_ENTRIES)
        if foreign:
            raise UserError(f"{out}: folder holds {', '.join(foreign[:3])}, which the demo did not write, so writing its "
                            "outputs there could replace your files; choose a new --out")
        from unflat.data.format import is_unflat_dataset
        from unflat.engine.checkpoint import is_run_dir

        earlier_demo = is_run_dir(out / "run") and (not (out / "data").exists() or is_unflat_dataset(out / "data"))
        if any(out.iterdir()) and not earlier_demo:
            raise UserError(f"{out}: folder is not empty and is not a demo folder unflat wrote (no {OUTPUT_MARKER}, "
                            "no run/ of unflat's), so writing there could replace your files; choose a new --out")
        if any(out.iterdir()):  # a demo folder of an earlier unflat: mark it as unflat's
            (out / OUTPUT_MARKER).write_text('{"written_by": "unflat demo"}\n')
    claim_output_dir(out, "demo")


def make_data(cfg: DemoConfig) -> Path:
    from unflat.data.commands import SynthConfig, run_synth
    from unflat.data.format import DatasetError, open_dataset

    data = cfg.out / "data"
    try:
        open_dataset(data)
        console.print(f"[1/3] reusing dataset {data}")
        return data
    except DatasetError:
        pass
    console.print(f"[1/3] rendering {cfg.num_shapes} procedural {'/'.join(cfg.category)} shapes at {cfg.resolution}^2 -> {data}")
    run_synth(SynthConfig(out=data, category=cfg.category, num_shapes=cfg.num_shapes, resolution=cfg.resolution,
                          views_per_shape=1, seed=cfg.seed, material=cfg.material, overwrite=True))
    return data


def train_generator(cfg: DemoConfig, data: Path) -> Path:
    from unflat.engine.checkpoint import latest_checkpoint
    from unflat.methods.registry import get_method
    from unflat.runs import resume, train

    run = cfg.out / "run"
    if latest_checkpoint(run) is not None:
        console.print(f"[2/3] resuming {run}")
        resume(run, {"max_steps": cfg.max_steps})
        return run
    from unflat.parsing import parse

    spec = get_method(cfg.method)
    train_args = list(cfg.train_args)
    if cfg.method == "iggan" and "--renderer.pretrain-steps" not in train_args:
        # a short demo must leave steps for the GAN after the proxy renderer's pre-training
        train_args += ["--renderer.pretrain-steps", str(min(150, max(1, cfg.max_steps // 10)))]
    small = parse(spec.config_cls, train_args, f"unflat train {spec.name}", default=spec.config("small"))
    train_cfg = dataclasses.replace(
        small, data=data, out=run, seed=cfg.seed, device=cfg.device, max_steps=cfg.max_steps,
        checkpoint_every=max(cfg.max_steps // 4, 1), sample_every=max(cfg.max_steps // 4, 1), log_every=max(cfg.max_steps // 20, 1),
    )
    console.print(f"[2/3] training {cfg.method} (small preset) for {cfg.max_steps} steps -> {run}")
    train(spec, train_cfg)
    return run


def sample_outputs(cfg: DemoConfig, run: Path) -> dict[str, Path]:
    import trimesh

    from unflat.runs import load_run
    from unflat.errors import UserError
    from unflat.export.images import save_mesh_turntable
    from unflat.render.gl_backends import create_renderer

    loaded = load_run(run, cfg.device)
    console.print(f"[3/3] sampling {cfg.num_samples} shapes from step {loaded.step}")
    try:
        generated = loaded.method.generate(cfg.out / "samples", cfg.num_samples, cfg.seed, None)
        meshes = loaded.method.export(cfg.out / "meshes", min(cfg.num_samples, 4), cfg.seed, None, ("glb",))
    except UserError as error:  # a very short run: the generator makes no surface yet
        console.print(f"[yellow]note:[/] after {loaded.step} steps the generator makes no surface yet ({error}); "
                      f"train longer (the default --max-steps is {DemoConfig.max_steps})")
        return {"samples": run / "samples"}
    outputs = {"samples": cfg.out / "samples", "meshes": cfg.out / "meshes"}
    if meshes:
        mesh = trimesh.load(meshes[0], force="mesh")
        outputs["turntable"] = save_mesh_turntable(mesh, cfg.out / "turntable.gif", create_renderer("auto", 128), frames=24)
    outputs["files"] = Path(f"{len(generated)} generated files")
    return outputs


def main(args: list[str]) -> int:
    from unflat.parsing import parse

    cfg = parse(DemoConfig, args, "unflat demo", __doc__.split("\n\n")[0])
    start = time.perf_counter()
    claim_demo_dir(cfg.out)
    data = make_data(cfg)
    run = train_generator(cfg, data)
    outputs = sample_outputs(cfg, run)
    minutes = (time.perf_counter() - start) / 60
    console.print(f"\n[bold green]demo finished in {minutes:.1f} min[/]")
    console.print(f"  dataset preview : {data / 'preview.png'}")
    console.print(f"  training run    : {run}  (metrics.jsonl, samples/, tensorboard/)")
    for name, path in outputs.items():
        console.print(f"  {name:<16}: {path}")
    console.print(f"  look at it all  : unflat view {cfg.out}")
    return 0
