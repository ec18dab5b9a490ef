"""`unflat demo`: the whole product on a CPU in minutes.

Default: the shipped reconstructor turns the photos that scikit-image / scikit-learn / matplotlib ship and
held-back embedded renders into textured GLBs and turntables, the shipped 3D generator samples and exports new
shapes, a small model trains on embedded data, is interrupted and resumes; one sample sheet shows it all.
`--full`: train a 3D generator from scratch instead (unflat.demo.full).

Re-running continues where it stopped: datasets are reused, an unfinished training resumes.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from unflat.demo.config import DemoConfig
from unflat.demo.full import FULL_ENTRIES
from unflat.demo.shipped import ENTRIES as SHIPPED_ENTRIES
from unflat.demo.steps import DemoSteps
from unflat.demo.train import ENTRIES as TRAIN_ENTRIES
from unflat.engine.progress import console

SHEET = "sheet.png"
DEMO_ENTRIES = FULL_ENTRIES | SHIPPED_ENTRIES | TRAIN_ENTRIES | {SHEET}
"""Everything either demo writes into --out."""

__all__ = ["DemoConfig", "DEMO_ENTRIES", "claim_demo_dir", "main"]


def claim_demo_dir(out: Path) -> None:
    """The demo writes its outputs (DEMO_ENTRIES) into --out: only into a new or empty folder, one it wrote
    before (marker or nothing but those names), never among a user's files."""
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


def run_shipped(cfg: DemoConfig, steps: DemoSteps) -> list[tuple[str, Path]]:
    """The default demo's steps -> what to open."""
    from unflat.demo import shipped
    from unflat.demo.sheet import write_sheet
    from unflat.demo.train import train_and_resume

    shipped.check_models(cfg)
    photos, heldout, generated = [], [], []
    opened: dict[str, Path] = {}
    if cfg.photos or cfg.heldout:
        with steps.step(f"reconstruct photos + held-back renders ({cfg.reconstructor})"):
            method = shipped.load_reconstructor(cfg)
            photos = shipped.write_photos(cfg)
            heldout = shipped.write_heldout(cfg, method.image_resolution)
            opened.update(shipped.reconstruct(cfg, method, photos, heldout))
    if cfg.generate:
        with steps.step(f"generate {len(cfg.generate)} shapes ({cfg.generator})"):
            generated = shipped.generate(cfg)
            opened["generated shapes"] = cfg.out / "generated"
    shown = None
    if cfg.train_steps:
        with steps.step(f"train {cfg.method} {cfg.preset} to step {cfg.train_steps}: Ctrl-C at {cfg.interrupt_at}, then --resume"):
            shown = train_and_resume(cfg)
            opened["training run"] = shown.run
            if shown.resumed_from is not None:
                console.print(f"[bold]resumed at step {shown.resumed_from}, finished at step {shown.final_step}[/]",
                              highlight=False)
    with steps.step("sample sheet"):
        sheet = write_sheet(cfg.out / SHEET, cfg.out / "reconstructions", heldout, photos, generated,
                            None if shown is None else shown.run, cfg.method)
        opened["sample sheet"] = sheet
    return list(opened.items())


def main(args: list[str]) -> int:
    from unflat.parsing import parse

    cfg = parse(DemoConfig, args, "unflat demo", (DemoConfig.__doc__ or "").split("\n\n")[0])
    cfg.validate()
    claim_demo_dir(cfg.out)
    if cfg.full:
        from unflat.demo.full import run_full

        steps = DemoSteps(3)
        opened = run_full(cfg, steps)
    else:
        steps = DemoSteps(1 + bool(cfg.photos or cfg.heldout) + bool(cfg.generate) + bool(cfg.train_steps))
        opened = run_shipped(cfg, steps)
    console.print()
    console.print(steps.summary())
    console.print(f"\n[bold green]demo finished in {steps.elapsed() / 60:.1f} min[/]")
    for name, path in opened:
        console.print(f"  {name:<17}: {escape(str(path))}", highlight=False)
    console.print(f"  {'look at it all':<17}: unflat view {escape(str(cfg.out))}", highlight=False)
    return 0
