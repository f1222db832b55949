"""ipywidgets controllers: pure update logic (:class:`DifficultyController`) + a thin widget shell.

The controller holds the state (thresholds, tier counts, GT2 selection) and draws figures; it knows nothing about
widgets, so tests drive it directly or set ``.value`` on the shell's sliders and assert on the controller.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alnb import select as sel

TIER_CHOICES = ("hard", "medium", "easy", "failed")


def read_autolabels(ws, stem: str, model: str = "CAL1"):
    """Auto-label boxes of ``stem`` from ``autolabels/<model>/<stem>.txt``: (n, 5) ``cls cx cy w h`` and (n,) conf."""
    from alnb.labelio import read_autolabels as _read

    p = ws.root / "autolabels" / model / f"{stem}.txt"
    arr = _read(p, len(ws.names)) if p.is_file() else np.zeros((0, 6))
    return arr[:, :5], arr[:, 5]


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

    def summary_html(self) -> str:
        c = self.counts
        n = max(1, len(self.scores))
        cells = "".join(f"<td style='padding:0 8px'><b>{k}</b>: {v} ({100 * v / n:.0f}%)</td>" for k, v in c.items())
        return (f"<table><tr>{cells}</tr></table><p><b>GT2 size</b> (medium + hard + failed): {self.gt2_size} of "
                f"{len(self.scores)} POOL images</p>")

    # ---- figures
    def figure(self, ax=None):
        """Score histogram with the two threshold lines (:func:`alnb.plots.score_histogram`)."""
        from alnb.plots import score_histogram

        return score_histogram(self.scores, self.t_medium, self.t_hard, bins=self.bins, ax=ax)

    def tier_stems(self, tier: str, n: int | None = None) -> list:
        """Stems of one tier, highest score first (ties by stem)."""
        if tier not in sel.CATEGORIES:
            raise ValueError(f"tier must be one of {sel.CATEGORIES}, not {tier!r}")
        s = self.scores[(self.categories == tier).to_numpy()]
        s = s.sort_values(["score", "stem"], ascending=[False, True], kind="mergesort")
        stems = list(s["stem"])
        return stems if n is None else stems[:n]

    def thumbnails(self, tier: str = "hard", n: int = 8, ncols: int = 4):
        """Grid of up to ``n`` images of ``tier`` with their auto-label boxes (needs ``ws``)."""
        from alnb.plots import image_grid
        from alnb.workspace import load_image

        if self.ws is None:
            raise ValueError("thumbnails need a workspace (DifficultyController(..., ws=ws)).")
        m = self.ws.manifest()
        sc = self.scores.set_index("stem")["score"]
        items = []
        for s in self.tier_stems(tier, n):
            boxes, conf = read_autolabels(self.ws, s, self.model)
            items.append({"image": load_image(self.ws, s, m), "boxes": boxes, "scores": conf,
                          "title": f"{s}  score {sc[s]:.3g}" if np.isfinite(sc[s]) else f"{s}  failed"})
        title = f"{tier}: {len(self.tier_stems(tier))} image(s), {self.model} auto-labels" + (
            "" if items else " (none at these thresholds)")
        return image_grid(items, self.ws.names, ncols=ncols, title=title)

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

    Display it in a notebook (``explorer`` as the last expression, or ``display(explorer.widget)``).  Sliders use
    ``continuous_update=False``: the figure is redrawn when a slider is released.
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
        self.counts = W.HTML()
        self.message = W.HTML()
        self.hist_out, self.thumb_out = W.Output(), W.Output()
        self.s_medium.observe(self._on_medium, names="value")
        self.s_hard.observe(self._on_hard, names="value")
        self.tier.observe(lambda ch: self.refresh_thumbnails(), names="value")
        self.commit_button.on_click(lambda b: self.commit())
        self.reset_button.on_click(lambda b: self.reset())
        self.widget = W.VBox([W.HBox([W.VBox([self.s_medium, self.s_hard]), W.VBox([self.reset_button,
                                                                                   self.commit_button])]),
                              self.counts, self.hist_out, self.tier, self.thumb_out, self.message])
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
        self.message.value = (f"<b>Committed</b> {len(self.c.committed)} images as GT2 (t_medium={self.c.t_medium:.4g}, "
                              f"t_hard={self.c.t_hard:.4g}) to {self.c.ws.manifest_path}.")

    def refresh(self):
        """Redraw counts, histogram and thumbnails from the controller state."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.counts.value = self.c.summary_html()
        self.fig = self.c.figure()
        with self.hist_out:
            self.hist_out.clear_output(wait=True)
            display(self.fig)
        plt.close(self.fig)
        self.refresh_thumbnails()

    def refresh_thumbnails(self):
        import matplotlib.pyplot as plt
        from IPython.display import display

        if self.c.ws is None:
            return
        fig = self.c.thumbnails(self.tier.value, self.n_thumbs)
        with self.thumb_out:
            self.thumb_out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def difficulty_explorer(ws, t_medium=None, t_hard=None, model: str = "CAL1", n_thumbs: int = 8) -> DifficultyExplorer:
    """Build the explorer for a workspace (scores + default thresholds from the scoring step)."""
    return DifficultyExplorer(DifficultyController.from_workspace(ws, t_medium, t_hard, model=model), n_thumbs)
