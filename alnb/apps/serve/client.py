"""Label Studio's own REST API, as ``alnb serve`` uses it: a project's export, an image's bytes, the project's model
version (:class:`LabelStudioAPI`); and the background follower that keeps a project's model version on the model
being served (:class:`ProjectFollower`).  The token is never logged, stored, or part of a message."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from alnb.apps.serve.common import FOLLOW_TRIES, FOLLOW_WAIT, TOKEN_ENV, URL_ENV, RequestError
from alnb.core.workspace import WorkspaceError


def _is_jwt(token: str) -> bool:
    """A personal access token (a JWT refresh token: three base64url parts) rather than a legacy API token."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts) and all(set(p) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") for p in parts)


def project_id(project, what: str) -> int:
    """Label Studio sends a project as an id, ``"<id>.<created timestamp>"`` or a serialized project."""
    if isinstance(project, dict):
        project = project.get("id")
    try:
        return int(str(project).split(".")[0])
    except (TypeError, ValueError):
        raise RequestError(400, f"{what}: 'project' must be the Label Studio project (its id, or the project "
                                f"object Label Studio sends), got {project!r}.") from None


class LabelStudioAPI:
    """Just what the backend needs from Label Studio's REST API: a project's JSON export and an image's bytes.

    ``token``: a legacy API token (``Authorization: Token ...``) or a personal access token, which is exchanged for
    a short-lived access token first (``POST /api/token/refresh``, then ``Authorization: Bearer ...``).  The token is
    never logged or written anywhere, and never part of an error message.
    """

    def __init__(self, url: str | None, token: str | None, timeout: float = 300):
        if not url:
            raise WorkspaceError(f"the Label Studio address is unknown: start alnb serve with {URL_ENV}=http://HOST:"
                                 f"PORT (or --label-studio-url), or connect it to Label Studio first.")
        if not token:
            raise WorkspaceError(f"no Label Studio API token: start alnb serve with {TOKEN_ENV}=<your token> (Label "
                                 f"Studio: Account & Settings > Personal Access Token, or the legacy token). It is "
                                 f"read from the environment only, never stored in the workspace.")
        self.url, self._token, self.timeout = url.rstrip("/"), token, timeout
        self._auth = None

    def _authorization(self) -> str:
        if self._auth is None:
            if _is_jwt(self._token):
                data = self._call("POST", "/api/token/refresh", {"refresh": self._token}, auth=False)
                self._auth = f"Bearer {json.loads(data)['access']}"
            else:
                self._auth = f"Token {self._token}"
        return self._auth

    def _call(self, method: str, path: str, body=None, *, auth: bool = True) -> bytes:
        url = path if path.startswith(("http://", "https://")) else self.url + path
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = self._authorization()
        req = urllib.request.Request(url, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as f:
                return f.read()
        except urllib.error.HTTPError as e:
            what = {401: f"refused the token ({TOKEN_ENV}): check it is a valid token of a user of that project",
                    403: "says this token may not read that project",
                    404: "has no such project or file"}.get(e.code, f"answered HTTP {e.code}")
            raise WorkspaceError(f"Label Studio at {self.url} {what} ({method} {urllib.parse.urlsplit(url).path})."
                                 ) from None
        except (urllib.error.URLError, OSError) as e:
            raise WorkspaceError(f"cannot reach Label Studio at {self.url} ({getattr(e, 'reason', e)}). Is it "
                                 f"running, and is {URL_ENV} right?") from None

    def export(self, project_id: int) -> bytes:
        """The project's *JSON* export, every task (the unlabelled ones are skipped by the import)."""
        return self._call("GET", f"/api/projects/{int(project_id)}/export?exportType=JSON&download_all_tasks=true")

    def download(self, url: str) -> bytes:
        """A file Label Studio serves (an uploaded image: ``/data/upload/...``)."""
        return self._call("GET", url)

    def project(self, project_id: int) -> dict:
        return json.loads(self._call("GET", f"/api/projects/{int(project_id)}"))

    def ml_backend_titles(self, project_id: int) -> set:
        return {b.get("title") for b in json.loads(self._call("GET", f"/api/ml?project={int(project_id)}"))}

    def set_model_version(self, project_id: int, version: str):
        self._call("PATCH", f"/api/projects/{int(project_id)}", {"model_version": version})


class ProjectFollower:
    """Keeps a Label Studio project's *model version* on the model served here, in the background.

    Label Studio 1.23 shows a task's predictions, and fills the Data Manager's *Prediction score* column (the one to
    sort by), only for the project's ``model_version``; connecting a backend sets it to the backend's title, which no
    prediction carries.  So after a ``/predict`` for project P, :meth:`follow` sets P's model version to ``version``
    over the API (``PATCH /api/projects/P``; Label Studio accepts it only once predictions of that version are stored,
    hence the retries) -- but only when it is empty, a title of one of P's ML backends, or an earlier alnb version: a
    version a person chose is left alone (and the log says how to switch).  Needs the token
    (``LABEL_STUDIO_API_KEY``); without it nothing happens and the manual step of docs/guide/serve.md applies.

    ``backend``: what it asks of the server -- ``label_studio_url()``, ``versions()`` and ``log``.
    """

    def __init__(self, backend):
        self.backend = backend
        self._lock = threading.Lock()
        self._following: dict = {}  # Label Studio project id -> the model version being / been set there

    def follow(self, project, version: str):
        """Start following ``project`` (as Label Studio sent it) to ``version``, unless already done."""
        try:
            pid = project_id(project, "project")
        except RequestError:
            return
        ls, token = self.backend.label_studio_url(), os.environ.get(TOKEN_ENV)
        with self._lock:
            if not ls or not token or self._following.get(pid) == version:
                return
            self._following[pid] = version
        threading.Thread(target=self._follow, args=(pid, version, ls, token), daemon=True,
                         name=f"alnb-follow-{pid}").start()

    def _follow(self, pid: int, version: str, ls: str, token: str):
        api, log = LabelStudioAPI(ls, token, timeout=30), self.backend.log
        ours = set(self.backend.versions()[1]["versions"])
        for _ in range(FOLLOW_TRIES):
            time.sleep(FOLLOW_WAIT)
            try:
                current = api.project(pid).get("model_version") or ""
                if current == version:
                    return
                if current and current not in ours and current not in api.ml_backend_titles(pid):
                    log(f"[alnb serve] project {pid} shows the predictions of {current!r}; to sort by alnb's "
                        f"scores choose {version!r} in Settings > Annotation > Live Predictions.")
                    return
                api.set_model_version(pid, version)
                log(f"[alnb serve] project {pid}: model version set to {version} (its predictions and "
                    f"Prediction score column)")
                return
            except WorkspaceError:  # predictions not stored yet (400), or Label Studio busy: try again
                continue
        with self._lock:
            if self._following.get(pid) == version:
                del self._following[pid]
        log(f"[alnb serve] project {pid}: could not set its model version to {version}; choose it in Settings > "
            f"Annotation > Live Predictions to sort by alnb's scores.")
