"""Folder source: real CK+48 frames → canonical labels and subject-disjoint splits; awkward files converted or
rejected with a reason, never lost."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pfvit.data.shards import EvalDataset, read_manifest
from pfvit.errors import UserError
from pfvit.labels import CANONICAL
from conftest import PYTHON, run_script

CK_CLASSES = {"anger": "anger", "contempt": "contempt", "disgust": "disgust", "fear": "fear", "happy": "happy",
              "sadness": "sad", "surprise": "surprise"}


def make(*args):
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=folder", *args])
    return proc


def test_ckplus48_labels_counts_and_subject_disjoint_splits(shared_data, tmp_path):
    root = shared_data / "ckplus48" / "CK+48"
    proc = make(f"root={root}", "dataset=ckplus48", r"subject_regex=^(S\d+)_", "img_size=48",
                f"out={tmp_path / 'ck'}")
    assert proc.returncode == 0, proc.stderr
    manifest = read_manifest(tmp_path / "ck")
    splits = manifest["splits"]
    totals = {name: sum(s["per_class"][name] for s in splits.values()) for name in CANONICAL}
    for folder, name in CK_CLASSES.items():
        assert totals[name] == len(list((root / folder).iterdir())), folder
    assert totals["neutral"] == 0 and sum(s["rejected"] for s in splits.values()) == 0
    subjects = [set(s["subjects"]) for s in splits.values()]
    assert len(set.union(*subjects)) == 118 and not (subjects[0] & subjects[1] or subjects[0] & subjects[2]
                                                       or subjects[1] & subjects[2])
    ds = EvalDataset(tmp_path / "ck", "test", lambda s: s)
    sample = ds[0]
    meta = sample["json"]
    assert CK_CLASSES[meta["original_label"]] == CANONICAL[sample["cls"]] == meta["label_name"]
    original = np.asarray(Image.open(root / meta["source"]).convert("L"), dtype=np.int16)
    stored = np.asarray(sample["jpg"], dtype=np.int16)
    assert stored.shape == (48, 48, 3) and np.abs(stored.mean(axis=2) - original).mean() < 4  # JPEG noise only


def test_awkward_files_are_converted_or_rejected_with_reasons(tmp_path):
    root = tmp_path / "faces"
    (root / "happy").mkdir(parents=True)
    (root / "sad").mkdir()
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))
    rgb.save(root / "happy" / "plain.png")
    alpha = Image.new("RGBA", (30, 30), (255, 0, 0, 128))
    alpha.paste((0, 0, 255, 255), (8, 8, 20, 20))  # an opaque square: a face crop of one flat colour is a reject
    alpha.save(root / "happy" / "alpha.png")
    Image.fromarray((rng.integers(0, 65535, (30, 30))).astype(np.uint16)).save(root / "happy" / "deep16.png")
    rgb.convert("CMYK").save(root / "happy" / "cmyk.jpg")
    rgb.convert("P").save(root / "happy" / "palette.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    rgb.save(root / "happy" / "rotated.jpg", exif=exif)
    (root / "sad" / "empty.jpg").write_bytes(b"")
    good = root / "sad" / "good.jpg"
    rgb.save(good)
    (root / "sad" / "truncated.jpg").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (root / "sad" / "notes.txt").write_text("not an image")
    proc = make(f"root={root}", "img_size=32", f"out={tmp_path / 's'}")
    assert proc.returncode == 0, proc.stderr
    manifest = read_manifest(tmp_path / "s")
    rejects = [r for s in manifest["splits"].values() for r in s["rejects"]]
    reasons = {Path(r["source"]).name: r["reason"] for r in rejects}
    assert reasons.keys() == {"empty.jpg", "truncated.jpg", "notes.txt"}
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["truncated.jpg"].startswith("cannot decode image") and "truncated" in reasons["truncated.jpg"]
    assert reasons["notes.txt"].startswith("cannot decode image")
    kept = sum(s["count"] for s in manifest["splits"].values())
    assert kept + len(rejects) == 10  # nothing disappears without a count
    samples = {}
    for split in manifest["splits"]:
        if manifest["splits"][split]["count"]:
            ds = EvalDataset(tmp_path / "s", split, lambda s: s)
            samples.update({Path(ds[i]["json"]["source"]).name: ds[i] for i in range(len(ds))})
    assert samples["rotated.jpg"]["json"]["original_size"] == [40, 30]  # EXIF rotation applied (was 30×40)
    assert samples["alpha.png"]["jpg"].size == (32, 32)
    assert np.asarray(samples["deep16.png"]["jpg"]).std() > 10  # 16-bit scaled, not clipped to white


def test_bad_synthetic_parameters_are_one_line_user_errors():
    from pfvit.config import load_config
    from pfvit.data.sources.dispatch import source_specs
    from pfvit.errors import ConfigError
    from pfvit.schemas.shards import ShardsConfig

    with pytest.raises(UserError, match="at least 3 identities for disjoint train/val/test, got 2"):
        source_specs(ShardsConfig(num=20, identities=2))
    with pytest.raises(UserError, match=r"disturbance strength must be in \[0, 1\], got 1.5"):
        source_specs(ShardsConfig(num=20, identities=6, disturbance=1.5))
    with pytest.raises(ConfigError, match=r"disturbance: expected a value in \[0, 1\], got 1.5"):
        load_config(ShardsConfig, overrides=["disturbance=1.5"])


def test_unknown_class_folders_need_a_map(tmp_path):
    root = tmp_path / "faces"
    (root / "grumpy").mkdir(parents=True)
    crop = Image.new("RGB", (20, 20))
    crop.paste((200, 150, 120), (5, 5, 15, 15))  # not flat, not under the 16 px minimum: a crop like any other
    crop.save(root / "grumpy" / "a.png")
    for split in ("x", "y", "z"):
        (root / "happy").mkdir(exist_ok=True)
        crop.save(root / "happy" / f"{split}.png")
    proc = make(f"root={root}", f"out={tmp_path / 's'}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "class folders ['grumpy'] are no expression names; map them with class_map=grumpy=" in proc.stderr
    proc = make(f"root={root}", "class_map=grumpy=anger", "img_size=16", f"out={tmp_path / 's'}")
    assert proc.returncode == 0, proc.stderr
    per_class = {n: sum(s["per_class"][n] for s in read_manifest(tmp_path / "s")["splits"].values())
                 for n in CANONICAL}
    assert per_class["anger"] == 1 and per_class["happy"] == 3
    proc = make(f"root={root}", "class_map=grumpy=bored", f"out={tmp_path / 't'}")
    assert proc.returncode == 2 and "'bored' is not an expression" in proc.stderr


def test_rafdb_list_with_compound_label_bad_line_and_missing_file(tmp_path, shared_data):
    """A RAF-DB basic tree built from real CK+48 crops: labels 1-7 map to the canonical order, a compound label, a
    malformed line and a missing image are rejects naming their line, and val is a seeded share of train."""
    import shutil

    from pfvit.data.shards import IndexedShards

    root = tmp_path / "basic"
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    crops = sorted((shared_data / "ckplus48" / "CK+48" / "happy").iterdir())[:12]
    lines = []
    for i, src in enumerate(crops):
        name = f"train_{i + 1:05d}.jpg" if i < 10 else f"test_{i - 9:04d}.jpg"
        shutil.copy(src, root / "Image" / "aligned" / f"{name[:-4]}_aligned.jpg")
        lines.append(f"{name} {i % 7 + 1}")
    lines += ["train_00011.jpg 9", "train_00012.jpg", "test_0003.jpg 4"]  # compound label, no label, no file
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=rafdb", f"root={root}", "img_size=64",
                       f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = read_manifest(out)
    splits = manifest["splits"]
    assert splits["train"]["count"] == 9 and splits["val"]["count"] == 1 and splits["test"]["count"] == 2
    reasons = sorted(r["reason"] for s in splits.values() for r in s["rejects"])
    assert len(reasons) == 3
    assert reasons[0].startswith("line 13: label '9' is not a RAF-DB basic label 1-7")
    assert reasons[1].startswith("line 14: expected")
    assert reasons[2] == "line 15: Image/aligned/test_0003_aligned.jpg does not exist"
    raf = ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral")
    for split in ("train", "val", "test"):
        data = IndexedShards(out, split)
        for i in range(len(data)):
            s = data.sample(i)
            assert CANONICAL[s["cls"]] == raf[int(s["json"]["original_label"]) - 1]
