"""Cars: a lower body, a glass cabin with a roof, four wheels with hubs, lights; sedan, hatchback, SUV or pickup."""

from __future__ import annotations

import numpy as np
import trimesh

from unflat.data.synth import palettes
from unflat.data.synth.parts import box, choice, jitter_color, Part, rod


def _hull(points: list[tuple[float, float, float]]) -> trimesh.Trimesh:
    return trimesh.convex.convex_hull(np.asarray(points, dtype=np.float64))


def _prism(profile_zy: list[tuple[float, float]], half_width_bottom: float, half_width_top: float, y_split: float) -> trimesh.Trimesh:
    """Convex solid from a side profile (z, y) extruded across X; narrower above ``y_split``."""
    points = []
    for z, y in profile_zy:
        hw = half_width_top if y > y_split + 1e-9 else half_width_bottom
        points += [(-hw, y, z), (hw, y, z)]
    return _hull(points)


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    style = choice(rng, ["sedan", "hatchback", "suv", "pickup"])
    length = rng.uniform(1.7, 2.4) * (1.1 if style == "pickup" else 1.0)
    width = rng.uniform(0.75, 0.95)
    wheel_r = rng.uniform(0.14, 0.2) * (1.2 if style in ("suv", "pickup") else 1.0)
    clearance = wheel_r * rng.uniform(0.55, 0.8)
    body_h = rng.uniform(0.22, 0.34) * (1.2 if style == "suv" else 1.0)
    cabin_h = rng.uniform(0.2, 0.32)
    hood_slope = rng.uniform(0.03, 0.1)
    paint = jitter_color(rng, choice(rng, palettes.CAR_PAINT), 12)
    glass = jitter_color(rng, choice(rng, palettes.GLASS), 8)
    hub = jitter_color(rng, choice(rng, palettes.METAL), 8)
    half_l, half_w = length / 2, width / 2
    y0, y1 = clearance, clearance + body_h
    # Lower body: side profile with a sloped nose (front is +Z).
    body = _hull([(sx * half_w, y, z) for sx in (-1, 1) for (z, y) in [
        (-half_l, y0 + 0.02), (half_l - 0.05, y0), (half_l, y0 + body_h * 0.45), (half_l - 0.12, y1 - hood_slope * 0.3),
        (-half_l, y1), (-half_l + 0.02, y0)]])
    parts = [Part("body", body, paint, "paint")]
    # Cabin: trapezoid side profile, narrower at the roof.
    if style == "sedan":
        c0, c1 = -half_l * 0.55, half_l * 0.25
    elif style == "hatchback":
        c0, c1 = -half_l * 0.95, half_l * 0.25
    elif style == "suv":
        c0, c1 = -half_l * 0.97, half_l * 0.3
    else:  # pickup: short cab, open bed behind it
        c0, c1 = -half_l * 0.1, half_l * 0.3
    rake_front = rng.uniform(0.15, 0.32) * (c1 - c0)
    rake_back = rng.uniform(0.05, 0.3) * (c1 - c0) if style in ("sedan",) else rng.uniform(0.0, 0.08) * (c1 - c0)
    top = y1 + cabin_h
    roof_inset = rng.uniform(0.04, 0.1)
    cabin = _prism([(c0, y1 - 0.01), (c1, y1 - 0.01), (c1 - rake_front, top), (c0 + rake_back, top)],
                   half_w - 0.03, half_w - roof_inset, y1)
    parts.append(Part("cabin_glass", cabin, glass, "glass"))
    roof_l = (c1 - rake_front) - (c0 + rake_back)
    parts.append(Part("roof", box((width - 2 * roof_inset + 0.02, 0.03, roof_l + 0.02), (0, top + 0.005, (c1 - rake_front + c0 + rake_back) / 2)), paint, "paint"))
    if style == "pickup":
        bed_l = (c0 + half_l) - 0.05
        wall = 0.035
        zc = -half_l + bed_l / 2
        bed_h = rng.uniform(0.12, 0.2)
        for sx in (-1, 1):
            parts.append(Part(f"bed_side{sx}", box((wall, bed_h, bed_l), (sx * (half_w - wall / 2), y1 + bed_h / 2, zc)), paint, "paint"))
        parts.append(Part("bed_tailgate", box((width, bed_h, wall), (0, y1 + bed_h / 2, -half_l + wall / 2)), paint, "paint"))
    # Wheels: tyres (cylinders along X) with hubs, at front and rear axles.
    tyre_w = rng.uniform(0.1, 0.16)
    axle_front, axle_rear = half_l * rng.uniform(0.55, 0.7), -half_l * rng.uniform(0.55, 0.72)
    for k, (sx, z) in enumerate([(sx, z) for z in (axle_front, axle_rear) for sx in (-1, 1)]):
        x_out = sx * (half_w + tyre_w * 0.15)
        x_in = x_out - sx * tyre_w
        parts.append(Part(f"tyre{k}", rod((x_in, wheel_r, z), (x_out, wheel_r, z), wheel_r, 28), palettes.TYRE, "rubber"))
        parts.append(Part(f"hub{k}", rod((x_out - sx * 0.02, wheel_r, z), (x_out + sx * 0.01, wheel_r, z), wheel_r * 0.55, 20), hub, "metal"))
    # Lights: headlights at the nose, tail lights at the back.
    ly = y0 + body_h * 0.6
    for sx in (-1, 1):
        parts.append(Part(f"headlight{sx}", box((0.14, 0.05, 0.04), (sx * (half_w - 0.12), y0 + body_h * 0.42, half_l - 0.01)), (250, 245, 210), "glass"))
        parts.append(Part(f"taillight{sx}", box((0.12, 0.05, 0.04), (sx * (half_w - 0.1), ly, -half_l)), (200, 20, 20), "glass"))
    params = dict(style=style, length=length, width=width, wheel_radius=wheel_r, clearance=clearance,
                  body_height=body_h, cabin_height=cabin_h)
    return parts, params
