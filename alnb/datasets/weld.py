"""Synthetic steel-pipe weld radiographs: the embedded default dataset.

:func:`generate` writes a YOLO dataset (``images/``, ``labels/``, ``data.yaml``, ``meta.csv``) into ``out_dir``;
:func:`render` draws one image and its boxes in memory.  Each image is a grayscale film-like radiograph of a
horizontal weld bead with darker voids.  Classes (in this order, as in the study): ``bite-edge, crack,
slag-inclusion, broken-arc, air-hole, unfused``.  Difficulty varies for real reasons (defect size and contrast, blur,
noise, border cuts, a second radiography setup); some images hold no defect at all.

Every image draws from its own ``numpy.random.default_rng([seed, index])``, so the same seed gives byte-identical
files.  The YOLO label files written here are the full ground truth; the workspace hides POOL labels from training
until a (simulated) annotator reveals them.

Design notes: docs/design/weld-dataset.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

CLASS_NAMES = ["bite-edge", "crack", "slag-inclusion", "broken-arc", "air-hole", "unfused"]
BITE_EDGE, CRACK, SLAG, BROKEN_ARC, AIR_HOLE, UNFUSED = range(6)

# Probability of each defect *event* (an air-hole event is a cluster of 1-6 pores, so its instance share is larger).
EVENT_PROBS = {BITE_EDGE: 0.20, CRACK: 0.22, SLAG: 0.035, BROKEN_ARC: 0.14, AIR_HOLE: 0.20, UNFUSED: 0.205}


@dataclass
class WeldConfig:
    """Parameters of the generator (defaults give the study-sized dataset)."""

    n_images: int = 774
    width: int = 512
    height: int = 512
    seed: int = 0
    setup_b_fraction: float = 0.2  # images from the second radiography setup
    empty_fraction: float = 0.08  # images with no defect
    mean_events: float = 2.2  # defect events per non-empty image (Poisson mean, at least 1)
    event_probs: dict = field(default_factory=lambda: dict(EVENT_PROBS))


@dataclass
class _Scene:
    h: int
    w: int
    bead_y: float  # bead centre line
    bead_half: float  # bead half height
    tilt: float  # bead centre-line slope (px per px)

    def centre(self, x):
        return self.bead_y + self.tilt * (np.asarray(x, dtype=np.float32) - self.w / 2)


def _smooth_noise(rng, h, w, scale, octaves=3):
    """Low-frequency mottle in [-1, 1] from upsampled random grids."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        gh, gw = max(2, int(h / scale * 2**o)), max(2, int(w / scale * 2**o))
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    return out / (np.abs(out).max() + 1e-6)


def _box(x0, y0, x1, y1, w, h, min_visible=0.45):
    """Clip a pixel box to the image; drop it when less than ``min_visible`` of its area stays inside."""
    area = max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, w - 1.0), min(y1, h - 1.0)
    if cx1 - cx0 < 2 or cy1 - cy0 < 2:
        return None
    if (cx1 - cx0) * (cy1 - cy0) / area < min_visible:
        return None
    return cx0, cy0, cx1, cy1


def _polyline_mask(h, w, pts, thickness):
    m = np.zeros((h, w), np.float32)
    p = np.round(np.asarray(pts) * 4).astype(np.int32).reshape(-1, 1, 2)  # 2 bits of sub-pixel precision
    cv2.polylines(m, [p], False, 1.0, thickness=max(1, int(round(thickness))), lineType=cv2.LINE_AA, shift=2)
    return m


def _defect(kind, rng, sc: _Scene, contrast):
    """Return (darkening map, list of pixel boxes) for one defect event."""
    h, w = sc.h, sc.w
    dark = np.zeros((h, w), np.float32)
    boxes = []
    x = rng.uniform(-0.04 * w, 1.04 * w)  # may touch or cross the left/right border
    if kind == AIR_HOLE:
        n = int(rng.choice([1, 1, 2, 3, 4, 5, 6]))
        cy = sc.centre(x) + rng.uniform(-0.6, 0.6) * sc.bead_half
        spread = rng.uniform(6, 22)
        for _ in range(n):
            r = rng.uniform(3.5, 9.0)
            px, py = x + rng.normal(0, spread), cy + rng.normal(0, spread * 0.5)
            ry = r * rng.uniform(0.8, 1.2)
            cv2.ellipse(dark, (int(px * 4), int(py * 4)), (int(r * 4), int(ry * 4)), 0, 0, 360, 1.0, -1,
                        cv2.LINE_AA, shift=2)
            b = _box(px - r - 1, py - ry - 1, px + r + 1, py + ry + 1, w, h)
            if b:
                boxes.append(b)
        dark = cv2.GaussianBlur(dark, (0, 0), 0.8) * contrast * 0.55
    elif kind == SLAG:
        L, Wd = rng.uniform(16, 48), rng.uniform(5, 13)
        ang = rng.normal(0, 0.25)
        cy = sc.centre(x) + rng.uniform(-0.5, 0.5) * sc.bead_half
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        rad = 1 + 0.35 * rng.standard_normal(24)
        rad = np.clip(np.convolve(np.r_[rad, rad[:2]], np.ones(3) / 3, "valid")[: len(t)], 0.45, 1.6)
        px = L / 2 * rad * np.cos(t)
        py = Wd / 2 * rad * np.sin(t)
        xs = x + px * math.cos(ang) - py * math.sin(ang)
        ys = cy + px * math.sin(ang) + py * math.cos(ang)
        poly = np.round(np.stack([xs, ys], 1) * 4).astype(np.int32)
        cv2.fillPoly(dark, [poly], 1.0, cv2.LINE_AA, shift=2)
        tex = 0.75 + 0.25 * rng.random((h, w)).astype(np.float32)
        dark = cv2.GaussianBlur(dark * tex, (0, 0), 1.0) * contrast * 0.6
        b = _box(xs.min() - 1, ys.min() - 1, xs.max() + 1, ys.max() + 1, w, h)
        if b:
            boxes.append(b)
    elif kind == CRACK:
        L = rng.uniform(40, 130)
        transverse = rng.random() < 0.3
        ang = (math.pi / 2 + rng.normal(0, 0.25)) if transverse else rng.normal(0, 0.2)
        if transverse:
            L = min(L, 2 * sc.bead_half * 1.1)
        n = max(6, int(L / 5))
        steps = rng.normal(0, 0.45, n).cumsum() * 0.5
        s = np.linspace(-L / 2, L / 2, n)
        cy = sc.centre(x) + rng.uniform(-0.5, 0.5) * sc.bead_half * (0 if transverse else 1)
        xs = x + s * math.cos(ang) - steps * 3 * math.sin(ang)
        ys = cy + s * math.sin(ang) + steps * 3 * math.cos(ang)
        dark = _polyline_mask(h, w, np.stack([xs, ys], 1), rng.uniform(1.5, 3.0))
        dark = cv2.GaussianBlur(dark, (0, 0), 0.7) * contrast * 0.33  # low contrast
        b = _box(xs.min() - 2, ys.min() - 2, xs.max() + 2, ys.max() + 2, w, h)
        if b:
            boxes.append(b)
    elif kind in (UNFUSED, BITE_EDGE):
        L = rng.uniform(60, 200) if kind == UNFUSED else rng.uniform(40, 150)
        side = 1 if rng.random() < 0.5 else -1
        xs = np.linspace(x - L / 2, x + L / 2, max(8, int(L / 6)))
        if kind == UNFUSED:  # sharp thin line just inside the fusion line
            ys = sc.centre(xs) + side * (sc.bead_half - rng.uniform(2, 5)) + rng.normal(0, 0.4, len(xs))
            dark = _polyline_mask(h, w, np.stack([xs, ys], 1), rng.uniform(2.0, 3.2))
            dark = cv2.GaussianBlur(dark, (0, 0), 0.6) * contrast * 0.5
            pad = 3
        else:  # soft, wider groove just outside the toe
            ys = sc.centre(xs) + side * (sc.bead_half + rng.uniform(2, 5)) + rng.normal(0, 0.8, len(xs)).cumsum() * 0.3
            dark = _polyline_mask(h, w, np.stack([xs, ys], 1), rng.uniform(5, 9))
            dark = cv2.GaussianBlur(dark, (0, 0), 2.2) * contrast * 0.5
            pad = 5
        b = _box(xs.min(), ys.min() - pad, xs.max(), ys.max() + pad, w, h)
        if b:
            boxes.append(b)
    elif kind == BROKEN_ARC:
        bw = rng.uniform(8, 26)
        c = float(sc.centre(x))
        y0, y1 = c - sc.bead_half * 1.02, c + sc.bead_half * 1.02
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        skew = rng.normal(0, 0.15)
        d = np.abs(xx - x - skew * (yy - c))
        band = np.clip(1 - d / (bw / 2), 0, 1) ** 0.6
        inside = np.clip((sc.bead_half - np.abs(yy - sc.centre(xx))) / 3 + 0.5, 0, 1)
        dark = band * inside * contrast * 0.55
        half = bw / 2 + abs(skew) * sc.bead_half
        b = _box(x - half, y0, x + half, y1, w, h)
        if b:
            boxes.append(b)
    return dark, [(kind, *bb) for bb in boxes]


def render(index: int, cfg: WeldConfig):
    """Render image ``index``: returns (uint8 HxW image, list of (cls, x0, y0, x1, y1) pixel boxes, meta dict)."""
    rng = np.random.default_rng([cfg.seed, index])
    h, w = cfg.height, cfg.width
    setup_b = rng.random() < cfg.setup_b_fraction
    empty = rng.random() < cfg.empty_fraction
    sc = _Scene(h, w, bead_y=h * rng.uniform(0.4, 0.6), bead_half=h * rng.uniform(0.1, 0.16), tilt=rng.normal(0, 0.02))

    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Exposure gradient: horizontal for setup A, vertical + darker for setup B.
    if setup_b:
        base = 0.36 + 0.12 * (yy / h) * rng.choice([-1, 1]) + 0.05 * (xx / w)
        bead_gain, defect_gain, grain, blur = rng.uniform(0.1, 0.16), rng.uniform(0.45, 0.75), rng.uniform(0.05, 0.08), rng.uniform(1.2, 2.0)
    else:
        base = 0.42 + 0.14 * (xx / w - 0.5) * rng.choice([-1, 1])
        bead_gain, defect_gain, grain, blur = rng.uniform(0.18, 0.26), rng.uniform(0.8, 1.15), rng.uniform(0.02, 0.045), rng.uniform(0.6, 1.3)
    # Bead: a rounded profile with ripples along x.
    dist = np.abs(yy - sc.centre(xx)) / sc.bead_half
    profile = np.clip(1 - dist**2.5, 0, 1)
    ripple = 1 + 0.08 * np.sin(xx / rng.uniform(5, 9) + 0.4 * np.sin(yy / 7.0))
    img = base + bead_gain * profile * ripple + 0.05 * _smooth_noise(rng, h, w, scale=160)

    labels, darkening = [], np.zeros((h, w), np.float32)
    if not empty:
        n_events = max(1, int(rng.poisson(cfg.mean_events)))
        kinds = list(cfg.event_probs)
        p = np.array([cfg.event_probs[k] for k in kinds], float)
        for _ in range(n_events):
            kind = int(rng.choice(kinds, p=p / p.sum()))
            contrast = defect_gain * rng.uniform(0.45, 1.1)
            d, boxes = _defect(kind, rng, sc, contrast)
            darkening = np.maximum(darkening, d) + 0.3 * np.minimum(darkening, d)
            labels.extend(boxes)
    img = img - 0.45 * darkening * (0.6 + 0.4 * profile)
    img = cv2.GaussianBlur(img, (0, 0), blur)
    img = img + grain * rng.standard_normal((h, w)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 0.5)
    out = np.clip(img * 255, 0, 255).astype(np.uint8)
    meta = {"setup": "B" if setup_b else "A", "grain": round(float(grain), 4), "blur": round(float(blur), 3),
            "n_objects": len(labels)}
    return out, labels, meta


def to_yolo_lines(labels, w, h):
    """Pixel ``(cls, x0, y0, x1, y1)`` boxes -> YOLO label lines (centre, normalised)."""
    lines = []
    for c, x0, y0, x1, y1 in labels:
        cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
        lines.append(f"{c} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return lines


def generate(out_dir: str | Path, cfg: WeldConfig | None = None, progress: bool = True, overwrite: bool = False):
    """Write the dataset in YOLO layout: ``images/*.png``, ``labels/*.txt``, ``data.yaml``, ``meta.csv``.

    Refuses to write into a folder that already holds a different dataset unless ``overwrite=True``; a folder that
    already holds exactly this configuration is left as it is (so re-running a notebook is cheap).
    Returns the dataset folder as a ``Path``.
    """
    # heavy, imported where used (not at module import): tqdm
    from tqdm.auto import tqdm

    cfg = cfg or WeldConfig()
    out = Path(out_dir)
    stamp = {"generator": "alnb.weld", "version": 1, **{k: v for k, v in vars(cfg).items() if k != "event_probs"},
             "event_probs": {CLASS_NAMES[k]: v for k, v in cfg.event_probs.items()}}
    stamp_file = out / "generator.yaml"
    if stamp_file.exists():
        if yaml.safe_load(stamp_file.read_text()) == stamp and (out / "data.yaml").exists():
            return out
        if not overwrite:
            raise FileExistsError(
                f"{out} already holds a generated dataset with other settings ({stamp_file}). "
                f"Pass overwrite=True (CLI: --overwrite) or choose another folder."
            )
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty. Choose an empty folder or pass overwrite=True.")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows = ["image,setup,grain,blur,n_objects"]
    for i in tqdm(range(cfg.n_images), desc="weld images", disable=not progress, unit="img"):
        img, labels, meta = render(i, cfg)
        stem = f"weld_{i:04d}"
        cv2.imwrite(str(out / "images" / f"{stem}.png"), img)
        text = "\n".join(to_yolo_lines(labels, cfg.width, cfg.height))
        (out / "labels" / f"{stem}.txt").write_text(text + ("\n" if text else ""))
        rows.append(f"{stem}.png,{meta['setup']},{meta['grain']},{meta['blur']},{meta['n_objects']}")
    (out / "meta.csv").write_text("\n".join(rows) + "\n")
    data = {"path": ".", "train": "images", "val": "images", "names": dict(enumerate(CLASS_NAMES))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    stamp_file.write_text(yaml.safe_dump(stamp, sort_keys=False))
    return out
