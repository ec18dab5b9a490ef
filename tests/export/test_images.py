"""Grids, turntables and videos: pixel layout, value ranges, camera orbits, file formats."""

from __future__ import annotations


import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from unflat.cameras import Cameras
from unflat.export import images as images_module
from unflat.export.images import (
    make_grid,
    save_grid,
    save_interpolation_video,
    save_mesh_turntable,
    save_turntable,
    to_uint8,
)


def test_to_uint8_ranges_and_channels():
    zero_one = torch.tensor([0.0, 0.5, 1.0]).reshape(1, 1, 1, 3).expand(1, 3, 1, 3)
    assert to_uint8(zero_one)[0, 0, :, 0].tolist() == [0, 128, 255]
    minus_one = zero_one * 2 - 1
    assert to_uint8(minus_one)[0, 0, :, 0].tolist() == [0, 128, 255]
    # an explicit range wins over the guess
    assert to_uint8(zero_one, value_range=(-1.0, 1.0))[0, 0, :, 0].tolist() == [128, 191, 255]
    grey = to_uint8(np.full((2, 1, 4, 5), 0.25, np.float32))
    assert grey.shape == (2, 4, 5, 3) and (grey == 64).all()
    assert to_uint8(torch.ones(1, 4, 2, 2)).shape == (1, 2, 2, 3)  # alpha dropped
    with pytest.raises(ValueError):
        to_uint8(torch.ones(1, 2, 3, 3))


def test_grid_layout(tmp_path):
    batch = torch.stack([torch.full((3, 4, 6), i / 10) for i in range(5)])
    grid = make_grid(to_uint8(batch), nrow=3, padding=1)
    assert grid.shape == (2 * 5 + 1, 3 * 7 + 1, 3)
    for i in range(5):
        r, c = divmod(i, 3)
        tile = grid[1 + r * 5 : 1 + r * 5 + 4, 1 + c * 7 : 1 + c * 7 + 6]
        assert (tile == round(i / 10 * 255)).all()
    assert (grid[0] == 255).all() and (grid[6:10, 15:21] == 255).all()  # padding and the empty 6th cell
    path = save_grid(batch, tmp_path / "sub" / "grid.png", nrow=3, padding=1)
    np.testing.assert_array_equal(iio.imread(path), grid)


def test_turntable_orbits_the_origin(tmp_path):
    seen: list[Cameras] = []

    def render_fn(cameras: Cameras) -> torch.Tensor:
        seen.append(cameras)
        # Colour each frame by its azimuth so the file's frame order can be checked.
        azimuth, _, _ = cameras.to_orbit()
        value = ((azimuth % 360) / 360).round(decimals=2)
        return value.reshape(-1, 1, 1, 1).expand(-1, 3, 8, 10).clone()

    path = save_turntable(render_fn, tmp_path / "t.gif", frames=8, elevation=30, radius=3.0, fov=40, batch_size=3)
    assert [len(c) for c in seen] == [3, 3, 2]
    cameras = Cameras.cat(seen)
    azimuth, elevation, radius = cameras.to_orbit()
    np.testing.assert_allclose(azimuth % 360, np.arange(8) * 45.0, atol=1e-3)
    np.testing.assert_allclose(elevation, 30.0, atol=1e-3)
    np.testing.assert_allclose(radius, 3.0, atol=1e-5)
    np.testing.assert_allclose(cameras.fov_deg, 40.0, atol=1e-3)
    frames = iio.imread(path, index=None)
    assert frames.shape[:3] == (8, 8, 10)
    np.testing.assert_allclose(frames[:, 0, 0, 0], np.round(np.round(np.arange(8) / 8, 2) * 255), atol=2)


def test_mp4_or_gif_fallback(tmp_path, monkeypatch):
    frames = [torch.rand(3, 15, 17) for _ in range(5)]  # odd sides: the MP4 writer pads them
    if images_module._has_ffmpeg():
        path = save_interpolation_video(frames, tmp_path / "v.mp4", fps=10)
        assert path.suffix == ".mp4"
        video = iio.imread(path, index=None, plugin="pyav") if _has_pyav() else _read_mp4(path)
        assert len(video) == 5
    monkeypatch.setattr(images_module, "_has_ffmpeg", lambda: False)
    with pytest.warns(UserWarning, match="imageio-ffmpeg"):
        path = save_interpolation_video(frames, tmp_path / "w.mp4")
    assert path.name == "w.gif" and iio.imread(path, index=None).shape == (5, 15, 17, 3)


def test_interpolation_video_rows_and_boomerang(tmp_path):
    frames = [torch.full((2, 3, 4, 4), i / 4) for i in range(4)]  # batches of two become a grid row
    path = save_interpolation_video(frames, tmp_path / "i.gif", boomerang=True)
    video = iio.imread(path, index=None)
    assert video.shape == (6, 4 + 4, 2 * 6 + 2, 3)  # 4 frames + 2 on the way back, padding 2
    np.testing.assert_allclose(video[:, 2, 2, 0], np.round(np.array([0, 1, 2, 3, 2, 1]) / 4 * 255), atol=2)


def test_mesh_turntable_with_the_opengl_renderer(tmp_path):
    from unflat.render.gl_backends import create_renderer

    renderer = create_renderer("auto", 32, background=(1.0, 1.0, 1.0))  # moderngl: part of the core install
    box = trimesh.creation.box(extents=[0.6, 0.6, 0.6])
    box.apply_translation([0.5, 0.0, 0.0])  # on +X: right of centre at azimuth 0, left at 180
    box.visual.vertex_colors = [200, 40, 40, 255]
    path = save_mesh_turntable(box, tmp_path / "box.gif", renderer, frames=4, elevation=0, radius=3.0)
    frames = iio.imread(path, index=None).astype(float)
    assert frames.shape == (4, 32, 32, 3)
    object_pixels = frames.sum(-1) < 600
    columns = [np.nonzero(m.any(axis=0))[0].mean() for m in object_pixels]
    assert columns[0] > 16 and columns[2] < 16
    # radius=None fits the whole mesh in view: no object pixel on the image border
    fitted = iio.imread(save_mesh_turntable(box, tmp_path / "fit.gif", renderer, frames=4), index=None)
    border = np.concatenate([fitted[:, 0], fitted[:, -1], fitted[:, :, 0], fitted[:, :, -1]], axis=1)
    assert (border.astype(float).sum(-1) > 700).all()
    assert (fitted.astype(float).sum(-1) < 600).any()


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _read_mp4(path):
    import imageio.v2 as iio2

    with iio2.get_reader(path) as reader:
        return [frame for frame in reader]
