"""In-the-wild composites of rendered shapes: framing, lighting, ground shadows, occluders, backgrounds.

``unflat dataset synth --wild`` renders each view once, unlit (albedo) with world normals over black, then:

1. **Framing** (``frame_cameras``, before rendering): the object's size and place in the frame vary through the
   camera *intrinsics* only. The focal lengths (fx/W, fy/H) are multiplied by a zoom ``s`` drawn from
   ``scale_range`` (1 = the default framing, in which the unit sphere just fits), and the principal point
   (cx/W, cy/H) moves away from the centre by a shift drawn so that the projected bounding box of the mesh stays
   inside the frame (``margin`` from its edges). cam2world stays the orbit camera looking at the origin. The
   stored camera is exactly the one that drew the image: projecting the ground-truth mesh with it lands on the
   mask (no 2D crop happens afterwards), so metrics and methods that read cameras need nothing special.
2. **Lighting** (``sample_lights``): per view, a key light from above (elevation 15-75 deg, azimuth within
   100 deg of the camera's), warm to cool in colour, a weak fill from the camera, and an ambient term tinted by
   the background's mean colour; shaded by ``unflat.render.relight.shade``.
3. **Ground shadow** (``shadow_meshes``): the mesh flattened onto the ground plane under it (y = its lowest
   vertex) along the key light, drawn with the same camera, blurred and darkening the background only; only
   in views from above the ground.
4. **Background** (``unflat.data.backgrounds``): a packaged photo crop or a procedural texture.
5. **Occluder** (probability ``occluders`` per view): a textured ellipse or bar over part of the object.

Masks are the visible object (coverage, minus any occluder) and depth is the object's (0 elsewhere and under an
occluder); ground-truth meshes are the shapes' own. Every random choice comes from a generator seeded by the
shape's seed, so a dataset is a pure function of its config and of the photos installed (recorded in the
manifest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import trimesh

from unflat.cameras import Cameras, orbit_to_eye
from unflat.data.backgrounds import BackgroundKind, Photo, procedural_background, random_background
from unflat.render.relight import ViewLights, shade

WARM = np.array([1.0, 0.82, 0.62])
COOL = np.array([0.72, 0.84, 1.0])


@dataclass(frozen=True)
class WildSettings:
    """What a rendering worker needs for wild composites (``photos`` resolved once, in the main process)."""

    backgrounds: BackgroundKind = "mixed"
    scale_range: tuple[float, float] = (0.5, 1.0)
    margin: float = 0.02
    occluders: float = 0.0
    shadows: bool = True
    photos: tuple[Photo, ...] = ()


@dataclass
class WildViews:
    """images uint8 [V,R,R,3], masks float [V,R,R], depth float [V,R,R], what each background is."""

    images: np.ndarray
    masks: np.ndarray
    depth: np.ndarray
    backgrounds: list[str]


def frame_cameras(cameras: Cameras, vertices: np.ndarray, rng: np.random.Generator,
                  scale_range: tuple[float, float], margin: float) -> Cameras:
    """Zoom (focal x s) and shift (principal point) each camera so the mesh's projected box stays in the frame."""
    intr = cameras.intrinsics.clone().double()
    b = len(cameras)
    intr[:, :2] *= torch.from_numpy(rng.uniform(*scale_range, size=b))[:, None]
    intr[:, 2:] = 0.5
    zoomed = Cameras(cameras.cam2world.double(), intr)
    points = torch.from_numpy(np.asarray(vertices, np.float64))[None].expand(b, -1, -1)
    uv, _ = zoomed.project(points)  # [B,N,2]; a principal point shift moves every projection by the same amount
    low = margin - uv.amin(1)  # smallest shift keeping the box's low edge inside
    high = 1 - margin - uv.amax(1)
    shift = torch.where(low <= high, low + torch.from_numpy(rng.random((b, 2))) * (high - low), (low + high) / 2)
    intr[:, 2:] = 0.5 + shift
    return Cameras(cameras.cam2world, intr.float())


def sample_lights(rng: np.random.Generator, cameras: Cameras, ambient_tint: np.ndarray) -> ViewLights:
    """Per view: key light from above (varied direction and colour), weak fill from the camera, tinted ambient.
    ambient_tint: [B,3] in [0,1] (the backgrounds' mean colours)."""
    b = len(cameras)
    azimuth, _, _ = cameras.to_orbit()
    key_azimuth = azimuth.double() + torch.from_numpy(rng.uniform(-100, 100, b))
    key_elevation = torch.from_numpy(rng.uniform(15, 75, b))
    key = orbit_to_eye(key_azimuth, key_elevation, 1.0)  # unit world direction towards the light
    fill = torch.nn.functional.normalize(cameras.cam2world[:, :3, 3].float(), dim=-1)  # a headlight
    t = rng.random((b, 1))
    key_colour = WARM * (1 - t) + COOL * t
    key_radiance = key_colour * rng.uniform(2.0, 3.6, (b, 1))
    fill_radiance = np.ones((b, 3)) * rng.uniform(0.2, 0.9, (b, 1))
    tint = 0.5 + 0.5 * ambient_tint / np.maximum(ambient_tint.max(1, keepdims=True), 1e-3)
    ambient = tint * rng.uniform(0.15, 0.4, (b, 1))
    return ViewLights(torch.stack([key, fill], 1).float(),
                      torch.from_numpy(np.stack([key_radiance, fill_radiance], 1)).float(),
                      torch.from_numpy(ambient).float())


def shadow_meshes(mesh: trimesh.Trimesh, light_directions: np.ndarray) -> list[trimesh.Trimesh]:
    """The mesh flattened onto its ground plane (y = lowest vertex) along each light [B,3] (unit, y > 0):
    a closed surface's projection is covered by its front-facing flattened triangles, whatever the culling."""
    vertices = np.asarray(mesh.vertices, np.float64)
    ground = vertices[:, 1].min()
    out = []
    for light in light_directions:
        flat = vertices - light[None] * ((vertices[:, 1] - ground) / max(light[1], 1e-3))[:, None]
        flat[:, 1] = ground
        out.append(trimesh.Trimesh(flat, np.asarray(mesh.faces), process=False))
    return out


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage  # noqa: PLC0415

    return ndimage.gaussian_filter(images, (0, sigma, sigma)) if sigma > 0 else images


def occluder_alpha(rng: np.random.Generator, size: int, mask: np.ndarray) -> np.ndarray:
    """float [size,size] in [0,1]: a soft-edged ellipse or bar centred on a random point of the object's box,
    covering part of it."""
    ys, xs = np.nonzero(mask > 0.5)
    if len(ys) == 0:
        return np.zeros((size, size))
    cy = rng.uniform(ys.min(), ys.max() + 1)
    cx = rng.uniform(xs.min(), xs.max() + 1)
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    y, x = np.mgrid[0:size, 0:size] + 0.5
    angle = rng.uniform(0, math.pi)
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    if rng.random() < 0.5:  # ellipse
        a, b = extent * rng.uniform(0.15, 0.35), extent * rng.uniform(0.1, 0.3)
        distance = (np.hypot(u / a, v / b) - 1) * min(a, b)  # ~pixels outside the edge
    else:  # a bar (post, branch) crossing the whole frame
        distance = np.abs(v) - extent * rng.uniform(0.05, 0.15)
    return np.clip(0.5 - distance, 0, 1)


def composite(renderer: object, mesh: trimesh.Trimesh, cameras: Cameras, rng: np.random.Generator,
              wild: WildSettings, resolution: int) -> WildViews:
    """Render ``mesh`` unlit from the (already framed) ``cameras`` and composite every view (module doc)."""
    out = renderer.render(mesh, cameras)  # unlit, over black, with normals
    coverage = out.mask[:, 0].double().numpy()  # [B,R,R]
    b = len(cameras)
    backgrounds, names = zip(*(random_background(rng, resolution, wild.backgrounds, wild.photos) for _ in range(b)))
    background = np.stack(backgrounds).astype(np.float64) / 255  # [B,R,R,3]
    lights = sample_lights(rng, cameras, background.mean((1, 2)))
    albedo = out.rgb / out.mask.clamp_min(1e-6)  # un-premultiply (rendered over black)
    lit = shade(albedo.clamp(0, 1), out.normals, lights).permute(0, 2, 3, 1).double().numpy()
    if wild.shadows:
        key = lights.directions[:, 0].double().numpy()
        ground = float(np.asarray(mesh.vertices)[:, 1].min())
        above = cameras.cam2world[:, 1, 3].double().numpy() > ground + 0.05
        shadow = renderer.render(shadow_meshes(mesh, key), cameras, compute_normals=False).mask[:, 0].double().numpy()
        shadow = _blur(shadow, resolution * 0.012) * above[:, None, None]
        strength = rng.uniform(0.3, 0.6, (b, 1, 1))
        background = background * (1 - strength * shadow)[..., None]
    image = lit * coverage[..., None] + background * (1 - coverage[..., None])
    depth = out.depth[:, 0].double().numpy() * (coverage > 0)
    masks = coverage.copy()
    for v in range(b):
        if wild.occluders > 0 and rng.random() < wild.occluders:
            alpha = occluder_alpha(rng, resolution, coverage[v])
            texture = procedural_background(rng, resolution).astype(np.float64) / 255
            image[v] = texture * alpha[..., None] * rng.uniform(0.6, 1.0) + image[v] * (1 - alpha[..., None])
            masks[v] = coverage[v] * (1 - alpha)
            depth[v] = np.where(alpha >= 0.5, 0.0, depth[v])
    images = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return WildViews(images, masks.astype(np.float32), depth.astype(np.float32), list(names))
