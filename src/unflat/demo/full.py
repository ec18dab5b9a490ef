"""`unflat demo --full`: train a 3D generator from scratch on embedded data, on a CPU, in minutes.

1. ``unflat dataset synth``: render procedural chairs (exact ground-truth meshes) with the OpenGL renderer.
2. ``unflat train iggan --preset small`` (1,500 steps): a voxel GAN trained through that non-differentiable renderer.
3. ``unflat generate`` / ``unflat export``: sample grid, voxel grids, GLB meshes, and a turntable.

Re-running continues where it stopped (the dataset is reused, the run resumes from its checkpoint).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from unflat.demo.config import DemoConfig, pretrain_steps
from unflat.demo.steps import DemoSteps
from unflat.engine.progress import console

FULL_ENTRIES = {"data", "data.partial", "run", "samples", "meshes", "turntable.gif"}
"""What `unflat demo --full` writes into --out."""

def make_data(cfg: DemoConfig) -> Path:
    from unflat.data.commands import SynthConfig, run_synth
    from unflat.data.format import DatasetError, open_dataset

    data = cfg.out / "data"
    try:
        open_dataset(data)
        console.print(f"reusing dataset {data}")
        return data
    except DatasetError:
        pass
    console.print(f"rendering {cfg.num_shapes} procedural {'/'.join(cfg.category)} shapes at {cfg.resolution}^2 -> {data}")
    run_synth(SynthConfig(out=data, category=cfg.category, num_shapes=cfg.num_shapes, resolution=cfg.resolution,
                          views_per_shape=1, seed=cfg.seed, material=cfg.material, overwrite=True))
    return data


def train_generator(cfg: DemoConfig, data: Path) -> Path:
    from unflat.engine.checkpoint import latest_checkpoint
    from unflat.methods.registry import get_method
    from unflat.runs import resume, train

    run = cfg.out / "run"
    if latest_checkpoint(run) is not None:
        console.print(f"resuming {run}")
        resume(run, {"max_steps": cfg.max_steps})
        return run
    from unflat.parsing import parse

    spec = get_method(cfg.method)
    train_args = list(cfg.train_args)
    if cfg.method == "iggan" and "--renderer.pretrain-steps" not in train_args:
        # a short demo must leave steps for the GAN after the proxy renderer's pre-training
        train_args += ["--renderer.pretrain-steps", str(pretrain_steps(cfg.max_steps))]
    small = parse(spec.config_cls, train_args, f"unflat train {spec.name}", default=spec.config("small"))
    train_cfg = dataclasses.replace(
        small, data=data, out=run, seed=cfg.seed, device=cfg.device, max_steps=cfg.max_steps,
        checkpoint_every=max(cfg.max_steps // 4, 1), sample_every=max(cfg.max_steps // 4, 1), log_every=max(cfg.max_steps // 20, 1),
    )
    console.print(f"training {cfg.method} (small preset) for {cfg.max_steps} steps -> {run}")
    train(spec, train_cfg)
    return run


def sample_outputs(cfg: DemoConfig, run: Path) -> dict[str, Path]:
    import trimesh

    from unflat.runs import load_run
    from unflat.errors import UserError
    from unflat.export.images import save_mesh_turntable
    from unflat.render.gl_backends import create_renderer

    loaded = load_run(run, cfg.device)
    console.print(f"sampling {cfg.num_samples} shapes from step {loaded.step}")
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


def run_full(cfg: DemoConfig, steps: DemoSteps) -> list[tuple[str, Path]]:
    """The train-from-scratch demo: dataset, iggan (or mvtriplane) small, samples -> what to open."""
    with steps.step("dataset: procedural shapes"):
        data = make_data(cfg)
    with steps.step(f"train {cfg.method} ({cfg.max_steps} steps)"):
        run = train_generator(cfg, data)
    with steps.step("samples, meshes, turntable"):
        outputs = sample_outputs(cfg, run)
    opened = [("dataset preview", data / "preview.png"), ("training run", run)]
    return opened + [(name, path) for name, path in outputs.items()]
