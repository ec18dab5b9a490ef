"""Mugs: a hollow, possibly tapered body (one watertight solid of revolution) and a handle (a torus section)."""

from __future__ import annotations

import numpy as np

from unflat.data.synth import palettes
from unflat.data.synth.parts import choice, jitter_color, Part, revolve_y, tube


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    radius = rng.uniform(0.3, 0.45)
    height = rng.uniform(0.6, 1.15)
    taper = rng.uniform(0.78, 1.18)  # top radius / bottom radius
    wall = rng.uniform(0.025, 0.06)
    bottom = rng.uniform(0.04, 0.1)
    r_bot, r_top = radius, radius * taper
    # Closed (radius, height) profile: outside wall up, rim, inside wall down, inner floor to the axis.
    slope = (r_top - r_bot) / height
    profile = np.array([
        [0.0, 0.0], [r_bot, 0.0], [r_top, height], [r_top - wall, height],
        [r_bot + slope * bottom - wall, bottom], [0.0, bottom],
    ])
    body_color = jitter_color(rng, choice(rng, palettes.CERAMIC), 10)
    handle_color = body_color if rng.random() < 0.8 else jitter_color(rng, choice(rng, palettes.CERAMIC), 10)
    parts = [Part("body", revolve_y(profile, 64), body_color, "ceramic")]
    # Handle: an elliptic arc on the +X side whose ends sink into the wall.
    span = height * rng.uniform(0.45, 0.7)
    y_mid = height * rng.uniform(0.45, 0.58)
    reach = rng.uniform(0.15, 0.3)
    handle_r = rng.uniform(0.025, 0.05)
    a = np.radians(np.linspace(-90, 90, 28))
    ys = y_mid + span / 2 * np.sin(a)
    wall_x = r_bot + slope * ys  # outside wall radius at each height
    sink = 0.8 * wall  # ends go into the wall but not through it into the cavity
    xs = wall_x - sink + (reach + sink) * np.cos(a)
    path = np.stack([xs, ys, np.zeros_like(xs)], 1)
    parts.append(Part("handle", tube(path, handle_r, 14), handle_color, "ceramic"))
    params = dict(radius=radius, height=height, taper=taper, wall=wall, bottom=bottom, handle_span=span,
                  handle_reach=reach, handle_radius=handle_r)
    return parts, params
