"""Tables: rectangular or round tops on four legs, a pedestal or trestles; optional apron and shelf."""

from __future__ import annotations

import numpy as np

from unflat.data.synth import palettes
from unflat.data.synth.parts import box, choice, jitter_color, Part, revolve_y, rod


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    top = choice(rng, ["rect", "rect", "round"])
    height = rng.uniform(0.40, 0.80)
    top_t = rng.uniform(0.025, 0.07)
    width = rng.uniform(0.8, 1.7)
    depth = width if top == "round" else rng.uniform(0.5, min(1.0, width))
    base = choice(rng, ["pedestal", "four_legs"]) if top == "round" else choice(rng, ["four_legs", "four_legs", "trestle"])
    leg_t = rng.uniform(0.03, 0.08)
    top_color = jitter_color(rng, choice(rng, palettes.WOOD + [palettes.PLASTIC[0], palettes.METAL[2]]))
    leg_color = top_color if rng.random() < 0.6 else jitter_color(rng, choice(rng, palettes.METAL + palettes.WOOD))
    parts: list[Part] = []
    y_top = height - top_t / 2
    if top == "round":
        r = width / 2
        parts.append(Part("top", revolve_y(np.array([[0, -top_t / 2], [r, -top_t / 2], [r, top_t / 2], [0, top_t / 2]]), 64, (0, y_top, 0)), top_color, "wood"))
    else:
        parts.append(Part("top", box((width, top_t, depth), (0, y_top, 0)), top_color, "wood"))
    leg_h = height - top_t
    apron = base == "four_legs" and bool(rng.random() < 0.5)
    shelf = base == "four_legs" and top == "rect" and bool(rng.random() < 0.25)
    if base == "four_legs":
        inset = rng.uniform(0.02, 0.12) + leg_t / 2
        if top == "round":
            a = width / 2 / np.sqrt(2) - inset
            corners = [(sx * a, sz * a) for sx in (-1, 1) for sz in (-1, 1)]
        else:
            corners = [(sx * (width / 2 - inset), sz * (depth / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
        round_legs = bool(rng.random() < 0.4)
        for k, (x, z) in enumerate(corners):
            leg = rod((x, 0, z), (x, leg_h, z), leg_t / 2) if round_legs else box((leg_t, leg_h, leg_t), (x, leg_h / 2, z))
            parts.append(Part(f"leg{k}", leg, leg_color, "wood"))
        xs = corners[-1][0]
        zs = corners[-1][1]
        if apron:
            apron_h = rng.uniform(0.05, 0.12)
            y = leg_h - apron_h / 2
            parts.append(Part("apron_front", box((2 * xs, apron_h, 0.02), (0, y, zs)), leg_color, "wood"))
            parts.append(Part("apron_back", box((2 * xs, apron_h, 0.02), (0, y, -zs)), leg_color, "wood"))
            parts.append(Part("apron_left", box((0.02, apron_h, 2 * zs), (-xs, y, 0)), leg_color, "wood"))
            parts.append(Part("apron_right", box((0.02, apron_h, 2 * zs), (xs, y, 0)), leg_color, "wood"))
        if shelf:
            y = leg_h * rng.uniform(0.15, 0.35)
            parts.append(Part("shelf", box((2 * xs + leg_t, top_t * 0.7, 2 * zs + leg_t), (0, y, 0)), top_color, "wood"))
    elif base == "pedestal":
        column_r = rng.uniform(0.04, 0.09)
        foot_r = rng.uniform(0.18, 0.3) * width
        foot_t = rng.uniform(0.02, 0.05)
        parts.append(Part("column", rod((0, foot_t, 0), (0, leg_h, 0), column_r, 24), leg_color, "metal"))
        parts.append(Part("foot", revolve_y(np.array([[0, 0], [foot_r, 0], [foot_r * 0.8, foot_t], [0, foot_t]]), 48), leg_color, "metal"))
    else:  # trestle: two panels near the ends joined by a stretcher
        panel_t = rng.uniform(0.04, 0.08)
        x = width / 2 - rng.uniform(0.08, 0.2)
        for side in (-1, 1):
            parts.append(Part(f"trestle{side}", box((panel_t, leg_h, depth * 0.75), (side * x, leg_h / 2, 0)), leg_color, "wood"))
            parts.append(Part(f"trestle_foot{side}", box((panel_t * 1.5, 0.05, depth * 0.9), (side * x, 0.025, 0)), leg_color, "wood"))
        parts.append(Part("stretcher", box((2 * x, 0.06, 0.05), (0, leg_h * 0.3, 0)), leg_color, "wood"))
    params = dict(top=top, base=base, width=width, depth=depth, height=height, top_thickness=top_t,
                  leg_thickness=leg_t, apron=int(apron), shelf=int(shelf))
    return parts, params
