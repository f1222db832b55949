"""Importing alnb and running a tiny train + predict must make no network request."""

import os

import pytest

import alnb  # noqa: F401
from alnb.core.offline import ensure_offline, yolo


def test_env_is_offline():
    ensure_offline()
    from ultralytics import utils

    assert os.environ["YOLO_OFFLINE"] == "1" and utils.ONLINE is False and utils.SETTINGS["sync"] is False


def test_missing_weights_are_never_downloaded(no_network, tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        yolo(tmp_path / "yolov8n.pt")


@pytest.mark.slow
def test_tiny_train_and_predict_make_no_network_request(no_network, tiny_workspace):
    ws = tiny_workspace
    data = ws.write_data_yaml("net", ["GT1"])
    m = yolo("yolov8n.yaml")
    m.train(data=str(data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", project=str(ws.root / "runs"),
            name="net", exist_ok=True, plots=False, verbose=False, val=True)
    best = ws.root / "runs" / "net" / "weights" / "best.pt"
    assert best.is_file()
    res = yolo(best).predict(str(ws.view_image(ws.manifest().iloc[0])), imgsz=64, device="cpu", verbose=False)
    assert len(res) == 1
    assert no_network == []
