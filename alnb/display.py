"""Display layer: HTML tables for notebooks (difficulty bars).  Figures are in :mod:`alnb.plots`, widgets in
:mod:`alnb.widgets`; nothing here computes a score or writes a file."""

from __future__ import annotations

import numpy as np
import pandas as pd


def difficulty_bars_html(scores: pd.DataFrame, columns=("stem", "score", "n_det", "cls_unc", "mutual_info",
                                                        "box_spread", "least_conf"), max_rows: int | None = None,
                         sort_by: str = "score") -> str:
    """HTML table with difficulty bars (1 green / 2 yellow / 3 red; failed images purple), sortable by clicking a
    column header (a few lines of inline JavaScript; works in JupyterLab and in exported HTML)."""
    import html as _html

    from alnb.plots import TIER_COLOURS
    from alnb.select import TIER_BARS

    df = scores.sort_values(sort_by, ascending=False) if sort_by in scores else scores
    if max_rows:
        df = df.head(max_rows)
    cols = [c for c in columns if c in df.columns]
    tid = f"alnb-tiers-{abs(hash(tuple(df['stem']))) % 10**8}"

    def bars(tier, failed):
        n = TIER_BARS.get(tier, 0)
        col = TIER_COLOURS["failed"] if failed else TIER_COLOURS.get(tier, "#999")
        cells = "".join(f'<span style="display:inline-block;width:7px;height:{6 + 4 * i}px;margin-right:2px;'
                        f'vertical-align:bottom;background:{col if i < n else "#ddd"}"></span>' for i in range(3))
        label = f"{tier}{' (failed)' if failed else ''}"
        return f'<td data-v="{n + (10 if failed else 0)}" title="{label}">{cells} {label}</td>'

    head = "".join(f'<th style="cursor:pointer" onclick="alnbSort(\'{tid}\',{i})">{_html.escape(c)} &#x21C5;</th>'
                   for i, c in enumerate(["difficulty", *cols]))
    rows = []
    for r in df.to_dict("records"):
        tds = [bars(r.get("tier", ""), bool(r.get("failed", False)))]
        for c in cols:
            v = r[c]
            txt = f"{v:.3f}" if isinstance(v, float) else _html.escape(str(v))
            dv = f"{float(v):.6g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else txt
            tds.append(f'<td data-v="{dv}">{txt}</td>')
        rows.append("<tr>" + "".join(tds) + "</tr>")
    script = ("<script>function alnbSort(id,c){var t=document.getElementById(id),b=t.tBodies[0],"
              "r=Array.from(b.rows),d=t.getAttribute('data-d'+c)==='1';t.setAttribute('data-d'+c,d?'0':'1');"
              "r.sort(function(x,y){var a=x.cells[c].getAttribute('data-v'),z=y.cells[c].getAttribute('data-v'),"
              "fa=parseFloat(a),fz=parseFloat(z);var v=(isNaN(fa)||isNaN(fz))?a.localeCompare(z):fa-fz;"
              "return d?v:-v;});r.forEach(function(e){b.appendChild(e);});}</script>")
    return (f'{script}<table id="{tid}" style="font-size:12px"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + "</tbody></table>")
