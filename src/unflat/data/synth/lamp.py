"""Lamps: floor, desk (two-segment arm with joints) or arc lamps; a weighted base, a hollow open shade, a bulb."""

from __future__ import annotations

import numpy as np
import trimesh

from unflat.data.synth import palettes
from unflat.data.synth.parts import choice, jitter_color, Part, revolve_y, rod, tube


def _shade(rng: np.random.Generator, height: float) -> tuple[trimesh.Trimesh, float, float]:
    """A thin-walled truncated cone open at both ends, axis +Y, from y=0 (bottom) to ``height``."""
    r_bottom = height * rng.uniform(0.6, 1.1)
    r_top = r_bottom * rng.uniform(0.35, 0.9)
    t = rng.uniform(0.01, 0.02)
    profile = np.array([[r_bottom, 0.0], [r_bottom + t, 0.0], [r_top + t, height], [r_top, height]])
    return revolve_y(profile, 48), r_bottom, r_top


def _orient(mesh: trimesh.Trimesh, direction: np.ndarray, position: np.ndarray) -> trimesh.Trimesh:
    """Rotate +Y onto ``direction`` and move the origin to ``position``."""
    transform = trimesh.geometry.align_vectors(np.array([0.0, 1.0, 0.0]), direction / np.linalg.norm(direction))
    mesh.apply_transform(transform)
    mesh.apply_translation(position)
    return mesh


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    style = choice(rng, ["floor", "desk", "arc"])
    metal = jitter_color(rng, choice(rng, palettes.METAL + [palettes.PLASTIC[1], palettes.WOOD[0]]), 10)
    shade_color = jitter_color(rng, choice(rng, palettes.SHADE), 10)
    base_r = rng.uniform(0.12, 0.25)
    base_t = rng.uniform(0.02, 0.06)
    pole_r = rng.uniform(0.01, 0.025)
    parts = []
    if rng.random() < 0.6:
        base = revolve_y(np.array([[0, 0], [base_r, 0], [base_r * 0.85, base_t], [0, base_t]]), 48)
    else:
        base = trimesh.creation.box((base_r * 1.8, base_t, base_r * 1.4))
        base.apply_translation((0, base_t / 2, 0))
    parts.append(Part("base", base, metal, "metal"))
    shade_h = rng.uniform(0.15, 0.35)
    if style == "floor":
        pole_h = rng.uniform(0.9, 1.6)
        parts.append(Part("pole", rod((0, base_t, 0), (0, pole_h, 0), pole_r), metal, "metal"))
        shade, r_bot, r_top = _shade(rng, shade_h)
        y_shade = pole_h - shade_h * 0.4
        parts.append(Part("shade", _orient(shade, np.array([0.0, 1.0, 0.0]), np.array([0, y_shade, 0])), shade_color, "fabric"))
        bulb_at = np.array([0, y_shade + shade_h * 0.3, 0])
        params = dict(pole_height=pole_h)
    elif style == "desk":
        lower = rng.uniform(0.3, 0.5)
        upper = rng.uniform(0.3, 0.5)
        a1 = np.radians(rng.uniform(-25, 25))  # lower arm tilt from vertical (towards +Z / -Z)
        a2 = np.radians(rng.uniform(35, 80))  # upper arm leans forward
        p0 = np.array([0.0, base_t, 0.0])
        p1 = p0 + lower * np.array([0.0, np.cos(a1), np.sin(a1)])
        p2 = p1 + upper * np.array([0.0, np.cos(a2), np.sin(a2)])
        for name, (a, b) in {"arm_lower": (p0, p1), "arm_upper": (p1, p2)}.items():
            parts.append(Part(name, rod(a, b, pole_r), metal, "metal"))
        for name, p in {"joint_base": p0, "joint_elbow": p1, "joint_head": p2}.items():
            parts.append(Part(name, trimesh.creation.icosphere(2, radius=pole_r * 1.8).apply_translation(p), metal, "metal"))
        shade_h *= 0.8
        shade, r_bot, r_top = _shade(rng, shade_h)
        # Shade hangs from the head, opening downward and forward.
        tilt = np.radians(rng.uniform(10, 50))
        down = np.array([0.0, -np.cos(tilt), np.sin(tilt)])
        parts.append(Part("shade", _orient(shade, -down, p2 + down * shade_h), shade_color, "metal"))
        bulb_at = p2 + down * shade_h * 0.55
        params = dict(lower_arm=lower, upper_arm=upper)
    else:  # arc: a tall tube curving over to a hanging shade
        rise = rng.uniform(1.0, 1.5)
        reach = rng.uniform(0.5, 0.9)
        a = np.radians(np.linspace(0, 90, 24))
        arc_c = np.array([0.0, rise - reach, reach])  # arc centre: pole goes up, then bends towards +Z
        pts = [np.array([0, base_t, 0]), np.array([0, rise - reach, 0])]
        pts += [arc_c + reach * np.array([0, np.sin(t), -np.cos(t)]) for t in a[1:]]
        path = np.array(pts)
        parts.append(Part("arc", tube(path, pole_r * 1.2, 12), metal, "metal"))
        tip = path[-1]
        drop = rng.uniform(0.1, 0.25)
        parts.append(Part("cord", rod(tip, tip - np.array([0, drop, 0]), pole_r * 0.5), metal, "metal"))
        shade, r_bot, r_top = _shade(rng, shade_h)
        parts.append(Part("shade", _orient(shade, np.array([0.0, 1.0, 0.0]), tip - np.array([0, drop + shade_h * 0.9, 0])), shade_color, "fabric"))
        bulb_at = tip - np.array([0, drop + shade_h * 0.6, 0])
        params = dict(arc_rise=rise, arc_reach=reach)
    bulb_r = min(r_top, r_bot) * rng.uniform(0.35, 0.6)
    parts.append(Part("bulb", trimesh.creation.icosphere(2, radius=bulb_r).apply_translation(bulb_at), palettes.BULB, "emissive"))
    params.update(style=style, base_radius=base_r, shade_height=shade_h, pole_radius=pole_r)
    return parts, params
