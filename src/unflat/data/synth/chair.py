"""Chairs: seat, four legs or a swivel base, a back (solid, slatted or open frame), optional arms and stretchers."""

from __future__ import annotations

import numpy as np

from unflat.data.synth import palettes
from unflat.data.synth.parts import box, choice, jitter_color, Part, rod


def generate(rng: np.random.Generator) -> tuple[list[Part], dict]:
    width = rng.uniform(0.40, 0.62)
    depth = rng.uniform(0.38, 0.56)
    seat_h = rng.uniform(0.38, 0.52)
    seat_t = rng.uniform(0.03, 0.09)
    back_h = rng.uniform(0.28, 0.60)
    back_t = rng.uniform(0.025, 0.06)
    leg_t = rng.uniform(0.025, 0.055)
    legs = choice(rng, ["square", "square", "round", "swivel"])
    back = choice(rng, ["solid", "vertical_slats", "horizontal_slats", "frame"])
    arms = bool(rng.random() < 0.35)
    stretchers = legs != "swivel" and bool(rng.random() < 0.5)
    frame_color = jitter_color(rng, choice(rng, palettes.WOOD if legs != "swivel" else palettes.METAL))
    seat_color = jitter_color(rng, choice(rng, palettes.FABRIC + palettes.WOOD))
    back_color = seat_color if rng.random() < 0.7 else frame_color

    parts = [Part("seat", box((width, seat_t, depth), (0, seat_h - seat_t / 2, 0)), seat_color, "fabric")]
    leg_top = seat_h - seat_t
    inset = leg_t / 2 + 0.01
    corners = [(sx * (width / 2 - inset), sz * (depth / 2 - inset)) for sx in (-1, 1) for sz in (-1, 1)]
    if legs == "swivel":
        column_r = rng.uniform(0.025, 0.045)
        foot_y = rng.uniform(0.04, 0.08)
        parts.append(Part("column", rod((0, foot_y, 0), (0, leg_top, 0), column_r), frame_color, "metal"))
        spokes = int(rng.integers(4, 6))
        reach = rng.uniform(0.26, 0.34)
        for k in range(spokes):
            a = 2 * np.pi * k / spokes
            tip = (reach * np.sin(a), foot_y * 0.6, reach * np.cos(a))
            parts.append(Part(f"spoke{k}", rod((0, foot_y, 0), tip, leg_t * 0.5), frame_color, "metal"))
            parts.append(Part(f"caster{k}", rod((tip[0], 0.0, tip[2]), (tip[0], foot_y * 0.6, tip[2]), leg_t * 0.55), palettes.PLASTIC[1], "plastic"))
    else:
        for k, (x, z) in enumerate(corners):
            if legs == "round":
                leg = rod((x, 0, z), (x, leg_top, z), leg_t / 2)
            else:
                leg = box((leg_t, leg_top, leg_t), (x, leg_top / 2, z))
            parts.append(Part(f"leg{k}", leg, frame_color, "wood"))
        if stretchers:
            y = leg_top * rng.uniform(0.2, 0.4)
            r = leg_t * 0.3
            for side in (-1, 1):
                x = side * (width / 2 - inset)
                parts.append(Part(f"stretcher_side{side}", rod((x, y, -(depth / 2 - inset)), (x, y, depth / 2 - inset), r), frame_color, "wood"))
            parts.append(Part("stretcher_cross", rod((-(width / 2 - inset), y, 0), (width / 2 - inset, y, 0), r), frame_color, "wood"))

    # Back: rests on the rear edge of the seat (-Z is the back, the chair faces +Z).
    z_back = -depth / 2 + back_t / 2
    y0 = seat_h
    if back == "solid":
        parts.append(Part("back", box((width, back_h, back_t), (0, y0 + back_h / 2, z_back)), back_color, "fabric"))
    else:
        post_w = rng.uniform(0.03, 0.06)
        rail_h = rng.uniform(0.04, 0.09)
        for side in (-1, 1):
            x = side * (width / 2 - post_w / 2)
            parts.append(Part(f"back_post{side}", box((post_w, back_h, back_t), (x, y0 + back_h / 2, z_back)), frame_color, "wood"))
        parts.append(Part("back_top_rail", box((width, rail_h, back_t), (0, y0 + back_h - rail_h / 2, z_back)), back_color, "wood"))
        inner_w = width - 2 * post_w
        if back == "vertical_slats":
            count = int(rng.integers(2, 6))
            slat_w = inner_w / (2 * count + 1) * rng.uniform(0.8, 1.2)
            for k in range(count):
                x = -inner_w / 2 + inner_w * (k + 1) / (count + 1)
                parts.append(Part(f"slat{k}", box((slat_w, back_h - rail_h, back_t * 0.6), (x, y0 + (back_h - rail_h) / 2, z_back)), back_color, "wood"))
        elif back == "horizontal_slats":
            count = int(rng.integers(1, 4))
            span = back_h - rail_h
            for k in range(count):
                y = y0 + span * (k + 1) / (count + 1)
                parts.append(Part(f"slat{k}", box((inner_w + 0.01, rail_h * 0.7, back_t * 0.6), (0, y, z_back)), back_color, "wood"))
        # "frame": posts and the top rail only, an open back (a hole).
    if arms:
        arm_h = rng.uniform(0.18, 0.28)
        arm_w = rng.uniform(0.04, 0.07)
        for side in (-1, 1):
            x = side * (width / 2 + arm_w / 2)
            parts.append(Part(f"arm{side}", box((arm_w, 0.03, depth * 0.9), (x, seat_h + arm_h, -depth * 0.05)), frame_color, "wood"))
            parts.append(Part(f"arm_post{side}", box((arm_w * 0.6, arm_h + seat_t, 0.03), (x, seat_h - seat_t + (arm_h + seat_t) / 2, depth * 0.3)), frame_color, "wood"))
    params = dict(width=width, depth=depth, seat_height=seat_h, seat_thickness=seat_t, back_height=back_h,
                  leg_thickness=leg_t, legs=legs, back=back, arms=int(arms), stretchers=int(stretchers))
    return parts, params
