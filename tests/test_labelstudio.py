"""Integration test against a real Label Studio server (docs/guide/labelling-tools.md, command for command).

Label Studio lives in its own environment, ``.venv-ls`` (``make labelstudio``: ``pip install label-studio``, ~3 min);
without it this test is skipped with that reason.  The test starts the server on 127.0.0.1 (a free port, its own data
folder, local-file serving with the dataset folder as document root), then:

1. ``alnb export-queue --workspace WS --format labelstudio``  (tasks.json + label_config.xml)
2. creates a project with our label config, a *Local files* storage on the dataset's images, imports tasks.json
   (checks: every task has its prediction with the auto-label boxes, every image is served byte-identical);
3. posts annotations as a person would submit them: accept the prediction, move a box, delete a box, add a box, and
   leaves one task unlabelled;
4. exports the project (*Export > JSON*) and runs ``alnb import-labels EXPORT --workspace WS --format labelstudio``;
5. asserts the label files box by box, the honest counts, that a re-import changes nothing, that the last task
   labelled later is imported on the next export, and that the dataset folder is byte-identical.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnb.loop import pipeline
from alnb.datasets import weld
from alnb.loop import selection as sel
from alnb.labels.labelio import read_autolabels
from alnb.core.workspace import Workspace, tag_set

REPO = Path(__file__).resolve().parent.parent
LS_BIN = REPO / ".venv-ls" / "bin" / "label-studio"
START_TIMEOUT = 420  # first start migrates a fresh database: ~1-2 min on a 2-core CPU

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not LS_BIN.is_file(), reason="Label Studio is not installed in .venv-ls: run "
                                                              "`make labelstudio` (pip install label-studio, ~3 min)")]

AUTO = [(0, 0.30, 0.40, 0.20, 0.20, 0.9), (4, 0.70, 0.60, 0.10, 0.15, 0.6), (2, 0.50, 0.50, 0.30, 0.10, 0.4)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    """A Label Studio server started for the test; ``api(method, path, body)`` with the legacy token header."""

    def __init__(self, data_dir: Path, document_root: Path, log: Path):
        self.port, self.token = free_port(), secrets.token_hex(20)  # 40 hex digits
        self.url = f"http://127.0.0.1:{self.port}"
        # ML_BLOCK_LOCAL_IP=false: Label Studio may call an ML backend on this machine (alnb serve on 127.0.0.1);
        # SSRF_PROTECTION_ENABLED=false: and send it the project's webhook events (annotation created ...)
        env = {**os.environ, "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root), "LATEST_VERSION_CHECK": "false",
               "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
               "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false"}
        self.document_root = Path(document_root)
        cmd = [str(LS_BIN), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
               "--data-dir", str(data_dir), "--username", "test@alnb.local", "--password", "alnb-test-pw",
               "--user-token", self.token, "--enable-legacy-api-token"]
        self.log = log
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self):
        t0 = time.time()
        while time.time() - t0 < START_TIMEOUT:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if self.api("GET", "/api/projects")[0] == 200:
                    return time.time() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(2)
        raise TimeoutError(f"Label Studio did not answer in {START_TIMEOUT} s:\n{self.log.read_text()[-3000:]}")

    def api(self, method, path, body=None, raw=False):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Token {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as f:
                data = f.read()
                return f.status, data if raw else (json.loads(data) if data else None)
        except urllib.error.HTTPError as e:
            return e.code, e.read()[:2000]

    def tasks(self, project, key) -> dict:
        """Every task of ``project`` in full (data, predictions, annotations), by ``key(task)``."""
        st, listing = self.api("GET", f"/api/tasks?project={project}&page_size=100")
        assert st == 200, listing
        out = {}
        for t in listing["tasks"]:
            st, full = self.api("GET", f"/api/tasks/{t['id']}")
            out[key(full)] = full
        return out

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def tree_hash(root) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        h.update(p.relative_to(root).as_posix().encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def cli(capsys, *argv):
    from alnb.apps.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return rc, out.out + out.err


def ls_box(cx, cy, w, h):
    """YOLO (normalised centre) -> Label Studio (percent, top-left)."""
    return {"x": (cx - w / 2) * 100, "y": (cy - h / 2) * 100, "width": w * 100, "height": h * 100, "rotation": 0}


def yolo_of(value):
    x, y, w, h = (value[k] / 100 for k in ("x", "y", "width", "height"))
    return [x + w / 2, y + h / 2, w, h]


def plant_autolabels(ws, boxes: dict) -> None:
    """CAL1's auto-labels for the images ``boxes`` names (stem -> ``(class, cx, cy, w, h, conf)`` rows), as scoring
    writes them, and the manifest's ``auto_model``."""
    auto = ws.root / "autolabels" / "CAL1"
    auto.mkdir(parents=True, exist_ok=True)
    for stem, rows in boxes.items():
        (auto / f"{stem}.txt").write_text("".join(f"{c} {cx} {cy} {w} {h} {p}\n" for c, cx, cy, w, h, p in rows))
    m = ws.manifest()
    m.loc[m["stem"].isin(list(boxes)), "auto_model"] = "CAL1"
    ws.write_manifest(m)


def new_project(server, title: str, export: Path, tasks: list, images: Path | None = None) -> tuple:
    """A Label Studio project with alnb's exported labelling config, a *Local files* storage on ``images`` (when
    given) and ``tasks`` imported; returns ``(project id, the import's answer)``."""
    st, project = server.api("POST", "/api/projects", {"title": title,
                                                       "label_config": (export / "label_config.xml").read_text()})
    assert st == 201, project
    pid = project["id"]
    if images is not None:
        st, storage = server.api("POST", "/api/storages/localfiles", {"project": pid, "path": str(images),
                                                                     "use_blob_urls": False, "title": "dataset"})
        assert st == 201, storage
    st, res = server.api("POST", f"/api/projects/{pid}/import", tasks)
    assert st == 201, res
    return pid, res


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """One Label Studio server for the tests of this module (starting one takes ~40 s); its local-files document root
    is a folder the tests put their datasets in."""
    root = tmp_path_factory.mktemp("label-studio")
    (root / "documents").mkdir()
    server = LabelStudio(root / "data", root / "documents", root / "label-studio.log")
    try:
        server.started = server.wait()
        yield server
    finally:
        server.stop()


@pytest.fixture
def loop_ws(label_studio, tmp_path):
    """A real-loop workspace: a dataset with unlabelled images, GT2 = 5 of them with CAL1 auto-labels + scores (the
    state ``alnb run`` stops in with exit code 3).  The dataset lies below Label Studio's document root."""
    base = Path(tempfile.mkdtemp(prefix="loop-", dir=label_studio.document_root))
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=20, width=96, height=64, seed=2), progress=False)
    labels = sorted((ds / "labels").glob("*.txt"))
    for lab in labels[12:]:
        lab.unlink()  # 8 images nobody has labelled yet
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    unl = sorted(ws.manifest().query("label_state == 'unlabelled'")["stem"])
    plant_autolabels(ws, {s: AUTO for s in unl})
    pd.DataFrame({"stem": unl, "score": np.linspace(0.2, 0.9, len(unl)), "tier": "hard",
                  "failed": False}).to_csv(ws.root / "scores.csv", index=False)
    sel.commit(ws, unl[:5], "GT2")
    return ws


def test_label_studio_round_trip(loop_ws, label_studio, tmp_path, capsys):
    ws = loop_ws
    ds = ws.dataset_root
    ds_hash = tree_hash(ds)
    t0 = time.time()

    # 1. the queue (image URLs relative to Label Studio's document root, which holds the dataset folder)
    rc, out = cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio", "--document-root",
                  label_studio.document_root)
    assert rc == 0, out
    export = ws.root / "export" / "labelstudio"
    tasks = json.loads((export / "tasks.json").read_text())
    assert len(tasks) == 5

    # 2. Label Studio with local-file serving
    server = label_studio
    pid, res = new_project(server, "alnb GT2 queue", export, tasks, ds / "images")
    assert res["task_count"] == 5 and res["prediction_count"] == 5, res
    by_stem = server.tasks(pid, lambda t: t["data"]["alnb_stem"])
    assert sorted(by_stem) == ws.stems("GT2")
    for stem, task in by_stem.items():  # pre-annotations arrive exactly; images are served from the dataset
        (pred,) = task["predictions"]
        got = sorted((r["value"]["rectanglelabels"][0], *yolo_of(r["value"])) for r in pred["result"])
        want = sorted((ws.names[c], cx, cy, w, h) for c, cx, cy, w, h, _ in AUTO)
        assert [g[0] for g in got] == [w_[0] for w_ in want]
        np.testing.assert_allclose([g[1:] for g in got], [w_[1:] for w_ in want], atol=1e-9)
        st, img = server.api("GET", task["data"]["image"], raw=True)
        image = ws.manifest().set_index("stem").at[stem, "image"]
        assert st == 200 and img == (ds / image).read_bytes()

    # 3. people's work: accept, move, delete, add; the fifth task stays unlabelled for now
    stems = ws.stems("GT2")
    expect = {}

    def submit(stem, result):
        task = by_stem[stem]
        st, ann = server.api("POST", f"/api/tasks/{task['id']}/annotations",
                             {"result": result, "was_cancelled": False, "ground_truth": False})
        assert st == 201, ann
        expect[stem] = sorted([ws.names.index(r["value"]["rectanglelabels"][0]), *yolo_of(r["value"])]
                              for r in result)

    base = lambda stem: json.loads(json.dumps(by_stem[stem]["predictions"][0]["result"]))  # noqa: E731
    submit(stems[0], base(stems[0]))  # accept as proposed
    moved = base(stems[1])
    moved[0]["value"]["x"] += 7.5
    moved[0]["value"]["y"] -= 4.0
    submit(stems[1], moved)  # move a box
    submit(stems[2], base(stems[2])[1:])  # delete a box
    added = base(stems[3]) + [{"id": "new1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                               "original_width": 96, "original_height": 64,
                               "value": {**ls_box(0.2, 0.75, 0.12, 0.2), "rectanglelabels": ["unfused"]}}]
    submit(stems[3], added)  # add a box

    # 4. Export > JSON, then import into the workspace
    st, data = server.api("GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true", raw=True)
    assert st == 200  # all tasks, the unlabelled one included (the UI's export holds the labelled ones only)
    first = tmp_path / "project-export.json"
    first.write_bytes(data)
    rc, out = cli(capsys, "import-labels", first, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0, out
    assert "4 new, 0 replaced, 0 unchanged, 1 skipped" in out and f"skipped (no submitted annotation): " \
                                                                  f"{stems[4]}" in out

    # 5. the label files, box by box
    for stem, want in expect.items():
        got = sorted(read_autolabels(ws.root / "labels" / f"{stem}.txt", len(ws.names))[:, :5].tolist())
        assert len(got) == len(want), stem
        np.testing.assert_allclose(got, want, atol=1e-8)
    assert len(expect[stems[2]]) == 2 and len(expect[stems[3]]) == 4
    assert abs(expect[stems[1]][0][1] - 0.3) > 0.05 or abs(expect[stems[1]][1][1] - 0.3) > 0.05
    src = ws.manifest().set_index("stem")["label_source"]
    assert (src[stems[:4]] == "human").all() and src[stems[4]] == "none"

    # re-importing the same export changes nothing; the task labelled later comes in with the next export
    before = tree_hash(ws.root)
    rc, out = cli(capsys, "import-labels", first, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and "0 new, 0 replaced, 4 unchanged, 1 skipped" in out and tree_hash(ws.root) == before
    submit(stems[4], base(stems[4]))
    st, data = server.api("GET", f"/api/projects/{pid}/export?exportType=JSON", raw=True)
    second = tmp_path / "project-export-2.json"
    second.write_bytes(data)
    rc, out = cli(capsys, "import-labels", second, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0 and "1 new, 0 replaced, 4 unchanged, 0 skipped" in out
    rc, out = cli(capsys, "status", "--workspace", ws.root)
    assert "GT2:       5 of 5 labelled, 0 waiting" in out
    assert tree_hash(ds) == ds_hash
    print(f"Label Studio started in {server.started:.0f} s; whole round trip {time.time() - t0:.0f} s")


def yolo_rows(label_file: Path) -> np.ndarray:
    """(n, 5) class cx cy w h of a YOLO label file ((0, 5) for a defect-free image's empty file)."""
    return np.loadtxt(label_file, ndmin=2).reshape(-1, 5) if label_file.read_text().strip() else np.zeros((0, 5))


def truth_result(label_file: Path, names) -> list:
    """A person's Label Studio annotation of an image: its true YOLO labels as ``rectanglelabels`` results."""
    rows = yolo_rows(label_file)
    return [{"id": f"b{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": 64, "original_height": 64,
             "value": {**ls_box(*r[1:5]), "rectanglelabels": [names[int(r[0])]]}} for i, r in enumerate(rows)]


def test_rounds_2_and_3_in_one_label_studio_project(label_studio, tmp_path, capsys, monkeypatch):
    """``alnb run --rounds 3`` on a dataset with unlabelled images, labelled in one real Label Studio project: every
    stop (exit 3) names its queue (GT2, CONTROL, GT3, CONTROL3 as far as they hold unlabelled images); its tasks.json
    is imported into the *same* project, labelled there, and the whole project exported once; rerunning the command
    imports it.  Earlier rounds' labels come back with every export and are recognised as unchanged: no label is
    lost or overwritten, no image is queued twice, and the dataset folder is never written to."""
    monkeypatch.setenv("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", str(label_studio.document_root))  # as for the server
    base = Path(tempfile.mkdtemp(prefix="rounds-", dir=label_studio.document_root))
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=40, width=64, height=64, seed=3), progress=False)
    truth = tmp_path / "truth"
    truth.mkdir()
    for i, lab in enumerate(sorted((ds / "labels").glob("*.txt"))):
        if i % 2:  # every other image is unlabelled: people label it in Label Studio
            lab.rename(truth / lab.name)
    ds_hash = tree_hash(ds)
    ws = tmp_path / "ws"
    argv = ["run", "--data", ds, "--workspace", ws, "--profile", "smoke", "--T", 2, "--n-val", 8, "--n-gt1", 8,
            "--budget", 4, "--rounds", 3]
    server, pid, names = label_studio, None, None
    queued, stops, labels_after = {}, [], {}  # stem -> tag of the queue it came in; tags in stop order
    rest = []
    for _ in range(6):  # at most GT2, CONTROL, GT3, CONTROL3, then done
        rc, out = cli(capsys, *argv, *rest)
        if rc == 0:
            break
        assert rc == 3, out
        tag = out.split("waiting for labels: ", 1)[1].split(" image(s)")[0].split()[-1]
        stops.append(tag)
        queue = Path(out.split(f"the {tag} queue, hardest first: ", 1)[1].split(" (")[0]).parent
        tasks = json.loads((queue / "tasks.json").read_text())
        stems = [t["data"]["alnb_stem"] for t in tasks]
        assert stems and not set(stems) & set(queued), (tag, stems)  # only images nobody has labelled or queued
        assert all((truth / f"{s}.txt").is_file() for s in stems)  # the queue holds exactly unlabelled images
        if pid is None:  # one project for every round
            names = Workspace.open(ws).names
            st, project = server.api("POST", "/api/projects", {"title": "alnb rounds",
                                                               "label_config": (queue / "label_config.xml").read_text()})
            assert st == 201, project
            pid = project["id"]
            st, res = server.api("POST", "/api/storages/localfiles", {"project": pid, "path": str(ds / "images"),
                                                                     "use_blob_urls": False, "title": "dataset"})
            assert st == 201, res
        st, res = server.api("POST", f"/api/projects/{pid}/import", tasks)
        assert st == 201 and res["task_count"] == len(tasks), res
        by_stem = server.tasks(pid, lambda t: t["data"]["alnb_stem"])
        assert sorted(by_stem) == sorted([*queued, *stems])  # earlier rounds' tasks stay, nothing twice
        for s in stems:
            queued[s] = tag
            st, img = server.api("GET", by_stem[s]["data"]["image"], raw=True)
            assert st == 200 and img == (ds / "images" / f"{s}.png").read_bytes()  # served through the queue's URL
            st, ann = server.api("POST", f"/api/tasks/{by_stem[s]['id']}/annotations",
                                 {"result": truth_result(truth / f"{s}.txt", names), "was_cancelled": False})
            assert st == 201, ann
        st, data = server.api("GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true", raw=True)
        assert st == 200
        export = tmp_path / f"export-{len(stops)}.json"  # one export per stop, the whole project each time
        export.write_bytes(data)
        rest = ["--labels", export, "--label-format", "labelstudio"]
        labels_after[tag] = {p.name: p.read_bytes() for p in (ws / "labels").glob("*.txt")}
    else:
        pytest.fail(f"the loop did not finish after the stops {stops}")
    assert "GT2" in stops and "GT3" in stops, stops  # rounds 2 and 3 were labelled in the one project
    assert "report:" in out
    w = Workspace.open(ws)
    m = w.manifest().set_index("stem")
    for s, tag in queued.items():  # every person's label, box by box, from the Label Studio export
        want = yolo_rows(truth / f"{s}.txt")
        got = read_autolabels(ws / "labels" / f"{s}.txt", len(w.names))[:, :5]
        assert got.shape == want.shape, s
        np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])], atol=1e-6)
        assert m.at[s, "label_source"] == "human" and tag in tag_set(m.at[s, "tags"]), s
    final = {p.name: p.read_bytes() for p in (ws / "labels").glob("*.txt")}
    for tag, snap in labels_after.items():  # nothing a later round imported replaced an earlier label
        assert all(final[n] == b for n, b in snap.items()), tag
    assert all(w.stems(t) for t in ("GT2", "CONTROL", "GT3", "CONTROL3"))
    assert tree_hash(ds) == ds_hash
    rc, out = cli(capsys, "status", "--workspace", ws)
    assert rc == 0 and "next:      done" in out, out


# ---------------------------------------------------------------------------------- alnb serve as the ML backend
def http_json(method, url, body=None, timeout=60):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as f:
            return f.status, json.loads(f.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(cond, what, timeout=90):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.5)


def yolo_text(result, names) -> str:
    """The label file a person's Label Studio boxes must become (YOLO ``class cx cy w h``, 10 significant digits),
    computed here from the percent / top-left values independently of alnb's conversion."""
    lines = []
    for r in result:
        if r["type"] != "rectanglelabels":
            continue
        v = r["value"]
        x0, y0 = v["x"] / 100, v["y"] / 100
        x1, y1 = x0 + v["width"] / 100, y0 + v["height"] / 100
        x0, y0, x1, y1 = (min(max(c, 0.0), 1.0) for c in (x0, y0, x1, y1))
        lines.append(f"{names.index(v['rectanglelabels'][0])} {(x0 + x1) / 2:.10g} {(y0 + y1) / 2:.10g} "
                     f"{x1 - x0:.10g} {y1 - y0:.10g}")
    return "\n".join(lines) + ("\n" if lines else "")


@pytest.fixture
def serve_ws(label_studio):
    """A smoke workspace in real mode: 24 images (12 without labels), CAL1 trained (smoke profile) and the POOL
    scored (T=4); its dataset lies below Label Studio's document root."""
    from alnb.acquisition.scoring import score_pool

    base = Path(tempfile.mkdtemp(prefix="serve-", dir=label_studio.document_root))
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=24, width=64, height=64, seed=2), progress=False)
    for lab in sorted((ds / "labels").glob("*.txt"))[12:]:
        lab.unlink()
    ws = pipeline.setup(base / "ws", ds, n_val=4, n_gt1=4, log=None)
    pipeline.train_and_evaluate(ws, "CAL1", ["GT1"], "smoke")
    score_pool(ws, model="CAL1", T=4, progress=False)
    return ws


def test_alnb_serve_as_label_studio_ml_backend(serve_ws, label_studio, tmp_path):
    """``alnb serve`` connected to a real Label Studio through ``POST /api/ml``: Label Studio's stored predictions
    are the workspace's auto-labels, sorting by prediction score ascending gives the labelling-queue order, and
    *Start training* (``POST /api/ml/{id}/train`` -> webhook START_TRAINING) imports people's annotations and serves
    the next model."""
    from alnb.labels.formats.common import queue
    from alnb.core.scoretable import load_scores

    ws, server, docs = serve_ws, label_studio, label_studio.document_root
    t0 = time.time()
    names = ws.names
    m = ws.manifest().set_index("stem")
    pool = sorted(load_scores(ws)["stem"])
    url_of = {s: "/data/local-files/?d=" + (ws.dataset_root / m.at[s, "image"]).relative_to(docs).as_posix()
              for s in pool}
    newcomer = ws.dataset_root.parent / "later" / "added_later.png"  # an image the workspace does not know
    newcomer.parent.mkdir()
    newcomer.write_bytes((ws.dataset_root / m.at[pool[0], "image"]).read_bytes())
    later = "/data/local-files/?d=" + newcomer.relative_to(docs).as_posix()
    missing = "/data/local-files/?d=" + (ws.dataset_root.parent / "later" / "gone.png").relative_to(docs).as_posix()

    # alnb serve, as a person starts it (the token from the environment)
    port = free_port()
    env = {**os.environ, "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": server.token}
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "alnb", "serve", "--workspace", str(ws.root), "--port", str(port),
                             "--document-root", str(docs)], env=env, stdout=log, stderr=subprocess.STDOUT)
    backend = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                st, health = http_json("GET", backend + "/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                time.sleep(0.2)
        assert st == 200 and health["status"] == "UP", health
        v1 = health["model_version"]
        assert v1.startswith("CAL1-")

        # a project with the config alnb serve wrote, its images, and the backend connected as Label Studio does it
        config = (ws.root / "serve" / "label_config.xml").read_text()
        st, project = server.api("POST", "/api/projects", {"title": "alnb serve", "label_config": config})
        assert st == 201, project
        pid = project["id"]
        st, storage = server.api("POST", "/api/storages/localfiles", {"project": pid, "path": str(ws.dataset_root.parent),
                                                                     "use_blob_urls": False, "title": "images"})
        assert st == 201, storage
        tasks = [{"data": {"image": url_of[s]}} for s in pool] + [{"data": {"image": u}} for u in (later, missing)]
        st, res = server.api("POST", f"/api/projects/{pid}/import", tasks)
        assert st == 201 and res["task_count"] == len(tasks), res
        st, ml = server.api("POST", "/api/ml", {"url": backend, "project": pid, "title": "alnb"})
        assert st == 201, ml
        assert ml["model_version"] == v1, ml

        # Label Studio asks the backend for predictions (Data Manager: Retrieve Predictions)
        def retrieve():
            st, out = server.api("POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={pid}",
                                 {"selectedItems": {"all": True, "excluded": []}})
            assert st == 200, out

        retrieve()
        by_url = server.tasks(pid, lambda t: t["data"]["image"])
        scores = load_scores(ws).set_index("stem")
        for s in pool:
            (pred,) = by_url[url_of[s]]["predictions"]
            assert pred["model_version"] == v1
            boxes = [r for r in pred["result"] if r["type"] == "rectanglelabels"]
            auto = read_autolabels(ws.root / "autolabels" / "CAL1" / f"{s}.txt", len(names))
            assert len(boxes) == len(auto), s
            for r, (c, cx, cy, w, h, conf) in zip(boxes, auto):  # same order: highest confidence first
                v = r["value"]
                assert v["rectanglelabels"] == [names[int(c)]] and r["score"] == pytest.approx(conf, abs=1e-12)
                np.testing.assert_allclose([v["x"], v["y"], v["width"], v["height"]],
                                           [(cx - w / 2) * 100, (cy - h / 2) * 100, w * 100, h * 100], atol=1e-3)
            row = scores.loc[s]
            assert pred["score"] == pytest.approx(0.5 * (1 - row["score"]) + (0 if row["failed"] else 0.5))
            extras = {r["from_name"]: r["value"] for r in pred["result"] if r["type"] != "rectanglelabels"}
            assert extras["alnb_tier"]["choices"] == ["failed" if row["failed"] else row["tier"]]
            assert extras["alnb_difficulty"]["number"] == pytest.approx(row["score"], abs=1e-6)
        assert len(by_url[later]["predictions"]) == 1  # scored on the fly with the same model
        assert by_url[missing]["predictions"] == []  # its image cannot be read: no prediction, the rest are there

        # Data Manager: prediction score ascending = the labelling queue (failed first, then hardest first); alnb
        # serve has set the project's model version to its own (the column shows that version's scores only)
        wait_for(lambda: server.api("GET", f"/api/projects/{pid}")[1]["model_version"] == v1, "model version v1")
        q = json.dumps({"ordering": ["tasks:predictions_score"]})
        st, listing = server.api("GET", f"/api/tasks?project={pid}&page_size=100&fields=all&query="
                                        + urllib.parse.quote(q))
        assert st == 200
        order = [t["data"]["image"] for t in listing["tasks"] if t["data"]["image"] in set(url_of.values())]
        assert order == [url_of[s] for s in queue(ws, tag=None, stems=pool)["stem"]], listing["tasks"][:3]

        # filter on the tier read-out: Data Manager "Prediction results contains ["hard"]"
        for tier in ("failed", "hard"):
            q = json.dumps({"filters": {"conjunction": "and", "items": [{
                "filter": "filter:tasks:predictions_results", "operator": "contains", "type": "String",
                "value": json.dumps([tier])}]}})
            st, listing = server.api("GET", f"/api/tasks?project={pid}&page_size=100&query=" + urllib.parse.quote(q))
            assert st == 200
            got = sorted(t["data"]["image"] for t in listing["tasks"] if t["data"]["image"] in set(url_of.values()))
            want = sorted(url_of[s] for s in pool if ("failed" if scores.at[s, "failed"] else scores.at[s, "tier"])
                          == tier)
            assert got == want and (tier != "failed" or want), (tier, got, want)

        # people label four images: accept, move a box, delete everything, draw a box the model missed
        chosen = pool[1:5]
        expect = {}
        for i, s in enumerate(chosen):
            task = by_url[url_of[s]]
            boxes = [r for r in task["predictions"][0]["result"] if r["type"] == "rectanglelabels"]
            if i == 1 and boxes:
                boxes[0]["value"]["x"] = max(0.0, boxes[0]["value"]["x"] - 3.25)
            if i == 2:
                boxes = []
            if i == 3 or not boxes and i != 2:
                boxes.append({"id": f"p{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                              "original_width": 64, "original_height": 64,
                              "value": {**ls_box(0.4, 0.55, 0.3, 0.2), "rectanglelabels": [names[1]]}})
            st, ann = server.api("POST", f"/api/tasks/{task['id']}/annotations",
                                 {"result": boxes, "was_cancelled": False, "ground_truth": False})
            assert st == 201, ann
            expect[s] = yolo_text(ann["result"], names)

        # Start training: Label Studio posts START_TRAINING to the backend's /webhook
        st, out = server.api("POST", f"/api/ml/{ml['id']}/train", {})
        assert st == 200, out
        t_train = time.time()
        busy = None
        while time.time() - t_train < 600:
            st, health = http_json("GET", backend + "/health", timeout=5)  # answers while the model trains
            assert st == 200
            if health["busy"] and busy is None:  # a second request is not queued
                st, busy = http_json("POST", backend + "/webhook", {"action": "START_TRAINING", "project": {"id": pid}})
                assert st == 200 and busy["status"] == "busy", busy
                st, pr = http_json("POST", backend + "/predict", {"tasks": [{"id": 1, "data": {"image": url_of[pool[0]]}}],
                                                                  "label_config": config})
                assert st == 200 and pr["model_version"] == v1
            if health["training"] and health["training"]["state"] in ("finished", "failed", "interrupted"):
                break
            time.sleep(1)
        assert health["training"]["state"] == "finished", (health, (tmp_path / "serve.log").read_text()[-3000:])
        v2 = health["model_version"]
        assert v2.startswith("CAL2-") and v2 != v1
        assert busy is not None, "the training finished before a second request could be sent"

        # the workspace has people's labels exactly as Label Studio holds them, and GT2 = what they labelled
        man = ws.manifest().set_index("stem")
        for s, text in expect.items():
            assert (ws.root / "labels" / f"{s}.txt").read_text() == text, s
            assert man.at[s, "label_source"] == "human"
        assert ws.stems("GT2") == sorted(chosen)
        assert (ws.root / "runs" / "CAL2" / "weights" / "best.pt").is_file()

        # Label Studio now gets the new model's predictions
        retrieve()
        by_url = server.tasks(pid, lambda t: t["data"]["image"])
        versions = {p["model_version"] for p in by_url[url_of[pool[-1]]]["predictions"]}
        assert versions == {v1, v2}, versions
        st, ml_now = server.api("GET", f"/api/ml/{ml['id']}")
        assert ml_now["model_version"] == v2
        wait_for(lambda: server.api("GET", f"/api/projects/{pid}")[1]["model_version"] == v2, "model version v2")
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    text = (tmp_path / "serve.log").read_text()
    assert server.token not in text and "Traceback" not in text, text[-3000:]
    print(f"alnb serve in Label Studio: {time.time() - t0:.0f} s (training {time.time() - t_train:.0f} s)")


# ------------------------------------------------------------------------------------- the annotators' own seconds
SCRIPTED = {"t_image": 4.0, "t_verify": 2.0, "t_delete": 1.5, "t_draw": 12.0, "t_adjust": 3.0}  # seconds per action
GRID = [(0.15 + 0.23 * i, 0.3 + 0.4 * j) for j in range(2) for i in range(4)]  # 8 cells: boxes never overlap


def test_measured_seconds_from_label_studio(label_studio, tmp_path, capsys):
    """A scripted annotator with known seconds per action (plus noise) corrects alnb's pre-annotations in a real Label
    Studio project (and labels some images from scratch); Label Studio records each annotation's ``lead_time`` and the
    prediction it started from, its JSON export carries both, ``alnb import-labels`` keeps them, and the cost model
    fitted from them recovers the scripted seconds within its intervals."""
    from alnb.evaluation import labeltimes
    from alnb.ui import report

    rng = np.random.default_rng(5)
    base = Path(tempfile.mkdtemp(prefix="times-", dir=label_studio.document_root))
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=56, width=96, height=64, seed=4), progress=False)
    for lab in sorted((ds / "labels").glob("*.txt"))[14:]:
        lab.unlink()  # 42 images nobody has labelled
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    unl = sorted(ws.manifest().query("label_state == 'unlabelled'")["stem"])
    proposals = {}
    for s in unl:
        cells = rng.permutation(len(GRID))[: int(rng.integers(1, 6))]
        proposals[s] = [(int(rng.integers(0, 6)), *GRID[c], 0.15, 0.2) for c in cells]
    plant_autolabels(ws, {s: [(*b, 0.8) for b in boxes] for s, boxes in proposals.items()})
    pd.DataFrame({"stem": unl, "score": np.linspace(0.2, 0.9, len(unl)), "tier": "hard",
                  "failed": False}).to_csv(ws.root / "scores.csv", index=False)
    sel.commit(ws, unl, "GT2")
    rc, out = cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio", "--document-root",
                  label_studio.document_root)
    assert rc == 0, out
    export = ws.root / "export" / "labelstudio"
    server = label_studio
    pid, res = new_project(server, "alnb seconds", export, json.loads((export / "tasks.json").read_text()))
    assert res["task_count"] == len(unl), res
    by_stem = server.tasks(pid, lambda t: t["data"]["alnb_stem"])

    def region(i, c, x, y, w, h):
        return {"id": f"r{i}", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
                "original_width": 96, "original_height": 64,
                "value": {**ls_box(x, y, w, h), "rectanglelabels": [ws.names[c]]}}

    scripted = {}
    for k, s in enumerate(unl):
        task = by_stem[s]
        (pred,) = task["predictions"]
        free = [g for g in GRID if all(abs(g[0] - p[1]) > 1e-9 or abs(g[1] - p[2]) > 1e-9 for p in proposals[s])]
        n_draw = int(rng.integers(0, min(3, len(free)) + 1))
        drawn = [(int(rng.integers(0, 6)), *free[i], 0.12, 0.18) for i in range(n_draw)]
        if k % 4 == 3:  # from scratch: no pre-annotation shown
            final, counts, parent = drawn or [(0, *free[0], 0.12, 0.18)], None, None
            counts = {"n_proposals": 0, "n_deleted": 0, "n_moved": 0, "n_drawn": len(final)}
        else:
            fate = rng.choice(["keep", "move", "delete"], size=len(proposals[s]), p=[0.5, 0.25, 0.25])
            final = [(c, x + (0.04 if f == "move" else 0.0), y, w, h) for (c, x, y, w, h), f
                     in zip(proposals[s], fate) if f != "delete"] + drawn
            counts = {"n_proposals": len(fate), "n_deleted": int((fate == "delete").sum()),
                      "n_moved": int((fate == "move").sum()), "n_drawn": len(drawn)}
            parent = pred["id"]
        lead = (SCRIPTED["t_image"] + SCRIPTED["t_verify"] * counts["n_proposals"]
                + SCRIPTED["t_delete"] * counts["n_deleted"] + SCRIPTED["t_draw"] * counts["n_drawn"]
                + SCRIPTED["t_adjust"] * counts["n_moved"] + float(rng.normal(0, 1.0)))
        body = {"result": [region(i, *b) for i, b in enumerate(final)], "was_cancelled": False,
                "ground_truth": False, "lead_time": round(lead, 3)}
        if parent is not None:
            body["parent_prediction"] = parent
        st, ann = server.api("POST", f"/api/tasks/{task['id']}/annotations", body)
        assert st == 201, ann
        scripted[s] = {**counts, "lead_time_s": round(lead, 3), "pre_annotated": parent is not None}

    st, data = server.api("GET", f"/api/projects/{pid}/export?exportType=JSON", raw=True)
    assert st == 200
    path = tmp_path / "export.json"
    path.write_bytes(data)
    exported = {t["data"]["alnb_stem"]: t["annotations"][0] for t in json.loads(data)}
    assert all(exported[s].get("lead_time") == pytest.approx(scripted[s]["lead_time_s"]) for s in unl)
    rc, out = cli(capsys, "import-labels", path, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0, out

    records = labeltimes.collect(ws).set_index("stem")
    assert sorted(records.index) == unl
    for s in unl:  # every annotation's seconds and actions, as the annotator did them
        got = records.loc[s]
        for key, want in scripted[s].items():
            assert got[key] == pytest.approx(want), (s, key, got[key], want)
    fit = labeltimes.fit_costs(records.reset_index(), n_boot=400)
    assert fit.trusted and fit.n == len(unl) and fit.message == f"measured on {len(unl)} annotations by 1 person"
    for c, v in SCRIPTED.items():
        assert c in fit.measured and fit.lo[c] <= v <= fit.hi[c], (c, fit.lo[c], fit.value[c], fit.hi[c])
    costs, source = labeltimes.workspace_costs(ws)
    assert source == fit.message and costs.t_draw == pytest.approx(fit.value["t_draw"])
    rc, out = cli(capsys, "costs", "--workspace", ws.root)
    assert rc == 0 and f"costs used: measured on {len(unl)} annotations by 1 person" in out, out
    assert "from scratch" in out and "pre-labelled" in out and "measured boost" in out
    rc, out = cli(capsys, "status", "--workspace", ws.root)
    assert rc == 0 and f"costs:     measured on {len(unl)} annotations by 1 person" in out, out
    section = "\n".join(report.labelling_seconds_section(ws))
    assert f"**measured on {len(unl)} annotations by 1 person**" in section and "t_draw" in section
    print("fitted seconds:", {c: f"{fit.value[c]:.2f} [{fit.lo[c]:.2f}, {fit.hi[c]:.2f}]" for c in SCRIPTED})


# ------------------------------------------------------------------------------------ the review plan's queue
def test_review_queue_round_trip(label_studio, tmp_path, capsys):
    """The review plan in a real Label Studio: ``alnb review --accept`` on planted scores (a real-mode workspace whose
    POOL has auto-labels, a calibration set with known errors), ``alnb export-queue --review`` (exactly the plan's
    review images, pre-annotated, prediction score descending = plan order), people review two of them (one accepted
    as proposed, one corrected), ``alnb import-labels``: the reviewed images are people's labels (machine-reviewed),
    the accepted ones stay machine-accepted and machine-marked in every final export, a label a person gave before is
    byte-identical, and the dataset folder is untouched."""
    from alnb.labels import labelio
    from alnb.loop import reviewstep

    rng = np.random.default_rng(7)
    base = Path(tempfile.mkdtemp(prefix="review-", dir=label_studio.document_root))
    ds = weld.generate(base / "dataset", weld.WeldConfig(n_images=20, width=96, height=64, seed=2), progress=False)
    for lab in sorted((ds / "labels").glob("*.txt"))[12:]:
        lab.unlink()  # 8 images nobody has labelled yet
    ds_hash = tree_hash(ds)
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    names = ws.names
    unl = sorted(ws.manifest().query("label_state == 'unlabelled'")["stem"])
    plant_autolabels(ws, {s: AUTO for s in unl})
    score = np.linspace(0.1, 0.9, len(unl))[rng.permutation(len(unl))]
    feats = lambda sc: {"n_det": 3, "n_cand": 4, "score_sum": 3 * sc, "count_var": sc / 2}  # noqa: E731
    pd.DataFrame({"stem": unl, "model": "CAL1", "score": score, "tier": "hard", "failed": False,
                  **feats(score)}).to_csv(ws.root / "scores.csv", index=False)
    ws.save_json("mc_scoring", {"model": "CAL1", "scoring_key": "planted"})
    cal = rng.random(40)  # the calibration set (VAL1 scored by the same model): errors grow with the score
    n_fp, n_fn = rng.poisson(2 * cal), rng.poisson(1.5 * cal)
    (ws.root / "scores" / "CAL1").mkdir(parents=True)
    pd.DataFrame({"stem": [f"cal{i:03d}" for i in range(40)], "model": "CAL1", "score": cal, "failed": False,
                  **feats(cal), "has_error": (n_fp + n_fn) > 0, "n_fp": n_fp, "n_fn": n_fn, "n_gt": 3 - n_fp + n_fn,
                  "scoring_key": "planted"}).to_csv(ws.root / "scores" / "CAL1" / "val1_scores.csv", index=False)
    person = unl[0]  # a person labelled this image before the plan
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / f"{person}.txt").write_text("3 0.25 0.5 0.2 0.3\n")
    labelio.import_labels(ws, mine, "yolo", tag="any")
    person_bytes = (ws.root / "labels" / f"{person}.txt").read_bytes()

    # 1. the plan, the acceptance, the review queue
    rc, out = cli(capsys, "review", "--workspace", ws.root, "--fraction", "0.5", "--accept")
    assert rc == 0 and "machine-accepted" in out, out
    split = reviewstep.review_split(ws)
    review, accepted = list(split["review"]["stem"]), list(split["accepted"]["stem"])
    assert len(review) == 4 and len(accepted) == 3 and sorted(review + accepted) == unl[1:]
    rc, out = cli(capsys, "export-queue", "--workspace", ws.root, "--review", "--format", "labelstudio",
                  "--document-root", label_studio.document_root)
    assert rc == 0, out
    export = ws.root / "export" / "review" / "labelstudio"
    tasks = json.loads((export / "tasks.json").read_text())
    assert [t["data"]["alnb_stem"] for t in tasks] == review

    # 2. Label Studio: the review images arrive with their pre-annotations; sorting by prediction score = the plan
    server = label_studio
    pid, res = new_project(server, "alnb review queue", export, tasks, ds / "images")
    assert res["task_count"] == 4 and res["prediction_count"] == 4, res
    by_stem = server.tasks(pid, lambda t: t["data"]["alnb_stem"])
    assert sorted(by_stem) == sorted(review)
    for stem, task in by_stem.items():
        (pred,) = task["predictions"]
        got = sorted((r["value"]["rectanglelabels"][0], *yolo_of(r["value"])) for r in pred["result"])
        want = sorted((names[c], cx, cy, w, h) for c, cx, cy, w, h, _ in AUTO)
        assert [g[0] for g in got] == [w_[0] for w_ in want]
        np.testing.assert_allclose([g[1:] for g in got], [w_[1:] for w_ in want], atol=1e-9)
    st, res = server.api("PATCH", f"/api/projects/{pid}", {"model_version": "CAL1"})  # show CAL1's scores
    assert st == 200, res
    q = json.dumps({"ordering": ["-tasks:predictions_score"]})
    st, listing = server.api("GET", f"/api/tasks?project={pid}&page_size=100&fields=all&query=" + urllib.parse.quote(q))
    assert st == 200 and [t["data"]["alnb_stem"] for t in listing["tasks"]] == review

    # 3. people review two images: one accepted as proposed, one corrected (a box moved, one deleted)
    expect = {}

    def submit(stem, result):
        st, ann = server.api("POST", f"/api/tasks/{by_stem[stem]['id']}/annotations",
                             {"result": result, "was_cancelled": False, "ground_truth": False})
        assert st == 201, ann
        expect[stem] = yolo_text(ann["result"], names)

    proposal = lambda stem: json.loads(json.dumps(by_stem[stem]["predictions"][0]["result"]))  # noqa: E731
    submit(review[0], proposal(review[0]))
    corrected = proposal(review[1])[1:]
    corrected[0]["value"]["x"] += 6.0
    submit(review[1], corrected)
    st, data = server.api("GET", f"/api/projects/{pid}/export?exportType=JSON&download_all_tasks=true", raw=True)
    assert st == 200
    path = tmp_path / "review-export.json"
    path.write_bytes(data)

    # 4. the import: the default selections refuse POOL images by name (nothing changes); --tag any takes them
    before = tree_hash(ws.root)
    rc, out = cli(capsys, "import-labels", path, "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 2 and "not_in_selection" in out and "--tag any" in out and tree_hash(ws.root) == before
    rc, out = cli(capsys, "import-labels", path, "--workspace", ws.root, "--format", "labelstudio", "--tag", "any")
    assert rc == 0 and "2 new, 0 replaced, 0 unchanged, 2 skipped" in out and "final label set" in out, out
    src = ws.manifest().set_index("stem")["label_source"]
    for s, text in expect.items():
        assert (ws.root / "labels" / f"{s}.txt").read_text() == text and src[s] == "human"
    assert len(expect[review[1]].splitlines()) == 2 and expect[review[0]] != expect[review[1]]
    assert (src[accepted] == "accepted").all() and not src[review[2:]].isin(["human", "accepted"]).any()
    assert src[person] == "human" and (ws.root / "labels" / f"{person}.txt").read_bytes() == person_bytes

    # 5. the final label set (the import refreshed final/), every format: reviewed = people's (machine-reviewed),
    # accepted = machine-marked
    final = {fmt: ws.root / reviewstep.FINAL_DIR / fmt for fmt in ("yolo", "coco", "labelstudio", "cvat")}
    prov = pd.read_csv(final["yolo"] / "provenance.csv", dtype={"stem": str}).set_index("stem")
    assert (prov.loc[review[:2], "provenance"] == "machine-reviewed").all()
    assert (prov.loc[accepted, "provenance"] == "machine-accepted").all() and prov.at[person, "provenance"] == "human"
    assert not set(review[2:]) & set(prov.index)  # still waiting for review: never in the final set
    for s in review[:2]:
        assert (final["yolo"] / "labels" / f"{s}.txt").read_text() == expect[s]
    auto_text = "".join(f"{c} {cx:.10g} {cy:.10g} {w:.10g} {h:.10g}\n" for c, cx, cy, w, h, _ in AUTO)
    for s in accepted:
        assert (final["yolo"] / "labels" / f"{s}.txt").read_text() == auto_text
    assert (final["yolo"] / "labels" / f"{person}.txt").read_bytes() == person_bytes
    coco = json.loads((final["coco"] / "instances.json").read_text())
    marks = {im["alnb_stem"]: im["alnb_provenance"] for im in coco["images"]}
    ids = {im["alnb_stem"]: im["id"] for im in coco["images"]}
    assert {marks[s] for s in accepted} == {"machine-accepted"} and {marks[s] for s in review[:2]} == {
        "machine-reviewed"}
    acc_anns = [a for a in coco["annotations"] if a["image_id"] in {ids[s] for s in accepted}]
    assert len(acc_anns) == 3 * len(accepted)
    assert all(a["alnb_provenance"] == "machine-accepted" and a["alnb_model"] == "CAL1" for a in acc_anns)
    ls_final = {t["data"]["alnb_stem"]: t for t in json.loads((final["labelstudio"] / "tasks.json").read_text())}
    for s in accepted:
        t = ls_final[s]
        assert t["annotations"] == [] and t["data"]["alnb_provenance"] == "machine-accepted"
        assert [p["model_version"] for p in t["predictions"]] == ["machine-accepted:CAL1"]
    for s in review[:2]:
        assert ls_final[s]["predictions"] == [] and ls_final[s]["annotations"][0]["alnb_provenance"] == \
               "machine-reviewed"
    import zipfile

    with zipfile.ZipFile(final["cvat"] / "cvat_yolo1.1.zip") as z:
        cv = pd.read_csv(z.open("provenance.csv"), dtype={"stem": str}).set_index("stem")
    assert (cv.loc[accepted, "provenance"] == "machine-accepted").all()
    assert (cv.loc[review[:2], "provenance"] == "machine-reviewed").all()
    assert tree_hash(ds) == ds_hash
