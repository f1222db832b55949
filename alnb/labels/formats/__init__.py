"""One module per labelling tool's format, behind two plain dict registries (the way ultralytics keeps its callbacks
in one dict): the CLI's ``--format`` choices and :mod:`alnb.labels.labelio`'s dispatch are derived from them, never repeated.

``EXPORTERS[fmt](ws, queue, out_dir, *, tag, model, url_prefix, document_root)`` writes the queue with its
auto-labels as pre-annotations into ``out_dir`` (each exporter takes the options it needs and ignores the rest).

``PARSERS[fmt](path, ctx)`` reads people's labels from ``path`` into a
:class:`alnb.labels.formats.common.ParseContext` (items, skipped tasks, problems); it never writes anything.

To add a tool: a module here with ``export`` and/or ``parse`` built on :mod:`alnb.labels.formats.common`, and one line in
each dict it supports.
"""

from __future__ import annotations

from alnb.labels.formats import coco, cvat, labelstudio, yolo

EXPORTERS = {"labelstudio": labelstudio.export, "cvat": cvat.export, "coco": coco.export}
PARSERS = {"labelstudio": labelstudio.parse, "coco": coco.parse, "yolo": yolo.parse}
