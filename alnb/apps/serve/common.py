"""What every part of ``alnb serve`` shares: its settings (addresses, environment variables, limits) and errors."""

from __future__ import annotations

from datetime import datetime, timezone

from alnb.labels.formats import labelstudio as lsf

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 9090
TOKEN_ENV, URL_ENV = "LABEL_STUDIO_API_KEY", "LABEL_STUDIO_URL"  # the SDK's names
AUTH_USER_ENV, AUTH_PASS_ENV = "BASIC_AUTH_USER", "BASIC_AUTH_PASS"
DOCUMENT_ROOT_ENV = lsf.DOCUMENT_ROOT_ENV  # Label Studio's own local-files setting (also the exports' default)
SERVE_DIR = "serve"  # <workspace>/serve: jobs/, exports/, label_config.xml, state.json
MAX_BODY = 512 * 2**20  # bytes; a /train body carries every annotated task of the project
CACHE_SIZE = 2048  # on-the-fly predictions kept in memory (per model version and image)
FOLLOW_TRIES, FOLLOW_WAIT = 40, 1.5  # project model-version follower: tries, seconds between them (~1 min)
JOB_STATUS = {"queued": "queued", "running": "started", "finished": "finished", "failed": "failed",
              "interrupted": "failed"}  # our job states -> Label Studio's job_status words


class RequestError(Exception):
    """A request the backend cannot answer: HTTP ``status`` (4xx) and a ``message`` saying what to do."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = int(status), message


class TaskError(Exception):
    """One task of a ``/predict`` batch cannot be predicted (its image cannot be resolved or read)."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
