"""`unflat train backbone`, `unflat evaluate` and --eval-every, end to end through the CLI on tiny data.

(Named test_evaluate_command.py: tests/metrics/test_evaluate.py already holds the library tests, and
two test modules may not share a base name in this layout.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from conftest import write_sphere_dataset
from unflat import cli
from unflat.runs import load_run
from unflat.metrics.backbones import DomainBackboneExtractor
from unflat.metrics.report import read_metrics_log, svg_line_plot


def _sphere_meshes(data: Path, num_shapes: int, seed: int = 0) -> None:
    """Ground-truth meshes of write_sphere_dataset's spheres (same radii: same RNG draws)."""
    import trimesh

    rng = np.random.default_rng(seed)
    (data / "meshes").mkdir(exist_ok=True)
    for shape in range(num_shapes):
        radius = float(rng.uniform(0.4, 0.9))
        rng.uniform(0.2, 1.0, 3)  # the colour draw
        trimesh.creation.icosphere(subdivisions=2, radius=radius).export(data / "meshes" / f"{shape:06d}.ply")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 24-sphere dataset with meshes, a backbone trained on it (2 steps, --eval-every 1) and a 2-step
    mvtriplane run with --eval-every 2, all through the CLI."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_sphere_dataset(root / "data", num_shapes=24)
    _sphere_meshes(data, 24)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNFLAT_CACHE_DIR", str(root / "env-cache"))
        assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(data), "--out", str(root / "backbone"),
                         "--eval-every", "1", "--no-tensorboard"]) == 0
        assert cli.main(["train", "mvtriplane", "--preset", "tiny", "--data", str(data), "--out", str(root / "mv"),
                         "--eval-every", "2", "--eval-samples", "8", "--no-tensorboard"]) == 0
    return {"root": root, "data": data, "backbone_run": root / "backbone", "run": root / "mv"}


def test_train_backbone_writes_the_trained_weights_with_held_out_accuracy(trained, tmp_path):
    run, data = trained["backbone_run"], trained["data"]
    extractor = DomainBackboneExtractor.load(run / "backbone.safetensors")
    sidecar = json.loads((run / "backbone.json").read_text())
    assert sidecar["weights_hash"] == extractor.weights_hash
    # the file holds the weights of the final checkpoint
    model = load_run(run, "cpu").method.model
    assert extractor.weights_hash == model.weights_hash
    x = torch.rand(3, 3, 16, 16)
    assert torch.equal(extractor(x), model.eval()(x))
    # whole shapes were held out: 10% of 24 single-view shapes
    accuracy = sidecar["held_out_accuracy"]
    assert accuracy["num_held_out"] == 2 and accuracy["num_train"] == 22 and accuracy["steps"] == 2
    assert 0 <= accuracy["category_accuracy"] <= 1
    # installed where `unflat evaluate` looks, and logged at the end of training
    assert DomainBackboneExtractor.load(data / "backbone.safetensors").weights_hash == extractor.weights_hash
    log = read_metrics_log(run / "metrics.jsonl")
    assert log["held_out/category"] == [(2, accuracy["category_accuracy"])]
    assert [step for step, _ in log["eval/held_out/azimuth"]] == [1, 2]  # --eval-every 1
    assert log["eval/held_out/azimuth"][-1][1] == accuracy["azimuth_accuracy"]
    # `unflat export RUN` writes the same file pair
    assert cli.main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    assert DomainBackboneExtractor.load(tmp_path / "exported" / "backbone.safetensors").weights_hash == extractor.weights_hash


def test_in_training_evaluation_logs_fid_with_its_backbone(trained):
    rows = [json.loads(line) for line in (trained["run"] / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in rows if "eval/fid" in r]
    assert len(evaluations) == 1 and evaluations[0]["step"] == 2
    assert np.isfinite(evaluations[0]["eval/fid"]) and evaluations[0]["eval/fid"] >= 0
    extractor = DomainBackboneExtractor.load(trained["data"] / "backbone.safetensors")
    assert extractor.name in evaluations[0]["event"] and extractor.weights_hash in evaluations[0]["event"]
    assert list((trained["root"] / "env-cache" / "reference").glob("reference-*.safetensors"))


def _fid_reference(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID with scipy's general matrix square root (a second implementation)."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_evaluate_generator_writes_metrics_report_and_reuses_cached_reference(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNFLAT_PROGRESS_EVERY_S", "0")  # a plain line per batch / block: output is not a terminal
    run, data = trained["run"], trained["data"]
    out = tmp_path / "eval" / "metrics.json"
    args = ["evaluate", str(run), "--num-samples", "24", "--batch-size", "24", "--num-shapes", "3", "--num-points", "256",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    assert cli.main(args) == 0
    results = json.loads(out.read_text())
    # the fixture's backbone held out 2 images: said once, before the work, and kept in the notes
    err = capsys.readouterr().err
    assert err.count("warning: the backbone") == 1 and "validated on only 2 held-out images" in err
    assert err.index("warning: the backbone") < err.index("evaluate: reference features")
    assert any("validated on only 2 held-out images" in note for note in results["notes"])
    # every long phase talks: sampling and COV/MMD print progress lines with an ETA, then their totals
    assert re.search(r"^evaluate: samples: 24 images$", err, re.M) and "evaluate: samples: 24/24 images in" in err
    assert re.search(r"^evaluate: COV/MMD/1-NNA: \d+/\d+ Chamfer pairs \(\d+%\), .* eta \d\d:\d\d:\d\d", err, re.M)
    extractor = DomainBackboneExtractor.load(data / "backbone.safetensors")
    images = results["images"]
    assert images["backbone_name"] == extractor.name == results["backbone"]["name"]
    assert images["weights_hash"] == extractor.weights_hash == results["backbone"]["weights_hash"]
    assert images["num_fake"] == 24 and images["num_real"] == 24
    assert results["reference"]["from_cache"] is False
    assert results["settings"]["cameras"] == "dataset" and results["settings"]["classes"] == "dataset"
    shapes = results["shapes"]
    assert shapes["num_generated"] >= 1 and shapes["num_reference"] == 3 and 0 <= shapes["coverage"] <= 1

    # FID against an independent computation on the same samples (dataset cameras and classes)
    from unflat.data.format import open_dataset

    dataset = open_dataset(data)
    method = load_run(run, "cpu").method
    index = np.random.default_rng(0).choice(len(dataset), size=24, replace=False)
    samples = method.sample(24, 0, class_ids=torch.from_numpy(dataset.labels[index]), cameras=dataset.cameras[torch.from_numpy(index)])
    fake = extractor((samples.images.clamp(-1, 1) + 1) / 2).double().numpy()
    real = extractor(torch.from_numpy(np.array(dataset.images)).permute(0, 3, 1, 2).float() / 255).double().numpy()
    assert images["fid"] == pytest.approx(_fid_reference(real, fake), rel=1e-3, abs=1e-6)

    report = out.with_name("report.md")
    text = report.read_text()
    assert extractor.weights_hash in text and "FID" in text and "COV" in text
    assert (out.parent / "report_files" / "samples.png").is_file()
    curves = list((out.parent / "report_files").glob("curve-*.svg"))
    assert any("eval_fid" in p.name for p in curves) and all(p.read_text().startswith("<svg") for p in curves)

    # second call: the reference statistics come from the cache file, which is not rewritten
    cache_files = list((tmp_path / "cache").glob("reference-*.safetensors"))
    assert len(cache_files) == 1
    mtime = cache_files[0].stat().st_mtime_ns
    assert cli.main(args + ["--metrics", "fid", "kid"]) == 0
    again = json.loads(out.read_text())
    assert again["reference"]["from_cache"] is True and cache_files[0].stat().st_mtime_ns == mtime
    assert again["images"]["fid"] == images["fid"] and again["images"]["precision"] is None and "shapes" not in again


def test_the_report_goes_into_the_run_directory_by_default(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", str(trained["run"]), "--metrics", "fid", "--num-samples", "8", "--batch-size", "8",
                     "--cache-dir", str(tmp_path / "cache")]) == 0
    results = json.loads((trained["run"] / "evaluation" / "metrics.json").read_text())
    assert results["complete"] and (trained["run"] / "evaluation" / "report.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing in the current directory


def test_a_backbone_validated_on_enough_images_gets_no_warning(trained):
    from unflat.data.format import open_dataset
    from unflat.evaluate import MIN_HELD_OUT_IMAGES, backbone_record

    extractor = DomainBackboneExtractor.load(trained["data"] / "backbone.safetensors")
    dataset = open_dataset(trained["data"])
    assert any("held-out images" in note for note in backbone_record(extractor, "b", dataset)[1])
    extractor.info["held_out_accuracy"]["num_held_out"] = MIN_HELD_OUT_IMAGES
    assert backbone_record(extractor, "b", dataset)[1] == []


def test_an_evaluation_cut_short_keeps_the_metrics_it_finished(trained, tmp_path, monkeypatch):
    """`timeout -s INT` during the mesh phase: metrics.json already holds FID/KID, marked incomplete, with the
    time of each finished phase."""
    import unflat.evaluate as evaluate_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate_module, "generated_point_clouds", interrupted)
    out = tmp_path / "metrics.json"
    assert cli.main(["evaluate", str(trained["run"]), "--metrics", "fid", "kid", "chamfer", "--num-samples", "16",
                     "--num-shapes", "3", "--num-points", "128", "--cache-dir", str(tmp_path / "cache"),
                     "--out", str(out)]) == 130  # the CLI's exit status for an interrupt
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and "shapes" not in partial
    assert partial["images"]["num_fake"] == 16 and np.isfinite(partial["images"]["fid"])
    assert set(partial["timings_s"]) >= {"load run and data", "reference features", "16 samples -> fid, kid"}
    assert not any("meshes" in phase for phase in partial["timings_s"])  # the interrupted phase is not recorded
    monkeypatch.undo()
    assert cli.main(["evaluate", str(trained["run"]), "--metrics", "fid", "--num-samples", "16",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["complete"] is True


def test_missing_backbone_missing_run_and_wrong_data_are_one_line_errors(trained, tmp_path, capsys):
    bare = write_sphere_dataset(tmp_path / "bare", num_shapes=4)
    assert cli.main(["evaluate", str(trained["run"]), "--data", str(bare), "--out", str(tmp_path / "m.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"unflat train backbone --data {bare}" in err
    assert cli.main(["evaluate", str(tmp_path / "no-run"), "--out", str(tmp_path / "m.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-run" in err
    assert cli.main(["evaluate", str(trained["run"]), "--metrics", "lpips", "--out", str(tmp_path / "m.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lpips" in err and "fid" in err
    assert cli.main(["evaluate", str(trained["backbone_run"]), "--out", str(tmp_path / "m.json")]) == 1
    assert "--backbone" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_evaluate_progressive_same_and_novel_views(tmp_path, capsys):
    multiview = write_sphere_dataset(tmp_path / "mv", num_shapes=4, views_per_shape=3)
    _sphere_meshes(multiview, 4)
    manifest = json.loads((multiview / "manifest.json").read_text())
    (multiview / "manifest.json").write_text(json.dumps({**manifest, "has_meshes": True}))
    assert cli.main(["train", "progressive", "--preset", "tiny", "--data", str(multiview), "--out", str(tmp_path / "run"),
                     "--max-steps", "1", "--no-tensorboard"]) == 0
    assert cli.main(["train", "backbone", "--preset", "tiny", "--data", str(multiview), "--out", str(tmp_path / "bb"),
                     "--max-steps", "1", "--no-tensorboard"]) == 0
    out = tmp_path / "metrics.json"
    assert cli.main(["evaluate", str(tmp_path / "run"), "--num-shapes", "2", "--num-points", "500", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    same, novel = results["same_view"], results["novel_view"]
    assert len(same["mse"]["values"]) == 2 and len(novel["ssim"]["values"]) == 2
    assert 0 <= novel["silhouette_iou"]["mean"] <= 1
    # no LPIPS weights here: the perceptual number is the labelled domain-backbone distance
    extractor = DomainBackboneExtractor.load(multiview / "backbone.safetensors")
    assert "not LPIPS" in same["perceptual_backbone"] and same["perceptual_weights_hash"] == extractor.weights_hash
    assert same["chamfer"] is not None and set(same["fscore"]) == {"0.01", "0.02", "0.05"} and novel["chamfer"] is None
    assert "Reconstruction" in out.with_name("report.md").read_text()
    # single-view data cannot give novel views
    single = write_sphere_dataset(tmp_path / "single", num_shapes=4)
    capsys.readouterr()
    assert cli.main(["evaluate", str(tmp_path / "run"), "--data", str(single), "--out", str(tmp_path / "x.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "multi-view" in err


def test_svg_line_plot_maps_points_into_the_frame():
    svg = svg_line_plot([(0, 1.0), (10, 3.0), (20, 2.0)], "loss")
    points = svg.split('points="')[1].split('"')[0].split()
    xy = np.array([[float(v) for v in p.split(",")] for p in points])
    # x: 0 -> left edge (56), 20 -> right edge (320 - 10); y: max -> top (24), min -> bottom (180 - 30)
    assert xy[0, 0] == 56 and xy[-1, 0] == 310 and xy[1, 1] == 24 and xy[0, 1] == 150 and xy[2, 1] == 87


def test_read_metrics_log_keeps_finite_numbers_and_survives_a_cut_line(tmp_path):
    from unflat.metrics.report import curve_order

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "time": 5.0, "loss/g": 1.5, "eval/fid": NaN, "event": "x", "flag": true}\n'
                   '{"step": 2, "time": 6.0, "loss/g": 1.25, "eval/fid": 40.0}\n{"step": 3, "loss/g": 1.')
    series = read_metrics_log(log)
    assert series == {"loss/g": [(1, 1.5), (2, 1.25)], "eval/fid": [(2, 40.0)]}
    assert curve_order(["steps_per_s", "d/real", "loss/g", "eval/fid"]) == ["eval/fid", "loss/g", "d/real", "steps_per_s"]
