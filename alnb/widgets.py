"""ipywidgets controllers: pure update logic (:class:`DifficultyController`) + a thin widget shell.

The controller holds the state (thresholds, tier counts, GT2 selection) and draws figures; it knows nothing about
widgets, so tests drive it directly or set ``.value`` on the shell's sliders and assert on the controller.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnb import select as sel

TIER_CHOICES = ("hard", "medium", "easy", "failed")


def bars_html(tier: str) -> str:
    """The difficulty bars as inline HTML: 1 green = easy, 2 yellow = medium, 3 red = hard, 3 purple = failed."""
    from alnb.plots import BAR_OFF, TIER_COLOURS, n_bars

    n, col = n_bars(tier), TIER_COLOURS.get(tier, BAR_OFF)
    return "".join(f"<span style='display:inline-block;width:6px;height:{6 + 4 * i}px;margin-right:2px;"
                   f"vertical-align:bottom;background:{col if i < n else BAR_OFF}'></span>" for i in range(3))


class DifficultyController:
    """State of the difficulty explorer: two thresholds -> tiers, counts, GT2 (study rule) and figures.

    Parameters
    ----------
    scores : pandas.DataFrame
        Score table (``stem, score, failed``; see :mod:`alnb.select`).
    t_medium, t_hard : float
        Initial thresholds (the scoring step's defaults in notebooks).
    manifest : pandas.DataFrame, optional
        Restricts the selection to eligible POOL images (never VAL1/GT1).
    ws : Workspace, optional
        Needed for thumbnails (images, auto-labels) and :meth:`commit`.
    model : str
        Model whose auto-labels are drawn on thumbnails.
    """

    def __init__(self, scores, t_medium: float, t_hard: float, manifest=None, ws=None, model: str = "CAL1",
                 bins: int = 40):
        self.scores = sel.eligible(scores, manifest)
        self.ws, self.model, self.bins = ws, model, bins
        self.defaults = (float(t_medium), float(t_hard))
        self.t_medium, self.t_hard = self.defaults
        sel.check_thresholds(self.t_medium, self.t_hard)
        self.committed = None  # stems of the last commit

    @classmethod
    def from_workspace(cls, ws, t_medium=None, t_hard=None, model: str = "CAL1"):
        """Scores from ``scores.csv``, thresholds from the scoring step unless given."""
        dm, dh = sel.default_thresholds(ws)
        return cls(sel.load_scores(ws), dm if t_medium is None else t_medium, dh if t_hard is None else t_hard,
                   manifest=ws.manifest(), ws=ws, model=model)

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

    @property
    def categories(self) -> pd.Series:
        return sel.categorise(self.scores, self.t_medium, self.t_hard)

    @property
    def counts(self) -> dict:
        return sel.tier_counts(self.scores, self.t_medium, self.t_hard)

    @property
    def selection(self) -> list:
        """GT2 under the study rule (medium + hard + failed) at the current thresholds."""
        return sel.study_rule(self.scores, self.t_medium, self.t_hard)

    @property
    def gt2_size(self) -> int:
        c = self.counts
        return c["medium"] + c["hard"] + c["failed"]

    @property
    def state(self) -> dict:
        return {"t_medium": self.t_medium, "t_hard": self.t_hard, **self.counts, "gt2_size": self.gt2_size,
                "pool": int(len(self.scores))}

    def committed_gt2(self) -> list:
        """Stems tagged GT2 in the workspace's manifest now (empty without a workspace)."""
        return sorted(self.ws.stems("GT2")) if self.ws is not None else []

    @property
    def is_committed(self) -> bool:
        """Whether the manifest's GT2 tags are exactly the selection at the current thresholds."""
        return self.ws is not None and self.committed_gt2() == sorted(self.selection)

    def commit_status(self) -> str:
        """``"committed"`` or ``"not committed (manifest: N GT2 images)"`` for the selection on screen."""
        if self.is_committed:
            return "committed"
        return f"not committed (manifest: {len(self.committed_gt2())} GT2 images)" if self.ws is not None else \
            "not committed"

    def summary_html(self) -> str:
        """Counts per tier (with the difficulty bars), GT2 size and whether that selection is committed."""
        c = self.counts
        n = max(1, len(self.scores))
        cells = "".join(f"<td style='padding:0 8px'>{bars_html(k)} <b>{k}</b>: <span class='alnb-count-{k}'>{v}</span>"
                        f" ({100 * v / n:.0f}%)</td>" for k, v in c.items())
        status = self.commit_status()
        colour = "#2ca02c" if status == "committed" else "#b35900"
        return (f"<table><tr>{cells}</tr></table><p><b>GT2 size</b> (medium + hard + failed): "
                f"<span class='alnb-gt2-size'>{self.gt2_size}</span> of {len(self.scores)} POOL images at "
                f"t_medium = {self.t_medium:.4g}, t_hard = {self.t_hard:.4g} &mdash; "
                f"<b class='alnb-commit-status' style='color:{colour}'>{status}</b></p>")

    def snapshot_html(self, fig=None) -> str:
        """Counts + GT2 status + the histogram as an embedded PNG: plain HTML that a saved notebook keeps and shows
        without a kernel (widgets need one)."""
        import base64
        import io

        fig = fig if fig is not None else self.figure()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        png = base64.b64encode(buf.getvalue()).decode("ascii")
        return (f"<div class='alnb-snapshot'>{self.summary_html()}<img alt='difficulty histogram' "
                f"src='data:image/png;base64,{png}'/></div>")

    # ---- figures
    def figure(self, ax=None):
        """Score histogram with the two threshold lines (:func:`alnb.plots.score_histogram`)."""
        from alnb.plots import score_histogram

        return score_histogram(self.scores, self.t_medium, self.t_hard, bins=self.bins, ax=ax)

    def tier_stems(self, tier: str, n: int | None = None) -> list:
        """Stems of one tier, highest score first (ties by stem)."""
        stems = sel.tier_stems(self.scores, self.categories, tier)
        return stems if n is None else stems[:n]

    def thumbnails(self, tier: str = "hard", n: int = 8, ncols: int = 3):
        """Grid of up to ``n`` images of ``tier`` with their auto-label boxes and difficulty bars (needs ``ws``)."""
        from alnb.plots import tier_thumbnails

        if self.ws is None:
            raise ValueError("thumbnails need a workspace (DifficultyController(..., ws=ws)).")
        stems = self.tier_stems(tier)
        return tier_thumbnails(self.ws, self.scores, stems[:n], tier, n_in_tier=len(stems), model=self.model,
                               ncols=ncols)

    # ---- commit
    def commit(self) -> pd.DataFrame:
        """Write the current selection as GT2 tags (atomic; earlier GT2 tags replaced) + ``metrics/selection.json``."""
        if self.ws is None:
            raise ValueError("commit needs a workspace (DifficultyController(..., ws=ws)).")
        stems = self.selection
        info = {"rule": "study: medium + hard + failed", "t_medium": self.t_medium, "t_hard": self.t_hard,
                "defaults": {"t_medium": self.defaults[0], "t_hard": self.defaults[1]}, "counts": self.counts,
                "model": self.model}
        m = sel.commit(self.ws, stems, "GT2", info=info)
        self.committed = stems
        return m


class DifficultyExplorer:
    """Widget shell around :class:`DifficultyController`: two sliders, counts, live histogram, thumbnails, commit.

    Display it in a notebook (``explorer`` as the last expression, or ``display(explorer)``).  It shows three
    outputs: the controls (sliders, Defaults, Commit GT2, the commit message), a **snapshot** (counts per tier, GT2
    size, committed or not, the histogram as a PNG) and the thumbnails.  The snapshot is plain HTML, updated in place
    on every change (a display id), so a saved notebook reopened without a kernel still shows the selection where
    the widgets say "model not found".  Sliders use ``continuous_update=False``: redrawn when a slider is released.
    A slider move clears the "Committed ..." message; the snapshot then says "not committed".
    """

    def __init__(self, controller: DifficultyController, n_thumbs: int = 8):
        import ipywidgets as W

        self.c = controller
        self.n_thumbs = n_thumbs
        vals = controller.scores["score"].to_numpy(float)
        vals = vals[np.isfinite(vals)]
        lo = float(min(vals.min() if len(vals) else 0.0, controller.t_medium))
        hi = float(max(vals.max() if len(vals) else 1.0, controller.t_hard))
        hi = hi if hi > lo else lo + 1.0
        step = (hi - lo) / 200
        kw = dict(min=lo, max=hi, step=step, continuous_update=False, readout_format=".4g",
                  layout=W.Layout(width="460px"), style={"description_width": "110px"})
        self.s_medium = W.FloatSlider(value=controller.t_medium, description="easy | medium", **kw)
        self.s_hard = W.FloatSlider(value=controller.t_hard, description="medium | hard", **kw)
        self.tier = W.Dropdown(options=list(TIER_CHOICES), value="hard", description="thumbnails")
        self.commit_button = W.Button(description="Commit GT2", button_style="success", icon="check")
        self.reset_button = W.Button(description="Defaults")
        self.message = W.HTML()
        self.thumb_out = W.Output()
        self.s_medium.observe(self._on_medium, names="value")
        self.s_hard.observe(self._on_hard, names="value")
        self.tier.observe(lambda ch: self.refresh_thumbnails(), names="value")
        self.commit_button.on_click(lambda b: self.commit())
        self.reset_button.on_click(lambda b: self.reset())
        self.controls = W.VBox([W.HBox([W.VBox([self.s_medium, self.s_hard]),
                                        W.VBox([self.reset_button, self.commit_button])]), self.message])
        self.thumbs = W.VBox([self.tier, self.thumb_out])
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
        self.message.value = (f"<b>Committed</b> {len(self.c.committed)} images as GT2 (t_medium={self.c.t_medium:.4g}, "
                              f"t_hard={self.c.t_hard:.4g}) to {self.c.ws.manifest_path}.")

    def refresh(self, thumbnails: bool = True):
        """Redraw the snapshot (counts, GT2 status, histogram) and thumbnails from the controller state; clear the
        commit message (it described an earlier state)."""
        from IPython.display import HTML

        self.message.value = ""
        self.fig = self.c.figure()
        self.html = self.c.snapshot_html(self.fig)
        if self._handle is not None:
            self._handle.update(HTML(self.html))
        if thumbnails:
            self.refresh_thumbnails()

    def refresh_thumbnails(self):
        from IPython.display import display

        if self.c.ws is None:
            return
        fig = self.c.thumbnails(self.tier.value, self.n_thumbs)
        with self.thumb_out:
            self.thumb_out.clear_output(wait=True)
            display(fig)

    def _ipython_display_(self):
        from IPython.display import HTML, display

        display(self.controls)
        self._handle = display(HTML(self.html), display_id=True)
        display(self.thumbs)


def difficulty_explorer(ws, t_medium=None, t_hard=None, model: str = "CAL1", n_thumbs: int = 8) -> DifficultyExplorer:
    """Build the explorer for a workspace (scores + default thresholds from the scoring step)."""
    return DifficultyExplorer(DifficultyController.from_workspace(ws, t_medium, t_hard, model=model), n_thumbs)
