"""Integration test against a real Label Studio server (the README's "Label the queue" loop, command for command).

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
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alnb import pipeline, weld
from alnb import select as sel
from alnb.labelio import read_autolabels

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
        env = {**os.environ, "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
               "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(document_root), "LATEST_VERSION_CHECK": "false",
               "COLLECT_ANALYTICS": "false", "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir)}
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
    from alnb.cli import main

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


@pytest.fixture
def loop_ws(tmp_path):
    """A real-loop workspace: a dataset with unlabelled images, GT2 = 5 of them with CAL1 auto-labels + scores (the
    state ``alnb run`` stops in with exit code 3)."""
    ds = weld.generate(tmp_path / "dataset", weld.WeldConfig(n_images=20, width=96, height=64, seed=2), progress=False)
    labels = sorted((ds / "labels").glob("*.txt"))
    for lab in labels[12:]:
        lab.unlink()  # 8 images nobody has labelled yet
    ws = pipeline.setup(tmp_path / "ws", ds, n_val=4, n_gt1=4, log=None)
    unl = sorted(ws.manifest().query("label_state == 'unlabelled'")["stem"])
    auto = ws.root / "autolabels" / "CAL1"
    auto.mkdir(parents=True)
    for s in unl:
        (auto / f"{s}.txt").write_text("".join(f"{c} {cx} {cy} {w} {h} {p}\n" for c, cx, cy, w, h, p in AUTO))
    m = ws.manifest()
    m.loc[m["stem"].isin(unl), "auto_model"] = "CAL1"
    ws.write_manifest(m)
    pd.DataFrame({"stem": unl, "score": np.linspace(0.2, 0.9, len(unl)), "tier": "hard",
                  "failed": False}).to_csv(ws.root / "scores.csv", index=False)
    sel.commit(ws, unl[:5], "GT2")
    return ws


def test_label_studio_round_trip(loop_ws, tmp_path, capsys):
    ws = loop_ws
    ds = ws.dataset_root
    ds_hash = tree_hash(ds)
    t0 = time.time()

    # 1. the queue
    rc, out = cli(capsys, "export-queue", "--workspace", ws.root, "--format", "labelstudio")
    assert rc == 0, out
    export = ws.root / "export" / "labelstudio"
    tasks = json.loads((export / "tasks.json").read_text())
    assert len(tasks) == 5

    # 2. Label Studio with local-file serving rooted at the dataset folder
    server = LabelStudio(tmp_path / "ls-data", ds, tmp_path / "label-studio.log")
    try:
        started = server.wait()
        st, project = server.api("POST", "/api/projects", {"title": "alnb GT2 queue",
                                                           "label_config": (export / "label_config.xml").read_text()})
        assert st == 201, project
        pid = project["id"]
        st, storage = server.api("POST", "/api/storages/localfiles", {"project": pid, "path": str(ds / "images"),
                                                                     "use_blob_urls": False, "title": "dataset"})
        assert st == 201, storage
        st, res = server.api("POST", f"/api/projects/{pid}/import", tasks)
        assert st == 201 and res["task_count"] == 5 and res["prediction_count"] == 5, res
        st, listing = server.api("GET", f"/api/tasks?project={pid}&page_size=100")
        assert st == 200
        by_stem = {}
        for t in listing["tasks"]:
            st, full = server.api("GET", f"/api/tasks/{t['id']}")
            by_stem[full["data"]["alnb_stem"]] = full
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
    finally:
        server.stop()
    assert tree_hash(ds) == ds_hash
    print(f"Label Studio started in {started:.0f} s; whole round trip {time.time() - t0:.0f} s")
