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
