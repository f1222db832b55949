"""``alnb serve`` (alnb.apps.serve): the Label Studio ML backend's handlers, over a socket and in-process.

One smoke workspace for the module (real mode: 24 generated 64-px images, 12 of them unlabelled; CAL1 trained with
the smoke profile, the POOL scored with T=4).  The training tests copy it.  The run against a real Label Studio is
in tests/test_labelstudio.py.
"""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from alnb.loop import pipeline
from alnb.apps import serve
from alnb.datasets import weld
from alnb.labels.formats import labelstudio as lsf
from alnb.labels.formats.common import queue, read_autolabels
from alnb.core.scoretable import load_scores
from alnb.core.workspace import Workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scored_ws(tmp_path_factory):
    from alnb.acquisition.scoring import score_pool

    base = tmp_path_factory.mktemp("serve")
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=24, width=64, height=64, seed=2), progress=False)
    for lab in sorted((ds / "labels").glob("*.txt"))[12:]:
        lab.unlink()  # 12 images nobody has labelled
    ws = pipeline.setup(base / "ws", ds, n_val=4, n_gt1=4, log=None)
    pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "smoke")
    score_pool(ws, model="CAL1", T=4, progress=False)
    return ws


@pytest.fixture
def ws_copy(scored_ws, tmp_path):
    shutil.copytree(scored_ws.root, tmp_path / "ws", symlinks=True)
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def backend(scored_ws, monkeypatch):
    for k in (serve.TOKEN_ENV, serve.URL_ENV, serve.AUTH_USER_ENV, serve.AUTH_PASS_ENV, serve.DOCUMENT_ROOT_ENV):
        monkeypatch.delenv(k, raising=False)
    lines = []
    b = serve.Backend(scored_ws, log=lines.append)
    b.lines = lines
    return b


def running(b):
    """``b`` behind a real socket on a free port; yields the base URL."""
    httpd = serve.Server(b, "127.0.0.1", 0)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    return httpd


def call(url, method="GET", body=None, headers=None, raw=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json",
                                                                         **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as f:
            return f.status, json.loads(f.read()), dict(f.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), dict(e.headers)


def config(ws, **kw):
    return lsf.labelstudio_config(ws.names, difficulty=True, **kw)


def url(ws, stem):
    return "/data/local-files/?d=" + ws.manifest().set_index("stem").at[stem, "image"]


# ------------------------------------------------------------------------------------------------ the mapping
def test_task_score_sorts_like_the_labelling_queue():
    rows = [(0.9, False), (0.2, False), (0.7, True), (0.1, True), (0.0, True), (0.99, False)]
    ls_scores = [lsf.task_score(d, f) for d, f in rows]
    assert all(0 <= s <= 1 for s in ls_scores)
    ascending = [rows[i] for i in np.argsort(ls_scores, kind="stable")]
    assert ascending == [(0.7, True), (0.1, True), (0.0, True), (0.99, False), (0.9, False), (0.2, False)]
    assert lsf.task_score(float("nan"), False) is None and lsf.task_score(None, True) is None


def test_review_task_score_puts_the_review_queue_first_and_accepted_last():
    rev = [lsf.review_task_score("review", i, 3) for i in range(3)]
    acc = [lsf.review_task_score("accepted", i, 2) for i in range(2)]
    other = [lsf.review_task_score("other", base=lsf.task_score(d, f)) for d, f in ((0.1, True), (0.9, False),
                                                                                   (0.0, False))]
    assert rev == sorted(rev) and acc == sorted(acc) and other == sorted(other)
    assert 0 < rev[0] and max(rev) < 1 / 3 < min(other) and max(other) <= 2 / 3 < min(acc) and max(acc) < 1
    assert lsf.review_task_score("other", base=None) is None
    with pytest.raises(ValueError, match="place"):
        lsf.review_task_score("later")


def test_parse_config_finds_names_and_refuses_what_cannot_show_boxes():
    cfg = lsf.parse_config('<View><Image name="img" value="$photo"/><RectangleLabels name="box" toName="img">'
                           '<Label value="a"/></RectangleLabels></View>')
    assert cfg == {"from_name": "box", "to_name": "img", "image_key": "photo", "labels": ["a"], "tier": False,
                   "difficulty": False}
    full = lsf.parse_config(lsf.labelstudio_config(["a", "b"], difficulty=True))
    assert full["tier"] and full["difficulty"] and full["labels"] == ["a", "b"]
    for bad, why in (("<View>", "not valid XML"), ('<View><Image name="i" value="$x"/></View>', "no <RectangleLabels"),
                     ('<View><RectangleLabels name="l" toName="i"/></View>', "no <Image")):
        with pytest.raises(ValueError, match=why):
            lsf.parse_config(bad)


# ---------------------------------------------------------------------------------------- predictions
def test_predictions_are_the_workspace_autolabels_hardest_first(backend, scored_ws):
    ws = scored_ws
    pool = sorted(load_scores(ws)["stem"])
    tasks = [{"id": i, "data": {"image": url(ws, s)}} for i, s in enumerate(pool)]
    st, out, _ = backend.handle("POST", "/predict", body=json.dumps({"tasks": tasks, "label_config": config(ws),
                                                                    "project": "3.1700000000"}).encode())
    assert st == 200 and out["model_version"] == backend.snapshot().version == serve.model_version(ws, "CAL1")
    scores = load_scores(ws).set_index("stem")
    for s, pred in zip(pool, out["results"]):
        boxes = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
        auto = read_autolabels(ws.root / "autolabels" / "CAL1" / f"{s}.txt", len(ws.names))
        assert [r["value"]["rectanglelabels"][0] for r in boxes] == [ws.names[int(c)] for c in auto[:, 0]]
        got = [[r["value"][k] for k in ("x", "y", "width", "height")] for r in boxes]
        want = [[(cx - w / 2) * 100, (cy - h / 2) * 100, w * 100, h * 100] for _, cx, cy, w, h, _ in auto]
        np.testing.assert_allclose(np.reshape(got, (-1, 4)), np.reshape(want, (-1, 4)), atol=1e-9)
        assert [r["score"] for r in boxes] == pytest.approx(list(auto[:, 5]))
        extra = {r["from_name"]: r["value"] for r in pred["result"] if r["type"] != "rectanglelabels"}
        row = scores.loc[s]
        assert extra["alnb_tier"] == {"choices": ["failed" if row["failed"] else row["tier"]]}
        assert extra["alnb_difficulty"]["number"] == pytest.approx(row["score"], abs=1e-6)
    by_score = [pool[i] for i in np.argsort([p["score"] for p in out["results"]], kind="stable")]
    assert by_score == list(queue(ws, tag=None, stems=pool)["stem"])  # ascending = the labelling queue
    assert not any(str(v) in line for line in backend.lines for v in ("label_config", "<View"))  # bodies not logged


def _plant_plan(ws, plan_stems, reviewed, model="CAL1"):
    """A review plan as ``alnb review`` writes it (the files :func:`alnb.loop.reviewstep.review_split` reads)."""
    import pandas as pd

    n = len(plan_stems)
    pd.DataFrame({"rank": range(1, n + 1), "stem": plan_stems, "value": np.linspace(1, 0.1, n)}).to_csv(
        ws.root / "review_plan.csv", index=False)
    pd.DataFrame({"reviewed": range(n + 1)}).to_csv(ws.root / "review_curve.csv", index=False)
    ws.save_json("review_plan", {"model": model, "cut": {"reviewed": reviewed}})


def test_review_plan_orders_predictions_review_first_accepted_last(ws_copy, monkeypatch):
    """With a review plan of the served model, sorting by prediction score ascending lists the plan's review
    images (plan order), then the images it does not order (labelling-queue order), then the accepted ones (plan
    order); a plan of another model changes nothing; the backend picks a new plan up without a restart."""
    for k in (serve.TOKEN_ENV, serve.URL_ENV, serve.AUTH_USER_ENV, serve.AUTH_PASS_ENV, serve.DOCUMENT_ROOT_ENV):
        monkeypatch.delenv(k, raising=False)
    ws = ws_copy
    b = serve.Backend(ws, log=lambda *_: None)
    pool = sorted(load_scores(ws)["stem"])
    tasks = [{"id": i, "data": {"image": url(ws, s)}} for i, s in enumerate(pool)]

    def order():
        st, out, _ = b.handle("POST", "/predict", body=json.dumps({"tasks": tasks,
                                                                   "label_config": config(ws)}).encode())
        assert st == 200 and not [r for r in out["results"] if "error" in r]
        return [pool[i] for i in np.argsort([r["score"] for r in out["results"]], kind="stable")]

    no_plan = order()
    assert no_plan == list(queue(ws, tag=None, stems=pool)["stem"])
    # the plan: easiest first (not the difficulty order), two images it does not order (e.g. labelled since)
    easiest = list(load_scores(ws).sort_values(["score", "stem"])["stem"])
    planned, others = easiest[:-2], easiest[-2:]
    _plant_plan(ws, planned, reviewed=4)
    got = order()
    assert got == planned[:4] + [s for s in no_plan if s in others] + planned[4:]
    assert b.snapshot().plan_note.startswith("review plan of CAL1: its 4 review image(s) first")
    _plant_plan(ws, planned, reviewed=4, model="CAL0")  # a stale plan: the difficulty order again
    assert order() == no_plan and "review plan not used" in b.snapshot().plan_note


def test_project_config_names_are_used_and_extras_only_when_configured(backend, scored_ws):
    ws = scored_ws
    s = sorted(load_scores(ws)["stem"])[2]
    own = ('<View><Image name="img" value="$photo"/><RectangleLabels name="box" toName="img">'
           + "".join(f'<Label value="{n}"/>' for n in ws.names) + "</RectangleLabels></View>")
    st, out, _ = backend.handle("POST", "/predict", body=json.dumps(
        {"tasks": [{"id": 7, "data": {"photo": url(ws, s)}}], "label_config": own}).encode())
    (pred,) = out["results"]
    assert st == 200 and all(r["type"] == "rectanglelabels" for r in pred["result"])
    assert all(r["from_name"] == "box" and r["to_name"] == "img" for r in pred["result"])


def test_images_outside_the_score_table_are_scored_on_the_fly_like_the_pool(backend, scored_ws, tmp_path):
    ws = scored_ws
    snap = backend.snapshot()
    scores = load_scores(ws).set_index("stem")
    # a POOL image scored here = its scores.csv row and auto-label file (the same model, settings, box_ref and dropout
    # masks; to float summation order only: the pool may have been scored with another PyTorch thread count)
    for s in sorted(scores.index)[:4]:
        boxes, score, tier, failed, w, h = backend.predictor.on_the_fly(snap, s, None, "image")
        assert (score, tier, failed) == (pytest.approx(scores.at[s, "score"], abs=1e-6), scores.at[s, "tier"],
                                         bool(scores.at[s, "failed"]))
        np.testing.assert_allclose(boxes, read_autolabels(ws.root / "autolabels" / "CAL1" / f"{s}.txt",
                                                          len(ws.names)), atol=2e-5)
    # a task added in Label Studio later (a file below the document root), a VAL1 image, and ones that cannot be read
    docs = tmp_path / "docs"
    docs.mkdir()
    pool0 = sorted(scores.index)[0]
    shutil.copy(ws.dataset_root / ws.manifest().set_index("stem").at[pool0, "image"], docs / "later.png")
    (docs / "broken.png").write_bytes(b"not an image")
    b = serve.Backend(ws, document_root=docs, log=backend.lines.append)
    val = ws.stems("VAL1")[0]
    tasks = [{"id": 1, "data": {"image": "/data/local-files/?d=later.png"}},
             {"id": 2, "data": {"image": url(ws, val)}},
             {"id": 3, "data": {"image": "/data/local-files/?d=missing.png"}},
             {"id": 4, "data": {"image": "/data/local-files/?d=../../etc/passwd"}},
             {"id": 5, "data": {"image": "/data/local-files/?d=broken.png"}},
             {"id": 6, "data": {"image": "https://elsewhere.example/x.png"}},
             {"id": 7, "data": {"image": "/data/upload/1/abc.png"}},
             {"id": 8, "data": {}}, {"id": 9}, "not a task"]
    st, out, _ = b.handle("POST", "/predict", body=json.dumps({"tasks": tasks, "label_config": config(ws)}).encode())
    assert st == 200 and len(out["results"]) == len(tasks)
    first, second, *bad = out["results"]
    assert first["model_version"] == second["model_version"] == out["model_version"] and "score" in first
    assert all("result" not in r for r in bad)  # Label Studio skips these tasks; the batch is answered
    msgs = [r["error"] for r in bad]
    for m, want in zip(msgs, ("does not exist", "outside the local-files document root", "cannot be read as an image",
                              "cannot read image", "LABEL_STUDIO_API_KEY", "lacks 'image'", "no 'data'", "no 'data'")):
        assert want in m, (want, m)
    assert [r["task"] for r in bad] == [3, 4, 5, 6, 7, 8, 9, "#10"]


# ------------------------------------------------------------------------------------- malformed requests
def test_malformed_requests_get_a_4xx_with_a_message_and_health_still_answers(backend, scored_ws):
    ws = scored_ws
    httpd = running(backend)
    base = httpd.url
    try:
        cases = [
            ("POST", "/predict", None, b"{not json", 400, "not JSON"),
            ("POST", "/predict", None, b"", 400, "empty request body"),
            ("POST", "/predict", [1, 2], None, 400, "JSON object"),
            ("POST", "/predict", {"project": "1.2"}, None, 400, "'tasks' is missing"),
            ("POST", "/predict", {"tasks": {"id": 1}}, None, 400, "'tasks' is missing or not a list"),
            ("POST", "/predict", {"tasks": [], "label_config": 5}, None, 400, "must be the labelling config XML"),
            ("POST", "/setup", {"schema": "<View><Image name='i' value='$i'/></View>"}, None, 400, "RectangleLabels"),
            ("POST", "/setup", {"schema": lsf.labelstudio_config(ws.names[:2])}, None, 400, "lack the workspace"),
            ("POST", "/webhook", {"project": {"id": 1}}, None, 400, "needs 'action'"),
            ("POST", "/webhook", {"action": "START_TRAINING", "project": "x"}, None, 400, "'project' must be"),
            ("POST", "/webhook", {"action": "START_TRAINING", "project": {"id": 4}}, None, 400, serve.URL_ENV),
            ("POST", "/train", {"annotations": [], "project": "1.2"}, None, 400, "'annotations' is missing or empty"),
            ("POST", "/job_status", {}, None, 400, "'job' is missing"),
            ("POST", "/job_status", {"job": "../../manifest"}, None, 410, "no training job"),
            ("POST", "/job_status", {"job": "20990101T000000-abcdef"}, None, 410, "no training job"),
            ("GET", "/predict", None, None, 405, "use POST"),
            ("POST", "/health", {}, None, 405, "use GET"),
            ("DELETE", "/setup", None, None, 405, "not allowed"),
            ("GET", "/nowhere", None, None, 404, "no such endpoint"),
        ]
        for method, path, body, raw, status, msg in cases:
            st, out, _ = call(base + path, method, body, raw=raw)
            assert st == status and msg in out["error"], (method, path, st, out)
            st, health, _ = call(base + "/health")
            assert st == 200 and health["status"] == "UP"
        # a bad Content-Length, over a raw socket
        with socket.create_connection(httpd.server_address[:2], timeout=10) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
            assert b" 400 " in s.recv(4096).split(b"\r\n")[0]
        # events are acknowledged and counted; a person's annotation never arrives as a crash
        st, out, _ = call(base + "/webhook", "POST", {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
        assert st == 200 and out == {"status": "ok", "action": "ANNOTATION_CREATED"}
        st, health, _ = call(base + "/health")
        assert health["annotations_since_training"] == 1 and health["training"] is None and not health["busy"]
        st, out, _ = call(base + "/setup", "POST", {"project": "1.2", "schema": config(ws), "hostname":
                                                    "http://localhost:8080", "access_token": "SECRET-SETUP-TOKEN"})
        assert st == 200 and out == {"model_version": backend.snapshot().version}
        st, out, _ = call(base + "/webhook", "POST", {"action": "START_TRAINING", "project": {"id": 4}})
        assert st == 400 and serve.TOKEN_ENV in out["error"] and "never stored" in out["error"]  # no job started
        assert not list((ws.root / "serve" / "jobs").glob("*.json"))
        st, out, _ = call(base + "/versions")
        assert st == 200 and out["versions"] == [backend.snapshot().version]
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert any("/setup 400" in ln and "lack the workspace class(es)" in ln for ln in backend.lines)  # the log says why
    state = (ws.root / "serve" / "state.json").read_text()
    assert "SECRET-SETUP-TOKEN" not in state + "\n".join(backend.lines)  # the setup token is never kept or logged
    assert json.loads(state)["label_studio_url"] == "http://localhost:8080"


def test_basic_auth(scored_ws, monkeypatch):
    monkeypatch.setenv(serve.AUTH_USER_ENV, "ls")
    monkeypatch.setenv(serve.AUTH_PASS_ENV, "s3cret:pw")
    lines = []
    httpd = running(serve.Backend(scored_ws, log=lines.append))
    try:
        good = "Basic " + base64.b64encode(b"ls:s3cret:pw").decode()
        bad = "Basic " + base64.b64encode(b"ls:wrong").decode()
        for hdr in ({}, {"Authorization": bad}, {"Authorization": "Basic %%%"}, {"Authorization": "Token abc"}):
            st, out, headers = call(httpd.url + "/health", headers=hdr)
            assert st == 401 and "basic auth" in out["error"] and headers["WWW-Authenticate"].startswith("Basic")
            st, out, _ = call(httpd.url + "/predict", "POST", {"tasks": []}, headers=hdr)
            assert st == 401
        st, out, _ = call(httpd.url + "/health", headers={"Authorization": good})
        assert st == 200 and out["status"] == "UP"
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not any("s3cret" in line for line in lines)


# --------------------------------------------------------------------------------- Label Studio's API client
class FakeLabelStudio(http.server.BaseHTTPRequestHandler):
    """Answers the two calls the backend makes (token refresh, project export) and records the auth it saw."""

    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, self.headers.get("Authorization")))
        if self.path == "/api/token/refresh" and body.get("refresh", "").count(".") == 2:
            self._send(200, {"access": "ACCESS-1"})
        else:
            self._send(401, {"detail": "bad"})

    def do_GET(self):  # noqa: N802
        self.seen.append(("GET", self.path, self.headers.get("Authorization")))
        ok = self.headers.get("Authorization") in ("Token legacy123", "Bearer ACCESS-1")
        self._send(200 if ok else 401, [{"id": 1, "data": {}, "annotations": []}] if ok else {"detail": "no"})

    def _send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


def test_label_studio_api_legacy_and_personal_access_tokens():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLabelStudio)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ls = f"http://127.0.0.1:{httpd.server_address[1]}"
    pat = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
    try:
        FakeLabelStudio.seen = []
        assert json.loads(serve.LabelStudioAPI(ls, "legacy123").export(7)) == [{"id": 1, "data": {}, "annotations": []}]
        assert FakeLabelStudio.seen == [("GET", "/api/projects/7/export?exportType=JSON&download_all_tasks=true",
                                         "Token legacy123")]
        FakeLabelStudio.seen = []
        serve.LabelStudioAPI(ls, pat).export(7)
        assert [s[:2] for s in FakeLabelStudio.seen] == [("POST", "/api/token/refresh"), ("GET", FakeLabelStudio.seen[1][1])]
        assert FakeLabelStudio.seen[1][2] == "Bearer ACCESS-1" and FakeLabelStudio.seen[0][2] is None
        with pytest.raises(serve.WorkspaceError, match="refused the token") as e:
            serve.LabelStudioAPI(ls, "wrong-token-xyz").export(7)
        assert "wrong-token-xyz" not in str(e.value)
    finally:
        httpd.shutdown()
        httpd.server_close()
    with pytest.raises(serve.WorkspaceError, match="cannot reach Label Studio"):
        serve.LabelStudioAPI(ls, "legacy123", timeout=2).export(7)
    with pytest.raises(serve.WorkspaceError, match=serve.TOKEN_ENV):
        serve.LabelStudioAPI(ls, None)


# -------------------------------------------------------------------------------------------- training
def annotated_tasks(ws, stems, boxes_of):
    """Tasks as Label Studio sends them to /train (its JSON export of the annotated tasks)."""
    m = ws.manifest().set_index("stem")
    out = []
    for i, s in enumerate(stems):
        result = [{"id": f"r{j}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                   "original_width": int(m.at[s, "width"]), "original_height": int(m.at[s, "height"]),
                   "value": {**lsf.yolo_to_ls(*b[1:]), "rotation": 0, "rectanglelabels": [ws.names[int(b[0])]]}}
                  for j, b in enumerate(boxes_of(s))]
        out.append({"id": 100 + i, "data": {"image": url(ws, s)},
                    "annotations": [{"id": 500 + i, "result": result, "was_cancelled": False}]})
    return out


def wait_idle(b, timeout=600):
    assert b.trainer.wait(timeout), "training did not finish"


def test_training_job_imports_all_or_nothing_trains_and_survives_a_restart(ws_copy, monkeypatch):
    ws = ws_copy
    for k in (serve.TOKEN_ENV, serve.URL_ENV, serve.AUTH_USER_ENV, serve.AUTH_PASS_ENV):
        monkeypatch.delenv(k, raising=False)
    lines = []
    b = serve.Backend(ws, log=lines.append)
    v1 = b.snapshot().version
    pool = sorted(load_scores(ws)["stem"])
    chosen = pool[:3]
    boxes = {s: [(i % len(ws.names), 0.3 + 0.1 * i, 0.5, 0.2, 0.25)] for i, s in enumerate(chosen)}

    # an import problem (a class the workspace does not have) fails the job and changes nothing
    bad = annotated_tasks(ws, chosen, lambda s: boxes[s])
    bad[1]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["kitten"]
    before = ws.manifest_path.read_bytes()
    st, out, _ = b.handle("POST", "/train", body=json.dumps({"annotations": bad, "project": "2.17"}).encode())
    assert st == 201 and out["status"] == "started"
    wait_idle(b)
    st, js, _ = b.handle("POST", "/job_status", body=json.dumps({"job": out["job"]}).encode())
    assert js["job_status"] == "failed" and "'kitten' is not one of the workspace classes" in js["message"]
    assert "nothing in the workspace was changed" in js["message"]
    assert ws.manifest_path.read_bytes() == before and not (ws.root / "labels").exists()
    assert b.handle("GET", "/health")[1]["model_version"] == v1

    # the good annotations: started, a second request is busy (not queued), the new model is served afterwards
    tasks = annotated_tasks(ws, chosen, lambda s: boxes[s])
    tasks.append({"id": 999, "data": {"image": "/data/local-files/?d=elsewhere.png"}, "annotations": []})  # ignored
    st, out, _ = b.handle("POST", "/train", body=json.dumps({"annotations": tasks, "project": "2.17"}).encode())
    assert st == 201, out
    job = out["job"]
    st, again, _ = b.handle("POST", "/train", body=json.dumps({"annotations": tasks, "project": "2.17"}).encode())
    assert st == 200 and again["status"] == "busy" and again["job"] == job
    t0 = time.perf_counter()
    st, health, _ = b.handle("GET", "/health")
    assert st == 200 and health["busy"] and health["training"]["state"] in ("queued", "running")
    st, pr, _ = b.handle("POST", "/predict", body=json.dumps({"tasks": [{"id": 1, "data": {"image": url(ws, pool[5])}}
                                                                        ]}).encode())
    assert st == 200 and pr["model_version"] == v1 and time.perf_counter() - t0 < 5  # not blocked by the training
    assert b.handle("POST", "/job_status", body=json.dumps({"job": job}).encode())[1]["job_status"] in ("queued",
                                                                                                      "started")
    wait_idle(b)
    st, health, _ = b.handle("GET", "/health")
    v2 = health["model_version"]
    assert health["training"]["state"] == "finished" and v2.startswith("CAL2-") and v2 != v1, health
    assert b.handle("POST", "/job_status", body=json.dumps({"job": job}).encode())[1]["job_status"] == "finished"
    m = ws.manifest().set_index("stem")
    assert ws.stems("GT2") == chosen and (m.loc[chosen, "label_source"] == "human").all()
    for s in chosen:
        np.testing.assert_allclose(read_autolabels(ws.root / "labels" / f"{s}.txt", len(ws.names))[:, :5],
                                   boxes[s], atol=1e-9)
    assert ws.load_json("mc_scoring")["model"] == "CAL2"
    st, out, _ = b.handle("POST", "/predict", body=json.dumps({"tasks": [{"id": 1, "data": {"image": url(ws, pool[5])}}
                                                                         ]}).encode())
    assert out["model_version"] == v2 and out["results"][0]["model_version"] == v2

    # a restart: the new server serves the new model; a job whose process died is reported as interrupted
    ghost = serve._job_file(ws.root, "20000101T000000-dead00")
    ghost.write_text(json.dumps({"job": "20000101T000000-dead00", "state": "running", "pid": 2 ** 22 + 12345,
                                 "created": "2000-01-01T00:00:00+00:00"}))
    b2 = serve.Backend(ws, log=lines.append)
    assert b2.snapshot().version == v2 and b2.trainer.current is None
    assert json.loads(ghost.read_text())["state"] == "interrupted"
    st, js, _ = b2.handle("POST", "/job_status", body=json.dumps({"job": job}).encode())
    assert js["job_status"] == "finished" and js["model_version"] == v2

    # the next training is round 3: GT3 = what was labelled since (GT2 keeps its images), CAL3 on GT1 + GT2 + GT3
    more = pool[3:5]
    boxes.update({s: [(0, 0.4, 0.4, 0.2, 0.2)] for s in more})
    tasks = annotated_tasks(ws, chosen + more, lambda s: boxes[s])
    st, out, _ = b2.handle("POST", "/train", body=json.dumps({"annotations": tasks, "project": "2.17"}).encode())
    assert st == 201, out
    wait_idle(b2)
    st, js, _ = b2.handle("POST", "/job_status", body=json.dumps({"job": out["job"]}).encode())
    assert js["job_status"] == "finished" and js["model_version"].startswith("CAL3-"), js
    assert ws.stems("GT2") == chosen and ws.stems("GT3") == sorted(more)
    info = json.loads((ws.root / "runs" / "CAL3" / "alnb_run.json").read_text())
    assert info["tags"] == ["GT1", "GT2", "GT3"] and ws.load_json("mc_scoring")["model"] == "CAL3"
    assert not set(load_scores(ws)["stem"]) & set(chosen + more)  # CAL3 scores only what is still unlabelled
    # nothing new labelled: the job fails with advice, nothing changes
    before = ws.manifest_path.read_bytes()
    st, out, _ = b2.handle("POST", "/train", body=json.dumps({"annotations": tasks, "project": "2.17"}).encode())
    wait_idle(b2)
    st, js, _ = b2.handle("POST", "/job_status", body=json.dumps({"job": out["job"]}).encode())
    assert js["job_status"] == "failed" and "nothing new to train on" in js["message"], js
    assert ws.manifest_path.read_bytes() == before
    assert "Traceback" not in "\n".join(lines)


# ---------------------------------------------------------------------------- issue 37: clients that hang up
class _StubBackend:
    """What :class:`serve.Server` needs of a Backend (``handle``, ``log``): no workspace, no model."""

    def __init__(self):
        self.lines, self.release = [], threading.Event()

    def log(self, msg):
        self.lines.append(msg)

    def handle(self, method, path, headers=None, body=None):
        if path == "/boom":
            raise RuntimeError("a real bug")
        if path == "/slow":  # the answer is ready only after the client has gone
            self.release.wait(20)
            return 200, {"blob": "x" * 4_000_000}, {}
        return 200, {"status": "UP"}, {}


def _hang_up(sock):
    """Close like a killed client or a cancelled request: a reset (SO_LINGER 0), not a polite FIN."""
    import struct

    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_issue37_case10_client_disconnects_are_one_plain_log_line(capsys):
    """A client hanging up mid-request printed socketserver's raw BrokenPipeError / ConnectionResetError traceback
    into the server's log (20 under load); a log full of tracebacks for normal client behaviour hides real ones."""
    b = _StubBackend()
    httpd = running(b)
    addr = httpd.server_address[:2]
    try:
        for _ in range(3):  # half-sent requests, then the client is gone
            s = socket.create_connection(addr, timeout=10)
            s.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"tasks": [')
            time.sleep(0.05)
            _hang_up(s)
        s = socket.create_connection(addr, timeout=10)  # the client hangs up while the answer is being made
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        _hang_up(s)
        b.release.set()
        deadline = time.monotonic() + 30
        while sum("disconnected" in ln for ln in b.lines) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        st, out, _ = call(httpd.url + "/health")  # still answering
        assert st == 200 and out == {"status": "UP"}
        err = capsys.readouterr().err
        gone = [ln for ln in b.lines if "disconnected" in ln]
        assert len(gone) == 4, b.lines
        assert all(ln.startswith("[alnb serve] client 127.0.0.1:") and "before the reply was sent" in ln
                   and ("ConnectionResetError" in ln or "BrokenPipeError" in ln) for ln in gone), gone
        assert "Traceback" not in err and "Error" not in err, err
        with pytest.raises(OSError):  # a real error in a handler: the connection closes without a reply ...
            call(httpd.url + "/boom")
        deadline = time.monotonic() + 10
        while "a real bug" not in err and time.monotonic() < deadline:
            time.sleep(0.05)
            err += capsys.readouterr().err
        assert "Traceback" in err and "RuntimeError: a real bug" in err  # ... and keeps its traceback
    finally:
        b.release.set()
        httpd.shutdown()
        httpd.server_close()


def test_cli_serve_refuses_clearly(tiny_workspace, scored_ws, capsys):
    """``alnb serve`` on a workspace without a scored model, or on a port in use: one message, exit code 2."""
    from alnb.apps import cli

    assert cli.main(["serve", "--workspace", str(tiny_workspace.root)]) == 2
    err = capsys.readouterr().err
    assert "has no scored model yet" in err and "Traceback" not in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert cli.main(["serve", "--workspace", str(scored_ws.root), "--port", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1:" in err and "--port" in err and "Traceback" not in err
