"""Sofas: a base, seat cushions, a back and two arms (a concave seat well), optional legs and chaise."""

from __future__ import annotations

import numpy as np

from unflat.data.synth import palettes
from unflat.data.synth.parts import box, choice, jitter_color, Part, rod


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    width = rng.uniform(1.3, 2.4)
    depth = rng.uniform(0.75, 1.0)
    leg_h = rng.uniform(0.0, 0.15)
    base_h = rng.uniform(0.18, 0.3)
    cushion_h = rng.uniform(0.08, 0.16)
    back_h = rng.uniform(0.3, 0.55)
    back_t = rng.uniform(0.12, 0.25)
    arm_w = rng.uniform(0.08, 0.25)
    arm_h = rng.uniform(0.1, 0.3)
    seats = int(rng.integers(1, 4))
    chaise = bool(rng.random() < 0.25)
    fabric = jitter_color(rng, choice(rng, palettes.FABRIC))
    cushion_color = fabric if rng.random() < 0.7 else jitter_color(rng, choice(rng, palettes.FABRIC))
    leg_color = jitter_color(rng, choice(rng, palettes.WOOD + palettes.METAL))
    parts: list[Part] = []
    y_base = leg_h + base_h / 2
    parts.append(Part("base", box((width, base_h, depth), (0, y_base, 0)), fabric, "fabric"))
    seat_top = leg_h + base_h
    inner_w = width - 2 * arm_w
    seat_d = depth - back_t
    gap = 0.01
    cw = (inner_w - gap * (seats - 1)) / seats
    for k in range(seats):
        x = -inner_w / 2 + cw / 2 + k * (cw + gap)
        parts.append(Part(f"cushion{k}", box((cw, cushion_h, seat_d), (x, seat_top + cushion_h / 2, depth / 2 - seat_d / 2)), cushion_color, "fabric"))
    parts.append(Part("back", box((width, back_h + cushion_h, back_t), (0, seat_top + (back_h + cushion_h) / 2, -depth / 2 + back_t / 2)), fabric, "fabric"))
    arm_top = seat_top + cushion_h + arm_h
    for side in (-1, 1):
        parts.append(Part(f"arm{side}", box((arm_w, arm_top - leg_h, depth), (side * (width / 2 - arm_w / 2), leg_h + (arm_top - leg_h) / 2, 0)), fabric, "fabric"))
    chaise_d = 0.0
    if chaise:
        chaise_d = rng.uniform(0.5, 0.8)
        side = 1 if rng.random() < 0.5 else -1
        cwid = min(cw, inner_w / 2)
        x = side * (inner_w / 2 - cwid / 2)
        parts.append(Part("chaise", box((cwid + arm_w, base_h + cushion_h, chaise_d), (x + side * arm_w / 2, leg_h + (base_h + cushion_h) / 2, depth / 2 + chaise_d / 2)), cushion_color, "fabric"))
    if leg_h > 0.02:
        r = rng.uniform(0.015, 0.03)
        zf = depth / 2 + chaise_d - 0.06
        for k, (sx, z) in enumerate([(-1, zf), (1, zf), (-1, -depth / 2 + 0.06), (1, -depth / 2 + 0.06)]):
            x = sx * (width / 2 - 0.06)
            parts.append(Part(f"leg{k}", rod((x, 0, z), (x, leg_h + 0.01, z), r, 12), leg_color, "wood"))
    params = dict(width=width, depth=depth, seats=seats, back_height=back_h, arm_width=arm_w, arm_height=arm_h,
                  leg_height=leg_h, chaise=int(chaise))
    return parts, params
