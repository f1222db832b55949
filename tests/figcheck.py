"""A figure check from matplotlib's own bounding boxes: what a reader of the PNG / PDF / SVG would call a defect.

:func:`figure_problems` draws a figure (Agg, at a given dpi) and returns one sentence per problem:

* a text artist overlapping another text artist (titles, axis and tick labels, legend entries, bar labels,
  annotations, box labels with their white box), e.g. two bar labels printed as "n=41n=41";
* a text leaving the figure (a saved PNG cuts it, e.g. a panel title "12 box(es");
* a legend covering plotted data of any panel (lines, markers, bars, patches, error bars, scatter points) or a text
  outside the legend, or reaching into another panel;
* a text smaller than ``min_font`` points;
* a text over an image covering more than ``max_image_cover`` of it (a note hiding a third of a radiograph).

Reference lines spanning an axis (``axhline`` / ``axvline``: drawn in axes coordinates along one direction) and the
difficulty bars (axes coordinates) are not data.  Everything is measured in display pixels of the drawn figure.
"""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

TOL = 1.0  # pixels: boxes that share less than this in both directions do not overlap


def draw(fig, dpi: float | None = None):
    """Draw ``fig`` on an Agg canvas at ``dpi`` (default: its own) and return the renderer."""
    if dpi is not None:
        fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def _shown(t) -> bool:
    return t.get_visible() and (t.axes is None or t.axes.get_visible())


def _drawn_ticklabels(axis) -> list:
    """The tick labels matplotlib actually draws (ticks inside the view)."""
    try:
        ticks = axis._update_ticks()  # noqa: SLF001 - the ticks draw() uses; public get_ticklabels() lists more
    except AttributeError:  # pragma: no cover - other matplotlib
        ticks = axis.get_major_ticks()
    out = []
    for t in ticks:
        for lab, on in ((t.label1, t.label1.get_visible()), (t.label2, t.label2.get_visible())):
            if on:
                out.append(lab)
    return out


def texts(fig) -> list:
    """``[(text artist, owner)]`` of every visible, non-empty text of ``fig``; ``owner`` is the legend a text
    belongs to (else None)."""
    found = []
    for t in list(fig.texts) + [getattr(fig, k, None) for k in ("_suptitle", "_supxlabel", "_supylabel")]:
        if t is not None:
            found.append((t, None))
    legends = list(fig.legends)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        found += [(t, None) for t in ax.texts]
        found += [(t, None) for t in (ax.title, ax._left_title, ax._right_title)]  # noqa: SLF001
        for axis in (ax.xaxis, ax.yaxis):
            if ax.axison and axis.get_visible():  # set_axis_off(): no ticks, no axis label drawn
                found += [(t, None) for t in [axis.label, axis.get_offset_text(), *_drawn_ticklabels(axis)]]
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for leg in legends:
        if leg.get_visible():
            found += [(t, leg) for t in list(leg.get_texts()) + [leg.get_title()]]
    seen, out = set(), []
    for t, o in found:  # the suptitle is also in fig.texts: each artist once
        if id(t) not in seen and t.get_visible() and str(t.get_text()).strip() and (o is not None or _shown(t)):
            seen.add(id(t))
            out.append((t, o))
    return out


def text_box(t, renderer) -> Bbox:
    """What a text covers on screen, axis-aligned: its glyphs, or its box (``bbox=``) when it has one."""
    patch = t.get_bbox_patch()
    ext = t.get_window_extent(renderer)
    if patch is not None:
        return Bbox.union([ext, patch.get_window_extent(renderer)])
    return ext


def text_shape(t, renderer) -> np.ndarray:
    """The 4 corners (display pixels) of what a text covers: a rotated text (e.g. 45-degree tick labels) is a
    rotated rectangle, whose axis-aligned box would overlap its neighbours' without any glyph touching."""
    box = text_box(t, renderer)
    angle = float(t.get_rotation()) % 180
    if min(angle % 90, 90 - angle % 90) < 1e-6:
        return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]])
    rot = t.get_rotation()
    t.set_rotation(0)
    flat = text_box(t, renderer)
    t.set_rotation(rot)
    a = np.deg2rad(rot)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [flat.width / 2, flat.height / 2]
    return half @ r.T + [(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2]


def _shapes_overlap(p: np.ndarray, q: np.ndarray, tol: float = TOL) -> bool:
    """Two convex polygons overlap by more than ``tol`` pixels along every separating axis (SAT)."""
    for poly in (p, q):
        edges = np.roll(poly, -1, axis=0) - poly
        for n in np.column_stack([-edges[:, 1], edges[:, 0]]):
            norm = np.hypot(*n)
            if norm == 0:
                continue
            n = n / norm
            a, b = p @ n, q @ n
            if min(a.max(), b.max()) - max(a.min(), b.min()) <= tol:
                return False
    return True


def _overlap(a: Bbox, b: Bbox, tol: float = TOL) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _rect(b: Bbox) -> np.ndarray:
    return np.array([[b.x0, b.y0], [b.x1, b.y0], [b.x1, b.y1], [b.x0, b.y1]])


def _is_data(artist, ax) -> bool:
    """Drawn in data coordinates in both directions (not an axhline / axvline, not an axes-coordinate patch)."""
    try:
        x, y = artist.get_transform().contains_branch_seperately(ax.transData)
    except ValueError:
        return False
    return bool(x and y)


def _label(t) -> str:
    return repr(str(t.get_text())[:40])


def data_hits(ax, box: Bbox, renderer) -> list:
    """Data artists of ``ax`` that reach into the display box ``box``."""
    from matplotlib.collections import LineCollection, PathCollection, PolyCollection
    from matplotlib.path import Path

    hits = []
    inner = Bbox.from_extents(box.x0 + TOL, box.y0 + TOL, box.x1 - TOL, box.y1 - TOL)
    for line in ax.lines:
        if not line.get_visible() or not _is_data(line, ax):
            continue
        xy = np.asarray(line.get_xydata(), float)
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        if not len(xy):
            continue
        px = line.get_transform().transform(xy)
        hit = False
        if line.get_marker() not in (None, "", "None", " "):
            r = line.get_markersize() * renderer.points_to_pixels(1.0) / 2
            hit = bool(np.any((px[:, 0] >= box.x0 - r) & (px[:, 0] <= box.x1 + r) & (px[:, 1] >= box.y0 - r)
                              & (px[:, 1] <= box.y1 + r)))
        if not hit and line.get_linestyle() not in ("None", "", " ") and len(px) > 1:
            hit = Path(px).intersects_bbox(inner, filled=False)
        if hit:
            hits.append(f"line {line.get_label()!r}")
    for p in ax.patches:
        if not p.get_visible() or not _is_data(p, ax):
            continue
        ext = p.get_window_extent(renderer)
        if ext.width < 0.5 or ext.height < 0.5:  # a bar of height 0 (a NaN drawn as nothing)
            continue
        if _overlap(ext, box):
            hits.append(f"patch {type(p).__name__} {p.get_label()!r}")
    for col in ax.collections:
        if not col.get_visible():
            continue
        if isinstance(col, PathCollection) and len(col.get_offsets()):
            pts = col.get_offset_transform().transform(np.asarray(col.get_offsets(), float))
            if np.any((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)):
                hits.append("scatter points")
        elif isinstance(col, (LineCollection, PolyCollection)) and _is_data(col, ax):
            tr = col.get_transform()
            for path in col.get_paths():
                if len(path.vertices) and tr.transform_path(path).intersects_bbox(
                        inner, filled=isinstance(col, PolyCollection)):
                    hits.append(f"{type(col).__name__}")
                    break
    return hits


def figure_problems(fig, *, dpi: float | None = None, min_font: float = 8.0, max_image_cover: float = 0.06) -> list:
    """Every problem of ``fig`` drawn at ``dpi`` (module docstring), as sentences; empty = the figure passes."""
    renderer = draw(fig, dpi)
    problems = []
    fig_box = fig.bbox
    items = texts(fig)
    boxes = [(t, o, text_box(t, renderer)) for t, o in items]
    shapes = [text_shape(t, renderer) for t, _ in items]
    for t, _, b in boxes:
        if t.get_fontsize() < min_font - 1e-9:
            problems.append(f"text {_label(t)} is {t.get_fontsize():.1f} pt (< {min_font})")
        if b.x0 < fig_box.x0 - TOL or b.y0 < fig_box.y0 - TOL or b.x1 > fig_box.x1 + TOL or b.y1 > fig_box.y1 + TOL:
            problems.append(f"text {_label(t)} leaves the figure ({b.x0:.0f}, {b.y0:.0f}, {b.x1:.0f}, {b.y1:.0f} "
                            f"px; figure {fig_box.width:.0f} x {fig_box.height:.0f})")
    for i, j in itertools.combinations(range(len(boxes)), 2):
        if _overlap(boxes[i][2], boxes[j][2]) and _shapes_overlap(shapes[i], shapes[j]):
            problems.append(f"texts overlap: {_label(boxes[i][0])} and {_label(boxes[j][0])}")
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for leg in legends:
        if not leg.get_visible():
            continue
        lb = leg.get_window_extent(renderer)
        if lb.x0 < fig_box.x0 - TOL or lb.y0 < fig_box.y0 - TOL or lb.x1 > fig_box.x1 + TOL or lb.y1 > fig_box.y1 + TOL:
            problems.append("a legend leaves the figure")
        own = leg.axes if leg in [ax.get_legend() for ax in fig.axes] else None
        for ax in fig.axes:
            if not ax.get_visible():
                continue
            for h in data_hits(ax, lb, renderer):
                problems.append(f"legend {[x.get_text() for x in leg.get_texts()][:2]} covers {h}")
            if ax is not own and own is not None and _overlap(ax.get_window_extent(renderer), lb) \
                    and ax.get_label() != "<colorbar>":
                problems.append("a legend reaches into another panel")
        for (t, o, b), shape in zip(boxes, shapes):
            if o is not leg and _overlap(b, lb) and _shapes_overlap(shape, _rect(lb)):
                problems.append(f"legend covers text {_label(t)}")
    for ax in fig.axes:
        for im in ax.get_images():
            ib = im.get_window_extent(renderer)
            area = ib.width * ib.height
            for t in ax.texts:
                if not t.get_visible() or not str(t.get_text()).strip():
                    continue
                b = text_box(t, renderer)
                w = max(0.0, min(b.x1, ib.x1) - max(b.x0, ib.x0))
                h = max(0.0, min(b.y1, ib.y1) - max(b.y0, ib.y0))
                if area and w * h / area > max_image_cover:
                    problems.append(f"text {_label(t)} covers {100 * w * h / area:.0f} % of an image")
    return problems


def assert_clean(fig, dpis=(100, 150), **kw):
    """Fail with every problem found at each of ``dpis`` (the notebook's 100 dpi, the saved PNG's 150 dpi)."""
    found = []
    for d in dpis:
        found += [f"[{d} dpi] {p}" for p in figure_problems(fig, dpi=d, **kw)]
    assert not found, "\n".join(dict.fromkeys(found))
