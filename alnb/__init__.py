"""alnb: active-learning notebooks for object detection.

Importing ``alnb`` sets ultralytics offline before anything imports it (see :mod:`alnb.core.offline`).
"""

from alnb.core import offline as _offline  # noqa: F401  (sets YOLO_OFFLINE etc. before any ultralytics import)

__version__ = "0.1.0"
