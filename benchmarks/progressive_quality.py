"""Helper of benchmarks/progressive_quality.sh (issue 21): held-back inputs, photos, top-1 specificity, the
sample sheet and the summary JSON of one `progressive` run.

  python benchmarks/progressive_quality.py inputs HELDOUT DIR      # DIR/images/*.png, DIR/masks/*.png, DIR/inputs.json
  python benchmarks/progressive_quality.py photos DIR              # DIR/*.png: the photos the installed packages ship
  python benchmarks/progressive_quality.py analyse --run RUN ...   # specificity, sheet PNG, progressive_quality.json

Top-1 specificity: for each held-back shape i, among the reconstructions r_j of the shapes of its category, is
argmin_j Chamfer(r_j, gt_i) == i? The fraction over the shapes of each category and over all (chance = 1 / shapes
per category). Chamfer: unflat.metrics.shapes (l2_squared, world units, no alignment: the same convention as
`unflat evaluate`). It is computed twice: on the GLBs `unflat reconstruct --masks` wrote from the input PNGs
(the user's path: re-crop and centre), and on the network's prediction from the dataset's own pixels (the input
`unflat evaluate` sees), through the run's Python API.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from unflat.data.sample_photos import sample_photos
from unflat.export.sheet import gif_frames, make_sheet

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {  # issue 21, "Must show"
    "top1_specificity": (">=", 0.8), "fscore@0.05": (">=", 0.80), "chamfer_l2": ("<=", 0.006),
    "silhouette_iou": (">=", 0.85), "psnr": (">=", 24.0),
}


# ---- top-1 specificity ----------------------------------------------------------------------------------
def top1_specificity(distances, categories: list[str]) -> dict:
    """distances [N,N]: Chamfer(reconstruction j, ground truth i) at [i, j]; categories: one name per shape.
    Shape i is a hit when its own reconstruction is the closest to its ground truth among the reconstructions
    of its category. -> {"overall", "per_category", "chance", "num_shapes", "hits"}."""
    d = np.asarray(distances, dtype=np.float64)
    cats = np.asarray(categories)
    hits = np.zeros(len(cats), bool)
    per, chance = {}, []
    for name in dict.fromkeys(categories):
        idx = np.flatnonzero(cats == name)
        sub = d[np.ix_(idx, idx)]
        hit = sub.argmin(axis=1) == np.arange(len(idx))
        hits[idx] = hit
        per[str(name)] = float(hit.mean())
        chance += [1.0 / len(idx)] * len(idx)
    return {"overall": float(hits.mean()) if len(hits) else float("nan"), "per_category": per,
            "chance": float(np.mean(chance)) if chance else float("nan"), "num_shapes": int(len(hits)),
            "hits": hits.astype(int).tolist()}


def chamfer_matrix(pred_clouds, gt_clouds, device) -> np.ndarray:
    """[N,P,3] reconstructions, [N,P,3] ground truths -> [N,N] with Chamfer(pred j, gt i) at [i, j]."""
    from unflat.metrics.shapes import pairwise_chamfer

    return pairwise_chamfer(gt_clouds.to(device), pred_clouds.to(device)).cpu().numpy()


def within_category_matrix(pred_clouds, gt_clouds, categories, device) -> np.ndarray:
    """chamfer_matrix, computed only inside each category (inf elsewhere)."""
    import torch

    n = len(categories)
    d = np.full((n, n), np.inf)
    cats = np.asarray(categories)
    for name in dict.fromkeys(categories):
        idx = np.flatnonzero(cats == name)
        t = torch.from_numpy(idx)
        d[np.ix_(idx, idx)] = chamfer_matrix(pred_clouds[t], gt_clouds[t], device)
    return d


def specificity_block(pred_meshes, gt_clouds, categories, num_points, device, seed=0) -> dict:
    """Specificity plus each shape's own Chamfer and F-score@0.05 (its reconstruction vs its ground truth)."""
    import torch

    from unflat.metrics.shapes import chamfer_distance, fscore, sample_points

    pred = torch.stack([sample_points(m, num_points, seed=seed + i) for i, m in enumerate(pred_meshes)])
    d = within_category_matrix(pred, gt_clouds, categories, device)
    out = top1_specificity(d, categories)
    own = [float(chamfer_distance(pred[i].to(device), gt_clouds[i].to(device))) for i in range(len(pred))]
    f05 = [fscore(pred[i].to(device), gt_clouds[i].to(device), (0.05,))[0].fscore for i in range(len(pred))]
    finite = np.where(np.isfinite(d), d, np.nan)
    out.update({"own_chamfer_mean": float(np.mean(own)), "own_fscore@0.05_mean": float(np.mean(f05)),
                "mean_chamfer_to_other_reconstructions": float(np.nanmean(np.where(np.eye(len(d), dtype=bool), np.nan, finite))),
                "num_points": num_points, "chamfer_variant": "l2_squared"})
    return out


# ---- inputs and photos ----------------------------------------------------------------------------------
def write_inputs(heldout: Path, out: Path, input_view: int = 0, other_view: int = 2) -> None:
    """One input view per held-back shape -> out/images/NNNNNN.png + out/masks/NNNNNN.png + out/inputs.json."""
    from PIL import Image

    from unflat.data.format import open_dataset

    data = open_dataset(heldout)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    rows = []
    for group in data.views_of_shape():
        sid = int(data.shape_ids[group[0]])
        first, other = int(group[min(input_view, len(group) - 1)]), int(group[min(other_view, len(group) - 1)])
        name = f"{sid:06d}"
        Image.fromarray(np.asarray(data.images[first])).save(out / "images" / f"{name}.png")
        Image.fromarray(np.asarray(data.masks[first])).save(out / "masks" / f"{name}.png")
        rows.append({"shape_id": sid, "name": name, "category": data.info.class_names[int(data.labels[first])],
                     "input_index": first, "other_index": other,
                     "mesh": str(data.mesh_path(sid)) if data.mesh_path(sid) else None})
    (out / "inputs.json").write_text(json.dumps({"heldout": str(heldout), "inputs": rows}, indent=1) + "\n")
    print(f"{len(rows)} held-back inputs -> {out}")


def write_photos(out: Path, carried: Path | None = None) -> None:
    """The photos scikit-image, scikit-learn and matplotlib ship (whatever is importable) -> out/PKG-NAME.png.
    ``carried``: a folder of PKG-NAME.png/.jpg files made beforehand (e.g. on a machine where the packages are
    installed, for the GPU machine where they may not be); its files win over the imports."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    found, missing = [], {}
    if carried is not None and carried.is_dir():
        for path in sorted(carried.iterdir()):
            if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
                found.append((path.stem, np.asarray(Image.open(path).convert("RGB"))))
    taken = {n for n, _ in found}
    found += [(name, image) for name, image in sample_photos(missing).items() if name not in taken]
    for name, image in found:
        if image.ndim == 2:
            image = np.stack([image] * 3, -1)
        Image.fromarray(image[..., :3].astype(np.uint8)).save(out / f"{name}.png")
    names = [n for n, _ in found]
    missing = {k: v for k, v in missing.items() if not any(n == k or n.startswith(k + "-") for n in names)}
    (out / "photos.json").write_text(json.dumps({"photos": names, "carried_from": str(carried) if carried else None,
                                                 "missing": missing}, indent=1) + "\n")
    print(f"{len(found)} photos -> {out}; not available: {', '.join(missing) or 'none'}")


# ---- the run through its Python API (the dataset's pixels, as `unflat evaluate` sees them) -------------------
def api_predictions(run: Path, heldout: Path, rows: list[dict], device):
    """-> (trimeshes, renders {name: (at input camera, at other camera)} as uint8 [H,W,3]) from the dataset images."""
    import torch
    import trimesh

    from unflat.data.format import open_dataset
    from unflat.runs import load_run

    loaded = load_run(run, device)
    m = loaded.method
    data = open_dataset(heldout)
    meshes, renders = [], {}
    for start in range(0, len(rows), 16):
        chunk = rows[start:start + 16]
        idx = np.array([r["input_index"] for r in chunk])
        other = np.array([r["other_index"] for r in chunk])
        images = torch.from_numpy(np.stack([np.asarray(data.images[i]) for i in idx])).permute(0, 3, 1, 2).float()
        images = images.to(m.device) / 127.5 - 1
        with torch.no_grad():
            if hasattr(m, "_predict_eval"):
                verts, texture = m._predict_eval(images)
            else:
                m.net.eval()
                latent = torch.zeros(len(idx), m.cfg.encoder.latent_dim, device=m.device) if m.cfg.encoder.latent_dim else None
                verts, texture = m.predict(images, latent)
            faces = m.template.faces.cpu().numpy()
            meshes += [trimesh.Trimesh(v.float().cpu().numpy(), faces, process=False) for v in verts]
            shots = []
            for cams in (idx, other):
                out = m.render(verts, texture, data.cameras[torch.from_numpy(cams)].to(m.device),
                               data.info.resolution, with_silhouette=False)
                shots.append((out.rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        for k, r in enumerate(chunk):
            renders[r["name"]] = (shots[0][k], shots[1][k])
    return meshes, renders


def recrop_stats(inputs: Path, recon: Path, rows: list[dict]) -> dict | None:
    """How `unflat reconstruct` re-framed the held-back inputs: object extent in its NAME-input.png over the
    extent in the dataset's image (1 = same framing as the ground-truth camera; it rescales every object to
    the training data's median extent, so size differences between shapes are lost)."""
    from PIL import Image

    ratios = []
    for r in rows:
        mask_path, prepared = inputs / "masks" / f"{r['name']}.png", recon / f"{r['name']}-input.png"
        if not (mask_path.is_file() and prepared.is_file()):
            continue
        mask = np.asarray(Image.open(mask_path)) > 127
        image = np.asarray(Image.open(prepared).convert("RGB")).astype(np.int16)
        corner = image[0, 0]
        fg = np.abs(image - corner).max(-1) > 20
        if not (mask.any() and fg.any()):
            continue
        extent = lambda f: max(np.ptp(np.nonzero(f.any(1))[0]) + 1, np.ptp(np.nonzero(f.any(0))[0]) + 1)  # noqa: E731
        ratios.append(extent(fg) / extent(mask))
    if not ratios:
        return None
    return {"extent_ratio_mean": float(np.mean(ratios)), "extent_ratio_min": float(np.min(ratios)),
            "extent_ratio_max": float(np.max(ratios)), "num": len(ratios)}


def train_log_stats(path: Path) -> dict | None:
    """First and last logged step and time of metrics.jsonl (the loop's own seconds, without start-up) and the
    last logged losses."""
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip().startswith("{")]
    lines = [line for line in lines if "step" in line and "time" in line]
    if not lines:
        return None
    first, last = lines[0], lines[-1]
    return {"first_logged_step": first["step"], "last_logged_step": last["step"],
            "seconds_between": round(last["time"] - first["time"], 1), "steps_per_s_last": last.get("steps_per_s"),
            "last": {k: v for k, v in last.items() if k.startswith("loss") or k in ("stage", "visible_fraction")}}


# ---- analyse -------------------------------------------------------------------------------------------------
def _git_hash() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:  # noqa: BLE001 - the GPU machine's copy of the tree may carry no .git
        return os.environ.get("PQ_GIT_HASH")


def _device_name(device) -> str:
    import torch

    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def _view_means(view: dict | None) -> dict:
    if not view:
        return {}
    out = {k: view[k]["mean"] for k in ("mse", "psnr", "ssim", "lpips", "silhouette_iou", "depth_accuracy", "chamfer",
                                        "volume_iou") if isinstance(view.get(k), dict)}
    out.update({f"fscore@{t}": v["mean"] for t, v in (view.get("fscore") or {}).items()})
    for k in ("perceptual_backbone", "chamfer_variant"):
        if view.get(k):
            out[k] = view[k]
    return out


def _config_field(run: Path, path: str, flat: str):
    """The run's config value at dotted ``path`` (``flat``: its name in runs saved before the config nested)."""
    try:
        import yaml

        value = yaml.safe_load((run / "config.yaml").read_text()) or {}
        if flat in value:
            return value[flat]
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    except Exception:  # noqa: BLE001
        for line in (run / "config.yaml").read_text().splitlines() if (run / "config.yaml").is_file() else []:
            if line.startswith(f"{flat}:") or line.strip().startswith(f"{path.rsplit('.', 1)[-1]}:"):
                return line.split(":", 1)[1].strip()
    return None


def analyse(a: argparse.Namespace) -> int:
    import torch
    import trimesh

    from unflat.metrics.shapes import sample_points

    t0 = time.perf_counter()
    device = torch.device(a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = json.loads((a.inputs / "inputs.json").read_text())["inputs"]
    categories = [r["category"] for r in rows]
    result: dict = {"what": "progressive quality on held-back synth shapes (issue 21)", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "git_hash": _git_hash(), "device": _device_name(device), "smoke": a.smoke, "notes": [], "errors": {}}
    meta = json.loads(a.meta.read_text()) if a.meta and a.meta.is_file() else {}
    result.update(meta)
    result["perceptual_features"] = _config_field(a.run, "losses.perceptual_features", "perceptual_features")
    result["rasterizer"] = _config_field(a.run, "rendering.rasterizer", "rasterizer")
    try:
        from unflat.engine.checkpoint import load_checkpoint

        result["train_steps_done"] = int(load_checkpoint(a.run)["step"])
    except Exception as exc:  # noqa: BLE001
        result["errors"]["checkpoint"] = f"{type(exc).__name__}: {exc}"
    # unflat evaluate's figures
    if a.eval_json.is_file():
        ev = json.loads(a.eval_json.read_text())
        result["evaluate"] = {"same_view": _view_means(ev.get("same_view")), "novel_view": _view_means(ev.get("novel_view")),
                              "num_shapes": ev.get("settings", {}).get("num_shapes"), "skipped": ev.get("skipped"),
                              "notes": ev.get("notes"), "complete": ev.get("complete"), "step": ev.get("run", {}).get("step"),
                              "timings_s": ev.get("timings_s")}
    else:
        result["errors"]["evaluate"] = f"{a.eval_json} was not written"
    # ground truth
    gt_meshes = [trimesh.load(r["mesh"], force="mesh") for r in rows]
    gt = torch.stack([sample_points(g, a.num_points, seed=100_000 + i) for i, g in enumerate(gt_meshes)])
    # specificity on `unflat reconstruct`'s GLBs
    spec: dict = {}
    glbs = [a.recon / f"{r['name']}.glb" for r in rows]
    missing = [p.name for p in glbs if not p.is_file()]
    if missing:
        result["errors"]["reconstruct_cli"] = f"{len(missing)} of {len(glbs)} GLBs missing, e.g. {missing[:3]}"
    else:
        meshes = [trimesh.load(p, force="mesh") for p in glbs]
        spec["reconstruct_cli"] = specificity_block(meshes, gt, categories, a.num_points, device)
    renders: dict = {}
    try:
        api_meshes, renders = api_predictions(a.run, a.heldout, rows, device)
        spec["dataset_pixels_api"] = specificity_block(api_meshes, gt, categories, a.num_points, device)
    except Exception as exc:  # noqa: BLE001 - the API may change under the rewrite: keep the CLI figures
        result["errors"]["api"] = f"{type(exc).__name__}: {exc}"
    result["top1_specificity"] = spec
    result["reconstruct_recrop"] = recrop_stats(a.inputs, a.recon, rows)
    result["train_log"] = train_log_stats(a.run / "metrics.jsonl")
    # figures vs issue 21's targets
    same = result.get("evaluate", {}).get("same_view", {})
    primary = spec.get("reconstruct_cli") or spec.get("dataset_pixels_api") or {}
    figures = {"top1_specificity": primary.get("overall"), "fscore@0.05": same.get("fscore@0.05"),
               "chamfer_l2": same.get("chamfer"), "silhouette_iou": same.get("silhouette_iou"), "psnr": same.get("psnr")}
    result["figures"] = dict(figures, top1_specificity_source="reconstruct_cli" if spec.get("reconstruct_cli") else "dataset_pixels_api",
                             top1_specificity_dataset_pixels=(spec.get("dataset_pixels_api") or {}).get("overall"))
    result["targets"] = {k: {"target": f"{op} {v}", "value": figures[k],
                             "met": None if figures[k] is None else (figures[k] >= v if op == ">=" else figures[k] <= v)}
                         for k, (op, v) in TARGETS.items()}
    # the sheet
    from PIL import Image

    data_images = None
    try:
        from unflat.data.format import open_dataset

        data_images = open_dataset(a.heldout).images
    except Exception as exc:  # noqa: BLE001
        result["errors"]["sheet_data"] = str(exc)
    per_cat: dict[str, int] = {}
    sheet_rows = []
    for r in rows:
        if per_cat.get(r["category"], 0) >= a.sheet_per_category:
            continue
        per_cat[r["category"]] = per_cat.get(r["category"], 0) + 1
        same_img, other_img = renders.get(r["name"], (None, None))
        tt = gif_frames(a.recon / f"{r['name']}.gif", (0, 3))
        hit = primary.get("hits", [None] * len(rows))[rows.index(r)]
        label = f"{r['category']} {r['name']}\ntop-1: {'yes' if hit else 'no' if hit is not None else '?'}"
        sheet_rows.append((label, [None if data_images is None else np.asarray(data_images[r["input_index"]]), same_img,
                                   other_img, None if data_images is None else np.asarray(data_images[r["other_index"]]),
                                   *tt]))
    photo_names = sorted(p.stem for p in a.photos.glob("*.png")) if a.photos and a.photos.is_dir() else []
    for name in photo_names:
        photo = np.asarray(Image.open(a.photos / f"{name}.png").convert("RGB"))
        net_in = a.photos_recon / f"{name}-input.png"
        tt = gif_frames(a.photos_recon / f"{name}.gif", (0, 3))
        sheet_rows.append((name.replace("-", "\n", 1), [photo, np.asarray(Image.open(net_in).convert("RGB")) if net_in.is_file() else None,
                                                        None, None, *tt]))
    header = ["input\n(photo: as given)", "recon at input view\n(photo: network input)", "recon at\nanother view",
              "ground truth at\nthat view", "reconstruct GLB\nturntable 0 deg", "reconstruct GLB\nturntable 90 deg"]
    make_sheet(a.sheet, sheet_rows, header)
    result["sheet"] = {"file": a.sheet.name, "shapes": sum(per_cat.values()),
                       "photos": photo_names}
    if a.photos and (a.photos / "photos.json").is_file():
        result["photos"] = json.loads((a.photos / "photos.json").read_text())
    result["analyse_seconds"] = round(time.perf_counter() - t0, 1)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"figures": figures, "per_category": primary.get("per_category"),
                      "specificity_api": (spec.get("dataset_pixels_api") or {}).get("overall"),
                      "steps": result.get("train_steps_done"), "train_seconds": result.get("train_seconds"),
                      "perceptual_features": result["perceptual_features"], "errors": result["errors"]}))
    print(f"wrote {a.out} and {a.sheet}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("inputs")
    s.add_argument("heldout", type=Path)
    s.add_argument("out", type=Path)
    s = sub.add_parser("photos")
    s.add_argument("out", type=Path)
    s.add_argument("--carried", type=Path, default=None, help="folder of photos made beforehand (PKG-NAME.png)")
    s = sub.add_parser("analyse")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--heldout", type=Path, required=True)
    s.add_argument("--inputs", type=Path, required=True, help="the folder `inputs` wrote")
    s.add_argument("--recon", type=Path, required=True, help="`unflat reconstruct`'s --out for the held-back inputs")
    s.add_argument("--photos", type=Path, default=None)
    s.add_argument("--photos-recon", type=Path, default=None)
    s.add_argument("--eval-json", type=Path, required=True)
    s.add_argument("--meta", type=Path, default=None, help="JSON merged into the result (commands, timings)")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--sheet", type=Path, required=True)
    s.add_argument("--num-points", type=int, default=4096)
    s.add_argument("--sheet-per-category", type=int, default=2)
    s.add_argument("--device", default="auto")
    s.add_argument("--smoke", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "inputs":
        write_inputs(a.heldout, a.out)
    elif a.cmd == "photos":
        write_photos(a.out, a.carried)
    else:
        return analyse(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
