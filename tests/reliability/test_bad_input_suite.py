"""Issue #26's bad-input suite: each case plants one bad input, runs one `unflat` command and expects exit code
CODE with a single `unflat CMD: error: ...` line on stderr that contains the expected words (or, for inputs unflat
must accept, exit 0); never a traceback. Most cases call the CLI's main in-process (fast); `test_real_entry_point`
runs `python -m unflat` for a few, so the real entry point is proved too. Viewer requests are at the bottom.

Cases are rows of CASES: (id, plant(world, tmp) -> argv, exit code, words the error line must contain).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_sphere_dataset
from helpers import REPO, assert_one_line_error, cli_error, subprocess_env, toy_spec
from unflat import cli

toy_spec()  # `unflat train toy`: the engine's tiny method, for the catch-all cases


@dataclass
class World:
    """What every case plants its bad input next to: datasets and 1-step runs, shared by the whole module."""

    root: Path
    single: Path  # 8 spheres, 1 view, 16 px, masks and depth
    multi: Path  # 4 spheres x 4 views
    mvtriplane: Path
    progressive: Path
    photo: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    from conftest import train_tiny_runs

    root = tmp_path_factory.mktemp("suite")
    single = write_sphere_dataset(root / "single")
    multi = write_sphere_dataset(root / "multi", num_shapes=4, views_per_shape=4)
    train_tiny_runs(root, {"mvtriplane": ("mvtriplane", single), "progressive": ("progressive", multi)})
    photo = root / "photo.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(photo)
    return World(root, single, multi, root / "mvtriplane", root / "progressive", photo)


# ---- planting helpers ------------------------------------------------------------------------------
def _data(w: World, tmp: Path, edit: Callable[[Path], None], source: str = "single") -> Path:
    data = tmp / "data"
    shutil.copytree(getattr(w, source), data)
    edit(data)
    return data


def _train(data: Path, tmp: Path, method: str = "mvtriplane", *extra: str) -> list[str]:
    return ["train", method, "--preset", "tiny", "--data", str(data), "--out", str(tmp / "run"), "--device", "cpu",
            "--max-steps", "1", "--no-tensorboard", *extra]


def _cameras(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        payload = json.loads((root / "cameras.json").read_text())
        edit(payload)
        (root / "cameras.json").write_text(json.dumps(payload))
    return apply


def _depth(value: float) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        depth = np.load(root / "depth.npy")
        depth[2, 7, 7] = value
        np.save(root / "depth.npy", depth)
    return apply


def _array(name: str, array: np.ndarray) -> Callable[[Path], None]:
    return lambda root: np.save(root / name, array)


def _text(name: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text(text)


def _run_copy(w: World, tmp: Path, method: str = "mvtriplane") -> Path:
    run = tmp / method
    shutil.copytree(getattr(w, method), run)
    return run


def _checkpoint(edit: Callable[[dict], object], method: str = "mvtriplane") -> Callable[[World, Path], Path]:
    """A copy of the run whose latest.pt is loaded, edited and saved again (weights_only data throughout)."""
    def plant(w: World, tmp: Path) -> Path:
        run = _run_copy(w, tmp, method)
        latest = run / "checkpoints" / "latest.pt"
        payload = torch.load(latest, weights_only=True)
        latest.unlink()  # a hard link to the step file: do not edit that one too
        edit(payload)
        torch.save(payload, latest)
        return run
    return plant


def _first_tensor(payload: dict) -> tuple[dict, str]:
    net = payload["method_state"]["networks"]["G"]
    return net, next(k for k, v in net.items() if v.is_floating_point())


def _set_first(value: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], None]:
    def edit(payload: dict) -> None:
        net, key = _first_tensor(payload)
        net[key] = value(net[key])
    return edit


def _generate(run: Path, tmp: Path, *extra: str) -> list[str]:
    return ["generate", str(run), "--num", "1", "--out", str(tmp / "out"), "--device", "cpu", *extra]


def _ckpt_case(edit: Callable[[dict], object], command: str = "generate") -> Callable[[World, Path], list[str]]:
    plant = _checkpoint(edit)

    def argv(w: World, tmp: Path) -> list[str]:
        run = plant(w, tmp)
        if command == "resume":
            return ["train", "--resume", str(run), "--max-steps", "2"]
        if command == "export":
            return ["export", str(run), "--num", "1", "--out", str(tmp / "out"), "--device", "cpu"]
        return _generate(run, tmp)
    return argv


def _raw_checkpoint(data: Callable[[bytes], bytes]) -> Callable[[World, Path], list[str]]:
    def argv(w: World, tmp: Path) -> list[str]:
        run = _run_copy(w, tmp)
        latest = run / "checkpoints" / "latest.pt"
        content = data(latest.read_bytes())
        latest.unlink()
        latest.write_bytes(content)
        return _generate(run, tmp)
    return argv


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG that claims a huge image (a decompression bomb's header) and holds no pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def _dds_unknown_format() -> bytes:
    """A DDS header whose pixel format (FourCC 'XYZW') Pillow does not implement (NotImplementedError)."""
    header = struct.pack("<7I", 124, 0x1007, 40, 40, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I4s5I", 32, 4, b"XYZW", 0, 0, 0, 0, 0)
    return b"DDS " + header + pixel_format + b"\0" * 20 + b"\0" * 6400


def _avif_that_fails_to_decode() -> bytes:
    """An AVIF file whose first frame does not decode (Pillow raises RuntimeError: the issue's AVIF/HEIC family):
    an encoded image with 8 bytes of its coded frame overwritten, the last such place (from the end) that fails."""
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(buffer, "AVIF")
    data = buffer.getvalue()
    for start in range(len(data) - 8, 0, -8):
        damaged = data[:start] + b"\xff" * 8 + data[start + 8:]
        try:
            Image.open(io.BytesIO(damaged)).load()
        except RuntimeError:
            return damaged
        except Exception:  # noqa: BLE001 (other damage: keep looking for the decoder failure)
            continue
    pytest.skip("no damaged AVIF found that makes this libavif raise RuntimeError")


GOOD_PNG = _png(np.full((40, 40, 3), 120, np.uint8))
BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "truncated PNG": lambda: GOOD_PNG[:60],
    "0-byte": lambda: b"",
    "text named .png": lambda: b"this is not an image\n",
    "huge dimension claim": lambda: _png_claiming(200_000, 200_000),
    "DDS unknown pixel format": _dds_unknown_format,
}


def _image_file(tmp: Path, kind: str) -> Path:
    suffix = ".dds" if "DDS" in kind else ".avif" if "AVIF" in kind else ".png"
    path = tmp / f"photo{suffix}"
    path.write_bytes(BAD_IMAGES[kind]() if kind in BAD_IMAGES else _avif_that_fails_to_decode())
    return path


def _invert(kind: str) -> Callable[[World, Path], list[str]]:
    return lambda w, tmp: ["invert", str(w.mvtriplane), str(_image_file(tmp, kind)), "--steps-w", "1", "--steps-g", "1",
                           "--out", str(tmp / "out"), "--device", "cpu"]


def _reconstruct(kind: str) -> Callable[[World, Path], list[str]]:
    return lambda w, tmp: ["reconstruct", str(w.progressive), str(_image_file(tmp, kind)), "--no-turntable",
                           "--out", str(tmp / "out"), "--device", "cpu"]


def _images_of(files: dict[str, bytes | Callable[[Path], None]]) -> Callable[[World, Path], list[str]]:
    """`dataset images` over a folder holding ``files`` (bytes, or a function that writes the file)."""
    def argv(w: World, tmp: Path) -> list[str]:
        src = tmp / "src" / "cls"
        src.mkdir(parents=True)
        for name, content in files.items():
            content(src / name) if callable(content) else (src / name).write_bytes(content)
        # --crop center: these cases are about reading files; finding an object in a flat test image is not
        return ["dataset", "images", "--src", str(tmp / "src"), "--out", str(tmp / "ds"), "--resolution", "16",
                "--workers", "1", "--crop", "center"]
    return argv


def _meshes_of(files: dict[str, str]) -> Callable[[World, Path], list[str]]:
    def argv(w: World, tmp: Path) -> list[str]:
        folder = tmp / "meshes"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        return ["dataset", "render", "--meshes", str(folder), "--out", str(tmp / "ds"), "--resolution", "16"]
    return argv


def _view(*extra: str, path: Callable[[World, Path], Path] | None = None) -> Callable[[World, Path], list[str]]:
    return lambda w, tmp: ["view", str(path(w, tmp) if path else w.mvtriplane), "--no-sampler", *extra]


def _port_in_use(w: World, tmp: Path) -> list[str]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    _HELD.append(holder)  # closed by the test after the command ran
    return ["view", str(w.mvtriplane), "--no-sampler", "--port", str(holder.getsockname()[1])]


_HELD: list[socket.socket] = []


def _out_file(command: str) -> Callable[[World, Path], list[str]]:
    def argv(w: World, tmp: Path) -> list[str]:
        target = tmp / "taken"
        target.write_text("the user's file")
        if command == "train":
            return ["train", "mvtriplane", "--preset", "tiny", "--data", str(w.single), "--out", str(target),
                    "--device", "cpu", "--max-steps", "1"]
        return _generate(w.mvtriplane, tmp)[:-4] + ["--out", str(target), "--device", "cpu"]
    return argv


def _read_only_out(w: World, tmp: Path) -> list[str]:
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    return _generate(w.mvtriplane, tmp)[:-4] + ["--out", str(folder / "gen"), "--device", "cpu"]


MESH_OK = "v 1 0 0\nv 0 1 0\nv 0 0 1\nv 1 1 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n"
NO_FACES = "v 1 0 0\nv 0 1 0\nv 0 0 1\n"
NAN_VERTEX = "v nan 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\n"
HUGE_VERTEX = "v 1e308 0 0\nv 0 1e308 0\nv 0 0 1e308\nv 1e308 1e308 1e308\nf 1 2 3\nf 1 2 4\n"
Plant = Callable[[World, Path], list[str]]
# (id, plant -> argv, exit code, words the one error line must contain: "{tmp}" is the case's folder)
CASES: list[tuple[str, Plant, int, tuple[str, ...]]] = [
    # -- dataset arrays and cameras (train --data) --
    ("depth NaN", lambda w, t: _train(_data(w, t, _depth(np.nan)), t), 1, ("depth.npy", "finite", "image 2")),
    ("depth +inf", lambda w, t: _train(_data(w, t, _depth(np.inf)), t), 1, ("depth.npy", "finite and >= 0")),
    ("depth negative", lambda w, t: _train(_data(w, t, _depth(-0.5)), t), 1, ("depth.npy", "-0.5")),
    ("depth wrong shape", lambda w, t: _train(_data(w, t, _array("depth.npy", np.zeros((8, 8, 8), np.float16))), t), 1,
     ("depth.npy", "shape must be (8, 16, 16)")),
    ("images 4 channels", lambda w, t: _train(_data(w, t, _array("images.npy", np.zeros((8, 16, 16, 4), np.uint8))), t), 1,
     ("images.npy", "shape")),
    ("labels float", lambda w, t: _train(_data(w, t, _array("labels.npy", np.zeros(8, np.float32))), t), 1,
     ("labels.npy", "dtype")),
    ("masks float", lambda w, t: _train(_data(w, t, _array("masks.npy", np.zeros((8, 16, 16), np.float32))), t), 1,
     ("masks.npy", "dtype")),
    ("shape_ids missing", lambda w, t: _train(_data(w, t, lambda r: (r / "shape_ids.npy").unlink()), t), 1,
     ("shape_ids.npy", "missing")),
    ("cameras nested 100k deep", lambda w, t: _train(_data(w, t, _text("cameras.json", "[" * 100_000 + "]" * 100_000)), t), 1,
     ("cameras.json", "nested too deeply")),
    ("manifest nested 100k deep", lambda w, t: _train(_data(w, t, _text("manifest.json", '{"a":' * 100_000 + "1" + "}" * 100_000)), t),
     1, ("manifest.json", "nested too deeply")),
    ("camera at 1e30", lambda w, t: _train(_data(w, t, _cameras(lambda p: [f["cam2world"][0].__setitem__(3, 1e30) for f in p["frames"]]),
                                                 "multi"), t, "progressive"), 1, ("cameras.json", "frames[0]", "from the origin")),
    ("camera at 2e4", lambda w, t: _train(_data(w, t, _cameras(lambda p: p["frames"][5]["cam2world"][2].__setitem__(3, 2e4))), t), 1,
     ("cameras.json", "frames[5]", "2e+04 units")),
    ("camera NaN", lambda w, t: _train(_data(w, t, _cameras(lambda p: p["frames"][3]["cam2world"][1].__setitem__(3, float("nan")))), t),
     1, ("cameras.json", "frames[3].cam2world contains NaN or Inf")),
    ("camera focal Infinity", lambda w, t: _train(_data(w, t, _cameras(lambda p: p["frames"][4]["intrinsics"].__setitem__(0, float("inf")))), t),
     1, ("cameras.json", "frames[4].intrinsics contains NaN or Inf")),
    ("cameras top-level list", lambda w, t: _train(_data(w, t, _text("cameras.json", "[]")), t), 1, ("cameras.json", "top level")),
    ("cameras frames not a list", lambda w, t: _train(_data(w, t, _cameras(lambda p: p.__setitem__("frames", {}))), t), 1,
     ("cameras.json", "'frames' must be a list")),
    ("camera 3x4 matrix", lambda w, t: _train(_data(w, t, _cameras(lambda p: p["frames"][0].__setitem__("cam2world", p["frames"][0]["cam2world"][:3]))), t),
     1, ("cameras.json", "frames[0].cam2world must have shape")),
    ("camera strings", lambda w, t: _train(_data(w, t, _cameras(lambda p: p["frames"][1].__setitem__("intrinsics", ["a", "b", "c", "d"]))), t),
     1, ("cameras.json", "frames[1].intrinsics is not numeric")),
    ("camera JSON null", lambda w, t: _train(_data(w, t, _text("cameras.json", "null")), t), 1, ("cameras.json", "top level")),
    # -- numbers on the command line --
    ("train --batch-size 0", lambda w, t: _train(w.single, t, "mvtriplane", "--batch-size", "0"), 1, ("--batch-size", "> 0")),
    ("train --batch-size -4", lambda w, t: _train(w.single, t, "mvtriplane", "--batch-size", "-4"), 1, ("--batch-size",)),
    ("train --batch-size 10**8", lambda w, t: _train(w.single, t, "mvtriplane", "--batch-size", "100000000"), 1,
     ("--batch-size", "more than the 8 images")),
    ("train --max-steps -1", lambda w, t: _train(w.single, t, "mvtriplane", "--max-steps", "-1"), 1, ("--max-steps",)),
    ("train --grad-clip nan", lambda w, t: _train(w.single, t, "mvtriplane", "--grad-clip", "nan"), 1, ("--grad-clip", "finite")),
    ("train --rollback-lr-factor inf", lambda w, t: _train(w.single, t, "mvtriplane", "--rollback-lr-factor", "inf"), 1,
     ("--rollback-lr-factor", "finite")),
    ("train --batch-size abc", lambda w, t: _train(w.single, t, "mvtriplane", "--batch-size", "abc"), 1, ("--batch-size",)),
    ("train unknown method", lambda w, t: ["train", "spaceship", "--data", str(w.single)], 1, ("unknown method 'spaceship'",)),
    ("train --device bogus", lambda w, t: _train(w.single, t, "mvtriplane", "--device", "bogus"), 1, ("--device",)),
    ("synth --radius inf", lambda w, t: ["dataset", "synth", "--category", "mug", "--num-shapes", "1", "--resolution", "16",
                                         "--radius", "inf", "--out", str(t / "ds")], 1, ("--radius", "finite")),
    ("synth --radius nan", lambda w, t: ["dataset", "synth", "--category", "mug", "--num-shapes", "1", "--resolution", "16",
                                         "--radius", "nan", "--out", str(t / "ds")], 1, ("--radius", "finite")),
    ("synth --fov-deg 0", lambda w, t: ["dataset", "synth", "--category", "mug", "--fov-deg", "0", "--out", str(t / "ds")], 1,
     ("--fov-deg",)),
    ("synth --num-shapes 0", lambda w, t: ["dataset", "synth", "--category", "mug", "--num-shapes", "0", "--out", str(t / "ds")], 1,
     ("--num-shapes",)),
    ("synth --resolution 4", lambda w, t: ["dataset", "synth", "--category", "mug", "--resolution", "4", "--out", str(t / "ds")], 1,
     ("--resolution", "[8, 2048]")),
    ("synth unknown category", lambda w, t: ["dataset", "synth", "--category", "spaceship", "--out", str(t / "ds")], 1,
     ("--category", "spaceship")),
    ("generate --num 0", lambda w, t: _generate(w.mvtriplane, t)[:3] + ["0", "--out", str(t / "o"), "--device", "cpu"], 1,
     ("--num must be > 0",)),
    ("generate --num -1", lambda w, t: _generate(w.mvtriplane, t)[:3] + ["-1", "--out", str(t / "o"), "--device", "cpu"], 1,
     ("--num must be > 0",)),
    ("generate --seed -1", lambda w, t: _generate(w.mvtriplane, t, "--seed", "-1"), 1, ("--seed",)),
    ("generate --class-id 99", lambda w, t: _generate(w.mvtriplane, t, "--class-id", "99"), 1, ("--class-id",)),
    ("generate --device bogus", lambda w, t: _generate(w.mvtriplane, t)[:-1] + ["bogus"], 1, ("--device",)),
    ("export --num -1", lambda w, t: ["export", str(w.mvtriplane), "--num", "-1", "--out", str(t / "o"), "--device", "cpu"], 1,
     ("--num must be > 0",)),
    # -- checkpoints that load but are malformed --
    ("ckpt without method", _ckpt_case(lambda p: p.pop("method")), 1, ("latest.pt", "field 'method' is missing")),
    ("ckpt method an int", _ckpt_case(lambda p: p.__setitem__("method", 7)), 1, ("latest.pt", "field 'method'")),
    ("ckpt unknown method", _ckpt_case(lambda p: p.__setitem__("method", "spaceship")), 1, ("unknown method 'spaceship'",)),
    ("ckpt of another method", _ckpt_case(lambda p: p.__setitem__("method", "progressive")), 1,
     ("latest.pt", "field 'config_yaml' does not fit method 'progressive'")),
    ("ckpt step a string", _ckpt_case(lambda p: p.__setitem__("step", "five")), 1, ("latest.pt", "field 'step'")),
    ("ckpt step negative", _ckpt_case(lambda p: p.__setitem__("step", -3)), 1, ("latest.pt", "field 'step'", ">= 0")),
    ("ckpt step a float (resume)", _ckpt_case(lambda p: p.__setitem__("step", 1.5), "resume"), 1, ("latest.pt", "field 'step'")),
    ("ckpt images_seen a string", _ckpt_case(lambda p: p.__setitem__("images_seen", "x"), "resume"), 1,
     ("latest.pt", "field 'images_seen'")),
    ("ckpt config invalid YAML", _ckpt_case(lambda p: p.__setitem__("config_yaml", "a: [\n")), 1,
     ("latest.pt", "field 'config_yaml' is not valid YAML")),
    ("ckpt config a list", _ckpt_case(lambda p: p.__setitem__("config_yaml", "- a\n- b\n")), 1,
     ("latest.pt", "field 'config_yaml' must be a mapping")),
    ("ckpt config wrong type", _ckpt_case(lambda p: p.__setitem__("config_yaml", p["config_yaml"].replace("batch_size: ", "batch_size: abc"))),
     1, ("latest.pt", "config_yaml", "--batch-size")),
    ("ckpt config NaN value", _ckpt_case(lambda p: p.__setitem__("config_yaml", p["config_yaml"] + "grad_clip: .nan\n")), 1,
     ("latest.pt", "--grad-clip", "finite")),
    ("ckpt config missing", _ckpt_case(lambda p: p.pop("config_yaml")), 1, ("latest.pt", "field 'config_yaml' is missing")),
    ("ckpt dataset_info missing", _ckpt_case(lambda p: p.pop("dataset_info")), 1, ("latest.pt", "field 'dataset_info' is missing")),
    ("ckpt no class names", _ckpt_case(lambda p: p["dataset_info"].__setitem__("class_names", [])), 1,
     ("latest.pt", "dataset_info.class_names")),
    ("ckpt resolution a string", _ckpt_case(lambda p: p["dataset_info"].__setitem__("resolution", "16")), 1,
     ("latest.pt", "dataset_info.resolution")),
    ("ckpt networks missing", _ckpt_case(lambda p: p["method_state"].pop("networks")), 1, ("latest.pt", "method_state.networks")),
    ("ckpt networks empty", _ckpt_case(lambda p: p["method_state"].__setitem__("networks", {})), 1,
     ("latest.pt", "method_state.networks")),
    ("ckpt network G missing", _ckpt_case(lambda p: p["method_state"]["networks"].pop("G")), 1,
     ("latest.pt", "no network 'G'")),
    ("ckpt empty state dict", _ckpt_case(lambda p: p["method_state"]["networks"].__setitem__("G", {})), 1,
     ("latest.pt", "method_state.networks.G")),
    ("ckpt wrong shape (generate)", _ckpt_case(_set_first(lambda t: torch.zeros(3, 3))), 1,
     ("latest.pt", "has shape (3, 3)", "expects")),
    ("ckpt wrong shape (resume)", _ckpt_case(_set_first(lambda t: torch.zeros(3, 3)), "resume"), 1, ("latest.pt", "has shape (3, 3)")),
    ("ckpt wrong shape (export)", _ckpt_case(_set_first(lambda t: torch.zeros(3, 3)), "export"), 1, ("latest.pt", "has shape (3, 3)")),
    ("ckpt extra tensor", _ckpt_case(lambda p: p["method_state"]["networks"]["G"].__setitem__("planted.weight", torch.zeros(2))), 1,
     ("latest.pt", "planted.weight")),
    ("ckpt missing tensor", _ckpt_case(lambda p: p["method_state"]["networks"]["G"].pop(_first_tensor(p)[1])), 1,
     ("latest.pt", "is missing")),
    ("ckpt a tensor is a number", _ckpt_case(_set_first(lambda t: 3)), 1, ("latest.pt", "must be a tensor")),
    ("ckpt NaN weights", _ckpt_case(_set_first(lambda t: torch.full_like(t, float("nan")))), 1, ("latest.pt", "NaN or Inf")),
    ("ckpt Inf weights (resume)", _ckpt_case(_set_first(lambda t: torch.full_like(t, float("inf"))), "resume"), 1,
     ("latest.pt", "NaN or Inf")),
    ("ckpt lr_scale NaN", _ckpt_case(lambda p: p["method_state"].__setitem__("lr_scale", float("nan")), "resume"), 1,
     ("latest.pt", "lr_scale")),
    ("ckpt method_state a list", _ckpt_case(lambda p: p.__setitem__("method_state", [1, 2])), 1, ("latest.pt", "method_state")),
    ("ckpt optimizer of another network (resume)", _ckpt_case(
        lambda p: p["method_state"]["optimizers"].__setitem__("G", p["method_state"]["optimizers"]["D"]), "resume"), 1,
     ("latest.pt", "method_state")),
    ("ckpt newer format version", _ckpt_case(lambda p: p.__setitem__("format_version", 99)), 1,
     ("latest.pt", "format_version 99 is not supported")),
    ("ckpt truncated to half", _raw_checkpoint(lambda b: b[: len(b) // 2]), 1, ("latest.pt", "truncated")),
    ("ckpt 0 bytes", _raw_checkpoint(lambda b: b""), 1, ("latest.pt", "empty file")),
    ("ckpt text", _raw_checkpoint(lambda b: b"hello\n"), 1, ("latest.pt", "not a PyTorch checkpoint")),
    # -- images given to single-image commands --
    *[(f"invert {kind}", _invert(kind), 1, ("photo.", "cannot read image")) for kind in BAD_IMAGES],
    ("invert huge claim says too large", _invert("huge dimension claim"), 1, ("photo.png", "too large to decode safely")),
    ("invert AVIF that fails to decode", _invert("AVIF"), 1, ("photo.avif", "cannot read image")),
    ("reconstruct truncated PNG", _reconstruct("truncated PNG"), 1, ("photo.png", "cannot read image")),
    ("reconstruct DDS unknown pixel format", _reconstruct("DDS unknown pixel format"), 1, ("photo.dds", "cannot read image")),
    ("reconstruct huge dimension claim", _reconstruct("huge dimension claim"), 1, ("photo.png", "too large to decode safely")),
    ("invert missing image", lambda w, t: ["invert", str(w.mvtriplane), str(t / "nope.png"), "--out", str(t / "o"), "--device", "cpu"],
     1, ("nope.png",)),
    # -- images given to dataset images: skipped with a reason; a folder of only bad ones is one line --
    ("images only truncated PNG", _images_of({"cut.png": GOOD_PNG[:60]}), 1, ("{tmp}/src",)),
    ("images only 0-byte", _images_of({"zero.png": b""}), 1, ("{tmp}/src",)),
    ("images only DDS unknown format", _images_of({"x.dds": _dds_unknown_format()}), 1, ("{tmp}/src",)),
    ("images only huge claim", _images_of({"bomb.png": _png_claiming(200_000, 200_000)}), 1, ("{tmp}/src",)),
    ("images --src missing", lambda w, t: ["dataset", "images", "--src", str(t / "nope"), "--out", str(t / "ds")], 1, ("{tmp}/nope",)),
    ("images 16-bit PNG is used", _images_of({"deep.png": lambda p: Image.fromarray(np.full((40, 40), 40000, np.uint16)).save(p)}),
     0, ()),
    ("images CMYK JPEG is used", _images_of({"print.jpg": lambda p: Image.new("CMYK", (40, 40), (0, 80, 160, 10)).save(p)}), 0, ()),
    ("images PNG named .jpg is used", _images_of({"named.jpg": GOOD_PNG}), 0, ()),
    # -- meshes --
    ("render only a mesh without faces", _meshes_of({"a.obj": NO_FACES}), 1, ("{tmp}/meshes",)),
    ("render only NaN vertices", _meshes_of({"a.obj": NAN_VERTEX}), 1, ("{tmp}/meshes",)),
    ("render only 1e308 vertices", _meshes_of({"a.obj": HUGE_VERTEX}), 1, ("{tmp}/meshes",)),
    ("render empty folder", _meshes_of({}), 1, ("{tmp}/meshes",)),
    # -- viewer --
    ("view missing folder", _view(path=lambda w, t: t / "nope"), 1, ("nope", "not a folder")),
    ("view a file", _view(path=lambda w, t: w.photo), 1, ("photo.png", "not a folder")),
    ("view --port 99999", _view("--port", "99999"), 1, ("--port", "[0, 65535]")),
    ("view --port -1", _view("--port", "-1"), 1, ("--port",)),
    ("view port in use", _port_in_use, 1, ("cannot listen", "--port")),
    # -- outputs and missing inputs --
    ("generate --out a file", _out_file("generate"), 1, ("{tmp}/taken",)),
    ("train --out a file", _out_file("train"), 1, ("{tmp}/taken", "is a file, not a folder")),
    ("generate --out under /proc", lambda w, t: _generate(w.mvtriplane, t)[:-4] + ["--out", "/proc/unflat/x", "--device", "cpu"], 1,
     ("/proc/unflat/x", "cannot write")),
    ("export --out under /proc", lambda w, t: ["export", str(w.mvtriplane), "--num", "1", "--out", "/proc/unflat/x", "--device", "cpu"],
     1, ("/proc/unflat/x",)),
    ("synth --out under /proc", lambda w, t: ["dataset", "synth", "--category", "mug", "--num-shapes", "1", "--resolution", "16",
                                              "--out", "/proc/unflat/x"], 1, ("/proc/unflat/x",)),
    ("generate --out read-only", _read_only_out, 1, ("{tmp}/locked",)),
    ("generate missing run", lambda w, t: _generate(t / "no-run", t), 1, ("no-run", "not found")),
    ("train --data missing", lambda w, t: _train(t / "no-data", t), 1, ("no-data", "not a directory")),
    ("train --resume missing", lambda w, t: ["train", "--resume", str(t / "no-run")], 1, ("no-run",)),
    ("reconstruct missing run", lambda w, t: ["reconstruct", str(t / "no-run"), str(w.photo), "--out", str(t / "o"),
                                              "--device", "cpu"], 1, ("no-run",)),
    ("evaluate missing run", lambda w, t: ["evaluate", str(t / "no-run"), "--data", str(w.single), "--out", str(t / "m.json")], 1,
     ("no-run",)),
]


@pytest.mark.parametrize("name, plant, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_error(world: World, tmp_path: Path, capsys, name: str, plant: Plant, code: int,
                                     words: tuple[str, ...]) -> None:
    if name == "generate --out read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    if "AVIF" in name:
        pytest.importorskip("PIL.AvifImagePlugin")
    argv = plant(world, tmp_path)
    try:
        capsys.readouterr()
        exit_code = cli.main(argv)
        captured = capsys.readouterr()
    finally:
        while _HELD:
            _HELD.pop().close()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out, err
    assert exit_code == code, err
    if code:
        assert_one_line_error(exit_code, err, *(w.replace("{tmp}", str(tmp_path)) for w in words))


def test_suite_is_large_enough() -> None:
    assert len(CASES) >= 60


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("name", ["metrics.jsonl", "run.log"])
def test_disk_full_while_logging_is_one_line_naming_the_file(world: World, tmp_path: Path, capsys, name: str) -> None:
    """/dev/full in place of the run's log: every write fails with ENOSPC, as on a full disk (run.log gave logging's
    '--- Logging error ---' traceback, metrics.jsonl an error line without the file). The checkpoint survives."""
    from unflat.engine.checkpoint import load_checkpoint

    run = _run_copy(world, tmp_path)
    (run / name).unlink()
    (run / name).symlink_to("/dev/full")
    code, err = cli_error(capsys, ["train", "--resume", str(run), "--max-steps", "3"])
    assert_one_line_error(code, err, f"{run / name}: could not write", "free disk space")
    assert load_checkpoint(run)["step"] >= 1


# ---- the catch-all at the CLI boundary --------------------------------------------------------------
def _toy_step_raises(exc: BaseException):
    from toy_method import ToyGAN

    def step(self, batch, step):
        raise exc
    return ToyGAN, step


def test_an_unexpected_exception_is_one_line_and_debug_shows_the_traceback(world: World, tmp_path: Path, capsys,
                                                                             monkeypatch) -> None:
    """A bug (here: a method whose step raises ZeroDivisionError) is one line naming the command and the exception,
    exit 1; --debug lets the exception through (the traceback), so does UNFLAT_DEBUG=1."""
    cls, step = _toy_step_raises(ZeroDivisionError("division by zero in the toy step"))
    monkeypatch.setattr(cls, "train_step", step)
    argv = _train(world.single, tmp_path, "toy")
    code, err = cli_error(capsys, argv)
    assert_one_line_error(code, err, "unflat train: error: ZeroDivisionError: division by zero in the toy step",
                          "(run with --debug for the traceback)")
    assert code == 1
    with pytest.raises(ZeroDivisionError):
        cli.main(["--debug", "train", "--resume", str(tmp_path / "run")])
    monkeypatch.setenv("UNFLAT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["train", "--resume", str(tmp_path / "run")])


def test_ctrl_c_stays_quiet(world: World, tmp_path: Path, capsys, monkeypatch) -> None:
    cls, step = _toy_step_raises(KeyboardInterrupt())
    monkeypatch.setattr(cls, "train_step", step)
    code = cli.main(_train(world.single, tmp_path, "toy"))
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err and "error:" not in err, err


# ---- the real entry point (a few cases as subprocesses) -----------------------------------------------
REAL = ["ckpt wrong shape (generate)", "cameras nested 100k deep", "view --port 99999", "invert DDS unknown pixel format"]


@pytest.mark.parametrize("name", REAL)
def test_real_entry_point(world: World, tmp_path: Path, name: str) -> None:
    _, plant, code, words = next(c for c in CASES if c[0] == name)
    result = subprocess.run([sys.executable, "-m", "unflat", *plant(world, tmp_path)], capture_output=True, text=True,
                            env=subprocess_env(), timeout=120, cwd=REPO)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert_one_line_error(result.returncode, result.stderr.strip(), *words)


def test_real_entry_point_catch_all_and_debug(world: World, tmp_path: Path) -> None:
    """toy_cli.py is `unflat` with the toy method; UNFLAT_TEST_STEP_RAISE makes its step raise a RuntimeError."""
    env = {**subprocess_env(), "UNFLAT_TEST_STEP_RAISE": "1"}
    argv = [sys.executable, str(Path(__file__).parent / "toy_cli.py"), *_train(world.single, tmp_path, "toy")]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr, quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1].startswith("unflat train: error: RuntimeError: planted"), quiet.stderr
    loud = subprocess.run([*argv[:2], "--debug", "train", "--resume", str(tmp_path / "run")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "RuntimeError: planted" in loud.stderr, loud.stderr


# ---- viewer requests -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def viewer(world: World, tmp_path_factory):
    from unflat.export.viewer.server import make_server

    root = tmp_path_factory.mktemp("viewer") / "run"
    shutil.copytree(world.mvtriplane, root)
    (root / ".env").write_text("SECRET=1")
    (root / "weights.safetensors").write_bytes(b"weights")
    os.mkfifo(root / "pipe.png")
    (root / "extra").mkdir()
    (root / "extra" / "metrics.jsonl").write_text('{"step": 1, "loss": 2}\n[1, 2]\n"text"\n{"step": "x", "loss": 1}\nnot json\n')
    server = make_server(root, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path, status", [
    ("/" + "a" * 300, 404),  # a name over 255 bytes (was a dropped connection and a traceback)
    ("/" + "a" * 300 + "/b.png", 404),
    ("/_unflat/mesh?file=" + "a" * 300 + ".glb", 404),
    ("/pipe.png", 404),  # a FIFO (the request hung)
    ("/.env", 404),  # dotfiles and checkpoints are not listed, so not served
    ("/checkpoints/latest.pt", 404),
    ("/checkpoints/", 404),
    ("/weights.safetensors", 404),
    ("/extra/", 200),  # one malformed metrics.jsonl line does not break the page
    ("/", 200),
], ids=["long-name", "long-dir", "long-mesh", "fifo", "dotfile", "checkpoint", "checkpoints-dir", "safetensors",
        "bad-metrics-lines", "index"])
def test_viewer_request(viewer, path: str, status: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", viewer.server_address[1], timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    assert response.status == status, body[:200]
    if path == "/extra/":
        assert b"loss" in body
    if path == "/":
        assert b"pipe.png" not in body and b".env" not in body and b"weights.safetensors" not in body
