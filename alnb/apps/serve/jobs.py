"""Training jobs: "Start training" in Label Studio -> the next round's model, in a process of its own.

:class:`Trainer` runs at most one job at a time (``python -c`` :func:`_job_main`, in its own session so Ctrl-C on the
server does not stop it) and reports its status; :func:`train_next` is the job's work (import the project's
annotations, commit them as the next selection, train, rescore).  The job files in ``<workspace>/serve/jobs/`` are
the truth, so a restarted server carries on; a job whose process died is reported ``interrupted``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

from alnb.apps.serve.client import LabelStudioAPI
from alnb.apps.serve.common import SERVE_DIR, TOKEN_ENV, _now
from alnb.apps.serve.snapshot import model_version
from alnb.core.workspace import Workspace, WorkspaceError, atomic_write_json, cal_name, gt_tag, train_tags
from alnb.core.lock import ENV, WorkspaceBusy, holder_status, pid_alive, workspace_lock
from alnb.labels import labelio
from alnb.labels.labelio import ImportProblem
from alnb.loop import selection as sel
from alnb.loop.reviewstep import refresh_final


def next_round_number(ws) -> int:
    """The round the next training makes: 2 + the number of finished CAL rounds after CAL1 (CAL2, CAL3, ...)."""
    # heavy, imported where used: alnb.loop.pipeline (matplotlib), alnb.acquisition.scoring (torch)
    from alnb.loop import pipeline

    k = 2
    while pipeline._finished(ws, cal_name(k)):
        k += 1
    return k


def train_next(ws, source, *, profile: str = "quick", seed: int = 0, T: int = 20, mc_seed: int = 0,
               annotation: str | None = None, log=print) -> dict:
    """Train the next round's model on what people labelled in Label Studio; returns what was done.

    Each training is one round of the loop (:func:`next_round_number`): the first makes **GT2** / **CAL2**, the next
    **GT3** / **CAL3** and so on, as ``alnb run --rounds`` names them (one Label Studio project serves every round):

    1. :func:`alnb.labels.labelio.import_labels` of the Label Studio JSON export ``source`` with today's rules: all or
       nothing, never replacing a label a person gave (a changed one refuses the import with a per-image diff),
       any image of the workspace (``tag=None``: the annotated tasks *are* the selection); ``annotation`` chooses
       between several people's annotations of one task (``alnb serve --annotation``; default: refuse when they
       differ);
    2. round ``k``'s selection GT<k> = GT<k>'s labelled images + the POOL images labelled in ``source`` that no
       earlier round took (GT2 ... GT<k-1> keep theirs; unlabelled GT<k> images leave GT<k>, since nothing trains on
       them) (:func:`alnb.loop.selection.commit`);
    3. :func:`alnb.loop.pipeline.train_and_evaluate` ``(ws, CAL<k>, [GT1, GT2, ..., GT<k>], profile, seed=seed)``
       (warm-started by the loop's rule, :data:`alnb.loop.pipeline.WARM_START`);
    4. :func:`alnb.acquisition.scoring.score_pool` ``(ws, model=CAL<k>, T=T, seed=mc_seed)``: new auto-labels, scores and tiers
       for what is still unlabelled; the server then serves CAL<k>.

    Raises :class:`alnb.labels.labelio.ImportProblem` (nothing imported) or :class:`alnb.core.workspace.WorkspaceError` (no
    labelled POOL image that no earlier round took).  The caller holds the workspace lock.
    """
    from alnb.loop import pipeline
    from alnb.acquisition import scoring

    k = next_round_number(ws)
    tag, model = gt_tag(k), cal_name(k)
    summary = labelio.import_labels(ws, source, "labelstudio", tag=None, annotation=annotation)
    log("[alnb] " + labelio.describe_import(summary, source))

    refresh_final(ws, log=log)  # a final label set written before never keeps machine labels people have replaced
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
            "train_seconds": res["train"].seconds, "mAP50": res["eval"].get("mAP50") if isinstance(res["eval"], Mapping)
            else None}


def submitted_tasks(tasks) -> list:
    """The tasks of a Label Studio export that carry a submitted (not cancelled) annotation: what the import can
    take.  The others have nothing to import, and a task whose image the workspace does not know must not refuse a
    training nobody labelled it for; an *annotated* unknown image still refuses the import (nothing is dropped)."""
    if not isinstance(tasks, list):
        return tasks  # not an export: the import says what is wrong with it
    return [t for t in tasks if not isinstance(t, dict) or any(
        isinstance(a, dict) and not a.get("was_cancelled") for a in t.get("annotations") or [])]


# ------------------------------------------------------------------------------------------------ the job process
def _job_file(root: Path, job: str) -> Path:
    return Path(root) / SERVE_DIR / "jobs" / f"{job}.json"


def _read_job(root: Path, job: str) -> dict | None:
    try:
        return json.loads(_job_file(root, job).read_text())
    except (OSError, ValueError):
        return None


def _fetch_export(rec: dict, options: dict, source: Path):
    """START_TRAINING: fetch the project's annotations over Label Studio's API into ``source``."""
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


def _job_main(root: str, job: str) -> int:
    """The training process (``python -c ...`` started by :class:`Trainer`, in its own session so Ctrl-C on the
    server does not stop it): its output goes to ``serve/jobs/<job>.log``, its outcome to ``serve/jobs/<job>.json``."""
    import alnb  # noqa: F401  (offline settings before ultralytics)

    rec = _read_job(root, job) or {"job": job}
    options = rec.get("options", {})
    rec.update(state="running", pid=os.getpid(), started=_now())
    atomic_write_json(_job_file(root, job), rec)
    try:
        ws = Workspace.open(root)
        source = Path(root) / SERVE_DIR / "exports" / f"{job}.json"
        if not source.is_file():  # START_TRAINING: fetch the project's annotations over Label Studio's API
            _fetch_export(rec, options, source)
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


_JOB_CODE = "import sys; from alnb.apps.serve.jobs import _job_main; sys.exit(_job_main(sys.argv[1], sys.argv[2]))"


# -------------------------------------------------------------------------------------------- the server's side
class Trainer:
    """At most one training job at a time, in its own process; the job files in ``serve/jobs/`` are the truth.

    ``backend``: what it asks of the server -- ``ws``, ``train_options``, ``label_studio_url()``, ``log`` and
    ``training_finished(record)``.
    """

    def __init__(self, backend):
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
        with self._lock:
            busy = self._busy()
            if busy is not None:
                return 200, busy
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
            self._spawn(job)
        b.log(f"[alnb serve] training job {job} started ({trigger}, project {project}); log: "
              f"{self.dir / (job + '.log')}")
        return 201, {"status": "started", "job": job}

    def _busy(self) -> dict | None:
        """The ``busy`` answer while a job runs or another command holds the workspace; None when free."""
        if self.current is not None:
            rec = self.status(self.current) or {}
            return {"status": "busy", "job": self.current,
                    "message": f"training job {self.current} has been running since "
                               f"{rec.get('started', rec.get('created', '?'))}; this request was not queued. "
                               f"Start training again after it finished."}
        holder = holder_status(self.root)
        if holder and not holder.get("stale"):
            return {"status": "busy", "job": None,
                    "message": f"the workspace is busy: pid {holder.get('pid')} ({holder.get('command')}) "
                               f"has been writing to it since {holder.get('since')}; start training again "
                               f"when it finished."}
        return None

    def _spawn(self, job: str):
        """The job's process (``_JOB_CODE``), its output appended to ``serve/jobs/<job>.log``, and its watcher."""
        env = {k: v for k, v in os.environ.items() if k != ENV}  # the job takes the workspace lock itself
        with open(self.dir / f"{job}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", _JOB_CODE, str(self.root), job], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        self.current, self._proc = job, proc
        threading.Thread(target=self._watch, args=(job, proc), daemon=True).start()

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
        while pid_alive(pid):
            time.sleep(2)
        self._done(job, None)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the current job (tests, shutdown); True when none is running."""
        t0 = time.time()
        while self.current is not None and (timeout is None or time.time() - t0 < timeout):
            time.sleep(0.05)
        return self.current is None
