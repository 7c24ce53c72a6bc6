"""The person as a label map (one value per body part, drawn with PIL) and its colours."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .appearance import PersonAppearance
from .pose import Pose

# Label values of the person map.
BG, SKIN, HAIR, UPPER, LOWER, SHOES, BAG, LOGO = range(8)


def _limb(x: float, y: float, length: float, width: float, angle: float) -> list[tuple[float, float]]:
    """Quad of a limb hanging from (x, y), rotated by `angle` (radians, + = towards +x)."""
    dx, dy = math.sin(angle), math.cos(angle)
    px, py = dy * width / 2, -dx * width / 2
    ex, ey = x + dx * length, y + dy * length
    return [(x - px, y - py), (x + px, y + py), (ex + px, ey + py), (ex - px, ey - py)]


def draw_labels(person: PersonAppearance, pose: Pose, h: int, w: int) -> tuple[np.ndarray, dict[str, float]]:
    """Label map of the person facing the camera (front/back) or facing +x (side).

    Also returns the geometry `colourise` needs. Lengths are in pixels: ph person height,
    hr head radius, sw shoulder width, sh_y / hip_y the shoulder / hip lines, cx the centre.
    """
    canvas = Image.new("L", (w, h), BG)
    draw = ImageDraw.Draw(canvas)
    ph = h * pose.scale * person.height
    top = (h - ph) * 0.5 + pose.dy * h
    side = pose.direction in ("left", "right")
    cx = w * 0.5 + (-pose.dx if pose.direction == "left" else pose.dx) * w
    hr = ph * person.head
    head_cy = top + hr
    sh_y = top + 2.1 * hr
    hip_y = top + ph * (1 - person.leg_ratio)
    foot_y = top + ph
    sw = ph * person.width * (0.6 if side else 1.0)
    hipw = sw * (0.9 if side else 0.8)
    leg_len = foot_y - hip_y
    legw = (ph * person.width * 0.8) * (0.42 if side else 0.45)
    armw = ph * person.width * 0.19
    arm_len = (hip_y - sh_y) * 1.15
    swing = pose.phase * (0.45 if side else 0.06)

    def leg(x: float, angle: float) -> None:
        quad = _limb(x, hip_y, leg_len, legw, angle)
        if person.lower_kind == "trousers":
            draw.polygon(quad, fill=LOWER)
        else:
            draw.polygon(quad, fill=SKIN)
            if person.lower_kind == "shorts":
                draw.polygon(_limb(x, hip_y, leg_len * 0.45, legw * 1.1, angle), fill=LOWER)
        fx, fy = x + math.sin(angle) * leg_len, hip_y + math.cos(angle) * leg_len
        fwd = legw * 0.5 if side else 0.0
        draw.ellipse((fx - legw * 0.6, fy - legw * 0.35, fx + legw * 0.6 + fwd, fy + legw * 0.25), fill=SHOES)

    def arm(x: float, angle: float) -> None:
        quad = _limb(x, sh_y + armw * 0.3, arm_len, armw, angle)
        if person.long_sleeves:
            draw.polygon(quad, fill=UPPER)
        else:
            draw.polygon(quad, fill=SKIN)
            draw.polygon(_limb(x, sh_y + armw * 0.3, arm_len * 0.4, armw * 1.05, angle), fill=UPPER)
        hx, hy = x + math.sin(angle) * arm_len, sh_y + armw * 0.3 + math.cos(angle) * arm_len
        draw.ellipse((hx - armw * 0.55, hy - armw * 0.5, hx + armw * 0.55, hy + armw * 0.6), fill=SKIN)
        if person.bag == "handbag" and angle * (1 if side else x - cx) >= 0:
            draw.rectangle((hx - armw, hy, hx + armw * 1.2, hy + armw * 2.2), fill=BAG)

    def skirt(hem: float) -> None:  # hem: half-width at the hem, in hip widths
        hem_y = hip_y + leg_len * 0.45
        draw.polygon(
            [(cx - hipw / 2, hip_y), (cx + hipw / 2, hip_y), (cx + hipw * hem, hem_y), (cx - hipw * hem, hem_y)],
            fill=LOWER,
        )

    torso = [
        (cx - sw / 2, sh_y),
        (cx + sw / 2, sh_y),
        (cx + hipw / 2, hip_y + 0.02 * ph),
        (cx - hipw / 2, hip_y + 0.02 * ph),
    ]
    head_box = (cx - hr * 0.9, head_cy - hr, cx + hr * 0.9, head_cy + hr)

    if side:
        if person.hair_long:
            draw.rectangle((cx - hr * 1.0, head_cy, cx + hr * 0.1, sh_y + 0.12 * ph), fill=HAIR)
        if person.bag == "backpack":
            draw.rectangle(
                (cx - sw / 2 - 0.3 * sw, sh_y + 0.03 * ph, cx - sw / 2 + 0.1 * sw, hip_y - 0.03 * ph), fill=BAG
            )
        leg(cx, -swing)  # far leg and arm first
        arm(cx, swing)
        if person.lower_kind == "skirt":
            skirt(0.8)
        draw.polygon(torso, fill=UPPER)
        leg(cx, swing)
        if person.lower_kind == "skirt":
            skirt(0.8)
        if person.bag == "shoulder":
            draw.line((cx - sw * 0.3, sh_y, cx + sw * 0.2, hip_y - 0.05 * ph), fill=BAG, width=max(1, int(sw * 0.12)))
            draw.rectangle((cx - sw * 0.35, hip_y - 0.08 * ph, cx + sw * 0.35, hip_y + 0.05 * ph), fill=BAG)
        arm(cx, -swing)
        draw.rectangle((cx - hr * 0.35, sh_y - hr * 0.5, cx + hr * 0.35, sh_y + 1), fill=SKIN)
        draw.ellipse(head_box, fill=HAIR)
        draw.ellipse((cx - hr * 0.2, head_cy - hr * 0.45, cx + hr * 0.95, head_cy + hr), fill=SKIN)
    else:
        back = pose.direction == "back"
        if person.hair_long and not back:
            draw.rectangle((cx - hr * 1.05, head_cy, cx + hr * 1.05, sh_y + 0.1 * ph), fill=HAIR)
        offset = (hipw / 2 - legw / 2) * 0.95
        leg(cx - offset, -abs(swing))
        leg(cx + offset, abs(swing))
        if person.lower_kind == "skirt":
            skirt(0.75)
        arm(cx - sw / 2 + armw * 0.35, -0.08 - swing)
        arm(cx + sw / 2 - armw * 0.35, 0.08 + swing)
        draw.polygon(torso, fill=UPPER)
        draw.rectangle((cx - hr * 0.35, sh_y - hr * 0.5, cx + hr * 0.35, sh_y + 1), fill=SKIN)
        if person.upper_pattern == "logo" and not back:
            lw, lh = sw * 0.32, ph * 0.07
            ly = sh_y + 0.06 * ph
            draw.rectangle((cx - lw / 2, ly, cx + lw / 2, ly + lh), fill=LOGO)
        side_sign = -1.0 if back else 1.0  # bags hang on the person's left: mirrored from the back
        if person.bag == "backpack":
            if back:
                draw.rectangle((cx - sw * 0.38, sh_y + 0.03 * ph, cx + sw * 0.38, hip_y - 0.02 * ph), fill=BAG)
            else:
                sw_w = max(1, int(sw * 0.09))
                draw.line((cx - sw * 0.3, sh_y, cx - sw * 0.3, sh_y + 0.18 * ph), fill=BAG, width=sw_w)
                draw.line((cx + sw * 0.3, sh_y, cx + sw * 0.3, sh_y + 0.18 * ph), fill=BAG, width=sw_w)
        elif person.bag == "shoulder":
            draw.line(
                (cx - side_sign * sw * 0.4, sh_y, cx + side_sign * hipw / 2, hip_y - 0.06 * ph),
                fill=BAG,
                width=max(1, int(sw * 0.08)),
            )
            bx = cx + side_sign * (hipw / 2 + 0.1 * sw)
            draw.rectangle(
                (
                    min(bx, bx + side_sign * 0.3 * sw),
                    hip_y - 0.08 * ph,
                    max(bx, bx + side_sign * 0.3 * sw),
                    hip_y + 0.06 * ph,
                ),
                fill=BAG,
            )
        draw.ellipse(head_box, fill=HAIR if back else SKIN)
        if back:
            if person.hair_long:
                draw.rectangle((cx - hr * 0.95, head_cy, cx + hr * 0.95, sh_y + 0.12 * ph), fill=HAIR)
        else:
            draw.chord(head_box, 180, 360, fill=HAIR)
    labels = np.asarray(canvas)
    geo = {"cx": cx, "top": top, "ph": ph, "sh_y": sh_y, "sw": sw}
    return labels, geo


def colourise(person: PersonAppearance, labels: np.ndarray, geo: dict[str, float]) -> np.ndarray:
    """Person colours (HxWx3 float32) with clothing pattern and cylindrical shading."""
    h, w = labels.shape
    lut = np.zeros((8, 3), dtype=np.float32)
    for label, colour in (
        (SKIN, person.skin),
        (HAIR, person.hair),
        (UPPER, person.upper),
        (LOWER, person.lower),
        (SHOES, person.shoes),
        (BAG, person.bag_colour),
        (LOGO, person.upper2),
    ):
        lut[label] = colour
    img = lut[labels]
    if person.upper_pattern in ("stripes", "checks"):
        size = max(1.0, person.pattern_scale * geo["ph"])
        rows = np.floor((np.arange(h) - geo["sh_y"]) / size).astype(np.int64)
        if person.upper_pattern == "stripes":
            pat = np.broadcast_to((rows & 1).astype(bool)[:, None], (h, w))
        else:
            cols = np.floor((np.arange(w) - geo["cx"]) / size).astype(np.int64)
            pat = ((rows[:, None] + cols[None, :]) & 1).astype(bool)
        img[(labels == UPPER) & pat] = person.upper2
    x = (np.arange(w, dtype=np.float32) - geo["cx"]) / max(1.0, 0.65 * geo["sw"])
    col = 1.0 - 0.3 * np.minimum(x * x, 1.0)
    row = 1.0 - 0.15 * np.clip((np.arange(h, dtype=np.float32) - geo["top"]) / max(1.0, geo["ph"]), 0, 1)
    return img * (row[:, None] * col[None, :])[:, :, None]
