"""The project's contract with its users: every bad input ends in a counted reject with its reason, or in one
``error:`` line that names the file, row or key and says what to do (exit code 2) — never a traceback, never
silence. Tiny inputs throughout; each case goes through the real command line where the user would meet it."""

from __future__ import annotations

import json
import logging
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from pfvit.config import load_config
from pfvit.data.shards import read_manifest
from pfvit.errors import ConfigError, UserError
from conftest import PYTHON, ROOT, classifier_checkpoint, run_main, run_script

FACE = "facenet/data/images/Anthony_Hopkins_0001.jpg"
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"


def one_error_line(result, *fragments: str) -> str:
    """The run (a ``CompletedProcess`` or ``run_main``'s (code, stderr)) failed with exit code 2 and one ``error:``
    line holding every fragment, and no traceback."""
    code, stderr = (result.returncode, result.stderr) if hasattr(result, "returncode") else result[:2]
    assert code == 2, (code, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def rejects(out) -> dict[str, str]:
    return {r["source"]: r["reason"] for s in read_manifest(out)["splits"].values() for r in s["rejects"]}


# ---- silent corruption ------------------------------------------------------------------------------------------

def test_affectnet_rows_with_degenerate_geometry_are_rejects(shared_data, tmp_path):
    root = tmp_path / "AffectNet"
    images = root / "Manually_Annotated" / "Manually_Annotated_Images" / "1"
    images.mkdir(parents=True)
    shutil.copy(shared_data / "face-photos" / FACE, images / "a.jpg")
    w, h = Image.open(images / "a.jpg").size
    zeros = ";".join(["0"] * 136)
    nans = ";".join(["nan"] * 136)
    outside = ";".join(["5000"] * 68 + ["4000"] * 68)
    rows = [HEADER, f"1/a.jpg,0,0,{w},{h},{zeros},1,0,0", f"1/a.jpg,0,0,{w},{h},{nans},1,0,0",
            f"1/a.jpg,0,0,{w},{h},{outside},1,0,0", f"1/a.jpg,{w + 10},{h + 10},50,50,NULL,1,0,0",
            f"1/a.jpg,0,0,{w},{h},NULL,2,0,0"]
    (root / "Manually_Annotated_file_lists").mkdir()
    (root / "Manually_Annotated_file_lists" / "training.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=affectnet", f"root={root}",
                       "img_size=32", "val_fraction=0", f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = rejects(out)
    assert "coincide" in found["training.csv line 2"]
    assert "NaN" in found["training.csv line 3"]
    assert "outside" in found["training.csv line 4"] and "outside" in found["training.csv line 5"]
    assert read_manifest(out)["splits"]["train"]["count"] == 1  # the NULL-landmark row: the whole image, resized


def test_a_flat_or_non_finite_sample_never_enters_a_shard(tmp_path):
    from pfvit.data.shards import Reject, ShardSpec, encode_jpeg, write_shards

    def make(i):
        colour = (90, 90, 90) if i == 0 else (i * 40 % 255, 30, 200)
        img = Image.new("RGB", (16, 16), colour)
        if i > 0:
            img.paste((250, 250, 250), (4, 4, 9, 9))
        meta = {"source": f"item {i}", "landmarks": [[1.0, float("nan") if i == 2 else 2.0]]}
        return {"__key__": f"s{i}", "jpg": encode_jpeg(img), "cls": 1, "json": meta}

    write_shards(tmp_path, [ShardSpec("train", [0, 1, 2], make)])
    assert rejects(tmp_path) == {"item 0": "the aligned face is one flat colour (degenerate landmarks or box); "
                                           "fix or drop the input",
                                 "item 2": "json.landmarks[0][1] is not a finite number"}
    assert read_manifest(tmp_path)["splits"]["train"]["count"] == 1
    assert Reject  # the type every source uses for these


@pytest.fixture
def small_shards(tmp_path):
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=60", "identities=6", "img_size=32",
                       "disturbance=0", "maxcount=20", f"out={out}"])
    assert proc.returncode == 0, proc.stderr
    return out


FT_SCRIPT = "pipelines/finetune_vit.py"
FT = ["--config", "configs/finetune_vit/short.yaml", "model.img_size=32", "model.patch_size=16",
      "model.num_classes=8", "model.init=null", "data.batch_size=8", "data.num_workers=0", "optim.max_steps=2",
      "run.log_every=1"]


def finetune(*args) -> tuple[int, str, str]:
    return run_main(FT_SCRIPT, [*FT, *args])


def test_truncated_or_changed_shards_are_named_before_training_and_evaluation(small_shards, tmp_path):
    shard = small_shards / "train-000001.tar"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    one_error_line(finetune(f"data.shards={small_shards}", f"run.out={tmp_path / 'run'}"), str(shard), "truncated")
    ckpt = classifier_checkpoint(tmp_path / "clf", img_size=32)
    val = small_shards / "val-000000.tar"
    original = val.read_bytes()
    val.write_bytes(data[: len(original)] if len(data) >= len(original) else original[::-1])  # same size, other bytes
    shard.write_bytes(data)
    assert val.stat().st_size == len(original)
    result = run_main("pipelines/evaluate.py", [f"checkpoint={ckpt}", f"shards={small_shards}", "split=val",
                                                f"out={tmp_path / 'ev'}", "verify=true", "num_workers=0"])
    one_error_line(result, str(val), "sha256")


def test_a_missing_split_or_a_broken_manifest_is_one_line(small_shards, tmp_path):
    ckpt = classifier_checkpoint(tmp_path / "clf", img_size=32)

    def evaluate(split):
        return run_main("pipelines/evaluate.py", [f"checkpoint={ckpt}", f"shards={small_shards}", f"split={split}",
                                                  f"out={tmp_path / 'ev'}", "num_workers=0"])
    one_error_line(evaluate("tset"), str(small_shards), "no split 'tset'", "test, train, val")
    one_error_line(finetune(f"data.shards={small_shards}", f"run.out={tmp_path / 'run'}", "data.train_split=tset"),
                   "no split 'tset'")
    manifest = small_shards / "manifest.json"
    for broken in (manifest.read_text()[:-20], "[]"):
        manifest.write_text(broken)
        one_error_line(evaluate("val"), str(manifest), "not a shard manifest", "make_shards.py")


def test_unreadable_training_samples_are_skipped_up_to_a_bound_then_named(small_shards, tmp_path):
    from pfvit.data.shards import SeededTrainDataset

    dataset = SeededTrainDataset(small_shards, "train", lambda s: s["cls"], seed=0, max_bad=1)
    original = dataset.sample

    def broken(i):
        if i in (3, 5):
            raise UserError(f"sample {i} of {dataset.shard_of(i)} cannot be read (damaged)")
        return original(i)

    dataset.sample = broken
    assert dataset[(0, 2)] is not None and dataset[(0, 3)] is None  # skipped, counted
    assert dataset.bad.value == 1
    with pytest.raises(UserError, match=r"2 training samples could not be read.*train-000000.tar"):
        dataset[(0, 5)]


# ---- security -----------------------------------------------------------------------------------------------------

class _Planted:
    """Unpickling this creates a marker file: what a crafted state file would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A fine-tune of two steps with a state saved after each: (shard folder, run folder), to be copied."""
    base = tmp_path_factory.mktemp("trained")
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=60", "identities=6", "img_size=32",
                       "disturbance=0", "maxcount=20", f"out={base / 'shards'}"])
    assert proc.returncode == 0, proc.stderr
    code, err, _ = finetune(f"data.shards={base / 'shards'}", f"run.out={base / 'run'}", "run.save_every=1")
    assert code == 0, err[-2000:]
    return base / "shards", base / "run"


def resume(trained_run, out) -> tuple[int, str, str]:
    """Resume (a copy of) the trained run in ``out`` for one more step."""
    return finetune(f"data.shards={trained_run[0]}", f"run.out={out}", "run.save_every=1", "optim.max_steps=3")


def test_resume_never_unpickles_code_from_the_state_folder(trained_run, tmp_path):
    state = sorted((trained_run[1] / "state").iterdir())[-1]
    assert not list(state.glob("custom_checkpoint_*")) and (state / "objects.json").is_file()
    marker = tmp_path / "pwned"
    for name in ("random_states_0.pkl", "custom_checkpoint_0.pkl"):
        out = tmp_path / name
        shutil.copytree(trained_run[1], out)
        planted = out / "state" / state.name / name
        torch.save(_Planted(marker), planted)
        result = resume(trained_run, out)
        assert not marker.exists(), f"resuming ran code from {name}"
        one_error_line(result, str(planted), "run.resume=false")


def test_a_truncated_newest_state_is_named_with_the_older_one(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run[1], out)
    older, newest = sorted((out / "state").iterdir())  # save_every honoured by the fine-tune too
    opt = newest / "optimizer.bin"
    opt.write_bytes(opt.read_bytes()[:100])
    one_error_line(resume(trained_run, out), str(opt), f"resume from {older}")


# ---- crashes that named nothing -----------------------------------------------------------------------------------

def test_tiny_photos_are_too_small_for_detection_everywhere(shared_data, tmp_path):
    from pfvit.data.align import FaceAligner, TooSmallForDetection
    from pfvit.eval.retrieval import query_faces

    photos = tmp_path / "photos" / "happy"
    photos.mkdir(parents=True)
    Image.new("RGB", (12, 30), (120, 90, 60)).save(photos / "tiny.png")
    shutil.copy(shared_data / "face-photos" / FACE, photos / "face.jpg")
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=folder", f"root={tmp_path / 'photos'}",
                       "align=mtcnn", "img_size=32", f"out={out}"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "too small for detection" in rejects(out)["happy/tiny.png"]
    aligner = FaceAligner(32)
    with pytest.raises(TooSmallForDetection):
        aligner(Image.open(photos / "tiny.png"))
    skipped = []
    faces, _ = query_faces([photos / "tiny.png", photos / "face.jpg"], aligner, skipped)
    assert len(faces) == 1 and "too small for detection" in skipped[0]["error"]


def test_huge_photos_are_detected_on_a_bounded_copy_and_mapped_back(shared_data):
    from pfvit.data.align import DETECT_SIDE, FaceAligner

    photo = Image.open(shared_data / "face-photos" / FACE).convert("RGB")
    aligner = FaceAligner(32)
    small = aligner.detect(photo)[0]
    factor = 2 * DETECT_SIDE["mtcnn"] / max(photo.size)  # twice the bound: detected at half size
    big = photo.resize((round(photo.width * factor), round(photo.height * factor)), Image.BICUBIC)
    face = aligner.detect(big)[0]
    np.testing.assert_allclose(np.array(face.box) / factor, small.box, atol=6)
    np.testing.assert_allclose(face.landmarks / factor, small.landmarks, atol=4)


@pytest.mark.parametrize("override, fragment", [
    ("data.batch_size=0", "data.batch_size: expected a value ≥ 1, got 0"),
    ("data.batch_size=-4", "data.batch_size: expected a value ≥ 1, got -4"),
    ("run.grad_accum_steps=0", "run.grad_accum_steps: expected a value ≥ 1"),
    ("run.log_every=0", "run.log_every: expected a value ≥ 1"),
    ("vis_every=0", "vis_every: expected a value ≥ 1"),
    ("optim.lr=.nan", "optim.lr: expected a finite number"),
    ("optim.lr=-1", "optim.lr: expected a value > 0"),
    ("model.mask_ratio=1.5", "model.mask_ratio: expected a value in [0, 1)"),
    ("optim.max_steps=-1", "optim.max_steps: expected a value ≥ 1"),
])
def test_config_values_out_of_range_are_refused_at_parse_time(override, fragment):
    from pfvit.schemas.mae import MAEPretrainConfig

    with pytest.raises(ConfigError) as err:
        load_config(MAEPretrainConfig, "configs/mae_pretrain/demo.yaml", [override])
    assert fragment in str(err.value)


def test_config_ranges_reach_the_command_line_and_its_help():
    proc = run_script([PYTHON, "pipelines/mae_pretrain.py", "--config", "configs/mae_pretrain/demo.yaml",
                       "model.mask_ratio=1.5"])  # a real process: the exit code and stderr a user sees
    one_error_line(proc, "model.mask_ratio: expected a value in [0, 1), got 1.5")
    help_text = run_main("pipelines/mae_pretrain.py", ["--help"])[2]
    assert "model.mask_ratio (float in [0, 1))" in help_text and "data.batch_size (int ≥ 1)" in help_text


def test_unwritable_output_and_unreadable_configs_are_one_line(small_shards, tmp_path):
    one_error_line(finetune(f"data.shards={small_shards}", "run.out=/proc/pfvit_run"), "/proc/pfvit_run")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("run:\n  out: caf\xe9\n".encode("latin-1"))
    one_error_line(run_main(FT_SCRIPT, ["--config", latin1]), str(latin1), "not UTF-8")
    one_error_line(run_main(FT_SCRIPT, ["--config", tmp_path]), str(tmp_path), "is a folder")


def test_a_full_disk_leaves_no_partial_shard_behind(tmp_path):
    import errno

    from pfvit.data.shards import ShardSpec, encode_jpeg, write_shards
    from pfvit.errors import os_error_line

    def make(i):
        if i == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.tar"))
        img = Image.new("RGB", (16, 16), (10, 20, 30))
        img.paste((200, 200, 200), (4, 4, 9, 9))
        return {"__key__": f"s{i}", "jpg": encode_jpeg(img), "cls": 1, "json": {"source": str(i)}}

    with pytest.raises(OSError) as err:
        write_shards(tmp_path, [ShardSpec("train", [0, 1], make)])
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert os_error_line(err.value) == f"{tmp_path / 'x.tar'}: the disk is full; free space or write elsewhere"


def test_a_truncated_model_init_is_one_line_in_fine_tune_and_poster(small_shards, tmp_path):
    ckpt = classifier_checkpoint(tmp_path / "enc", img_size=32)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    # Its geometry (32 px, 8 px patches) is inherited: the damaged weights are what the line must name.
    result = finetune(f"data.shards={small_shards}", f"run.out={tmp_path / 'a'}", f"model.init={ckpt}",
                      "model.patch_size=8")
    one_error_line(result, str(weights), "damaged or incomplete")
    result = run_main("pipelines/finetune_poster.py", [
        "--config", "configs/finetune_poster/demo_poster_pp.yaml", f"data.shards={small_shards}",
        f"run.out={tmp_path / 'b'}", f"model.init={ckpt}", "optim.max_steps=1", "data.num_workers=0"])
    one_error_line(result, str(weights), "damaged or incomplete")


# ---- wrong or misleading messages ---------------------------------------------------------------------------------

def test_a_diverged_run_names_the_state_saved_before_the_loss_rose(tmp_path):
    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    for step, loss in ((40, 0.8), (80, 0.7), (120, 5.0)):
        state = tmp_path / "state" / f"step_{step:07d}"
        state.mkdir(parents=True)
        (state / "objects.json").write_text(json.dumps({"progress": {"loss": loss}}))
    run = Run(RunConfig(out=str(tmp_path)), RunConfig(out=str(tmp_path)), "test")
    run.check_finite(torch.tensor(1.5), 121, ["k1"], "hint")
    run.raise_if_not_finite()  # all finite: goes on
    # Noted on the device with no host sync per step; the first bad step is named when the loop next logs or saves.
    run.check_finite(torch.tensor(float("nan")), 122, ["k1", "k2"], "lower the lr")
    run.check_finite(torch.tensor(0.9), 123, ["k3"], "hint")
    run.check_finite(torch.tensor(float("inf")), 124, ["k4"], "hint")
    with pytest.raises(UserError, match=r"not finite at step 122 \(batch keys \['k1', 'k2'\]\); resume from "
                                        r".*step_0000080, saved before the loss rose.*optim.lr.*; lower the lr"):
        run.raise_if_not_finite()
    run.check_finite(torch.tensor(0.9), 125, ["k5"], "hint")
    run.raise_if_not_finite()  # a check clears the notes it read


def test_loss_window_averages_on_the_device_logs_a_line_and_stops_on_a_non_finite_loss(tmp_path, caplog):
    from pfvit.runtime import LossWindow, Run, read_metrics
    from pfvit.schemas.run import RunConfig

    caplog.set_level(logging.INFO, logger="pfvit")
    run = Run(RunConfig(out=str(tmp_path)), RunConfig(out=str(tmp_path)), "test")
    window = LossWindow(run, start_step=0)
    for step, (a, b) in enumerate(((1.0, 4.0), (2.0, 6.0), (3.0, 8.0))):
        run.check_finite(torch.tensor(a), step, [], "hint")
        window.add({"total": torch.tensor(a), "dis": torch.tensor(b)}, images=16)
    values = window.log(3, 100, lr=0.5)
    assert values["total"] == pytest.approx(2.0) and values["dis"] == pytest.approx(6.0) and values["lr"] == 0.5
    assert values["images_per_s"] > 0
    record = read_metrics(tmp_path / "metrics.jsonl")[-1]
    assert record["step"] == 3 and record["total"] == pytest.approx(2.0) and record["dis"] == pytest.approx(6.0)
    assert "step 3/100 total 2 dis 6 lr 0.5 (" in caplog.text  # a line without a terminal, too
    # The ETA at the window's pace: 97 steps left at its seconds per step.
    eta = re.search(r"img/s, ETA (\d+):(\d\d):(\d\d)\)", caplog.text)
    assert eta and int(eta[1]) * 3600 + int(eta[2]) * 60 + int(eta[3]) == int(97 * window.elapsed / 3)
    run.check_finite(torch.tensor(float("nan")), 3, ["bad"], "lower optim.lr")
    window.add({"total": torch.tensor(float("nan"))}, images=16)
    with pytest.raises(UserError, match=r"not finite at step 3 \(batch keys \['bad'\]\).*lower optim.lr"):
        window.read()


def test_sam_skips_its_perturbation_when_the_gradient_is_not_finite(tmp_path):
    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    run = Run(RunConfig(out=str(tmp_path)), RunConfig(out=str(tmp_path)), "test")
    model = torch.nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    model.weight.grad = torch.tensor([[float("inf"), 1.0, 1.0]])
    model.bias.grad = torch.tensor([1.0])
    run._sam_second_pass(model, opt, lambda: model(torch.ones(1, 3)).sum(), rho=0.05)
    for p, b in zip(model.parameters(), before):
        assert torch.isfinite(p).all() and torch.equal(p, b)


def test_tiny_pre_aligned_crops_are_rejects(tmp_path):
    root = tmp_path / "crops" / "happy"
    root.mkdir(parents=True)
    Image.new("RGB", (1, 1), (1, 2, 3)).save(root / "dot.png")
    img = Image.new("RGB", (24, 24), (90, 60, 40))
    img.paste((200, 180, 170), (6, 6, 18, 18))
    img.save(root / "face.png")
    out = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "source=folder", f"root={tmp_path / 'crops'}",
                       "img_size=32", f"out={out}"])
    assert proc.returncode == 0, proc.stderr
    assert rejects(out) == {"happy/dot.png": "image 1x1 is smaller than 16 px: too small to be a face crop"}


def test_the_readme_ckplus_fine_tune_runs_as_written(shared_data, tmp_path):
    import re
    import shlex

    readme = (ROOT / "README.md").read_text()

    def command(start: str) -> list[str]:
        text = readme[readme.index(start):]
        text = text[:text.index("\n", text.index("out=" if "make_shards" in start else "run.out="))]
        return shlex.split(re.sub(r"\\\n", " ", text).split("#")[0])

    shards = command("python pipelines/make_shards.py source=folder root=CK+48")
    shards = [f"root={shared_data / 'ckplus48' / 'CK+48'}" if a == "root=CK+48" else a for a in shards[1:]]
    shards[shards.index("out=shards/ckplus48")] = f"out={tmp_path / 'ck'}"
    shards[shards.index("img_size=224")] = "img_size=32"
    proc = run_script([PYTHON, *map(str, shards)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    ft = command("accelerate launch pipelines/finetune_vit.py --config configs/finetune_vit/paper.yaml")
    mae = tmp_path / "mae"
    from pfvit.models.mae import arch_config
    from pfvit.models.registry import build_model
    from pfvit.checkpoint import save_checkpoint

    config = arch_config("vit_tiny", img_size=32, patch_size=16)
    save_checkpoint(mae, build_model("mae", config), name="mae", config=config)
    ft = [a for a in ft[2:] if not a.startswith(("model.init=", "model.arch=", "run.out=", "data.shards="))]
    code, err, out = run_main(ft[0], [*ft[1:], f"data.shards={tmp_path / 'ck'}", f"model.init={mae}",
                                      "model.arch=vit_tiny", f"run.out={tmp_path / 'vit'}", "model.img_size=32",
                                      "optim.max_steps=2", "data.num_workers=0", "data.batch_size=8"])
    assert code == 0, err[-2000:]
    assert "never learns" in out and (tmp_path / "vit" / "last" / "meta.json").is_file()


def test_retrieve_builds_and_queries_in_both_spellings(synthetic_shards, tmp_path):
    ckpt = classifier_checkpoint(tmp_path / "clf", img_size=32)
    memory = tmp_path / "mem"
    code, err, _ = run_main("pipelines/retrieve.py", ["action=build", f"checkpoint={ckpt}",
                                                   f"shards={synthetic_shards}", "split=val", f"memory={memory}"])
    assert code == 0 and "deprecated" not in err, err[-2000:]
    face = tmp_path / "face.png"
    Image.new("RGB", (32, 32), (100, 80, 60)).save(face)
    # The argparse spelling of earlier releases, inputs after the options as its README showed, still runs.
    code, err, _ = run_main("pipelines/retrieve.py", ["query", "--checkpoint", ckpt, "--memory", memory, face,
                                                   "-k", "2", "--aligned"])
    assert code == 0, err[-2000:]
    assert f'write action=query checkpoint="{ckpt}" memory="{memory}" k=2 aligned=true inputs=["{face}"]' in err
    assert len(json.loads((memory / "query" / "results.jsonl").read_text().splitlines()[0])["neighbours"]) == 2
