"""Property-based tests (hypothesis) of the dataset validator and the cameras JSON parser: whatever the
bytes or values, they either accept the input (and then it is consistent) or raise DatasetError, a
UserError whose message names the file: never another exception, never a crash."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, HealthCheck, given, settings
from hypothesis import strategies as st

from unflat.cameras import Cameras
from unflat.data.format import DatasetError, open_dataset, parse_cameras_json

SETTINGS = settings(max_examples=120, deadline=None, database=None, derandomize=True,  # same examples in every CI run
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=8),
                         st.floats(allow_nan=True, allow_infinity=True))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(st.text(max_size=10), children, max_size=5)), max_leaves=30)
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10))


def _valid_frame(az: float, el: float) -> dict:
    return Cameras.from_orbit(torch.tensor([az]), torch.tensor([el]), 2.5, 40.0).to_json()[0]


# a frame: valid, or a valid one with one entry replaced, or a row/field dropped or retyped
@st.composite
def frames(draw) -> object:
    frame = _valid_frame(draw(st.floats(-180, 180)), draw(st.floats(-80, 80)))
    kind = draw(st.sampled_from(["valid", "value", "drop_field", "short_row", "retype", "anything"]))
    if kind == "value":
        field = draw(st.sampled_from(["cam2world", "intrinsics"]))
        if field == "cam2world":
            frame["cam2world"][draw(st.integers(0, 3))][draw(st.integers(0, 3))] = draw(numbers)
        else:
            frame["intrinsics"][draw(st.integers(0, 3))] = draw(numbers)
    elif kind == "drop_field":
        del frame[draw(st.sampled_from(["cam2world", "intrinsics"]))]
    elif kind == "short_row":
        frame["cam2world"][draw(st.integers(0, 3))].pop()
    elif kind == "retype":
        frame[draw(st.sampled_from(["cam2world", "intrinsics"]))] = draw(json_values)
    elif kind == "anything":
        return draw(json_values)
    return frame


@st.composite
def camera_payloads(draw) -> object:
    if draw(st.booleans()):
        return draw(json_values)  # arbitrary JSON
    payload = {"convention": draw(st.sampled_from(["opencv-cam2world", "opengl", 3])),
               "frames": draw(st.lists(frames(), max_size=6))}
    if draw(st.integers(0, 9)) == 0:
        del payload[draw(st.sampled_from(["convention", "frames"]))]
    return payload


@SETTINGS
@given(payload=camera_payloads(), expected=st.one_of(st.none(), st.integers(0, 6)))
def test_cameras_parser_accepts_valid_or_raises_dataset_error(payload, expected) -> None:
    try:
        cameras = parse_cameras_json(payload, "cams.json", expected=expected)
    except DatasetError as exc:
        message = str(exc)
        assert message.startswith("cams.json: ") and "\n" not in message
        return
    assert isinstance(payload, dict) and payload["convention"] == "opencv-cam2world"
    assert len(cameras) == len(payload["frames"]) and (expected is None or expected == len(cameras))
    assert bool(cameras.is_valid(atol=1e-3).all())
    assert torch.isfinite(cameras.cam2world).all() and torch.isfinite(cameras.intrinsics).all()


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))))
def test_cameras_json_text_round_trip_never_crashes(text: str) -> None:
    try:
        payload = json.loads(text)
    except ValueError:
        return
    try:
        parse_cameras_json(payload, "cams.json")
    except DatasetError:
        pass


# ---- the dataset validator ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory) -> Path:
    from conftest import write_sphere_dataset

    return write_sphere_dataset(tmp_path_factory.mktemp("fuzz") / "base", num_shapes=4, views_per_shape=2, resolution=8)


MANIFEST_KEYS = ["format", "format_version", "unflat_version", "kind", "num_images", "num_shapes", "views_per_shape",
                 "resolution", "class_names", "has_masks", "has_depth", "has_meshes", "files"]
FILES = ["manifest.json", "cameras.json", "images.npy", "masks.npy", "depth.npy", "labels.npy", "shape_ids.npy"]


@st.composite
def damage(draw) -> list[tuple]:
    """A list of edits: set/delete a manifest key, truncate/overwrite/delete a file, replace an array."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["manifest_set", "manifest_del", "truncate", "bytes", "delete", "array"]))
        if kind == "manifest_set":
            edits.append((kind, draw(st.sampled_from(MANIFEST_KEYS)), draw(json_values)))
        elif kind == "manifest_del":
            edits.append((kind, draw(st.sampled_from(MANIFEST_KEYS))))
        elif kind == "truncate":
            edits.append((kind, draw(st.sampled_from(FILES)), draw(st.floats(0, 1))))
        elif kind == "bytes":
            edits.append((kind, draw(st.sampled_from(FILES)), draw(st.binary(max_size=64))))
        elif kind == "delete":
            edits.append((kind, draw(st.sampled_from(FILES))))
        else:
            name = draw(st.sampled_from(["images.npy", "masks.npy", "depth.npy", "labels.npy", "shape_ids.npy"]))
            dtype = draw(st.sampled_from([np.uint8, np.int64, np.float16, np.float32, np.bool_]))
            shape = tuple(draw(st.lists(st.integers(0, 9), min_size=0, max_size=4)))
            edits.append((kind, name, dtype, shape, draw(st.integers(-3, 300))))
    return edits


def _apply(root: Path, edits: list[tuple]) -> None:
    for edit in edits:
        kind, name = edit[0], edit[1]
        if kind in ("manifest_set", "manifest_del"):
            path = root / "manifest.json"
            try:
                manifest = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(manifest, dict):
                continue
            if kind == "manifest_set":
                manifest[name] = edit[2]
            else:
                manifest.pop(name, None)
            path.write_text(json.dumps(manifest))
        elif kind == "truncate" and (root / name).exists():
            data = (root / name).read_bytes()
            (root / name).write_bytes(data[: int(len(data) * edit[2])])
        elif kind == "bytes":
            (root / name).write_bytes(edit[2])
        elif kind == "delete":
            (root / name).unlink(missing_ok=True)
        elif kind == "array":
            _, _, dtype, shape, fill = edit
            np.save(root / name, np.full(shape, fill).astype(dtype))


@SETTINGS
@given(edits=damage())
@example(edits=[("bytes", "images.npy", b"PK\x03\x04")])  # numpy reads a 'PK' header as .npz
def test_dataset_validator_accepts_or_raises_dataset_error(base_dataset: Path, edits) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(base_dataset, root)
        _apply(root, edits)
        try:
            dataset = open_dataset(root)
        except DatasetError as exc:
            message = str(exc)
            assert "\n" not in message and str(root) in message, message
            return
        # accepted: everything a loader relies on holds
        info = dataset.info
        n, r = info.num_images, info.resolution
        assert dataset.images.shape == (n, r, r, 3) and dataset.images.dtype == np.uint8
        assert dataset.labels.shape == (n,) and ((0 <= dataset.labels) & (dataset.labels < info.num_classes)).all()
        assert len(dataset.cameras) == n and bool(dataset.cameras.is_valid(atol=1e-3).all())
        assert info.num_shapes > 0 and info.views_per_shape > 0
        if info.has_masks:
            assert dataset.masks.shape == (n, r, r)
        np.asarray(dataset.images[-1]).sum()  # the last row can really be read
