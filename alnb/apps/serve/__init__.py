"""``alnb serve``: a Label Studio ML backend over a workspace -- the labelling loop inside Label Studio.

Routes (Label Studio 1.23's ML-backend protocol, re-implemented): ``GET /health``, ``POST /setup``, ``POST /predict``
(the current model's auto-labels as ``rectanglelabels`` regions with the task score of
:mod:`alnb.labels.formats.labelstudio`; images outside the score table are scored on the fly), ``POST /webhook`` and
``POST /train`` (start a training job), ``POST /job_status``, ``GET /versions``.  :meth:`Backend.handle` is a plain
method (tests call it without a socket); :func:`train_next` runs in its own process.

Modules: :mod:`.backend` (:class:`Backend`, :func:`serve`), :mod:`.http` (routes, socket server), :mod:`.predict`
(tasks -> predictions), :mod:`.snapshot` (the served model, the review order), :mod:`.jobs` (training jobs),
:mod:`.client` (Label Studio's API), :mod:`.common` (settings, errors).  Binds 127.0.0.1; ``BASIC_AUTH_USER`` /
``BASIC_AUTH_PASS`` turn on basic auth; the token comes from ``LABEL_STUDIO_API_KEY`` and the server from
``LABEL_STUDIO_URL``, never from a file; no token or body is logged.  Design notes: docs/design/serve.md
"""

from alnb.apps.serve.backend import Backend, serve
from alnb.apps.serve.client import LabelStudioAPI, ProjectFollower, project_id
from alnb.apps.serve.common import (AUTH_PASS_ENV, AUTH_USER_ENV, CACHE_SIZE, DEFAULT_HOST, DEFAULT_PORT,
                                    DOCUMENT_ROOT_ENV, FOLLOW_TRIES, FOLLOW_WAIT, JOB_STATUS, MAX_BODY, SERVE_DIR,
                                    TOKEN_ENV, URL_ENV, RequestError, TaskError)
from alnb.apps.serve.http import ROUTES, Server
from alnb.apps.serve.jobs import Trainer, _job_file, _job_main, next_round_number, submitted_tasks, train_next
from alnb.apps.serve.predict import Predictor
from alnb.apps.serve.snapshot import Snapshot, load_snapshot, model_version, review_order
from alnb.core.workspace import WorkspaceError

__all__ = ["AUTH_PASS_ENV", "AUTH_USER_ENV", "CACHE_SIZE", "DEFAULT_HOST", "DEFAULT_PORT", "DOCUMENT_ROOT_ENV",
           "FOLLOW_TRIES", "FOLLOW_WAIT", "JOB_STATUS", "MAX_BODY", "ROUTES", "SERVE_DIR", "TOKEN_ENV", "URL_ENV",
           "Backend", "LabelStudioAPI", "Predictor", "ProjectFollower", "RequestError", "Server", "Snapshot",
           "TaskError", "Trainer", "WorkspaceError", "load_snapshot", "model_version", "next_round_number",
           "project_id", "review_order", "serve", "submitted_tasks", "train_next"]
