"""``alnb serve``: a Label Studio ML backend over a workspace -- the labelling loop inside Label Studio.

Label Studio (1.23) talks to an ML backend over a small HTTP surface (the protocol of ``label_studio_ml/api.py`` in
HumanSignal/label-studio-ml-backend, re-implemented here, not copied):

``GET /health`` (also ``/``)
    ``{"status": "UP", "model_version", "training", ...}``; Label Studio checks it when a model is connected.
``POST /setup``
    ``{"project", "schema" (the labelling config), "hostname", "access_token", ...}`` -> ``{"model_version"}``.
    Label Studio asks it before every prediction batch; a new ``model_version`` makes it predict again.  The config
    must have a ``RectangleLabels`` with every workspace class; ``access_token`` is never kept or logged.
``POST /predict``
    ``{"tasks": [...], "label_config", ...}`` -> ``{"results": [one prediction per task], "model_version"}``.
    A prediction is the current model's auto-labels as ``rectanglelabels`` regions (percent, top-left: the one
    conversion of :mod:`alnb.formats.labelstudio`), each with its confidence ``score``; the task ``score`` of
    :func:`alnb.formats.labelstudio.task_score` (ascending = hardest first; while a review plan of the served model
    exists (``alnb review``), :func:`alnb.formats.labelstudio.review_task_score` instead: the images the plan sends
    to review first, in plan order, the images it accepts last); and, when the project's config has them
    (the config this command writes), the tier and the MC-dropout difficulty as ``alnb_tier`` / ``alnb_difficulty``
    results.  Images of the workspace's score table are answered from its files; any other image (a task added in
    Label Studio later, a VAL1/GT1 image) is scored on the fly with the same model and settings
    (:func:`alnb.scoring.score_more`).  A task whose image cannot be read gets ``{"error": ...}`` in its place (Label
    Studio skips it and logs the message); the other tasks are answered.
``POST /webhook``
    Label Studio's webhook events.  ``START_TRAINING`` (the *Start training* button, ``POST /api/ml/{id}/train``)
    starts a training job; annotation events are counted (``/health``).  Older Label Studio versions post
    ``POST /train`` with the annotated tasks instead; both start the same job.
``POST /job_status``
    ``{"job"}`` -> ``{"job_status": queued | started | finished | failed}`` (410 for an unknown job).
``GET /versions``
    The model versions of the workspace's finished runs.

The training job (:func:`train_next`, run in a separate process so it never blocks ``/health`` or ``/predict``):
fetch the project's annotations over Label Studio's API (``/train`` brings them along), import them with today's
rules (:func:`alnb.labelio.import_labels`: all or nothing, a person's label never silently replaced), commit the
labelled images as the next selection, train the next model, rescore the POOL, and from then on serve the new
``model_version``.  A second request while a job runs is answered ``{"status": "busy"}`` and not queued.  Everything
lives in the workspace (``serve/``: jobs, the fetched exports, the labelling config), so a restarted server carries
on where it was; a job whose process died is reported as ``interrupted``.

Security: binds 127.0.0.1 by default; with ``BASIC_AUTH_USER`` and ``BASIC_AUTH_PASS`` set (as for the SDK) every
request needs HTTP basic auth; the Label Studio token comes from ``LABEL_STUDIO_API_KEY`` (a legacy token or a
personal access token) and the server from ``LABEL_STUDIO_URL`` -- never from a file in the workspace, and neither
the token nor any request body is logged.  Bad requests get a 4xx with ``{"error": message}``.

Why the standard library (``http.server.ThreadingHTTPServer``) and not a web framework: the surface is seven JSON
routes on a loopback port with one client (Label Studio); a thread per request keeps ``/health`` answering while a
prediction batch runs, and the training runs in its own process anyway.  No new dependency, nothing to pin against
Label Studio's own environment, and the request handling (:meth:`Backend.handle`) is a plain method tests call
without a socket.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from alnb.formats import labelstudio as lsf
from alnb.formats.common import ParseContext, read_autolabels
from alnb.workspace import Workspace, WorkspaceError, atomic_write_json

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


# -------------------------------------------------------------------------------------------- the model being served
def model_version(ws, model: str) -> str:
    """``<run>-<first 8 hex of its cache key>`` (e.g. ``CAL2-1f3a9c0d``): names the run and changes with every
    retraining, so Label Studio asks for new predictions."""
    from alnb.train import load_run

    return f"{model}-{load_run(ws, model).key[:8]}"


@dataclass(frozen=True)
class Snapshot:
    """What ``/predict`` answers from: the model that scored the POOL and its outputs, read once per change."""

    model: str
    version: str
    info: dict  # metrics/mc_scoring.json
    thresholds: dict  # metrics/thresholds.json
    scores: dict  # stem -> (score, tier, failed) from scores.csv
    ctx: ParseContext  # class names, stems by file name, image sizes (the importer's matching rules)
    images: dict  # stem -> image path relative to the dataset
    autolabels: Path
    stamp: tuple
    plan: dict = field(default_factory=dict)  # stem -> (place, position, n) in the review plan; {} without one
    plan_note: str = ""  # what the review plan does to the order, or why it is not used


def _stamp(ws) -> tuple:
    out = []
    for f in (ws.root / "metrics" / "mc_scoring.json", ws.root / "scores.csv", ws.manifest_path,
              ws.root / "review_plan.csv", ws.root / "metrics" / "review_plan.json"):
        try:
            st = f.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def load_snapshot(ws) -> Snapshot:
    """The served model: the one whose auto-labels and scores are in the workspace (``metrics/mc_scoring.json``)."""
    from alnb.scoretable import load_scores

    stamp = _stamp(ws)
    if not (ws.root / "metrics" / "mc_scoring.json").is_file() or not (ws.root / "scores.csv").is_file():
        raise WorkspaceError(f"{ws.root} has no scored model yet: train CAL1 and score the POOL first (`alnb run "
                             f"--data DATASET --workspace {ws.root}`, which stops when GT2 needs labels, or "
                             f"notebooks 00-02), then start `alnb serve` again.")
    info = ws.load_json("mc_scoring")
    thresholds = ws.load_json("thresholds")
    s = load_scores(ws)
    tiers = s["tier"].astype(str) if "tier" in s else [""] * len(s)
    scores = {st: (float(sc), str(t), bool(f)) for st, sc, t, f in zip(s["stem"], s["score"], tiers, s["failed"])}
    m = ws.manifest()
    plan, note = review_order(ws, info["model"])
    return Snapshot(model=info["model"], version=model_version(ws, info["model"]), info=info, thresholds=thresholds,
                    scores=scores, ctx=ParseContext(ws, m, "Label Studio task"), images=dict(zip(m["stem"], m["image"])),
                    autolabels=ws.root / "autolabels" / info["model"], stamp=stamp, plan=plan, plan_note=note)


def review_order(ws, model: str) -> tuple:
    """``(order, note)``: the review plan's place of every image it orders, ``stem -> (place, position, n)`` with
    place ``review`` (its cut sends the image to review) or ``accepted`` (:func:`alnb.reviewstep.review_split`), for
    :func:`alnb.formats.labelstudio.review_task_score`; ``({}, why)`` without a plan, or with a plan of another
    model than the served one (its order is stale: ``alnb review`` again) or one that cannot be read."""
    from alnb import reviewstep

    if not (ws.root / reviewstep.PLAN_FILE).is_file():
        return {}, ""
    try:
        split = reviewstep.review_split(ws)
    except (WorkspaceError, ValueError, KeyError, OSError) as e:
        return {}, f"review plan not used ({type(e).__name__}: {e})"
    if split["model"] != model:
        return {}, (f"review plan not used: it orders {split['model']}'s auto-labels, this serves {model}; run `alnb "
                    f"review --workspace {ws.root}` again")
    out = {}
    for place in ("review", "accepted"):
        stems = list(split[place]["stem"])
        out.update({s: (place, i, len(stems)) for i, s in enumerate(stems)})
    return out, (f"review plan of {model}: its {split['reviewed']} review image(s) first (plan order), its "
                 f"{len(split['accepted'])} accepted image(s) last (sort by prediction score ascending)")


def _category(tier: str, failed: bool) -> str:
    return "failed" if failed else tier  # alnb.select.categorise: failed overrides the score's tier


# ---------------------------------------------------------------------------------------- Label Studio's own API
def _is_jwt(token: str) -> bool:
    """A personal access token (a JWT refresh token: three base64url parts) rather than a legacy API token."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts) and all(set(p) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=") for p in parts)


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


# ---------------------------------------------------------------------------------------------- the training job
def next_round_number(ws) -> int:
    """The round the next training makes: 2 + the number of finished CAL rounds after CAL1 (CAL2, CAL3, ...)."""
    from alnb import pipeline
    from alnb.workspace import cal_name

    k = 2
    while pipeline._finished(ws, cal_name(k)):
        k += 1
    return k


def train_next(ws, source, *, profile: str = "quick", seed: int = 0, T: int = 20, mc_seed: int = 0,
               annotation: str | None = None, log=print) -> dict:
    """Train the next round's model on what people labelled in Label Studio; returns what was done.

    Each training is one round of the loop (:func:`next_round_number`): the first makes **GT2** / **CAL2**, the next
    **GT3** / **CAL3** and so on, as ``alnb run --rounds`` names them (one Label Studio project serves every round):

    1. :func:`alnb.labelio.import_labels` of the Label Studio JSON export ``source`` with today's rules: all or
       nothing, never replacing a label a person gave (a changed one refuses the import with a per-image diff),
       any image of the workspace (``tag=None``: the annotated tasks *are* the selection); ``annotation`` chooses
       between several people's annotations of one task (``alnb serve --annotation``; default: refuse when they
       differ);
    2. round ``k``'s selection GT<k> = GT<k>'s labelled images + the POOL images labelled in ``source`` that no
       earlier round took (GT2 ... GT<k-1> keep theirs; unlabelled GT<k> images leave GT<k>, since nothing trains on
       them) (:func:`alnb.select.commit`);
    3. :func:`alnb.pipeline.train_and_evaluate` ``(ws, CAL<k>, [GT1, GT2, ..., GT<k>], profile, seed=seed)``
       (warm-started by the loop's rule, :data:`alnb.pipeline.WARM_START`);
    4. :func:`alnb.scoring.score_pool` ``(ws, model=CAL<k>, T=T, seed=mc_seed)``: new auto-labels, scores and tiers
       for what is still unlabelled; the server then serves CAL<k>.

    Raises :class:`alnb.labelio.ImportProblem` (nothing imported) or :class:`alnb.workspace.WorkspaceError` (no
    labelled POOL image that no earlier round took).  The caller holds the workspace lock.
    """
    from alnb import labelio, pipeline, scoring
    from alnb import select as sel
    from alnb.workspace import cal_name, gt_tag, train_tags

    k = next_round_number(ws)
    tag, model = gt_tag(k), cal_name(k)
    summary = labelio.import_labels(ws, source, "labelstudio", tag=None, annotation=annotation)
    log("[alnb] " + labelio.describe_import(summary, source))
    m = ws.manifest()
    earlier = set(ws.stems(*[gt_tag(j) for j in range(2, k)], manifest=m)) if k > 2 else set()
    trainable = set(ws.stems("POOL", manifest=m)) - set(ws.stems("VAL1", "GT1", manifest=m)) - earlier
    from_ls = set(summary.loc[summary["action"].isin(["imported", "unchanged"]), "stem"]) & trainable
    st = sel.label_status(ws, tag)
    kept = set(ws.stems(tag, manifest=m)) - set(st["waiting"])
    chosen = sorted(kept | from_ls)
    if not chosen:
        if k > 2:
            raise WorkspaceError(f"nothing new to train on: every labelled POOL image is already in GT2 ... "
                                 f"{gt_tag(k - 1)}, which {cal_name(k - 1)} trained on. Label more tasks (Submit), "
                                 f"then start the training again for round {k}.")
        raise WorkspaceError("nothing to train on: no POOL image has a submitted annotation in Label Studio yet. "
                             "Label some tasks (Submit), then start the training again.")
    sel.commit(ws, chosen, tag, info={"rule": "labelled in Label Studio (alnb serve)", "source": str(source),
                                      "round": k, "n_from_label_studio": len(from_ls), "n_kept": len(kept)})
    res = pipeline.train_and_evaluate(ws, model, train_tags("cal", k), profile, seed=seed)
    scoring.score_pool(ws, model=model, T=T, seed=mc_seed, progress=False)
    return {"model": model, "round": k, "model_version": model_version(ws, model), "selection": tag,
            "n_selected": len(chosen), "import": labelio.summary_counts(summary), "reused": bool(res["train"].reused),
            "train_seconds": res["train"].seconds, "mAP50": res["eval"].get("mAP50") if isinstance(res["eval"], dict)
            else None}


def submitted_tasks(tasks) -> list:
    """The tasks of a Label Studio export that carry a submitted (not cancelled) annotation: what the import can
    take.  The others have nothing to import, and a task whose image the workspace does not know must not refuse a
    training nobody labelled it for; an *annotated* unknown image still refuses the import (nothing is dropped)."""
    if not isinstance(tasks, list):
        return tasks  # not an export: the import says what is wrong with it
    return [t for t in tasks if not isinstance(t, dict) or any(
        isinstance(a, dict) and not a.get("was_cancelled") for a in t.get("annotations") or [])]


def _job_file(root: Path, job: str) -> Path:
    return Path(root) / SERVE_DIR / "jobs" / f"{job}.json"


def _read_job(root: Path, job: str) -> dict | None:
    try:
        return json.loads(_job_file(root, job).read_text())
    except (OSError, ValueError):
        return None


def _job_main(root: str, job: str) -> int:
    """The training process (``python -c ...`` started by :class:`Trainer`, in its own session so Ctrl-C on the
    server does not stop it): its output goes to ``serve/jobs/<job>.log``, its outcome to ``serve/jobs/<job>.json``."""
    import alnb  # noqa: F401  (offline settings before ultralytics)
    from alnb.labelio import ImportProblem
    from alnb.lock import WorkspaceBusy, workspace_lock

    rec = _read_job(root, job) or {"job": job}
    options = rec.get("options", {})
    rec.update(state="running", pid=os.getpid(), started=_now())
    atomic_write_json(_job_file(root, job), rec)
    try:
        ws = Workspace.open(root)
        source = Path(root) / SERVE_DIR / "exports" / f"{job}.json"
        if not source.is_file():  # START_TRAINING: fetch the project's annotations over Label Studio's API
            api = LabelStudioAPI(options.get("ls_url"), os.environ.get(TOKEN_ENV))
            data = api.export(rec["project"])
            try:
                tasks = json.loads(data)
            except ValueError:
                raise WorkspaceError(f"Label Studio at {api.url} sent an export that is not JSON.") from None
            source.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(source, submitted_tasks(tasks))
            print(f"[alnb] fetched the export of project {rec['project']} from {api.url} ({len(data)} bytes, "
                  f"{len(tasks) if isinstance(tasks, list) else '?'} tasks) -> {source}", flush=True)
        with workspace_lock(ws.root, f"alnb serve: training job {job}"):
            out = train_next(ws, source, profile=options["profile"], seed=options["seed"], T=options["T"],
                             mc_seed=options["mc_seed"], annotation=options.get("annotation"))
        rec.update(state="finished", finished=_now(), result=out, model_version=out["model_version"],
                   message=f"round {out['round']}: trained {out['model']} on GT1 + "
                           + ("" if out["round"] == 2 else f"GT2 ... GT{out['round'] - 1} + ")
                           + f"{out['n_selected']} {out['selection']} image(s); serving {out['model_version']}")
    except (ImportProblem, WorkspaceBusy, WorkspaceError, ValueError) as e:
        rec.update(state="failed", finished=_now(), message=str(e))
        print(f"[alnb] training job {job} failed: {e}", flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure ends in the job record, with the traceback in the log
        traceback.print_exc()
        rec.update(state="failed", finished=_now(), message=f"unexpected error ({type(e).__name__}: {e}); see "
                                                            f"{Path(root) / SERVE_DIR / 'jobs' / (job + '.log')}")
    atomic_write_json(_job_file(root, job), rec)
    return 0 if rec["state"] == "finished" else 1


_JOB_CODE = "import sys; from alnb.serve import _job_main; sys.exit(_job_main(sys.argv[1], sys.argv[2]))"


class Trainer:
    """At most one training job at a time, in its own process; the job files in ``serve/jobs/`` are the truth."""

    def __init__(self, backend: "Backend"):
        self.backend = backend
        self.root = backend.ws.root
        self.dir = self.root / SERVE_DIR / "jobs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.current: str | None = None
        self._proc = None
        self._recover()

    def _recover(self):
        """After a restart: a job whose process still runs is the current one; one whose process died is marked
        ``interrupted`` (its finished steps are cached, so starting again is cheap)."""
        from alnb.lock import pid_alive

        for f in sorted(self.dir.glob("*.json")):
            rec = _read_job(self.root, f.stem)
            if not rec or rec.get("state") not in ("queued", "running"):
                continue
            if rec.get("pid") and pid_alive(rec["pid"]) and rec.get("server_pid") != os.getpid():
                self.current = f.stem
                threading.Thread(target=self._watch_pid, args=(f.stem, rec["pid"]), daemon=True).start()
            else:
                rec.update(state="interrupted", finished=_now(),
                           message="the training process ended without a result (server restarted or killed?); "
                                   "start the training again")
                atomic_write_json(f, rec)

    def last(self) -> dict | None:
        jobs = sorted(self.dir.glob("*.json"))
        return _read_job(self.root, jobs[-1].stem) if jobs else None

    def status(self, job: str) -> dict | None:
        return _read_job(self.root, job)

    def start(self, trigger: str, project, tasks=None) -> tuple:
        """Start a job (``201 {"status": "started", "job"}``) or say why not (``200 {"status": "busy"}``)."""
        from alnb.lock import holder_status

        with self._lock:
            if self.current is not None:
                rec = self.status(self.current) or {}
                return 200, {"status": "busy", "job": self.current,
                             "message": f"training job {self.current} has been running since "
                                        f"{rec.get('started', rec.get('created', '?'))}; this request was not queued. "
                                        f"Start training again after it finished."}
            holder = holder_status(self.root)
            if holder and not holder.get("stale"):
                return 200, {"status": "busy", "job": None,
                             "message": f"the workspace is busy: pid {holder.get('pid')} ({holder.get('command')}) "
                                        f"has been writing to it since {holder.get('since')}; start training again "
                                        f"when it finished."}
            b = self.backend
            opts = {**b.train_options, "project": project, "ls_url": b.label_studio_url()}
            if tasks is None:  # fail now, not in the job, when the token or the address is missing
                LabelStudioAPI(opts["ls_url"], os.environ.get(TOKEN_ENV))
            job = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
            if tasks is not None:
                exp = self.root / SERVE_DIR / "exports" / f"{job}.json"
                exp.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(exp, submitted_tasks(tasks))
            atomic_write_json(_job_file(self.root, job), {"job": job, "state": "queued", "created": _now(),
                                                          "trigger": trigger, "project": project,
                                                          "server_pid": os.getpid(), "options": opts})
            import subprocess
            import sys

            from alnb.lock import ENV

            env = {k: v for k, v in os.environ.items() if k != ENV}  # the job takes the workspace lock itself
            with open(self.dir / f"{job}.log", "ab") as out:
                proc = subprocess.Popen([sys.executable, "-c", _JOB_CODE, str(self.root), job], stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                        start_new_session=True)
            self.current, self._proc = job, proc
            threading.Thread(target=self._watch, args=(job, proc), daemon=True).start()
        b.log(f"[alnb serve] training job {job} started ({trigger}, project {project}); log: "
              f"{self.dir / (job + '.log')}")
        return 201, {"status": "started", "job": job}

    def _done(self, job: str, exitcode):
        rec = self.status(job) or {"job": job}
        if rec.get("state") not in ("finished", "failed"):
            rec.update(state="failed", finished=_now(), message=f"the training process exited with code {exitcode} "
                                                                f"without a result; see {self.dir / (job + '.log')}")
            atomic_write_json(_job_file(self.root, job), rec)
        with self._lock:
            if self.current == job:
                self.current, self._proc = None, None
        self.backend.training_finished(rec)

    def _watch(self, job: str, proc):
        self._done(job, proc.wait())

    def _watch_pid(self, job: str, pid: int):
        from alnb.lock import pid_alive

        while pid_alive(pid):
            time.sleep(2)
        self._done(job, None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current job (tests, shutdown); True when none is running."""
        t0 = time.time()
        while self.current is not None and (timeout is None or time.time() - t0 < timeout):
            time.sleep(0.05)
        return self.current is None


# ------------------------------------------------------------------------------------------------------ the backend
ROUTES = {("GET", "/"): "health", ("GET", "/health"): "health", ("POST", "/setup"): "setup",
          ("POST", "/predict"): "predict", ("POST", "/webhook"): "webhook", ("POST", "/train"): "train",
          ("POST", "/job_status"): "job_status", ("GET", "/versions"): "versions"}


class Backend:
    """The ML backend of one workspace; :meth:`handle` answers one HTTP request (no socket needed).

    Parameters
    ----------
    workspace : path or Workspace
    profile, seed, T :
        Training profile and seed of the next model, MC passes of the rescoring; default: CAL1's profile and seed,
        the T the POOL was scored with.
    annotation : str, optional
        Which of several people's annotations of a task the training imports (:func:`alnb.labelio.import_labels`).
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
        self._infer = threading.Lock()
        self._snap = load_snapshot(self.ws)
        self._scorer = None  # (model version, MCScorer, info), loaded on the first image scored on the fly
        self._cache: OrderedDict = OrderedDict()
        self._configs: dict = {}
        self._following: dict = {}  # Label Studio project id -> the model version being / been set there
        self.state = self._load_state()
        cal1 = self._run_info("CAL1")
        self.train_options = {"profile": profile or cal1.get("profile") or "quick",
                              "seed": int(cal1.get("seed", 0) if seed is None else seed),
                              "T": int(self._snap.info.get("T", 20) if T is None else T),
                              "mc_seed": int(self._snap.info.get("seed", 0)), "annotation": annotation}
        self.config_path = self.dir / "label_config.xml"
        from alnb.workspace import atomic_write_text

        atomic_write_text(self.config_path, lsf.labelstudio_config(self.ws.names, difficulty=True))
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
        """``(status, payload, extra headers)`` for one request; never raises."""
        headers = headers or {}
        route = urllib.parse.urlsplit(path).path.rstrip("/") or "/"
        if self.auth is not None and not self._authorised(headers.get("Authorization")):
            return 401, {"error": "authentication required: this backend uses HTTP basic auth (Label Studio: "
                                  "Settings > Model > the connection's Basic Authentication user and password)."}, {
                "WWW-Authenticate": 'Basic realm="alnb serve"'}
        name = ROUTES.get((method, route))
        if name is None:
            allowed = sorted(m for m, p in ROUTES if p == route)
            if allowed:
                return 405, {"error": f"{method} is not allowed on {route}; use {' or '.join(allowed)}."}, {
                    "Allow": ", ".join(allowed)}
            return 404, {"error": f"no such endpoint {route}; this is an alnb ML backend for Label Studio "
                                  f"({', '.join(sorted({p for _, p in ROUTES}))})."}, {}
        try:
            data = self._json(body) if method == "POST" else None
            status, payload = getattr(self, name)(data)
            return status, payload, {}
        except RequestError as e:
            return e.status, {"error": e.message}, {}
        except Exception as e:  # noqa: BLE001 - one bad request never takes the server down
            self.log(f"[alnb serve] error in {method} {route}:\n{traceback.format_exc()}")
            return 500, {"error": f"internal error ({type(e).__name__}: {e}); the server keeps running, its log has "
                                  f"the details."}, {}

    def _authorised(self, header) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        return hmac.compare_digest(user.encode(), self.auth[0].encode()) & hmac.compare_digest(
            pw.encode(), self.auth[1].encode())

    @staticmethod
    def _json(body) -> dict:
        if not body:
            raise RequestError(400, "empty request body: send a JSON object (Content-Type: application/json).")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as e:
            raise RequestError(400, f"the request body is not JSON ({e}).") from None
        if not isinstance(data, dict):
            raise RequestError(400, f"the request body must be a JSON object, not a {type(data).__name__}.")
        return data

    # ---- routes
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
            self._config(schema)  # 400 with what to fix when the config cannot show our boxes
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

    def _config(self, xml) -> dict:
        """The parsed labelling config (cached); 400 when it lacks a RectangleLabels or a workspace class."""
        if xml is None:
            return {"from_name": lsf.LS_FROM_NAME, "to_name": lsf.LS_TO_NAME, "image_key": "image",
                    "labels": list(self.ws.names), "tier": False, "difficulty": False}
        if not isinstance(xml, str):
            raise RequestError(400, "'label_config' / 'schema' must be the labelling config XML (a string).")
        if xml not in self._configs:
            try:
                cfg = lsf.parse_config(xml)
            except ValueError as e:
                raise RequestError(400, str(e)) from None
            missing = [n for n in self.ws.names if n not in cfg["labels"]]
            if missing:
                raise RequestError(400, f"the project's RectangleLabels {cfg['from_name']!r} lack the workspace "
                                        f"class(es) {missing}: its predictions could not be shown. Use the config "
                                        f"{self.config_path} (Settings > Labeling Interface > Code).")
            if len(self._configs) > 32:
                self._configs.clear()
            self._configs[xml] = cfg
        return self._configs[xml]

    def predict(self, data: dict) -> tuple:
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise RequestError(400, "'tasks' is missing or not a list: send {\"tasks\": [{\"id\": ..., \"data\": "
                                    "{\"image\": ...}}, ...]} (what Label Studio sends to /predict).")
        cfg = self._config(data.get("label_config"))
        snap = self.snapshot()
        results = []
        for i, task in enumerate(tasks):
            tid = task.get("id", f"#{i + 1}") if isinstance(task, dict) else f"#{i + 1}"
            try:
                results.append(self.predict_task(snap, cfg, task))
            except TaskError as e:
                results.append({"task": tid, "error": str(e)})
            except Exception as e:  # noqa: BLE001 - one task never spoils the batch
                self.log(f"[alnb serve] task {tid}: {traceback.format_exc()}")
                results.append({"task": tid, "error": f"unexpected error ({type(e).__name__}: {e})"})
        if len(results) > len([r for r in results if "error" in r]):
            self.follow_project(data.get("project"), snap.version)
        bad = [r for r in results if "error" in r]
        if bad:
            self.log(f"[alnb serve] /predict: {len(bad)} of {len(tasks)} task(s) not predicted, e.g. task "
                     f"{bad[0]['task']}: {bad[0]['error']}")
        return 200, {"results": results, "model_version": snap.version}

    def predict_task(self, snap: Snapshot, cfg: dict, task) -> dict:
        """One task's prediction (see the module docstring); raises :class:`TaskError` naming what is wrong."""
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise TaskError("not a Label Studio task: it has no 'data' object.")
        d = task["data"]
        ref = d.get(cfg["image_key"])
        stem = d.get("alnb_stem") if d.get("alnb_stem") in snap.images else (
            snap.ctx.stem_of(ref) if isinstance(ref, str) and ref else None)
        auto = snap.autolabels / f"{stem}.txt" if stem else None
        if stem in snap.scores and auto.is_file():
            boxes = read_autolabels(auto, len(snap.ctx.names))
            score, tier, failed = snap.scores[stem]
            width, height = snap.ctx.size[stem]
        else:
            boxes, score, tier, failed, width, height = self._on_the_fly(snap, stem, ref, cfg["image_key"])
            stem = stem or Path(urllib.parse.unquote(str(ref)).split("?d=")[-1]).stem
        result = lsf.regions(stem, boxes, snap.ctx.names, width, height, cfg["from_name"], cfg["to_name"])
        result += lsf.difficulty_results(_category(tier, failed), score, cfg["to_name"], tier_choice=cfg["tier"],
                                         number=cfg["difficulty"])
        pred = {"model_version": snap.version, "result": result}
        ls_score = lsf.task_score(score, failed)
        if snap.plan:  # a review plan: its review queue first, its accepted images last
            ls_score = lsf.review_task_score(*snap.plan[stem]) if stem in snap.plan else lsf.review_task_score(
                "other", base=ls_score)
        if ls_score is not None:
            pred["score"] = ls_score
        return pred

    # ---- the project's model version
    def follow_project(self, project, version: str):
        """Keep the Label Studio project's *model version* on the model served here, in the background.

        Label Studio 1.23 shows a task's predictions, and fills the Data Manager's *Prediction score* column (the
        one to sort by), only for the project's ``model_version``; connecting a backend sets it to the backend's
        title, which no prediction carries.  So after a ``/predict`` for project P this sets P's model version to
        ``version`` over the API (``PATCH /api/projects/P``; Label Studio accepts it only once predictions of that
        version are stored, hence the retries) -- but only when it is empty, a title of one of P's ML backends, or
        an earlier alnb version: a version a person chose is left alone (and the log says how to switch).  Needs
        the token (``LABEL_STUDIO_API_KEY``); without it nothing happens and the README's manual step applies.
        """
        try:
            pid = self._project_id(project, "project")
        except RequestError:
            return
        ls, token = self.label_studio_url(), os.environ.get(TOKEN_ENV)
        with self._lock:
            if not ls or not token or self._following.get(pid) == version:
                return
            self._following[pid] = version
        threading.Thread(target=self._follow, args=(pid, version, ls, token), daemon=True,
                         name=f"alnb-follow-{pid}").start()

    def _follow(self, pid: int, version: str, ls: str, token: str):
        api = LabelStudioAPI(ls, token, timeout=30)
        ours = set(self.versions()[1]["versions"])
        for _ in range(FOLLOW_TRIES):
            time.sleep(FOLLOW_WAIT)
            try:
                current = api.project(pid).get("model_version") or ""
                if current == version:
                    return
                if current and current not in ours and current not in api.ml_backend_titles(pid):
                    self.log(f"[alnb serve] project {pid} shows the predictions of {current!r}; to sort by alnb's "
                             f"scores choose {version!r} in Settings > Annotation > Live Predictions.")
                    return
                api.set_model_version(pid, version)
                self.log(f"[alnb serve] project {pid}: model version set to {version} (its predictions and "
                         f"Prediction score column)")
                return
            except WorkspaceError:  # predictions not stored yet (400), or Label Studio busy: try again
                continue
        with self._lock:
            if self._following.get(pid) == version:
                del self._following[pid]
        self.log(f"[alnb serve] project {pid}: could not set its model version to {version}; choose it in Settings > "
                 f"Annotation > Live Predictions to sort by alnb's scores.")

    # ---- images the score table does not cover
    def _image_path(self, snap: Snapshot, stem, ref, key: str) -> tuple:
        """``(local path, temporary folder or None)`` of a task's image."""
        if stem is not None:
            return self.ws.dataset_root / snap.images[stem], None
        if not isinstance(ref, str) or not ref:
            raise TaskError(f"the task has no image: its data lacks {key!r} (the $-field of the labelling config's "
                            f"Image).")
        u = urllib.parse.urlsplit(ref)
        q = urllib.parse.parse_qs(u.query)
        if u.path.rstrip("/").endswith("/data/local-files") and q.get("d"):
            p = (self.document_root / q["d"][0]).resolve()
            if not p.is_relative_to(self.document_root):
                raise TaskError(f"image {ref!r} points outside the local-files document root {self.document_root}.")
            if not p.is_file():
                raise TaskError(f"image {ref!r}: {p} does not exist. Start alnb serve with --document-root = Label "
                                f"Studio's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT.")
            return p, None
        ls = self.label_studio_url()
        same_host = ls and u.netloc and u.netloc == urllib.parse.urlsplit(ls).netloc
        if ref.startswith("/data/") or same_host:
            if not os.environ.get(TOKEN_ENV) or not ls:
                raise TaskError(f"image {ref!r} is served by Label Studio: start alnb serve with {TOKEN_ENV} (and "
                                f"{URL_ENV}) so it can download it.")
            try:
                data = LabelStudioAPI(ls, os.environ.get(TOKEN_ENV), timeout=60).download(ref)
            except WorkspaceError as e:
                raise TaskError(f"image {ref!r}: {e}") from None
            tmp = Path(tempfile.mkdtemp(prefix="alnb-serve-"))
            name = Path(urllib.parse.unquote(u.path)).name or "image"
            (tmp / name).write_bytes(data)
            return tmp / name, tmp
        raise TaskError(f"cannot read image {ref!r}: alnb serve reads the workspace's dataset images, Label "
                        f"Studio's local files (/data/local-files/?d=...) and uploads (/data/upload/...).")

    def _on_the_fly(self, snap: Snapshot, stem, ref, key: str) -> tuple:
        """Score one image with the served model: ``(boxes (n, 6), score, tier, failed, width, height)``."""
        ck = (snap.version, stem, ref)
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                return self._cache[ck]
        path, tmp = self._image_path(snap, stem, ref, key)
        try:
            from alnb import scoring
            from alnb.cpu import cpu_threads

            # the policy's threads (alnb.cpu), without claiming core slots: a request must not wait for the
            # background training that holds them
            with self._infer, cpu_threads(what="alnb serve /predict", claim=False, log=None):
                if self._scorer is None or self._scorer[0] != snap.version:
                    scorer, info = scoring.pool_scorer(self.ws, snap.model)
                    self._scorer = (snap.version, scorer, info)
                _, scorer, info = self._scorer
                name = stem or path.stem
                try:
                    scores, lines = scoring.score_more(scorer, [(name, path)], info, snap.thresholds)
                except Exception as e:  # noqa: BLE001 - an unreadable image is this task's problem only
                    raise TaskError(f"image {ref!r} cannot be read as an image ({type(e).__name__}: {e}).") from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        row = scores.iloc[0]
        boxes = np.asarray([[float(v) for v in ln.split()] for ln in lines.get(row["stem"], [])],
                           np.float64).reshape(-1, 6)
        out = (boxes, float(row["score"]), str(row["tier"]), bool(row["failed"]), int(row["width"]),
               int(row["height"]))
        with self._lock:
            self._cache[ck] = out
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    # ---- training
    @staticmethod
    def _project_id(project, what: str) -> int:
        """Label Studio sends a project as an id, ``"<id>.<created timestamp>"`` or a serialized project."""
        if isinstance(project, dict):
            project = project.get("id")
        try:
            return int(str(project).split(".")[0])
        except (TypeError, ValueError):
            raise RequestError(400, f"{what}: 'project' must be the Label Studio project (its id, or the project "
                                    f"object Label Studio sends), got {project!r}.") from None

    def webhook(self, data: dict) -> tuple:
        action = data.get("action")
        if not isinstance(action, str) or not action:
            raise RequestError(400, "a webhook body needs 'action' (e.g. START_TRAINING, ANNOTATION_CREATED).")
        if action == "START_TRAINING":
            pid = self._project_id(data.get("project"), "START_TRAINING")
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
        return self._start("/train", self._project_id(data.get("project"), "/train"), tasks)

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


# ----------------------------------------------------------------------------------------------------- the server
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "alnb-serve"

    def _serve(self, method: str):
        t0 = time.perf_counter()
        backend: Backend = self.server.backend
        body = None
        n = self.headers.get("Content-Length")
        try:
            n = int(n) if n is not None else 0
        except ValueError:
            n = -1
        if n < 0:
            status, payload, extra = 400, {"error": "bad Content-Length header."}, {}
        elif n > MAX_BODY:
            status, payload, extra = 413, {"error": f"request body of {n} bytes is over the {MAX_BODY} byte limit."}, {}
            self.close_connection = True
        else:
            body = self.rfile.read(n) if n else None
            status, payload, extra = backend.handle(method, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)
        why = f": {str(payload.get('error'))[:500]}" if status >= 400 else ""  # our own message, never a body
        backend.log(f"[alnb serve] {method} {urllib.parse.urlsplit(self.path).path} {status} "
                    f"({(time.perf_counter() - t0) * 1000:.0f} ms){why}")

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self):  # noqa: N802
        self._serve("POST")

    def do_PUT(self):  # noqa: N802
        self._serve("PUT")

    def do_DELETE(self):  # noqa: N802
        self._serve("DELETE")

    def do_PATCH(self):  # noqa: N802
        self._serve("PATCH")

    def log_message(self, format, *args):  # noqa: A002 - our own one-line log in _serve instead (no headers, no bodies)
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, backend: Backend, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self.backend = backend
        try:
            super().__init__((host, int(port)), _Handler)
        except OSError as e:
            raise WorkspaceError(f"cannot listen on {host}:{port} ({e.strerror or e}). Is another alnb serve (or "
                                 f"another program) using that port? Choose another with --port.") from None

    def handle_error(self, request, client_address):
        """A client that hangs up mid-request (Label Studio cancelling a /predict, a half-sent request, a closed tab) is
        normal: one plain log line.  Anything else keeps socketserver's traceback, so real errors stand out."""
        err = sys.exc_info()[1]
        if isinstance(err, (ConnectionError, TimeoutError)):  # BrokenPipe, ConnectionReset/Aborted; a read timeout
            host, port = client_address[:2] if isinstance(client_address, tuple) else (client_address, "")
            self.backend.log(f"[alnb serve] client {host}:{port} disconnected before the reply was sent "
                             f"({type(err).__name__}); nothing to do")
            return
        super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def serve(workspace, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, log=print, **options) -> int:
    """Run the backend until Ctrl-C (SIGINT) or SIGTERM; a running training job finishes in its own process."""
    import signal

    backend = Backend(workspace, log=log, **options)
    httpd = Server(backend, host, port)
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
