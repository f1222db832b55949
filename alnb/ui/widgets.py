"""ipywidgets controllers: pure update logic (:class:`DifficultyController`) + a thin widget shell.

The controller holds the state (thresholds, tier counts, GT2 selection) and draws figures; it knows nothing about
widgets, so tests drive it directly or set ``.value`` on the shell's sliders and assert on the controller.
"""

from __future__ import annotations

import base64
import html as _h
import io
import re

import numpy as np
import pandas as pd

from alnb.loop import review as rv
from alnb.loop import reviewstep
from alnb.loop import selection as sel
from alnb.evaluation.metrics import predicted_cost  # noqa: F401  (the cost line's prediction; re-exported)
from alnb.acquisition import strategies as acq
from alnb.core.workspace import gt_tag
from alnb.evaluation.metrics import CostModel
from alnb.ui.display import bars_cell, format_hours

TIER_CHOICES = ("hard", "medium", "easy", "failed")


def bars_html(tier: str) -> str:
    """The difficulty bars as inline HTML: 1 green = easy, 2 yellow = medium, 3 red = hard, 3 purple = failed."""
    return bars_cell(tier, tier == "failed").rsplit(" ", 1)[0]


RULES = ("study", "budget")
WARN_SHARE = 0.8  # committing at least this share of the POOL: GT2 and a random Control would be nearly the same


class DifficultyController:
    """State of the difficulty explorer: two thresholds -> tiers, counts, GT2 and figures.

    Parameters
    ----------
    scores : pandas.DataFrame
        Score table (``stem, score, failed``; see :mod:`alnb.loop.selection`).
    t_medium, t_hard : float
        Initial thresholds (the scoring step's defaults in notebooks).
    manifest : pandas.DataFrame, optional
        Restricts the selection to eligible POOL images (never VAL1/GT1).
    ws : Workspace, optional
        Needed for thumbnails (images, auto-labels), the cost line and :meth:`commit`.
    model : str
        Model whose auto-labels are drawn on thumbnails.
    rule : str
        ``"study"`` (GT2 = medium + hard + failed) or ``"budget"`` (``budget`` images chosen by ``strategy``).
    strategy : str, optional
        The budget mode's strategy (default :data:`alnb.acquisition.strategies.DEFAULT_BUDGET_STRATEGY`, random: no
        strategy beat it per labelling second; ``"study_rule"`` = the hardest images, failed first), drawn with ``seed`` exactly
        as :func:`alnb.loop.pipeline.select_round` commits it.
    """

    def __init__(self, scores, t_medium: float, t_hard: float, manifest=None, ws=None, model: str = "CAL1",
                 bins: int = 40, rule: str = "study", budget: int | None = None, page_size: int = 8,
                 tag: str = "GT2", strategy: str | None = None, seed: int = 0):
        # heavy, imported where used: ipywidgets, matplotlib, IPython, alnb.loop.pipeline, alnb.figures.plots
        from alnb.loop.pipeline import budget_strategy
        from alnb.figures.plots import histogram_edges

        self.tag = str(tag)  # the selection being chosen: GT2 (round 2, CAL1's scores), GT<k> (CAL<k-1>'s)
        self.strategy, self.seed = budget_strategy(strategy), int(seed)
        self.scores = sel.eligible(scores, manifest)
        self.ws, self.model, self.bins = ws, model, bins
        self.defaults = (float(t_medium), float(t_hard))
        self.t_medium, self.t_hard = self.defaults
        sel.check_thresholds(self.t_medium, self.t_hard)
        ok = self.scores.loc[~self.scores["failed"].to_numpy(bool), "score"].to_numpy(float)
        ok = ok[np.isfinite(ok)]
        lo, hi = (float(ok.min()), float(ok.max())) if len(ok) else (0.0, 1.0)
        lo, hi = min(lo, self.t_medium), max(hi, self.t_hard)
        self.range = (lo, hi if hi > lo else lo + 1.0)  # the sliders' range: the non-failed scores (+ defaults)
        self.edges = histogram_edges(self.scores, bins, include=self.range)  # fixed axis and bins
        self.page_size = int(page_size)
        self.rule, self.budget = "study", None
        self.set_rule(rule, budget)
        self.committed = None  # stems of the last commit
        self._detections = None

    @classmethod
    def from_workspace(cls, ws, t_medium=None, t_hard=None, model: str = "CAL1", **kw):
        """Scores from ``scores.csv`` (CAL1's, round 2) or ``scores/<model>/scores.csv`` (CAL<k-1>'s, round k >= 3),
        thresholds from that scoring step unless given."""
        src = None if model == "CAL1" else model
        dm, dh = sel.default_thresholds(ws, src)
        return cls(sel.load_scores(ws, src), dm if t_medium is None else t_medium, dh if t_hard is None else t_hard,
                   manifest=ws.manifest(), ws=ws, model=model, **kw)

    # ---- state
    def set_thresholds(self, t_medium=None, t_hard=None) -> dict:
        """Move one or both thresholds; the other is pushed along so that ``t_medium <= t_hard``.  Returns :attr:`state`."""
        if t_medium is not None:
            self.t_medium = float(t_medium)
            if self.t_hard < self.t_medium:
                self.t_hard = self.t_medium
        if t_hard is not None:
            self.t_hard = float(t_hard)
            if self.t_medium > self.t_hard:
                self.t_medium = self.t_hard
        return self.state

    def set_rule(self, rule: str, budget: int | None = None) -> dict:
        """``"study"`` or ``"budget"`` (with ``budget`` images; default: the study rule's size now)."""
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
        self.rule = rule
        if rule == "budget":
            n = len(sel.study_rule(self.scores, self.t_medium, self.t_hard)) if budget is None else int(budget)
            self.budget = max(0, min(n, len(self.scores)))
        return self.state

    @property
    def categories(self) -> pd.Series:
        return sel.categorise(self.scores, self.t_medium, self.t_hard)

    @property
    def counts(self) -> dict:
        return sel.tier_counts(self.scores, self.t_medium, self.t_hard)

    @property
    def selection(self) -> list:
        """GT2 at the current state: the study rule (medium + hard + failed) or the budget mode's images."""
        if self.rule == "budget":
            return self._budget_selection()
        return sel.study_rule(self.scores, self.t_medium, self.t_hard)

    def _budget_selection(self) -> list:
        """The budget mode's images: :attr:`strategy` over the round's candidates with the round's seed, the same
        call :func:`alnb.loop.pipeline.select_round` commits (so what the explorer shows is what is committed)."""
        from alnb.loop.pipeline import round_seed, selection_pool

        if self.strategy == "study_rule":
            return sel.budgeted(self.scores, self.budget)
        m = re.fullmatch(r"GT(\d+)", self.tag)
        k = int(m.group(1)) if m else 2
        pool = (selection_pool(self.ws, None, model=None if k == 2 else self.model,
                               exclude=[gt_tag(j) for j in range(2, k)]) if self.ws is not None
                else acq.Pool(self.scores))
        return acq.select(self.strategy, pool, self.budget, seed=round_seed(self.seed, k))

    @property
    def gt2_size(self) -> int:
        return len(self.selection)

    @property
    def state(self) -> dict:
        return {"t_medium": self.t_medium, "t_hard": self.t_hard, **self.counts, "gt2_size": self.gt2_size,
                "pool": int(len(self.scores)), "rule": self.rule, "budget": self.budget}

    def slider_effects(self) -> dict:
        """One sentence per slider saying what it changes under the chosen rule: ``{"t_medium", "t_hard"}`` (the
        counts themselves are in the snapshot above the sliders, not repeated here; in budget mode the one sentence
        stands under the first slider)."""
        if self.rule == "budget":
            return {"t_medium": f"Budget mode: the sliders only colour the tiers; the budget decides {self.tag}.",
                    "t_hard": ""}
        return {"t_medium": f"easy | medium decides {self.tag}: images at or above it, and every failed image, are "
                            "labelled.",
                "t_hard": f"medium | hard only splits {self.tag} into medium and hard: under the study rule "
                          f"{self.tag} stays the same."}

    # ---- cost of the selection
    def _model_pr(self) -> tuple:
        """(precision, recall, costs) of the auto-labelling model on VAL1 (``metrics/eval_<model>.json``)."""
        try:
            ev = self.ws.load_json(f"eval_{self.model}")
        except Exception:  # noqa: BLE001 - no evaluation yet: no prediction
            return float("nan"), float("nan"), CostModel()
        o = ev.get("overall", {})
        costs = CostModel(**{k: v for k, v in (ev.get("costs") or {}).items() if k in CostModel.__dataclass_fields__})

        def num(v):
            try:
                return float(v)
            except (TypeError, ValueError):
                return float("nan")
        return num(o.get("precision")), num(o.get("recall")), costs

    def cost(self) -> dict:
        """Predicted cost of committing the selection on screen (:func:`predicted_cost`): images, auto-label boxes,
        expected true boxes, hours correcting the auto-labels and hours drawing everything, and its POOL share."""
        stems = set(self.selection)
        s = self.scores[self.scores["stem"].isin(stems)]
        n_pred = int(s["n_det"].sum()) if "n_det" in s else 0
        p, r, costs = self._model_pr() if self.ws is not None else (float("nan"), float("nan"), None)
        out = predicted_cost(len(s), n_pred, p, r, costs)
        out["pool_share"] = len(s) / max(1, len(self.scores))
        return out

    def cost_html(self) -> str:
        """The cost line shown before the commit (and a warning when the selection is most of the POOL); times
        under an hour in minutes (:func:`alnb.ui.display.format_hours`)."""
        c = self.cost()
        hours = ("predicted <b class='alnb-cost-hours'>{}</b> correcting {}'s auto-labels, {} drawing every box "
                 "(cost model with {}'s precision / recall on VAL1)"
                 .format(format_hours(c["assisted_h"]), self.model, format_hours(c["manual_h"]), self.model)
                 if np.isfinite(c["assisted_h"]) else "labelling time: n/a (no VAL1 evaluation of the model yet)")
        boxes = (f"{c['auto_boxes']} auto-label boxes to check, about {c['expected_boxes']:.0f} boxes expected"
                 if np.isfinite(c["expected_boxes"]) else f"{c['auto_boxes']} auto-label boxes to check")
        warn = (f" <b class='alnb-cost-warning' style='color:#b30000'>Warning: {100 * c['pool_share']:.0f} % of the "
                f"POOL. A random Control of the same size would hold nearly the same images, so the comparison "
                f"could not tell active selection from chance.</b>" if c["pool_share"] >= WARN_SHARE else "")
        return f"<p class='alnb-cost'>Labelling them: {boxes}; {hours}.{warn}</p>"

    def committed_gt2(self) -> list:
        """Stems tagged :attr:`tag` (GT2, or GT<k> in round k) in the workspace's manifest now (empty without a
        workspace)."""
        return sorted(self.ws.stems(self.tag)) if self.ws is not None else []

    @property
    def is_committed(self) -> bool:
        """Whether the manifest's GT2 tags are exactly the selection at the current thresholds."""
        return self.ws is not None and self.committed_gt2() == sorted(self.selection)

    def commit_status(self) -> str:
        """``"committed"`` or ``"not committed (manifest: N GT2 images)"`` for the selection on screen."""
        if self.is_committed:
            return "committed"
        return f"not committed (manifest: {len(self.committed_gt2())} {self.tag} images)" if self.ws is not None else \
            "not committed"

    def rule_text(self) -> str:
        return "medium + hard + failed" if self.rule == "study" else f"budget: {self.budget} images " \
                                                                     f"{self._strategy_words()}"

    def _strategy_words(self) -> str:
        return {"study_rule": "by the study rule's order (the hardest, failed first)",
                "random": "at random (no strategy beat it per labelling second; "
                          "docs/results/2026-12-06-strategy-study.md)"}.get(
            self.strategy, f"by strategy {self.strategy}")

    def summary_html(self) -> str:
        """Counts per tier (with the difficulty bars), GT2 size, its cost and whether that selection is committed."""
        c = self.counts
        n = max(1, len(self.scores))
        cells = "".join(f"<td style='padding:0 8px'>{bars_html(k)} <b>{k}</b>: <span class='alnb-count-{k}'>{v}</span>"
                        f" ({100 * v / n:.0f}%)</td>" for k, v in c.items())
        status = self.commit_status()
        colour = "#2ca02c" if status == "committed" else "#b35900"
        return (f"<table><tr>{cells}</tr></table><p><b>{self.tag}</b> ({self.rule_text()}): "
                f"<span class='alnb-gt2-size'>{self.gt2_size}</span> of {len(self.scores)} POOL images "
                f"({100 * self.gt2_size / n:.0f} %) at t_medium = <span class='alnb-t-medium'>{self.t_medium:.4g}"
                f"</span>, t_hard = <span class='alnb-t-hard'>{self.t_hard:.4g}</span> &mdash; "
                f"<b class='alnb-commit-status' style='color:{colour}'>{status}</b></p>"
                + (self.cost_html() if self.ws is not None else ""))

    def snapshot_html(self, fig=None) -> str:
        """Counts + GT2 status + cost, then the histogram as an embedded PNG: plain HTML that a saved notebook keeps
        and shows without a kernel (widgets need one).  The explorer shows it right above its sliders, so the
        histogram stays in view while a slider moves."""
        fig = fig if fig is not None else self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return (f"<div class='alnb-snapshot'>{self.summary_html()}<img alt='difficulty histogram' "
                f"src='data:image/png;base64,{png}'/></div>")

    # ---- figures
    def figure(self, ax=None):
        """Score histogram with the two threshold lines on the fixed axis and bins (:attr:`edges`)."""
        from alnb.figures.plots import score_histogram

        return score_histogram(self.scores, self.t_medium, self.t_hard, bins=self.bins, ax=ax, edges=self.edges)

    def tier_stems(self, tier: str, n: int | None = None) -> list:
        """Stems of one tier, highest score first (ties by stem)."""
        stems = sel.tier_stems(self.scores, self.categories, tier)
        return stems if n is None else stems[:n]

    def pages(self, tier: str) -> int:
        """Pages of :attr:`page_size` thumbnails in ``tier`` (at least 1)."""
        return max(1, -(-len(self.tier_stems(tier)) // self.page_size))

    def page_text(self, tier: str, page: int) -> str:
        n = len(self.tier_stems(tier))
        a, b = page * self.page_size + 1, min(n, (page + 1) * self.page_size)
        return (f"page {page + 1} of {self.pages(tier)} (images {a}-{b} of {n} {tier})" if n else
                f"page 1 of 1 (no {tier} image at these thresholds)")

    def detections(self):
        """``detections.csv`` of the workspace (candidates below the operating point included), read once."""
        if self._detections is None and self.ws is not None and (self.ws.root / "detections.csv").is_file():
            self._detections = pd.read_csv(self.ws.root / "detections.csv", dtype={"stem": str})
        return self._detections

    def thumbnails(self, tier: str = "hard", n: int | None = None, ncols: int = 3, page: int = 0):
        """Grid of page ``page`` (``n`` = :attr:`page_size` images) of ``tier`` with the auto-label boxes and
        difficulty bars; failed images show their best candidate below the operating point (needs ``ws``)."""
        from alnb.figures.plots import tier_thumbnails

        if self.ws is None:
            raise ValueError("thumbnails need a workspace (DifficultyController(..., ws=ws)).")
        n = self.page_size if n is None else int(n)
        stems = self.tier_stems(tier)
        first = page * n
        conf = None
        try:
            conf = float(self.ws.load_json("mc_scoring")["conf"])
        except Exception:  # noqa: BLE001 - older workspace: no threshold in the title
            conf = None
        return tier_thumbnails(self.ws, self.scores, stems[first:first + n], tier, n_in_tier=len(stems),
                               model=self.model, ncols=ncols, detections=self.detections() if tier == "failed"
                               else None, conf=conf, first=first)

    # ---- commit
    def commit(self) -> pd.DataFrame:
        """Write the current selection as :attr:`tag` tags (atomic; earlier ones replaced) + its record
        (``metrics/selection.json`` for GT2, ``metrics/gt<k>.json`` for GT<k>)."""
        if self.ws is None:
            raise ValueError("commit needs a workspace (DifficultyController(..., ws=ws)).")
        stems = self.selection
        from alnb.loop.pipeline import budget_rule_text

        rule = "study: medium + hard + failed" if self.rule == "study" else budget_rule_text(self.budget,
                                                                                               self.strategy)
        info = {"rule": rule, "t_medium": self.t_medium, "t_hard": self.t_hard,
                "defaults": {"t_medium": self.defaults[0], "t_hard": self.defaults[1]}, "counts": self.counts,
                "model": self.model, **({"budget": self.budget, "strategy": self.strategy, "seed": self.seed}
                                        if self.rule == "budget" else {}),
                "predicted_cost": {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else
                                       (None if isinstance(v, float) else v)) for k, v in self.cost().items()}}
        m = sel.commit(self.ws, stems, self.tag, info=info)
        self.committed = stems
        return m


class DifficultyExplorer:
    """Widget shell around :class:`DifficultyController`: two sliders (each with a line saying what it changes),
    the rule switch and budget, counts, cost, live histogram, paged thumbnails, commit.

    Display it in a notebook (``explorer`` as the last expression, or ``display(explorer)``).  It shows three
    outputs: a **snapshot** (counts per tier, GT2 size, cost, committed or not, the histogram as a PNG), right above
    the controls (sliders, rule, Defaults, Commit GT2, the commit message) so that the histogram stays in view while
    a slider moves, and the thumbnails.  The snapshot is plain HTML,
    updated in place on every change (a display id), so a saved notebook reopened without a kernel still shows the
    selection where the widgets say "model not found".  Sliders span the non-failed scores and use
    ``continuous_update=False``: redrawn when a slider is released; the histogram keeps its axis and bins.
    A slider move clears the "Committed ..." message; the snapshot then says "not committed".
    """

    def __init__(self, controller: DifficultyController, n_thumbs: int = 8):
        import ipywidgets as W

        self.c = controller
        self.c.page_size = self.n_thumbs = int(n_thumbs)
        lo, hi = controller.range
        step = (hi - lo) / 200
        kw = dict(min=lo, max=hi, step=step, continuous_update=False, readout_format=".4g",
                  layout=W.Layout(width="460px"), style={"description_width": "110px"})
        self.s_medium = W.FloatSlider(value=controller.t_medium, description="easy | medium", **kw)
        self.s_hard = W.FloatSlider(value=controller.t_hard, description="medium | hard", **kw)
        self.effect_medium = W.HTML(layout=W.Layout(width="460px", margin="0 0 6px 0"))
        self.effect_hard = W.HTML(layout=W.Layout(width="460px", margin="0 0 6px 0"))
        self.rule = W.ToggleButtons(options=[("study rule", "study"), ("budget", "budget")], value=controller.rule,
                                    description=f"{controller.tag} rule", style={"description_width": "110px"})
        n_pool = max(1, len(controller.scores))
        self.budget = W.IntSlider(value=controller.budget or controller.gt2_size, min=0, max=n_pool,
                                  description="budget (images)", continuous_update=False,
                                  disabled=controller.rule != "budget", layout=W.Layout(width="460px"),
                                  style={"description_width": "110px"})
        self.tier = W.Dropdown(options=list(TIER_CHOICES), value="hard", description="thumbnails")
        self.prev_button = W.Button(description="previous", icon="arrow-left", layout=W.Layout(width="110px"))
        self.next_button = W.Button(description="next", icon="arrow-right", layout=W.Layout(width="110px"))
        self.page_label = W.HTML()
        self.page = 0
        self.commit_button = W.Button(description=f"Commit {controller.tag}", button_style="success", icon="check")
        self.reset_button = W.Button(description="Defaults")
        self.message = W.HTML()
        self.thumb_out = W.Output()
        self.s_medium.observe(self._on_medium, names="value")
        self.s_hard.observe(self._on_hard, names="value")
        self.rule.observe(self._on_rule, names="value")
        self.budget.observe(self._on_budget, names="value")
        self.tier.observe(lambda ch: self.show_page(0), names="value")
        self.prev_button.on_click(lambda b: self.show_page(self.page - 1))
        self.next_button.on_click(lambda b: self.show_page(self.page + 1))
        self.commit_button.on_click(lambda b: self.commit())
        self.reset_button.on_click(lambda b: self.reset())
        self.controls = W.VBox([W.HBox([W.VBox([self.s_medium, self.effect_medium, self.s_hard, self.effect_hard,
                                                self.rule, self.budget]),
                                        W.VBox([self.reset_button, self.commit_button])]), self.message])
        self.thumbs = W.VBox([W.HBox([self.tier, self.prev_button, self.next_button, self.page_label]),
                              self.thumb_out])
        self.widget = self.controls  # the live part a test or a notebook interacts with
        self._handle = None  # display handle of the snapshot (set when displayed)
        self._syncing = False
        self.refresh()

    # ---- callbacks (thin: everything goes through the controller)
    def _on_medium(self, change):
        if not self._syncing:
            self.c.set_thresholds(t_medium=change["new"])
            self._sync_sliders()
            self.refresh()

    def _on_hard(self, change):
        if not self._syncing:
            self.c.set_thresholds(t_hard=change["new"])
            self._sync_sliders()
            self.refresh()

    def _on_rule(self, change):
        self.c.set_rule(change["new"], self.budget.value if change["new"] == "budget" else None)
        self.budget.disabled = self.c.rule != "budget"
        self.refresh(thumbnails=False)

    def _on_budget(self, change):
        if self.c.rule == "budget":
            self.c.set_rule("budget", change["new"])
            self.refresh(thumbnails=False)

    def _sync_sliders(self):
        self._syncing = True
        try:
            self.s_medium.value, self.s_hard.value = self.c.t_medium, self.c.t_hard
        finally:
            self._syncing = False

    def reset(self):
        self._syncing = True
        try:
            self.c.set_thresholds(*self.c.defaults)
            self._sync_sliders()
        finally:
            self._syncing = False
        self.refresh()

    def commit(self):
        self.c.commit()
        self.refresh(thumbnails=False)
        self.message.value = (f"<b>Committed</b> {len(self.c.committed)} images as {self.c.tag} "
                              f"({self.c.rule_text()}; "
                              f"t_medium={self.c.t_medium:.4g}, t_hard={self.c.t_hard:.4g}) to "
                              f"{self.c.ws.manifest_path.name}.")

    def refresh(self, thumbnails: bool = True):
        """Redraw the slider effects, the snapshot (counts, GT2 status, cost, histogram) and thumbnails from the
        controller state; clear the commit message (it described an earlier state)."""
        import matplotlib.pyplot as plt
        from IPython.display import HTML

        self.message.value = ""
        eff = self.c.slider_effects()
        self.effect_medium.value = f"<span class='alnb-effect-medium'>{eff['t_medium']}</span>"
        self.effect_hard.value = f"<span class='alnb-effect-hard'>{eff['t_hard']}</span>"
        self.fig = self.c.figure()
        self.html = self.c.snapshot_html(self.fig)
        plt.close(self.fig)  # not a pyplot figure (alnb.figures.plots), but never leave one open
        if self._handle is not None:
            self._handle.update(HTML(self.html))
        if thumbnails:
            self.show_page(self.page)

    def show_page(self, page: int):
        """Show page ``page`` of the chosen tier's thumbnails (clamped to the pages there are)."""
        self.page = max(0, min(int(page), self.c.pages(self.tier.value) - 1))
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.c.pages(self.tier.value) - 1
        self.page_label.value = f"<span class='alnb-page'>{self.c.page_text(self.tier.value, self.page)}</span>"
        self.refresh_thumbnails()

    def refresh_thumbnails(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        if self.c.ws is None:
            return
        fig = self.c.thumbnails(self.tier.value, self.n_thumbs, page=self.page)
        with self.thumb_out:
            self.thumb_out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def _ipython_display_(self):
        from IPython.display import HTML, display

        self._handle = display(HTML(self.html), display_id=True)  # counts, cost, histogram: right above the sliders
        display(self.controls)
        display(self.thumbs)


def difficulty_explorer(ws, t_medium=None, t_hard=None, model: str = "CAL1", n_thumbs: int = 8,
                        rule: str = "study", budget: int | None = None, tag: str = "GT2", strategy: str | None = None,
                        seed: int = 0) -> DifficultyExplorer:
    """Build the explorer for a workspace (``model``'s scores + default thresholds from its scoring step; ``tag``:
    the selection it commits, GT2 from CAL1's scores or GT<k> from CAL<k-1>'s; ``strategy`` / ``seed``: the budget
    mode's, as :func:`alnb.loop.pipeline.select_round`)."""
    return DifficultyExplorer(DifficultyController.from_workspace(ws, t_medium, t_hard, model=model, rule=rule,
                                                                  budget=budget, page_size=n_thumbs, tag=tag,
                                                                  strategy=strategy, seed=seed),
                              n_thumbs)


# ------------------------------------------------------------------------------------------------- the review cut
REVIEW_UNITS = ("fraction", "hours")


def _signed_hours(h: float) -> str:
    """:func:`alnb.ui.display.format_hours`, with a minus sign for a negative time (reviewing costs more than drawing)."""
    return ("-" + format_hours(-h)) if np.isfinite(h) and h < 0 else format_hours(h)


class ReviewController:
    """State of the review-cut slider (the seed's "difficulty-threshold slider"): one value -> the cut of the review
    plan (:mod:`alnb.loop.review`) -> hours, hours saved, predicted residual errors; the curve with the cut marked.

    ``plan`` / ``curve`` / ``summary``: :func:`alnb.loop.reviewstep.load_plan` (or :func:`~alnb.loop.reviewstep.build_plan`'s
    result); ``unit``: ``"fraction"`` (the share of the plan's images reviewed, first in plan order) or ``"hours"``
    (the review hours spent, as many images as fit: :func:`alnb.loop.review.choose_cut`).  Set :attr:`value` and read
    :attr:`reviewed`, :meth:`cut`, :meth:`hours_text`, :meth:`residual_text`.  It knows no widget; ``ws`` is needed
    only for :meth:`accept`.
    """

    def __init__(self, plan, curve, summary: dict | None = None, *, unit: str = "fraction", value=None, ws=None):
        if unit not in REVIEW_UNITS:
            raise ValueError(f"unit must be one of {REVIEW_UNITS}, got {unit!r}")
        self.plan = plan.reset_index(drop=True)
        self.curve = curve.reset_index(drop=True)
        self.summary = summary or {}
        self.unit, self.ws = unit, ws
        self.n = int(self.curve["reviewed"].iloc[-1])
        self.model = str(self.summary.get("model") or (self.plan["model"].iloc[0] if "model" in self.plan
                                                       and len(self.plan) else ""))
        j0 = int(self.summary.get("cut", {}).get("reviewed", 0))
        self.default = self.value_of(j0)
        self.reviewed = j0
        self._value = self.default
        self.value = self.default if value is None else value
        self.accepted_record = None

    @classmethod
    def from_workspace(cls, ws, unit: str = "fraction", value=None):
        """The plan written last (:func:`alnb.loop.reviewstep.write_plan`), its chosen cut as the starting value."""
        plan, cv, summary = reviewstep.load_plan(ws)
        return cls(plan, cv, summary, unit=unit, value=value, ws=ws)

    # ---- the value
    @property
    def range(self) -> tuple:
        """(min, max) of :attr:`value`: 0 to 1 (fraction) or 0 to the hours of reviewing everything."""
        return (0.0, 1.0) if self.unit == "fraction" else (0.0, float(self.curve["review_h"].iloc[-1]))

    @property
    def step(self) -> float:
        """One image (fraction), or a two-hundredth of the review-everything hours."""
        lo, hi = self.range
        return 1.0 / max(self.n, 1) if self.unit == "fraction" else max((hi - lo) / 200, 1e-6)

    def value_of(self, reviewed: int) -> float:
        """The value that asks for the cut ``reviewed``: its fraction, or its review hours."""
        row = self.curve.iloc[int(reviewed)]
        return float(row["fraction"]) if self.unit == "fraction" else float(row["review_h"])

    @property
    def value(self) -> float:
        return self._value

    @value.setter
    def value(self, v) -> None:
        lo, hi = self.range
        self._value = float(min(max(float(v), lo), hi))
        kw = {"fraction": self._value} if self.unit == "fraction" else {"hours": self._value}
        self.reviewed = rv.choose_cut(self.curve, **kw)

    def cut(self) -> dict:
        """The numbers of the cut on screen (a row of the curve, :func:`alnb.loop.review.cut_summary`)."""
        return rv.cut_summary(self.curve, self.reviewed)

    # ---- text
    def hours_text(self) -> str:
        """What the cut costs and saves, in plain text (times under an hour in minutes)."""
        c = self.cut()
        return (f"review {c['reviewed']} of {self.n} images: {_signed_hours(c['review_h'])} predicted; drawing every "
                f"box of the {self.n} images by hand {_signed_hours(c['manual_h'])}; saved "
                f"{_signed_hours(c['saved_h'])}")

    def residual_text(self) -> str:
        """The predicted errors left in the accepted images, with their 95 % intervals (and, in simulation mode, the
        actual ones)."""
        c = self.cut()

        def iv(k):
            lo, hi = c.get(f"{k}_lo"), c.get(f"{k}_hi")
            return f" [{lo:.0f}-{hi:.0f}]" if lo is not None and hi is not None else ""
        text = (f"accept {c['accepted']} images unreviewed: predicted {c['err_images']:.1f}{iv('err_images')} of them "
                f"with at least one error ({100 * c['err_rate']:.1f} %), {c['fn']:.1f}{iv('fn')} missed boxes, "
                f"{c['fp']:.1f}{iv('fp')} false boxes (95 % intervals)")
        if "actual_err_images" in c:
            text += (f"; actual (simulation): {c['actual_err_images']:.0f} images with an error, "
                     f"{c['actual_fn']:.0f} missed, {c['actual_fp']:.0f} false boxes")
        return text

    def html(self) -> str:
        """The cut's numbers as HTML (classes ``alnb-review-hours``, ``alnb-review-residual``; ``data-value``: the
        exact value these numbers are for)."""
        unit = "share of the images reviewed" if self.unit == "fraction" else "review hours"
        return (f"<div class='alnb-review' data-value='{self._value!r}' data-reviewed='{self.reviewed}'>"
                f"<p><b>Cut</b> ({unit} {self._value:.3g}, {self.model}'s plan): "
                f"<span class='alnb-review-hours'>{_h.escape(self.hours_text())}</span></p>"
                f"<p><span class='alnb-review-residual'>{_h.escape(self.residual_text())}</span></p></div>")

    def figure(self):
        """The curve (:func:`alnb.figures.plots.review_curve`) with the cut on screen marked."""
        from alnb.figures.plots import review_curve

        c = self.cut()
        return review_curve(self.curve, c, title=f"Review plan ({self.model}): {self.n} images; cut at "
                                                 f"{c['reviewed']} reviewed")

    def snapshot_html(self, fig=None) -> str:
        """Numbers + the curve as an embedded PNG (plain HTML that a saved notebook keeps without a kernel)."""
        import matplotlib.pyplot as plt

        own = fig is None
        fig = self.figure() if own else fig
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        if own:
            plt.close(fig)
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return f"<div class='alnb-review-snapshot'>{self.html()}<img alt='review curve' src='data:image/png;base64,{png}'/></div>"

    # ---- the final label set
    def accept(self) -> dict:
        """Accept the model's labels of every image after the cut on screen (:func:`alnb.loop.reviewstep.accept`: people's
        labels are never touched, accepted labels are marked machine-accepted) and write the final label set."""
        if self.ws is None:
            raise ValueError("accept() needs the workspace (ReviewController.from_workspace).")
        self.accepted_record = reviewstep.accept(self.ws, plan=self.plan, reviewed=self.reviewed)
        return self.accepted_record


class ReviewExplorer:
    """Widget shell around :class:`ReviewController`: the cut slider (``continuous_update=False``), the cut's numbers
    under it, the curve beside it (an ``Output`` redrawn with ``clear_output(wait=True)``) and an Accept button."""

    def __init__(self, controller: ReviewController):
        import ipywidgets as W

        self.c = controller
        lo, hi = controller.range
        desc = "review share" if controller.unit == "fraction" else "review hours"
        self.slider = W.FloatSlider(value=controller.value, min=lo, max=hi, step=controller.step,
                                    description=desc, continuous_update=False,
                                    readout_format=".3f" if controller.unit == "fraction" else ".3g",
                                    layout=W.Layout(width="420px"), style={"description_width": "100px"})
        self.numbers = W.HTML(layout=W.Layout(width="420px"))
        self.accept_button = W.Button(description="Accept the rest", button_style="success", icon="check")
        self.message = W.HTML()
        self.out = W.Output()
        self.slider.observe(self._on_value, names="value")
        self.accept_button.on_click(lambda b: self.accept())
        self.widget = W.HBox([W.VBox([self.slider, self.numbers, self.accept_button, self.message]), self.out])
        self.refresh()

    def _on_value(self, change):
        self.c.value = change["new"]
        self.refresh()

    def refresh(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.message.value = ""
        self.numbers.value = self.c.html()
        fig = self.c.figure()
        with self.out:
            self.out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def accept(self):
        rec = self.c.accept()
        self.message.value = (f"<span class='alnb-review-accepted'><b>Accepted</b> {rec['n_accepted']} images "
                              f"(machine-accepted); {rec['n_review']} wait for review; final label set written."
                              f"</span>")

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
