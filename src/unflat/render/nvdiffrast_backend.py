"""nvdiffrast as a rasteriser backend (CUDA only; optional).

Used automatically by :func:`unflat.render.rasterizer.get_rasterizer` on CUDA when ``nvdiffrast.torch``
imports and its CUDA context can be created; everything else (interpolation, texturing, soft
silhouette) is shared with the PyTorch backend, so the two give the same images.

nvdiffrast's ``rasterize`` returns (u, v, z/w, face+1) per pixel with barycentrics weighting the
face's vertices as (u, v, 1-u-v), and its gradient flows from (u, v) back to the clip-space positions.
Its pixel convention (row 0 at NDC y = -1, pixel centres at half-integers) is the one unflat's
rasteriser uses.

Building it: ``pip install nvdiffrast`` (or the ``diffrp-nvdiffrast`` wheel, which carries its
sources) then the first use JIT-compiles the CUDA plugin (~30 s, needs nvcc + ninja). With recent
PyTorch, ``torch.utils.cpp_extension.load`` no longer makes the built plugin importable by name,
which breaks nvdiffrast's ``importlib.import_module``; :func:`_import` registers the module that
``load`` (or ``_import_module_from_library``) returned in ``sys.modules`` as a workaround.
"""

from __future__ import annotations

import functools
import sys

import torch
from torch import Tensor

from unflat.render.fragments import Fragments, fragments_from_face_ids


def _registering(function, name_of):
    """Wrap a cpp_extension loader so the module it returns is importable by name afterwards."""
    if getattr(function, "_unflat_patched", False):
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        module = function(*args, **kwargs)
        name = name_of(args, kwargs)
        if module is not None and name and name not in sys.modules:
            sys.modules[name] = module
        return module

    wrapper._unflat_patched = True  # type: ignore[attr-defined]
    return wrapper


@functools.lru_cache(maxsize=1)
def _import():
    """Import nvdiffrast.torch with cpp_extension's loaders patched (see the module doc).

    nvdiffrast first tries ``_import_module_from_library`` (a plugin built earlier) and else
    ``load`` (build now), then ``importlib.import_module(plugin_name)``; both loaders get wrapped.
    """
    import torch.utils.cpp_extension as cpp

    cpp.load = _registering(cpp.load, lambda a, k: k.get("name", a[0] if a else None))
    if hasattr(cpp, "_import_module_from_library"):
        cpp._import_module_from_library = _registering(
            cpp._import_module_from_library, lambda a, k: k.get("module_name", a[0] if a else None))
    import nvdiffrast.torch as dr  # noqa: PLC0415

    return dr


@functools.lru_cache(maxsize=8)
def _context(device_index: int):
    dr = _import()
    return dr.RasterizeCudaContext(device=torch.device("cuda", device_index))


def unavailable_reason(device: torch.device | str = "cuda") -> str | None:
    """None when nvdiffrast can rasterise on ``device``, else why not."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return "nvdiffrast needs a CUDA device"
    try:
        _context(device.index if device.index is not None else torch.cuda.current_device())
    except Exception as exc:  # import error, compiler missing, build failure ...
        return f"{type(exc).__name__}: {exc}"
    return None


@functools.lru_cache(maxsize=8)
def _available(device_str: str) -> bool:
    return unavailable_reason(device_str) is None


def available(device: torch.device | str = "cuda") -> bool:
    """Whether nvdiffrast imports, builds and runs on ``device`` (cached)."""
    device = torch.device(device)
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _available(f"cuda:{index}")


class NvdiffrastRasterizer:
    """The CUDA hardware-style rasteriser of nvdiffrast behind unflat's ``Rasterizer`` protocol."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        device = torch.device(device)
        self.device_index = device.index if device.index is not None else torch.cuda.current_device()

    def rasterize(self, verts_clip: Tensor, faces: Tensor, resolution: tuple[int, int]) -> Fragments:
        dr = _import()
        ctx = _context(self.device_index)
        pos = verts_clip.float().contiguous()
        tri = faces.to(device=pos.device, dtype=torch.int32).contiguous()
        rast, _ = dr.rasterize(ctx, pos, tri, resolution=list(resolution))
        if verts_clip.dtype != torch.float32:
            # Other precisions (float64 checks): recompute the weights in that precision from the face ids.
            return fragments_from_face_ids(verts_clip, faces.long(), rast[..., 3].long() - 1, resolution)
        return fragments_from_nvdiffrast(rast, pos, faces)


def fragments_from_nvdiffrast(rast: Tensor, verts_clip: Tensor, faces: Tensor) -> Fragments:
    """nvdiffrast's rasteriser output [B,H,W,4] = (u, v, z/w, face+1) -> Fragments.

    Its (u, v) weight the face's first and second vertex (the third gets 1-u-v) and carry gradients
    to the clip positions; depth (clip w) is interpolated with those perspective-correct weights.
    """
    face_id = rast[..., 3].long() - 1
    covered = (face_id >= 0).to(rast.dtype)
    u, v = rast[..., 0], rast[..., 1]
    bary = torch.stack([u, v, 1 - u - v], -1) * covered[..., None]
    batch = verts_clip.shape[0]
    corner_w = verts_clip[..., 3][torch.arange(batch, device=rast.device)[:, None, None, None],
                                   faces.long()[face_id.clamp_min(0)]]
    depth = (bary * corner_w).sum(-1) * covered
    return Fragments(face_id, bary, depth)
