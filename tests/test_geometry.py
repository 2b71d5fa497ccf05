"""Geometry has one owner: a stage inherits arch, image size, patch size and classes from its model.init
checkpoint; a different image size resamples the position table; a different arch or patch size is one error."""

import pytest
import torch
from timm.layers import resample_abs_pos_embed

from pfvit.checkpoint import load_state, save_checkpoint
from pfvit.errors import ConfigError
from pfvit.models.convert import encoder_state
from pfvit.models.geometry import fit_position_tables, inherit_geometry
from pfvit.models.mae import arch_config
from pfvit.models.registry import build_model
from pfvit.schemas.finetune import FTModelConfig
from pfvit.schemas.pfvit import PFModelConfig
from pfvit.schemas.poster import PosterModelConfig


@pytest.fixture(scope="module")
def mae_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = arch_config("vit_tiny", img_size=32, patch_size=8)
    mae = build_model("mae", config)
    path = tmp_path_factory.mktemp("geometry") / "mae"
    save_checkpoint(path, mae, name="mae", config=config)
    return path, mae


def test_stages_inherit_the_checkpoint_geometry(mae_checkpoint):
    path, _ = mae_checkpoint
    for cfg in (FTModelConfig(init=str(path)), PFModelConfig(init=str(path)),
                PosterModelConfig(backbone="encoder", init=str(path))):
        assert inherit_geometry(cfg) == []
        assert (cfg.arch, cfg.img_size, cfg.patch_size, cfg.num_classes) == ("vit_tiny", 32, 8, 7)


def test_without_a_checkpoint_the_defaults_apply():
    cfg = FTModelConfig()
    inherit_geometry(cfg)
    assert (cfg.arch, cfg.img_size, cfg.patch_size, cfg.num_classes) == ("vit_tiny", 224, 16, 7)
    face = PosterModelConfig(backbone="face", init="ignored/by/the/face/backbone")
    inherit_geometry(face, from_init=False)
    assert face.img_size == 224


@pytest.mark.parametrize("key, value", [("arch", "vit_small"), ("patch_size", 16)])
def test_another_arch_or_patch_size_is_one_error(mae_checkpoint, key, value):
    cfg = FTModelConfig(init=str(mae_checkpoint[0]), **{key: value})
    with pytest.raises(ConfigError, match=f"model.{key}={value}, but model.init=.* holds a {key}"):
        inherit_geometry(cfg)


def test_a_classifier_checkpoint_gives_its_classes(tmp_path):
    config = {"img_size": 32, "patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3, "num_classes": 8}
    save_checkpoint(tmp_path / "vit", build_model("vit", config), name="vit", config=config)
    cfg = FTModelConfig(init=str(tmp_path / "vit"))
    inherit_geometry(cfg)
    assert cfg.num_classes == 8
    assert inherit_geometry(FTModelConfig(init=str(tmp_path / "vit"), num_classes=7)) == [
        "model.num_classes=7 where model.init has 8: a new head"]


def test_another_image_size_resamples_the_position_table(mae_checkpoint):
    path, mae = mae_checkpoint
    cfg = FTModelConfig(init=str(path), img_size=48)
    assert inherit_geometry(cfg) == ["model.img_size=48 where model.init has 32: its position table is resampled"]
    vit = build_model("vit", {"img_size": 48, "patch_size": 8, "embed_dim": 192, "depth": 12, "num_heads": 3})
    state = encoder_state(mae.state_dict())
    fitted = fit_position_tables(state, vit)
    table = state["pos_embed"]
    assert fitted["pos_embed"].shape == (1, 1 + 36, 192)  # a 6×6 grid from a 4×4 one
    assert torch.equal(fitted["pos_embed"][:, :1], table[:, :1])  # [CLS] keeps its row
    assert torch.allclose(fitted["pos_embed"], resample_abs_pos_embed(table, [6, 6], [4, 4], num_prefix_tokens=1))
    load_state(vit, fitted, source=str(path), allow_missing=False)  # every tensor fits
    with pytest.raises(Exception, match="another shape"):
        load_state(vit, state, source=str(path))
    # A fixed sin-cos table (the MAE's) is the module's own for its grid, not an interpolation.
    mae48 = build_model("mae", arch_config("vit_tiny", img_size=48, patch_size=8))
    fixed = fit_position_tables(mae.state_dict(), mae48)
    assert torch.equal(fixed["pos_embed"], mae48.pos_embed) and torch.equal(fixed["decoder_pos_embed"],
                                                                            mae48.decoder_pos_embed)


def test_builders_refuse_an_unresolved_geometry_and_the_face_backbone_its_size():
    from pfvit.train.pfvit_train import model_config
    from pfvit.train.poster_train import build_poster_model

    with pytest.raises(ValueError, match="unresolved: call inherit_geometry"):
        model_config(PFModelConfig())
    face = PosterModelConfig(backbone="face", img_size=112)
    inherit_geometry(face, from_init=False)
    with pytest.raises(ConfigError, match="model.img_size=112, but the face backbone .* takes 224 px faces"):
        build_poster_model(face, run=None)


@pytest.mark.parametrize("name, config", [
    ("vit", {"img_size": 40, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2, "num_classes": 7}),
    ("expression_cnn", {"num_classes": 7, "widths": [8, 8], "img_size": 24})])
def test_the_preprocessing_size_is_the_model_configs(tmp_path, name, config):
    """load_classifier resizes to the size the model's constructor config says; the checkpoint's preprocessing
    record holds only the normalisation, so there is no second copy of the size to disagree with it."""
    from PIL import Image

    from pfvit.inference import load_classifier
    from pfvit.labels import class_names

    save_checkpoint(tmp_path / name, build_model(name, config), name=name, config=config,
                    label_names=class_names(7), extra={"preprocess": {"mean": [0.5] * 3, "std": [0.25] * 3}})
    clf = load_classifier(tmp_path / name)
    assert clf.img_size == config["img_size"]
    x = clf.preprocess(Image.new("RGB", (90, 70), (255, 128, 0)))
    assert x.shape == (1, 3, config["img_size"], config["img_size"])
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([2.0, 0.0078, -2.0]), atol=1e-3, rtol=0)
