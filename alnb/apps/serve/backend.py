"""The ML backend of one workspace (:class:`Backend`: one method per route, its state in ``<workspace>/serve/``)
and :func:`serve`, which runs it on a socket until Ctrl-C.  The work is done by the parts it composes: the served
model (:mod:`.snapshot`), predictions (:mod:`.predict`), training jobs (:mod:`.jobs`), Label Studio's API
(:mod:`.client`) and HTTP (:mod:`.http`)."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from alnb.apps.serve.client import ProjectFollower, project_id
from alnb.apps.serve.common import (AUTH_PASS_ENV, AUTH_USER_ENV, DEFAULT_HOST, DEFAULT_PORT, DOCUMENT_ROOT_ENV,
                                    JOB_STATUS, SERVE_DIR, TOKEN_ENV, URL_ENV, RequestError)
from alnb.apps.serve.http import Server, dispatch
from alnb.apps.serve.jobs import Trainer
from alnb.apps.serve.predict import Predictor
from alnb.apps.serve.snapshot import Snapshot, _stamp, load_snapshot
from alnb.core.workspace import Workspace, WorkspaceError, atomic_write_json, atomic_write_text
from alnb.labels.formats import labelstudio as lsf


class Backend:
    """The ML backend of one workspace; :meth:`handle` answers one HTTP request (no socket needed).

    Parameters
    ----------
    workspace : path or Workspace
    profile, seed, T :
        Training profile and seed of the next model, MC passes of the rescoring; default: CAL1's profile and seed,
        the T the POOL was scored with.
    annotation : str, optional
        Which of several people's annotations of a task the training imports (:func:`alnb.labels.labelio.import_labels`).
    document_root : path, optional
        Where Label Studio's *local files* live (``/data/local-files/?d=<path>``), for images the workspace does not
        know; default ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``, else the dataset folder.
    label_studio_url : str, optional
        Default ``$LABEL_STUDIO_URL``, else the ``hostname`` Label Studio sent to ``/setup``.
    auth : (user, password), optional
        Basic auth; default ``$BASIC_AUTH_USER`` / ``$BASIC_AUTH_PASS`` when both are set; None = no auth.
    """

    def __init__(self, workspace, *, profile: str | None = None, seed: int | None = None, T: int | None = None,
                 document_root=None, label_studio_url: str | None = None, annotation: str | None = None,
                 auth="env", log=print):
        self.ws = workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)
        self.log = log or (lambda msg: None)
        self.dir = self.ws.root / SERVE_DIR
        self.dir.mkdir(exist_ok=True)
        if auth == "env":
            user, pw = os.environ.get(AUTH_USER_ENV), os.environ.get(AUTH_PASS_ENV)
            auth = (user, pw) if user and pw else None
        self.auth = auth
        root = document_root or os.environ.get(DOCUMENT_ROOT_ENV) or self.ws.dataset_root
        self.document_root = Path(root).expanduser().resolve()
        self._ls_url = label_studio_url or os.environ.get(URL_ENV) or None
        self._lock = threading.Lock()
        self._snap = load_snapshot(self.ws)
        self.state = self._load_state()
        cal1 = self._run_info("CAL1")
        self.train_options = {"profile": profile or cal1.get("profile") or "quick",
                              "seed": int(cal1.get("seed", 0) if seed is None else seed),
                              "T": int(self._snap.info.get("T", 20) if T is None else T),
                              "mc_seed": int(self._snap.info.get("seed", 0)), "annotation": annotation}
        self.config_path = self.dir / "label_config.xml"

        atomic_write_text(self.config_path, lsf.labelstudio_config(self.ws.names, difficulty=True))
        self.predictor = Predictor(self)
        self.follower = ProjectFollower(self)
        self.trainer = Trainer(self)

    # ---- state in the workspace
    def _run_info(self, name: str) -> dict:
        try:
            return json.loads((self.ws.root / "runs" / name / "alnb_run.json").read_text())
        except (OSError, ValueError):
            return {}

    def _load_state(self) -> dict:
        try:
            st = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError):
            st = {}
        return {"events": {}, "annotations_since_training": 0, "label_studio_url": None, **st}

    def _save_state(self):
        atomic_write_json(self.dir / "state.json", self.state)

    def label_studio_url(self) -> str | None:
        return self._ls_url or self.state.get("label_studio_url")

    def snapshot(self) -> Snapshot:
        """The served model, reloaded when the workspace's scoring outputs changed (after a training job, or an
        ``alnb score`` by hand); while a job runs, the model it started from (its outputs are half written)."""
        with self._lock:
            trainer = getattr(self, "trainer", None)
            if (trainer is None or trainer.current is None) and _stamp(self.ws) != self._snap.stamp:
                old = self._snap.version
                try:
                    self._snap = load_snapshot(self.ws)
                except Exception as e:  # noqa: BLE001 - keep serving the model we have, say why
                    self.log(f"[alnb serve] could not reload the workspace ({type(e).__name__}: {e}); still serving "
                             f"{old}")
                    return self._snap
                if self._snap.version != old:
                    self.log(f"[alnb serve] now serving {self._snap.version} (was {old})")
            return self._snap

    def training_finished(self, rec: dict):
        if rec.get("state") == "finished":
            with self._lock:
                self.state["annotations_since_training"] = 0
                self._save_state()
        self.log(f"[alnb serve] training job {rec.get('job')} {rec.get('state')}: {rec.get('message', '')}")
        self.snapshot()

    # ---- HTTP
    def handle(self, method: str, path: str, headers=None, body: bytes | None = None) -> tuple:
        """``(status, payload, extra headers)`` for one request; never raises (:func:`.http.dispatch`)."""
        return dispatch(self, method, path, headers, body)

    # ---- routes (alnb.apps.serve.http.ROUTES)
    def health(self, _=None) -> tuple:
        snap = self.snapshot()
        last = self.trainer.last()
        training = None if last is None else {k: last.get(k) for k in ("job", "state", "trigger", "created",
                                                                        "started", "finished", "message",
                                                                        "model_version")}
        if training and training["job"] == self.trainer.current:  # until the new model is loaded: still running
            training["state"] = "running"
        return 200, {"status": "UP", "model_version": snap.version, "model": snap.model,
                     "workspace": str(self.ws.root), "busy": self.trainer.current is not None, "training": training,
                     "annotations_since_training": self.state.get("annotations_since_training", 0)}

    def setup(self, data: dict) -> tuple:
        schema = data.get("schema")
        if schema is not None:
            self.predictor.config(schema)  # 400 with what to fix when the config cannot show our boxes
        host = data.get("hostname")
        if isinstance(host, str) and host.startswith(("http://", "https://")) and host != self.state.get(
                "label_studio_url"):
            with self._lock:
                self.state["label_studio_url"] = host
                self._save_state()
        return 200, {"model_version": self.snapshot().version}

    def versions(self, _=None) -> tuple:
        runs = sorted(p.parent.name for p in (self.ws.root / "runs").glob("*/alnb_run.json"))
        out = []
        for r in runs:
            key = self._run_info(r).get("key")
            if key and (self.ws.root / "runs" / r / "weights" / "best.pt").is_file():
                out.append(f"{r}-{key[:8]}")
        return 200, {"versions": out, "current": self.snapshot().version}

    def predict(self, data: dict) -> tuple:
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise RequestError(400, "'tasks' is missing or not a list: send {\"tasks\": [{\"id\": ..., \"data\": "
                                    "{\"image\": ...}}, ...]} (what Label Studio sends to /predict).")
        cfg = self.predictor.config(data.get("label_config"))
        snap = self.snapshot()
        results = self.predictor.predict(snap, cfg, tasks)
        bad = [r for r in results if "error" in r]
        if len(results) > len(bad):  # keep the project's model version on this one (ProjectFollower)
            self.follower.follow(data.get("project"), snap.version)
        if bad:
            self.log(f"[alnb serve] /predict: {len(bad)} of {len(tasks)} task(s) not predicted, e.g. task "
                     f"{bad[0]['task']}: {bad[0]['error']}")
        return 200, {"results": results, "model_version": snap.version}

    def webhook(self, data: dict) -> tuple:
        action = data.get("action")
        if not isinstance(action, str) or not action:
            raise RequestError(400, "a webhook body needs 'action' (e.g. START_TRAINING, ANNOTATION_CREATED).")
        if action == "START_TRAINING":
            pid = project_id(data.get("project"), "START_TRAINING")
            return self._start("webhook START_TRAINING", pid, None)
        with self._lock:
            ev = self.state.setdefault("events", {})
            ev[action] = ev.get(action, 0) + 1
            if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
                self.state["annotations_since_training"] = self.state.get("annotations_since_training", 0) + 1
            self._save_state()
        return 200, {"status": "ok", "action": action}

    def train(self, data: dict) -> tuple:
        tasks = data.get("annotations")
        if not isinstance(tasks, list) or not tasks:
            raise RequestError(400, "'annotations' is missing or empty: /train needs the annotated tasks (Label "
                                    "Studio sends them); label some tasks first.")
        return self._start("/train", project_id(data.get("project"), "/train"), tasks)

    def _start(self, trigger: str, project: int, tasks) -> tuple:
        try:
            return self.trainer.start(trigger, project, tasks)
        except WorkspaceError as e:
            raise RequestError(400, f"cannot start training: {e}") from None

    def job_status(self, data: dict) -> tuple:
        job = data.get("job")
        if not isinstance(job, str) or not job:
            raise RequestError(400, "'job' is missing: send {\"job\": \"<id from /train or START_TRAINING>\"}.")
        rec = self.trainer.status(job) if "/" not in job and not job.startswith(".") else None
        if rec is None:
            raise RequestError(410, f"no training job {job!r} in {self.trainer.dir}.")
        return 200, {"job_status": JOB_STATUS.get(rec.get("state"), "failed"), "job": job,
                     "message": rec.get("message", ""), "model_version": rec.get("model_version")}


def serve(workspace, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, log=print, **options) -> int:
    """Run the backend until Ctrl-C (SIGINT) or SIGTERM; a running training job finishes in its own process."""
    backend = Backend(workspace, log=log, **options)
    httpd = Server(backend, host, port)
    _announce(backend, httpd, host, log)

    def stop(*_):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    old = signal.signal(signal.SIGTERM, stop)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        httpd.server_close()
    if backend.trainer.current:
        log(f"[alnb serve] training job {backend.trainer.current} keeps running in its own process; a new alnb serve "
            f"picks up its result.")
    log("[alnb serve] stopped")
    return 0


def _announce(backend: Backend, httpd: Server, host: str, log):
    """What a person needs at start: the model served, how to connect Label Studio, and what is not set up."""
    snap = backend.snapshot()
    log(f"[alnb serve] {backend.ws.root}: serving {snap.version} ({len(snap.scores)} scored POOL image(s)) on "
        f"{httpd.url}")
    if snap.plan_note:
        log(f"[alnb serve] {snap.plan_note}")
    log(f"[alnb serve] Label Studio: paste {backend.config_path} into Settings > Labeling Interface > Code, then "
        f"Settings > Model > Connect Model with URL {httpd.url}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"[alnb serve] warning: {host} is reachable from other machines"
            + ("" if backend.auth else f"; set {AUTH_USER_ENV} and {AUTH_PASS_ENV} to require basic auth"))
    if not os.environ.get(TOKEN_ENV):
        log(f"[alnb serve] note: {TOKEN_ENV} is not set, so 'Start training' cannot fetch the annotations; set it "
            f"(and {URL_ENV}) in this shell and start again.")
