import json
import os

import pytest
import torch

from pfvit.errors import CheckpointError
from pfvit.models.mae import MaskedAutoencoderViT
from pfvit.checkpoint import META, WEIGHTS, list_states, read_meta, save_checkpoint, state_dir
from pfvit.models.registry import load_model

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
            decoder_num_heads=2)


def tiny_mae(seed=0):
    torch.manual_seed(seed)
    return MaskedAutoencoderViT(**TINY)


def test_save_load_identical_tensors_and_forward(tmp_path):
    model = tiny_mae()
    path = save_checkpoint(tmp_path / "ckpt", model, name="mae", config=TINY, label_names=["a"], step=7)
    meta = read_meta(path)
    assert meta["model"] == "mae" and meta["step"] == 7 and meta["config"] == TINY
    assert meta["versions"]["torch"] == torch.__version__
    loaded = load_model(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    model.eval()
    assert torch.equal(model(x, 0.75, noise)[1], loaded(x, 0.75, noise)[1])


def test_half_written_checkpoint_is_never_picked_up(tmp_path):
    good = tiny_mae(0)
    final = save_checkpoint(tmp_path / "ckpt", good, name="mae", config=TINY)
    # A crash while writing the next one leaves only a temporary folder beside the good one.
    tmp = tmp_path / f".ckpt.tmp-{os.getpid() + 1}"
    tmp.mkdir()
    (tmp / WEIGHTS).write_bytes(b"partial")
    loaded = load_model(final)
    assert all(torch.equal(a, b) for a, b in zip(good.state_dict().values(), loaded.state_dict().values()))
    # Resume states: a .tmp step folder is ignored.
    state_dir(tmp_path, 10).mkdir(parents=True)
    (state_dir(tmp_path, 20).parent / "step_0000020.tmp").mkdir()
    assert [s for s, _ in list_states(tmp_path)] == [10]
    # A folder missing its metadata is not a checkpoint.
    os.remove(final / META)
    with pytest.raises(CheckpointError, match="needs both model.safetensors and meta.json"):
        load_model(final)


def test_wrong_model_weights_fail_naming_the_mismatch(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", tiny_mae(), name="mae", config=TINY)
    meta = json.loads((path / META).read_text())
    meta["config"]["embed_dim"] = 64  # metadata of another model next to these weights
    (path / META).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"does not fit model 'mae'.*of another shape \(e\.g\. .*: checkpoint"):
        load_model(path)
    with pytest.raises(CheckpointError, match="holds a 'mae' model, but this needs 'vit'"):
        load_model(path, expected="vit")


def test_damaged_weights_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt", tiny_mae(), name="mae", config=TINY)
    (path / WEIGHTS).write_bytes((path / WEIGHTS).read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read weights"):
        load_model(path)


def test_a_run_folder_resumes_only_under_its_own_config(tmp_path):
    """Changing how long a run trains or where it logs may resume; a changed model, recipe or data set may not (it
    would continue from the old run's weights and step); keys another pfvit version added or dropped do not count."""
    from pfvit.errors import UserError
    from pfvit.runtime import check_resumable

    saved = {"run": {"out": "a", "log_every": 10}, "model": {"arch": "vit_tiny", "img_size": 64},
             "optim": {"lr": 1e-3, "epochs": 4, "weight_decay": 0.05}, "vis_every": 100}
    # A diverged run resumes from an earlier state with a lower lr: the lr may change too.
    check_resumable(saved, {**saved, "run": {"out": "a", "log_every": 1},
                            "optim": {"lr": 1e-4, "epochs": 8, "weight_decay": 0.05}, "vis_every": 5}, tmp_path)
    check_resumable(saved, {**saved, "model": {"arch": "vit_tiny", "img_size": 64, "head_init_std": 0.02}}, tmp_path)
    with pytest.raises(UserError, match=r"different config \(model.img_size, optim.weight_decay\); delete it"):
        check_resumable(saved, {**saved, "model": {"arch": "vit_tiny", "img_size": 32},
                                "optim": {"lr": 1e-3, "epochs": 4, "weight_decay": 0.1}}, tmp_path)
    with pytest.raises(UserError, match=r"different config \(run.seed\)"):  # the data order would change
        check_resumable({**saved, "run": {"out": "a", "seed": 0}}, {**saved, "run": {"out": "a", "seed": 1}}, tmp_path)


@pytest.mark.parametrize("num_classes", [7, 0])
def test_vit_folders_open_in_timm_with_their_weights_head_and_preprocessing(tmp_path, num_classes):
    """A ViT classifier (and a MAE's encoder export) folder carries timm's config.json:
    timm.create_model("local-dir:…", pretrained=True) gives the same logits (features), and resolve_data_config
    the preprocessing pfvit applies, not timm's defaults (mean and std 0.5, crop 0.9)."""
    import timm
    from timm.data import resolve_data_config

    from pfvit.inference import load_classifier
    from pfvit.labels import class_names
    from pfvit.models.convert import save_encoder
    from pfvit.models.mae import arch_config
    from pfvit.models.registry import build_model
    from pfvit.models.vit import timm_config

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    if num_classes:
        config = {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 3,
                  "num_classes": num_classes, "global_pool": "avg"}
        ours = build_model("vit", config).eval()
        names = class_names(num_classes)
        save_checkpoint(tmp_path / "c", ours, name="vit", config=config, label_names=names,
                        extra={"preprocess": {"interpolation": "bicubic", "grey": False, "mean": [0.485, 0.456, 0.406],
                                              "std": [0.229, 0.224, 0.225]}},
                        files={"config.json": timm_config(config, names)})
        clf = load_classifier(tmp_path / "c")
        expected = clf(x)
    else:
        mae_config = arch_config("vit_tiny", img_size=32, patch_size=8, depth=2)
        save_encoder(tmp_path / "c", build_model("mae", mae_config), mae_config)
        ours = load_model(tmp_path / "c", expected="vit")
        expected = ours.forward_features(x)
    theirs = timm.create_model(f"local-dir:{tmp_path / 'c'}", pretrained=True).eval()
    with torch.no_grad():
        got = theirs(x) if num_classes else theirs.forward_features(x)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    data = resolve_data_config(model=theirs)
    assert data["input_size"] == (3, 32, 32) and data["crop_pct"] == 1.0 and data["interpolation"] == "bicubic"
    assert data["mean"] == [0.485, 0.456, 0.406] and data["std"] == [0.229, 0.224, 0.225]
    if num_classes:
        assert (data["input_size"][1], data["interpolation"]) == (clf.img_size, clf.interpolation)
        assert theirs.pretrained_cfg["label_names"] == list(names)
        card = (tmp_path / "c" / "README.md").read_text()
        assert "7 classes: neutral, happy" in card and "bicubic resize to 32 px" in card
    else:
        assert not (tmp_path / "c" / "README.md").exists()  # an encoder has no classes to describe


def test_the_data_manifest_is_recorded_by_its_sha256(tmp_path):
    import hashlib

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text('{"splits": {}}')
    save_checkpoint(tmp_path / "c", torch.nn.Linear(2, 2), name="linear", config={}, data_manifest=str(shards))
    meta = read_meta(tmp_path / "c")
    assert meta["data_manifest"] == str(shards)
    assert meta["data_manifest_sha256"] == hashlib.sha256(b'{"splits": {}}').hexdigest()
