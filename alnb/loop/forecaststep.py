"""The forecast step at the workspace edge: is the next round worth it?

Reads the CAL chain's finished rounds (``metrics/eval_CAL<k>.json``: VAL1 mAP50-95 and recall; labelled images from
the manifest's GT1 + GT2 ... GT<k> tags; ``metrics/round_<k>.json``: the labelling seconds each round cost), the next
round's budget (``budget=``, else ``metrics/run_plan.json``'s, else the last round's size), the review plan's hours
(``metrics/review_plan_rounds.json``) when there is one, the auto-label change CAL<k-1> -> CAL<k>
(``autolabels/<MODEL>/``) when both are kept, and the backtest's error scale (``metrics/forecast_backtest.json``,
written by ``benchmarks/forecast_backtest.py``) when there is one; hands arrays to the pure :mod:`alnb.loop.forecast`
and returns a :class:`NextRound`.  :func:`write_forecast` also writes ``metrics/forecast.json``.  Fewer than 2
finished rounds give a NextRound with ``ok=False`` and a note, never an exception.

The backtest over an ``alnb study``'s chains (per seed, strategy and budget: GT1 alone, then the rounds) is here too,
pure over result rows (:func:`study_chains_from_rows`, :func:`backtest_chains`, :func:`backtest_record`) with a thin
folder reader (:func:`study_chains`); ``benchmarks/forecast_backtest.py`` and the study report use them.

Design notes: docs/design/forecast.md
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alnb.loop import forecast as fc
from alnb.core.data import LabelError, read_autolabels
from alnb.core.workspace import cal_name, finite_json, gt_tag, train_tags
from alnb.loop.selection import pool_stems

FORECAST_FILE = "forecast"  # metrics/forecast.json: what write_forecast wrote last
BACKTEST_FILE = "forecast_backtest"  # metrics/forecast_backtest.json: the error scale a backtest measured
MEASURES = ("mAP50-95", "recall")  # forecast on VAL1; the first one drives the stop rule
DEFAULT_MODEL = "loglinear"  # the curve without a backtest to choose one (docs/design/forecast.md)


@dataclass(frozen=True)
class RoundPoint:
    """One finished round of the CAL chain: its model, cumulative labelled images (GT1 included), VAL1 measures and
    the assisted labelling seconds of the images it added (None: round 1, or no ``metrics/round_<k>.json``)."""

    round: int
    model: str
    images: int
    measures: dict
    new_images: int | None = None
    new_labelling_s: float | None = None
    cumulative_labelling_s: float | None = None


@dataclass(frozen=True)
class NextRound:
    """What another round is forecast to buy.  ``ok``: at least 2 finished rounds and a next round to forecast;
    otherwise ``note`` says why and the forecasts are empty.  ``forecasts`` / ``gains``: per measure (VAL1) at
    ``n_next`` images; ``interval_source``: per measure, ``"backtest"`` (its error sd and bias) or ``"OLS"``;
    ``advice``: :func:`alnb.loop.forecast.stop_advice` on the first measure's gain."""

    ok: bool
    note: str
    rounds: tuple
    next_round: int
    budget: int | None = None
    budget_source: str = ""
    n_next: int | None = None
    forecasts: dict = field(default_factory=dict)
    gains: dict = field(default_factory=dict)
    interval_source: dict = field(default_factory=dict)
    backtest: dict | None = None
    next_round_hours: float | None = None
    hours_note: str = ""
    review: dict | None = None
    label_change: float | None = None
    label_change_note: str = ""
    advice: fc.Advice | None = None
    caveat: str = fc.CAVEAT

    @property
    def measure(self) -> str:
        return MEASURES[0]

    def line(self) -> str:
        """One line: the forecast of the first measure and the advice (``alnb status``)."""
        if not self.ok:
            return self.note
        f, g = self.forecasts[self.measure], self.gains[self.measure]
        pct = f"{f.level:.0%}"
        head = (f"round {self.next_round} (+{self.budget} images, {self.n_next} in all): VAL1 {self.measure} "
                f"{f.mean:.3f} [{pct}: {f.low:.3f}, {f.high:.3f}], gain {g.mean:+.3f} ({f.model}, "
                f"{self.interval_source[self.measure]} interval)")
        return f"{head}; advice: {'stop' if self.advice.stop else 'continue'}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["measure"] = self.measure
        d["line"] = self.line()
        return finite_json(d)


def _float(v) -> float:
    """float, NaN for None or anything non-numeric (a JSON null)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _json(ws, name: str):
    p = ws.root / "metrics" / f"{name}.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def finished_rounds(ws, manifest=None) -> list:
    """The CAL chain's evaluated rounds 1, 2, ... (consecutive from CAL1) as :class:`RoundPoint`."""
    m = ws.manifest() if manifest is None else manifest
    out, k = [], 1
    while (ev := _json(ws, f"eval_{cal_name(k)}")) is not None:
        rec = ((_json(ws, f"round_{k}") or {}).get("chains") or {}).get("cal") if k > 1 else None
        new = len(ws.stems(train_tags("cal", k)[-1], manifest=m)) if k > 1 else None
        meas = {"mAP50-95": ev.get("mAP50-95"), "recall": (ev.get("overall") or {}).get("recall")}
        rec = rec if isinstance(rec, dict) else {}
        out.append(RoundPoint(k, cal_name(k), len(set(ws.stems(*train_tags("cal", k), manifest=m))),
                              {key: _float(v) for key, v in meas.items()}, new,
                              _float(rec["new_assisted_s"]) if "new_assisted_s" in rec else None,
                              _float(rec["cumulative_assisted_s"]) if "cumulative_assisted_s" in rec else None))
        k += 1
    return out


def load_backtest(ws, path=None) -> dict | None:
    """The backtest JSON (``path``, default ``metrics/forecast_backtest.json``), None when absent."""
    p = Path(path) if path is not None else ws.root / "metrics" / f"{BACKTEST_FILE}.json"
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return {**d, "file": str(p)} if isinstance(d, dict) else None


def _backtest_entry(bt: dict | None, measure: str, model: str | None):
    """``(model, {error_scale, bias, ...})`` from a backtest for ``measure``: the given model, else the one with the
    lowest mean absolute error; ``(model or DEFAULT_MODEL, None)`` when the backtest has no usable scale."""
    per = ((bt or {}).get("measures") or {}).get(measure) or {}
    usable = {m: v for m, v in per.items() if m in fc.CURVES and isinstance(v, dict)
              and v.get("error_scale") is not None and math.isfinite(float(v["error_scale"]))}
    if model is not None:
        return model, usable.get(model)
    if not usable:
        return DEFAULT_MODEL, None
    best = min(usable, key=lambda m: (float(usable[m].get("mean_abs_error", math.inf)), list(fc.CURVES).index(m)))
    return best, usable[best]


def _budget(ws, budget, last: RoundPoint) -> tuple:
    if budget is not None:
        return int(budget), "given"
    plan = _json(ws, "run_plan") or {}
    if plan.get("rule") not in (None, "study") and plan.get("budget") is not None:
        return int(plan["budget"]), "the run's budget (metrics/run_plan.json)"
    if last.new_images:
        return int(last.new_images), f"as many images as round {last.round} took"
    return None, "no budget: give budget= (the next round's images)"


def _hours(rounds: list, budget: int) -> tuple:
    """Next round's labelling hours at the last recorded round's assisted seconds per image."""
    for r in reversed(rounds):
        if r.new_labelling_s is not None and math.isfinite(r.new_labelling_s) and r.new_images:
            per = r.new_labelling_s / r.new_images
            return budget * per / 3600, (f"{budget} images x {per:.1f} s per image, the assisted labelling seconds "
                                         f"round {r.round} cost (metrics/round_{r.round}.json)")
    return None, "no metrics/round_<k>.json with labelling seconds: the next round's hours are unknown"


def _review(ws, rounds: list) -> dict | None:
    """The review plan's hours per model (``metrics/review_plan_rounds.json``) and, from the two newest consecutive
    CAL models that planned, the review hours a point (0.01) of VAL1 mAP50-95 saves on the POOL still unlabelled."""
    by_model = {r.model: r for r in rounds}
    plans = {m: v for m, v in (_json(ws, "review_plan_rounds") or {}).items() if m in by_model}
    if not plans:
        return None
    latest = list(plans)[-1]
    out = {"model": latest, "images": plans[latest].get("n_images"), "review_all_h": plans[latest].get("review_all_h"),
           "cut_h": (plans[latest].get("cut") or {}).get("review_h"), "hours_saved_per_point": None}
    pairs = [(a, b) for a, b in zip(rounds, rounds[1:]) if a.model in plans and b.model in plans]
    if not pairs:
        out["note"] = ("one model's review plan: the review hours a point of mAP50-95 saves need the plans of two "
                       "consecutive CAL models")
        return out
    a, b = pairs[-1]
    pa, pb = plans[a.model], plans[b.model]
    dy = by_model[b.model].measures[MEASURES[0]] - by_model[a.model].measures[MEASURES[0]]
    if not (pa.get("n_images") and pb.get("n_images")) or not dy > 0:
        out["note"] = f"{b.model} is not above {a.model} on VAL1 {MEASURES[0]}: no review hours per point"
        return out
    per_image = pa["review_all_h"] / pa["n_images"] - pb["review_all_h"] / pb["n_images"]
    rate = per_image * pb["n_images"] / (dy / fc.POINT)
    out.update(hours_saved_per_point=rate, note=(
        f"review hours per image {pa['review_all_h'] / pa['n_images']:.4f} ({a.model}) -> "
        f"{pb['review_all_h'] / pb['n_images']:.4f} ({b.model}) on {pb['n_images']} unlabelled images, for "
        f"{dy:+.4f} {MEASURES[0]}"))
    return out


def _review_next(review: dict, gain: fc.Forecast, left_after: int) -> dict:
    """The review hours of the POOL images still unlabelled after the next round, if the next model's auto-labels are
    as much cheaper to review per image as the gain forecast says: (review h per image now - the drop per image per
    point x predicted points) x images left; its interval from the gain's (a larger gain, fewer hours)."""
    per_image = review["review_all_h"] / review["images"]
    drop = review["hours_saved_per_point"] / review["images"]  # review h per image saved per point of mAP50-95

    def h(g):
        return max(per_image - drop * g / fc.POINT, 0.0) * max(left_after, 0)

    return {"images_left": int(max(left_after, 0)), "mean": h(gain.mean), "low": h(gain.high), "high": h(gain.low),
            "note": (f"{max(left_after, 0)} images left after the next round x ({per_image:.4f} review h per image "
                     f"now - {drop:.4g} per point of {MEASURES[0]} x the predicted gain)")}


def _label_change(ws, k: int) -> tuple:
    """:func:`alnb.loop.forecast.label_change` between CAL<k-1>'s and CAL<k>'s auto-labels of the images both
    auto-labelled (``autolabels/<MODEL>/<stem>.txt``), or ``(None, why not)``."""
    a, b = (ws.root / "autolabels" / cal_name(j) for j in (k - 1, k))
    missing = [d.name for d in (a, b) if not d.is_dir()]
    if missing:
        return None, (f"this workspace keeps no auto-labels of {' and '.join(missing)} "
                      f"(a model's auto-labels are written when it scores the POOL: alnb score --model "
                      f"{cal_name(k)})")
    stems = sorted({p.stem for p in a.glob("*.txt")} & {p.stem for p in b.glob("*.txt")})
    if not stems:
        return None, f"{a.name} and {b.name} auto-labelled no image in common"
    nc = len(ws.names)

    def boxes(d):
        out = {}
        for s in stems:
            x = read_autolabels(d / f"{s}.txt", nc)
            out[s] = np.column_stack([x[:, 0], x[:, 1] - x[:, 3] / 2, x[:, 2] - x[:, 4] / 2,
                                      x[:, 1] + x[:, 3] / 2, x[:, 2] + x[:, 4] / 2])
        return out
    try:
        change = fc.label_change(boxes(a), boxes(b))
    except LabelError as e:
        return None, str(e)
    return change, f"{a.name} -> {b.name} on the {len(stems)} images both auto-labelled (IoU 0.5, same class)"


def next_round_forecast(ws, *, budget: int | None = None, model: str | None = None, level: float = 0.9,
                        backtest=None, target: float | None = None, min_gain: float = 0.0,
                        stable_below: float = 0.02, after_round: int | None = None) -> NextRound:
    """The forecast of round k+1 after the last finished round k, nothing written (:class:`NextRound`).

    ``budget``: the next round's images (default: ``alnb run --budget`` when the run has one, else as many as round
    k took, capped at the POOL images left); ``model``: a curve of :data:`alnb.loop.forecast.CURVES` (default: the
    backtest's lowest mean absolute error, else :data:`DEFAULT_MODEL`); ``backtest``: the backtest JSON's path
    (default ``metrics/forecast_backtest.json``).  With a backtest scale for a measure the interval is
    mean +- z * its error sd and its bias is subtracted; otherwise the OLS interval.  The stop rule's hours rule uses
    the review plan's hours per point only with a backtest interval (an OLS interval from a few rounds is too wide
    for it, docs/design/forecast.md); ``target``: stop once VAL1 mAP50-95 reaches it.  ``after_round``: forecast as
    it stood after that round (later rounds ignored), to hold a forecast against a round measured since."""
    m = ws.manifest()
    rounds = finished_rounds(ws, m)
    if after_round is not None:
        rounds = [r for r in rounds if r.round <= after_round]
    k = rounds[-1].round if rounds else 0
    if len(rounds) < 2:
        have = ", ".join(r.model for r in rounds) or "none"
        return NextRound(False, f"not enough rounds for a forecast: {len(rounds)} finished round(s) of the CAL "
                                f"chain ({have}); a learning curve needs at least 2 (CAL1 and CAL2)",
                         tuple(rounds), k + 1)
    n = np.array([r.images for r in rounds], dtype=float)
    if np.any(np.diff(n) <= 0) or n[0] <= 0:
        return NextRound(False, "no forecast: the rounds' labelled images do not grow ("
                         + ", ".join(f"{r.model} {r.images}" for r in rounds) + "); a learning curve needs nested, "
                         "growing label sets", tuple(rounds), k + 1)
    bad = [r.model for r in rounds if not math.isfinite(r.measures[MEASURES[0]])]
    if bad:
        return NextRound(False, f"no forecast: no VAL1 {MEASURES[0]} for {', '.join(bad)}", tuple(rounds), k + 1)
    last = rounds[-1]
    n_budget, budget_source = _budget(ws, budget, last)
    left = len(pool_stems(m, [gt_tag(j) for j in range(2, k + 1)]))
    base = dict(rounds=tuple(rounds), next_round=k + 1, budget_source=budget_source)
    if n_budget is None or n_budget < 1:
        return NextRound(False, f"no forecast: {budget_source}", budget=n_budget, **base)
    if left == 0:
        return NextRound(False, "no next round: every POOL image is labelled", budget=0, **base)
    if n_budget > left:
        n_budget, budget_source = left, f"{budget_source}, capped at the {left} POOL images left"
    n_next = int(n[-1] + n_budget)
    bt = load_backtest(ws, backtest)
    forecasts, gains, source = {}, {}, {}
    for meas in MEASURES:
        y = np.array([r.measures[meas] for r in rounds], dtype=float)
        use, entry = _backtest_entry(bt, meas, model)
        opts = dict(model=use, level=level)
        if entry is not None:
            opts.update(error_scale=float(entry["error_scale"]), bias=float(entry.get("bias") or 0.0))
        if not np.all(np.isfinite(y)):
            nan = float("nan")
            forecasts[meas] = gains[meas] = fc.Forecast(nan, nan, nan, use, len(y), f"no {meas} in every round",
                                                        level)
            source[meas] = "none"
            continue
        forecasts[meas] = fc.forecast(n, y, n_next, **opts)
        gains[meas] = fc.forecast_gain(n, y, n_next, **opts)
        source[meas] = "backtest" if entry is not None else "OLS"
    hours, hours_note = _hours(rounds, n_budget)
    review = _review(ws, rounds)
    change, change_note = _label_change(ws, k)
    primary = MEASURES[0]
    per_point = (review or {}).get("hours_saved_per_point")
    if per_point is not None and (source[primary] != "backtest" or hours is None):
        review = {**review, "hours_rule": "off: " + ("no backtest interval (the OLS interval from a few rounds is too "
                                                      "wide for it)" if source[primary] != "backtest"
                                                      else "the next round's hours are unknown")}
        per_point = None
    if review and review.get("hours_saved_per_point") is not None and review.get("images") and \
            review.get("review_all_h") is not None:
        review = {**review, "review_next_h": _review_next(review, gains[primary], left - n_budget)}
    cur = rounds[-1].measures[primary]
    advice = fc.stop_advice(gains[primary], next_round_hours=hours if hours is not None else float("nan"),
                            hours_saved_per_point=per_point, target=target,
                            current=cur if target is not None else None, stabilisation=change,
                            stable_below=stable_below, min_gain=min_gain)
    bt_info = None
    if bt is not None:
        bt_info = {"file": bt["file"], "chains": bt.get("chains"), "level": bt.get("level"),
                   "measures": {meas: ((bt.get("measures") or {}).get(meas) or {}).get(forecasts[meas].model)
                                for meas in MEASURES}}
    return NextRound(True, forecasts[primary].note, budget=n_budget, n_next=n_next, forecasts=forecasts,
                     gains=gains, interval_source=source, backtest=bt_info, next_round_hours=hours,
                     hours_note=hours_note, review=review, label_change=change, label_change_note=change_note,
                     advice=advice, **base)


def write_forecast(ws, **kw) -> NextRound:
    """:func:`next_round_forecast` and ``metrics/forecast.json`` (its :meth:`NextRound.to_dict`)."""
    res = next_round_forecast(ws, **kw)
    ws.save_json(FORECAST_FILE, res.to_dict())
    return res


# ------------------------------------------------------------------------------- the backtest over a study's chains
STUDY_MEASURES = ("mAP50-95", "recall", "test_mAP50-95")  # study row columns a chain is backtested on
BACKTEST_LEVEL = 0.9  # nominal level of the backtest's intervals (that of next_round_forecast)
STUDY_BASELINE = "gt1_only"  # a study seed's CAL1 row (alnb.loop.study.BASELINE): the first point of its chains


def _is_finite(v) -> bool:
    return math.isfinite(_float(v))


def chain_of(points) -> tuple | None:
    """``(n, y)`` arrays sorted by n from ``(n, y)`` pairs, or None when there are fewer than 2 points, an n repeats
    or an n is not positive (no learning curve)."""
    points = sorted(points)
    n = np.array([p[0] for p in points], float)
    if len(n) < 2 or np.any(np.diff(n) <= 0) or np.any(n <= 0):
        return None
    return n, np.array([p[1] for p in points], float)


def _train_images(row: dict, n_gt1: int) -> float:
    """The round model's training images: ``train_images``, else GT1's + the chain's cumulative ``images``."""
    t = _float(row.get("train_images"))
    return t if math.isfinite(t) and t > 0 else n_gt1 + _float(row.get("images"))


def study_chains_from_rows(rows, *, name: str = "study", measures=STUDY_MEASURES) -> dict:
    """``{measure: {"<name>/seed<s>/<strategy>@<budget>": (n, y)}}`` from a study's result rows (dicts: the
    ``results/*.json`` files or the records of :func:`alnb.loop.study.results_table`): one chain per (seed, strategy,
    budget), the seed's ``gt1_only`` row first, then the chain's rounds in order; x = the round model's training
    images.  A measure a chain lacks in any of its points (NaN / null: no TEST set) drops that chain for it."""
    rows = list(rows)
    base = {r["seed"]: r for r in rows if r.get("strategy") == STUDY_BASELINE}
    groups: dict = {}
    for r in rows:
        if r.get("strategy") != STUDY_BASELINE:
            groups.setdefault((r["seed"], r["strategy"], str(r["budget"])), []).append(r)
    out: dict = {}
    for (seed, strategy, budget), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        b = base.get(seed)
        if b is None:
            continue
        t = _float(b.get("train_images"))
        n_gt1 = int(t) if math.isfinite(t) else 0
        chain = [b, *sorted(rs, key=lambda r: int(r["round"]))]
        for key in measures:
            pts = [(_train_images(r, n_gt1), float(r[key])) for r in chain if _is_finite(r.get(key))]
            c = chain_of(pts) if len(pts) == len(chain) and all(math.isfinite(p[0]) for p in pts) else None
            if c is not None:
                out.setdefault(key, {})[f"{name}/seed{seed}/{strategy}@{budget}"] = c
    return out


def study_chains(study_dir) -> dict:
    """:func:`study_chains_from_rows` of an ``alnb study`` folder's ``results/*.json`` rows (or of the folder's own
    ``*.json`` files when it has no ``results/``), chains named after the folder."""
    d = Path(study_dir)
    files = sorted((d / "results").glob("*.json")) if (d / "results").is_dir() else sorted(d.glob("*.json"))
    return study_chains_from_rows([json.loads(f.read_text()) for f in files], name=d.name)


def backtest_chains(chains: dict, level: float = BACKTEST_LEVEL) -> dict:
    """``{measure: {curve: numbers}}``: :func:`alnb.loop.forecast.backtest` of every curve of
    :data:`alnb.loop.forecast.CURVES` on ``{measure: {name: (n, y)}}``: ``chains``, ``n_forecasts``,
    ``mean_abs_error``, ``bias``, ``error_scale``, ``coverage_ols`` (the OLS interval), ``coverage_backtest`` (with
    its own error scale and bias: in-sample), ``errors`` and ``by_fitted_points`` (per k fitted points)."""
    out = {}
    for measure, ch in chains.items():
        pairs = list(ch.values())
        out[measure] = {}
        for model in fc.CURVES:
            bt = fc.backtest(pairs, model=model, level=level)
            corr = fc.backtest(pairs, model=model, level=level, error_scale=bt.error_scale, bias=bt.bias) \
                if np.isfinite(bt.error_scale) else None
            per_k = {}
            for k in sorted(set(bt.n_fitted.tolist())):
                e = bt.errors[bt.n_fitted == k]
                per_k[str(k)] = {"n_forecasts": int(len(e)), "mean_abs_error": float(np.abs(e).mean()),
                                 "bias": float(e.mean()), "error_sd": float(e.std(ddof=1)) if len(e) >= 2 else None}
            out[measure][model] = {
                "chains": len(pairs), "n_forecasts": bt.n_forecasts, "mean_abs_error": bt.mean_abs_error,
                "bias": bt.bias, "error_scale": bt.error_scale, "coverage_ols": bt.coverage,
                "coverage_backtest": corr.coverage if corr is not None else None,
                "errors": [float(e) for e in bt.errors], "by_fitted_points": per_k}
    return out


def lowest_error_curve(per_curve: dict) -> str | None:
    """The curve with the lowest mean absolute error among those that made a forecast (None: none did)."""
    return min((m for m in per_curve if per_curve[m]["n_forecasts"]),
               key=lambda m: per_curve[m]["mean_abs_error"], default=None)


def backtest_record(chains: dict, result: dict, level: float = BACKTEST_LEVEL, **extra) -> dict:
    """The backtest file's JSON (``benchmarks/forecast_backtest.py``'s format, what :func:`load_backtest` reads):
    ``level``, ``chains`` (the most chains of a measure), ``extra`` (inputs, command, ...), ``measures`` (``result``
    of :func:`backtest_chains`) and ``chain_points``; NaN written as null."""
    return finite_json({"level": level, "chains": max((len(c) for c in chains.values()), default=0), **extra,
                    "measures": result,
                    "chain_points": {m: {k: [[float(a), float(b)] for a, b in zip(*c)] for k, c in ch.items()}
                                     for m, ch in chains.items()}})
