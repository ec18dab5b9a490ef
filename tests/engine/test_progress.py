"""The console summary line: losses, rate and ETA; a method's detail metrics stay out of it."""

from __future__ import annotations

from unflat.engine.progress import TrainingProgress, console
from unflat.methods.iggan import IGGAN


def test_summary_leaves_out_hidden_metric_prefixes():
    progress = TrainingProgress(total_steps=10, first_step=0, images_per_step=4, description="test")
    values = {"loss_G": 1.5, "opengl_wait_ms": 3.0, "opengl_upload_ms": 7.0, "opengl_faces_per_mesh": 9.0,
              "images_per_s": 8.0, "steps_per_s": 2.0}
    with console.capture() as captured:
        progress.summary(5, values, IGGAN.console_hidden_metrics)
    line = captured.get()
    assert "step 5/10" in line and "8.0 img/s" in line and "eta 00:00:02" in line
    assert "loss_G=1.5" in line and "opengl_wait_ms=3" in line
    assert "opengl_upload_ms" not in line and "opengl_faces_per_mesh" not in line
    with console.capture() as captured:
        progress.summary(5, values)
    assert "opengl_upload_ms=7" in captured.get()


def test_eta_uses_each_phases_own_rate_across_a_phase_switch():
    """IG-GAN: fast pre-training steps then slow GAN steps; the ETA must not carry the fast rate over."""
    progress = TrainingProgress(total_steps=30, first_step=0, images_per_step=1, description="t",
                                phases=[("pre-training", 0), ("GAN", 10)])
    progress._phase_steps, progress._phase_time = {"pre-training": 5}, {"pre-training": 0.5}  # 10 steps/s measured
    eta = progress.eta(5)
    assert eta == "00:00:00 for pre-training, then 20 GAN steps (rate not measured yet)"  # 5 steps at 10/s
    progress._phase_steps["GAN"], progress._phase_time["GAN"] = 4, 8.0  # 0.5 steps/s measured
    assert progress.eta(14) == "00:00:32"  # 16 GAN steps at 0.5/s
    fresh = TrainingProgress(total_steps=30, first_step=10, images_per_step=1, description="t",
                             phases=[("pre-training", 0), ("GAN", 10)])
    # at the switch the caller's interval rate is the pre-training one: not used for the GAN steps
    assert fresh.eta(10, fallback_steps_per_s=10.0) == "? (20 GAN steps to go, rate not measured yet)"
    assert fresh.eta(12, fallback_steps_per_s=0.5) == "00:00:36"  # an interval inside the GAN phase
    assert progress.eta(5) == "00:00:40"  # 5 x 0.1 s + 20 x 2 s
    assert progress.phase_at(9) == "pre-training" and progress.phase_at(10) == "GAN"


def test_progressive_and_iggan_declare_their_phases(sphere_dataset, multiview_sphere_dataset):
    import torch

    from unflat.config import replace_fields
    from unflat.data.format import open_dataset
    from unflat.methods.base import TrainContext
    from unflat.methods.iggan import iggan_tiny
    from unflat.methods.progressive import Progressive, tiny

    cpu = TrainContext(torch.device("cpu"))
    info = open_dataset(sphere_dataset).info
    pretraining = replace_fields(iggan_tiny(), {"renderer.pretrain_steps": 3})
    assert IGGAN(pretraining, info, cpu).training_phases() == [("pre-training", 0), ("GAN", 3)]
    assert IGGAN(iggan_tiny(), info, cpu).training_phases() == []
    mv = open_dataset(multiview_sphere_dataset).info
    assert Progressive(tiny(), mv, cpu).training_phases() == [("stage I", 0), ("stage II", 2), ("stage III", 4)]
    assert Progressive(replace_fields(tiny(), {"schedule.stage2_start": 0}), mv, cpu).training_phases() == [("stage II", 0), ("stage III", 4)]
