"""The annotators' own seconds: one record per imported annotation, and the cost model fitted from those records.

* :func:`action_counts` compares what a person submitted with the pre-annotation it started from: proposals kept,
  moved (same class, IoU in [0.5, 0.95)), deleted, boxes drawn.  :func:`annotation_record` adds Label Studio's
  ``lead_time``, the annotator and whether the annotation started from a prediction (``parent_prediction``).
* :func:`fit_costs` fits :class:`alnb.evaluation.metrics.CostModel` by non-negative least squares of lead time on those counts
  (``lead = t_image + t_verify * proposals + t_delete * deleted + t_draw * drawn + t_adjust * moved``), pooled and
  per annotator, with bootstrap intervals over annotations, an outlier rule (:data:`OUTLIER_RULE`) and a minimum
  number of annotations (:data:`MIN_ANNOTATIONS`) below which the literature defaults stay in force.
* :func:`workspace_costs` is what the steps use: the fitted costs when the workspace holds enough measured
  annotations, else the defaults -- always with a sentence saying which.

Pure functions except :func:`collect` and :func:`workspace_costs`, which read the workspace's import records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from alnb.evaluation.metrics import CostModel, box_iou, efficiency_boost, nonneg_lstsq

KEEP_IOU = 0.95  # a proposal the person did not change (Label Studio rounds coordinates; a nudge is a move)
MOVE_IOU = 0.5  # a proposal moved or resized but kept (the evaluation's TP threshold); below: deleted + drawn
MIN_ANNOTATIONS = 30  # measured costs are used only from this many annotations (after outliers) on
MIN_SUPPORT = 5  # a cost is measured only if its action occurs in this many annotations; else its default is kept
OUTLIER_MAX_S = 1800.0  # an annotation open this long (30 min) was left open, not worked on
OUTLIER_TUKEY_K = 3.0  # seconds per action above Q3 + 3 IQR (Tukey's "far out"): left open, interrupted
OUTLIER_RULE = (f"lead time <= 0 (not recorded), > {OUTLIER_MAX_S:.0f} s, the pre-annotation it started from not in the "
                f"export, or seconds per action (lead time / "
                f"(1 + proposals + boxes drawn)) above Q3 + {OUTLIER_TUKEY_K:g} x IQR of all annotations")
COEFS = ("t_image", "t_verify", "t_delete", "t_draw", "t_adjust")  # the regression's columns, in order
COLUMNS = ["stem", "annotation", "annotator", "lead_time_s", "pre_annotated", "proposals_known", "n_proposals", "n_kept",
           "n_moved", "n_deleted", "n_drawn", "n_boxes", "source", "time"]


# ------------------------------------------------------------------------------------------------ the records
def _corners(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, float).reshape(-1, 5)
    return np.stack([b[:, 1] - b[:, 3] / 2, b[:, 2] - b[:, 4] / 2, b[:, 1] + b[:, 3] / 2, b[:, 2] + b[:, 4] / 2], 1)


def action_counts(proposals, final) -> dict:
    """What a person did to ``proposals`` (n, 5) ``cls cx cy w h`` to submit ``final`` (m, 5).

    Greedy one-to-one pairing of the same class by descending IoU: IoU >= :data:`KEEP_IOU` kept, >= :data:`MOVE_IOU`
    moved; an unpaired proposal was deleted, an unpaired final box drawn (a class change is a delete + a draw, as the
    cost model prices a false positive and a miss)."""
    p, f = np.asarray(proposals, float).reshape(-1, 5), np.asarray(final, float).reshape(-1, 5)
    iou = box_iou(_corners(p), _corners(f))
    iou = np.where(p[:, None, 0] == f[None, :, 0], iou, -1.0) if iou.size else iou
    kept = moved = 0
    used_p, used_f = set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < MOVE_IOU:
            break
        if i in used_p or j in used_f:
            continue
        used_p.add(i)
        used_f.add(j)
        kept += iou[i, j] >= KEEP_IOU
        moved += iou[i, j] < KEEP_IOU
    return {"n_proposals": len(p), "n_kept": int(kept), "n_moved": int(moved), "n_deleted": len(p) - len(used_p),
            "n_drawn": len(f) - len(used_f), "n_boxes": len(f)}


def annotation_record(task: dict, ann: dict, final, *, stem: str, to_boxes, who: str) -> dict:
    """One record for a Label Studio annotation ``ann`` of ``task`` whose boxes became ``final``.

    ``to_boxes(result) -> (n, 5)`` turns a prediction's regions into boxes (the importer's own conversion).  The
    pre-annotation is the prediction named by ``parent_prediction`` (Label Studio sets it when the annotation starts
    from a prediction; its export inlines that prediction as ``prediction`` -- and inlines the task's prediction there
    even when the annotation did not start from it, so only ``parent_prediction`` decides); without one the annotation
    started from scratch.
    """
    parent = ann.get("parent_prediction")
    parent_id = parent.get("id") if isinstance(parent, dict) else parent
    pred = parent if isinstance(parent, dict) else None
    if parent_id is not None and pred is None:  # Label Studio 1.23 inlines it as "prediction"; tasks list ids or dicts
        cands = [ann.get("prediction")] + list(task.get("predictions") or [])
        pred = next((p for p in cands if isinstance(p, dict) and p.get("id") == parent_id), None)
    proposals = to_boxes(pred.get("result") or []) if isinstance(pred, dict) else np.zeros((0, 5))
    try:
        lead = float(ann.get("lead_time"))
    except (TypeError, ValueError):
        lead = None  # not recorded: kept as a record (its counts), left out of the fit (outliers)
    lead = lead if lead is None or np.isfinite(lead) else None
    return {"stem": stem, "annotation": str(ann.get("id", "")), "annotator": who, "lead_time_s": lead,
            "pre_annotated": parent_id is not None, "proposals_known": parent_id is None or pred is not None,
            **action_counts(proposals, final)}


def collect(ws) -> pd.DataFrame:
    """Every annotation record of the workspace's imports (``imports/*.json``, key ``times``), one row per
    (image, annotation): the latest import of an annotation wins (a re-import does not count its seconds twice)."""
    rows = []
    folder = ws.root / "imports"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for r in rec.get("times") or []:
            rows.append({**r, "source": rec.get("source", ""), "time": rec.get("time", "")})
    df = pd.DataFrame(rows, columns=COLUMNS)
    if len(df):
        df = df.drop_duplicates(["stem", "annotation"], keep="last").reset_index(drop=True)
    return df


# ------------------------------------------------------------------------------------------------------ the fit
def outliers(records: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the records :data:`OUTLIER_RULE` excludes from the fit (they are listed, never dropped
    silently)."""
    lead = records["lead_time_s"].to_numpy(float)
    bad = ~np.isfinite(lead) | (lead <= 0) | (lead > OUTLIER_MAX_S)
    if "proposals_known" in records:
        bad |= records["proposals_known"].fillna(True).astype(bool).to_numpy() == False  # noqa: E712
    per_action = lead / (1.0 + records["n_proposals"].to_numpy(float) + records["n_drawn"].to_numpy(float))
    ok = per_action[~bad]
    if len(ok) >= 8:
        q1, q3 = np.percentile(ok, [25, 75])
        bad |= per_action > q3 + OUTLIER_TUKEY_K * (q3 - q1)
    return bad


def _design(records: pd.DataFrame) -> np.ndarray:
    r = records
    return np.stack([np.ones(len(r)), r["n_proposals"].to_numpy(float), r["n_deleted"].to_numpy(float),
                     r["n_drawn"].to_numpy(float), r["n_moved"].to_numpy(float)], 1)


def _solve(X: np.ndarray, y: np.ndarray, measured: list, fixed: np.ndarray) -> np.ndarray:
    """NNLS on the measured columns, the others held at ``fixed`` (their contribution taken off ``y`` first)."""
    coef = fixed.copy()
    other = [c for c in range(X.shape[1]) if c not in measured]
    rest = y - X[:, other] @ fixed[other] if other else y
    if measured:
        coef[measured] = nonneg_lstsq(X[:, measured], rest)
    return coef


def _t975(dof: int) -> float:
    """Student's t 97.5 % quantile (Cornish-Fisher expansion around the normal's 1.95996; within 0.025 of the exact
    value from 5 degrees of freedom on, 0.003 from 10)."""
    z = 1.959964
    return z + (z ** 3 + z) / (4 * dof) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * dof ** 2)


@dataclass
class CostFit:
    """The fitted seconds: ``value`` / ``lo`` / ``hi`` (95 % interval: bootstrap over annotations, t-widened) per
    cost, ``measured`` (the costs the data could measure; the others are the defaults), ``n`` annotations used,
    ``n_outliers``, ``annotators``, ``trusted`` (``n >= min_annotations``), ``fitted`` (the fit as a
    :class:`CostModel`, trusted or not), ``costs`` (the one to use: ``fitted`` when trusted, else the defaults),
    ``message``."""

    value: dict
    lo: dict
    hi: dict
    measured: list
    n: int
    n_outliers: int
    annotators: list
    trusted: bool
    fitted: CostModel
    costs: CostModel
    message: str
    per_annotator: dict = field(default_factory=dict)

    def table(self, defaults: CostModel = CostModel()) -> pd.DataFrame:
        """Measured vs the literature defaults, one row per cost."""
        d = defaults.to_dict()
        return pd.DataFrame([{"cost": c, "default_s": d.get(c, 0.0), "measured_s": self.value[c],
                              "lo_s": self.lo[c], "hi_s": self.hi[c], "source": "measured" if c in self.measured
                              else "default (too few annotations with this action)"} for c in COEFS])


def fit_costs(records: pd.DataFrame, *, defaults: CostModel = CostModel(), min_annotations: int = MIN_ANNOTATIONS,
              n_boot: int = 500, seed: int = 0, per_annotator: bool = True) -> CostFit:
    """Fit the cost model's seconds from annotation records (:data:`COLUMNS`); see the module docstring."""
    records = records.reset_index(drop=True)
    bad = outliers(records) if len(records) else np.zeros(0, bool)
    use = records[~bad]
    X, y = _design(use), use["lead_time_s"].to_numpy(float)
    base = np.array([getattr(defaults, c) if hasattr(defaults, c) else 0.0 for c in COEFS])
    measured = [0] + [c for c in range(1, len(COEFS)) if (X[:, c] > 0).sum() >= MIN_SUPPORT]
    coef = _solve(X, y, measured, base) if len(y) else base.copy()
    rng = np.random.default_rng(seed)
    boots = np.array([_solve(X[i], y[i], measured, base) for i in (rng.integers(0, len(y), len(y))
                                                                   for _ in range(n_boot if len(y) >= 2 else 0))])
    # the bootstrap's spread, widened for the few annotations a team has (Student's t on n - p degrees of freedom and
    # the residual-variance correction n / (n - p)): percentile intervals cover only ~0.90-0.94 at n = 42
    # (tests/test_labeltimes.py measures the coverage)
    dof = len(y) - len(measured)
    if len(boots) and dof > 0:
        half = _t975(dof) * boots.std(axis=0, ddof=1) * np.sqrt(len(y) / dof)
        lo, hi = np.maximum(coef - half, 0.0), coef + half
    else:
        lo = hi = coef
    names = sorted(set(use["annotator"].astype(str)))
    trusted = len(use) >= min_annotations
    fitted = CostModel(**{c: float(coef[k]) for k, c in enumerate(COEFS) if c in CostModel.__dataclass_fields__})
    costs = fitted if trusted else defaults
    who = f"{len(names)} {'person' if len(names) == 1 else 'people'}"
    if trusted:
        message = f"measured on {len(use)} annotations by {who}"
    else:
        message = (f"literature defaults: {len(use)} measured annotation(s) by {who}, fewer than the "
                   f"{min_annotations} needed to trust a fit")
    if bad.any():
        message += f" ({int(bad.sum())} outlier(s) left out: {OUTLIER_RULE})"
    out = CostFit(value={c: float(coef[k]) for k, c in enumerate(COEFS)},
                  lo={c: float(lo[k]) for k, c in enumerate(COEFS)}, hi={c: float(hi[k]) for k, c in enumerate(COEFS)},
                  measured=[COEFS[c] for c in measured] if len(y) else [], n=len(use), n_outliers=int(bad.sum()),
                  annotators=names, trusted=trusted, fitted=fitted, costs=costs, message=message)
    if per_annotator and len(names) > 1:
        for name in names:
            mine = records[records["annotator"].astype(str) == name]
            out.per_annotator[name] = fit_costs(mine, defaults=defaults, min_annotations=min_annotations,
                                                n_boot=n_boot, seed=seed, per_annotator=False)
    return out


def workspace_costs(ws, defaults: CostModel = CostModel()) -> tuple[CostModel, str]:
    """The cost model a workspace's steps use and the sentence that says where it comes from."""
    records = collect(ws)
    if not len(records):
        return defaults, "literature defaults (no measured annotation times in this workspace)"
    fit = fit_costs(records, defaults=defaults, n_boot=0, per_annotator=False)
    return fit.costs, fit.message


def resolve_costs(ws, costs: CostModel | None) -> tuple[CostModel, str]:
    """``costs`` when a caller gives them, else :func:`workspace_costs`: what every step that prices labelling calls."""
    return (costs, "given by the caller") if costs is not None else workspace_costs(ws)


def time_summary(records: pd.DataFrame, rounds: dict | None = None) -> pd.DataFrame:
    """Seconds per image and per box, pre-labelled vs from scratch, per annotator and (``rounds``: stem -> round tag)
    per round, from the records the fit keeps (outliers left out); the last rows pool everyone."""
    cols = ["annotator", "round", "start", "annotations", "s_per_image", "s_per_box"]
    if not len(records):
        return pd.DataFrame(columns=cols)
    r = records[~outliers(records)].copy()
    r["round"] = [(rounds or {}).get(s, "-") for s in r["stem"]]
    r["start"] = np.where(r["pre_annotated"].astype(bool), "pre-labelled", "from scratch")
    rows = []
    for keys, g in list(r.groupby(["annotator", "round", "start"])) + \
            [(("all", "all", s), g) for s, g in r.groupby("start")]:
        boxes = g["n_boxes"].sum()
        rows.append({"annotator": keys[0], "round": keys[1], "start": keys[2], "annotations": len(g),
                     "s_per_image": float(g["lead_time_s"].mean()),
                     "s_per_box": float(g["lead_time_s"].sum() / boxes) if boxes else float("nan")})
    return pd.DataFrame(rows, columns=cols)  # every record an outlier (no lead times): an empty table, not a crash


def measured_boost(times: pd.DataFrame) -> float:
    """The team's own boost from a :func:`time_summary` table: seconds per box from scratch / seconds per box
    pre-labelled, pooled over everyone (NaN without both)."""
    s = times[times["annotator"] == "all"].set_index("start")["s_per_box"]
    if {"from scratch", "pre-labelled"} <= set(s.index) and s["pre-labelled"] > 0:
        return float(s["from scratch"] / s["pre-labelled"])
    return float("nan")


# ------------------------------------------------------------------------------------------------ what people see
DEFAULTS_NOTE = ("the literature defaults of alnb.evaluation.metrics.CostModel: draw a box 10 s (Superb AI), verify a proposal "
                 "1.6 s (Papadopoulos et al. 2016), delete a false one +1.6 s (assumed), 3 s per image (assumed)")


def boost_both(evals: dict, fitted: CostModel, defaults: CostModel = CostModel()) -> pd.DataFrame:
    """Each model's boost on its evaluation set (VAL1) under the literature defaults and under the fitted costs, from
    the counts its evaluation recorded (``overall``: instances, predictions, fp, fn; ``n_images``)."""
    rows = []
    for model, ev in evals.items():
        ov = ev.get("overall") or {}
        cnt = [ov.get(k) for k in ("instances", "predictions", "fp", "fn")]
        if any(v is None for v in cnt):
            continue
        n = int(ev.get("n_images") or 0)
        rows.append({"model": model, "boost (defaults)": efficiency_boost(*cnt, n, defaults)["boost"],
                     "boost (measured costs)": efficiency_boost(*cnt, n, fitted)["boost"]})
    return pd.DataFrame(rows, columns=["model", "boost (defaults)", "boost (measured costs)"])


def fit_table(fit: CostFit, defaults: CostModel = CostModel()) -> pd.DataFrame:
    t = fit.table(defaults)
    t["measured [95 % interval]"] = [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if s == "measured" else "-"
                                     for v, lo, hi, s in zip(t["measured_s"], t["lo_s"], t["hi_s"], t["source"])]
    return t[["cost", "default_s", "measured [95 % interval]", "source"]]


def round_of(ws) -> dict:
    """stem -> the selection (round) it was labelled in: GT2, CONTROL, GT3, ..."""
    m = ws.manifest()
    return {s: tag for tag in ws.selection_tags(m) for s in ws.stems(tag, manifest=m)}


def summarise(ws) -> dict | None:
    """What ``alnb costs`` and the report show (None without any annotation record): ``fit`` (:func:`fit_costs`),
    ``times`` (:func:`time_summary` per annotator and round), ``boost`` (:func:`measured_boost`)."""
    records = collect(ws)
    if not len(records):
        return None
    times = time_summary(records, round_of(ws))
    return {"fit": fit_costs(records), "times": times, "boost": measured_boost(times)}


def describe(ws) -> str:
    """``alnb costs``: the fit, the table and the per-round summary as plain text."""
    s = summarise(ws)
    if s is None:
        return (f"no annotation times in {ws.root} (import a Label Studio JSON export with alnb import-labels); "
                f"costs used: {DEFAULTS_NOTE}")
    lines = [f"costs used: {s['fit'].message}", "", fit_table(s["fit"]).to_string(index=False), "",
             s["times"].round(1).to_string(index=False)]
    if np.isfinite(s["boost"]):
        lines += ["", f"measured boost (s per box from scratch / pre-labelled): {s['boost']:.2f}x"]
    return "\n".join(lines)
