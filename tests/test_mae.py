"""MAE invariants: masking, patchify, sin-cos tables, masked-only loss, Table 1 sizes, interop with timm."""

import math

import numpy as np
import pytest
import timm
import torch

from pfvit.checkpoint import load_state
from pfvit.models.convert import DECODER_PREFIXES, encoder_state, read_torch_state
from pfvit.models.mae import ARCHS, MaskedAutoencoderViT, random_masking, sincos_pos_embed_2d
from pfvit.errors import CheckpointError

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=16, decoder_depth=1,
            decoder_num_heads=2)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_masking_keeps_exactly_int_l_times_one_minus_r(ratio):
    x = torch.randn(3, 196, 8)
    visible, mask, ids_restore = random_masking(x, ratio)
    keep = int(196 * (1 - ratio))
    assert visible.shape == (3, keep, 8)
    assert (mask.sum(1) == 196 - keep).all()
    # ids_restore inverts the shuffle: putting visible tokens back at their positions gives the input there.
    ids_shuffle = torch.argsort(ids_restore, dim=1)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(196).expand(3, -1))
    for n in range(3):
        kept_positions = ids_shuffle[n, :keep]
        assert torch.equal(visible[n], x[n, kept_positions])
        assert (mask[n, kept_positions] == 0).all()  # 0 = kept, 1 = removed


def test_noise_gives_deterministic_mask():
    x, noise = torch.randn(2, 16, 4), torch.rand(2, 16)
    assert torch.equal(random_masking(x, 0.75, noise)[1], random_masking(x, 0.75, noise)[1])
    expected = torch.zeros(2, 16)
    expected.scatter_(1, torch.argsort(noise, 1)[:, 4:], 1.0)  # the largest noise values are removed
    assert torch.equal(random_masking(x, 0.75, noise)[1], expected)


def test_unpatchify_inverts_patchify():
    model = MaskedAutoencoderViT(**TINY)
    x = torch.randn(2, 3, 32, 32)
    patches = model.patchify(x)
    assert patches.shape == (2, 16, 8 * 8 * 3)
    assert torch.equal(model.unpatchify(patches), x)
    # patch (row 1, col 2), pixel (3, 5), channel c is where patchify says it is
    assert torch.equal(patches[:, 1 * 4 + 2].reshape(2, 8, 8, 3)[:, 3, 5], x[:, :, 8 + 3, 16 + 5])


def test_reconstruction_pictures_leave_the_training_rng_alone(tmp_path):
    """The pictures draw their masks from a generator of their own: the masking noise of training is the same
    whether a picture was saved or not, and two pictures of one model with one seed are the same picture."""
    from PIL import Image

    from pfvit.train.mae_pretrain import save_reconstructions
    model = MaskedAutoencoderViT(**TINY).eval()
    imgs = torch.randn(4, 3, 32, 32)
    torch.manual_seed(3)
    state = torch.random.get_rng_state()
    save_reconstructions(model, imgs, 0.75, tmp_path / "a.png")
    assert torch.equal(torch.random.get_rng_state(), state)
    save_reconstructions(model, imgs, 0.75, tmp_path / "b.png")
    save_reconstructions(model, imgs, 0.75, tmp_path / "c.png", seed=1)
    a, b, c = (np.asarray(Image.open(tmp_path / f"{name}.png")) for name in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sincos_table_equals_direct_formula():
    dim, gh, gw = 16, 3, 5
    table = sincos_pos_embed_2d(dim, (gh, gw))
    assert table.shape == (1 + gh * gw, dim) and not table[0].any()
    quarter = dim // 4
    for r in range(gh):
        for c in range(gw):
            row = table[1 + r * gw + c]
            for k in range(quarter):
                w = 1.0 / 10000 ** (k / quarter)
                assert row[k] == pytest.approx(math.sin(c * w), abs=1e-6)
                assert row[quarter + k] == pytest.approx(math.cos(c * w), abs=1e-6)
                assert row[2 * quarter + k] == pytest.approx(math.sin(r * w), abs=1e-6)
                assert row[3 * quarter + k] == pytest.approx(math.cos(r * w), abs=1e-6)


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_ignores_visible_patches(norm_pix):
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(**TINY, norm_pix_loss=norm_pix)
    x, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    loss, pred, mask = model(x, 0.75, noise)
    visible = (mask[0] == 0).nonzero()[0].item()
    removed = (mask[0] == 1).nonzero()[0].item()
    changed = model.patchify(x)
    changed[0, visible] += 5.0 * torch.randn(changed.shape[-1])
    assert model.forward_loss(model.unpatchify(changed), pred, mask).item() == pytest.approx(loss.item(), rel=1e-6)
    changed = model.patchify(x)
    changed[0, removed] += 5.0 * torch.randn(changed.shape[-1])
    assert model.forward_loss(model.unpatchify(changed), pred, mask).item() != pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("arch, encoder, decoder", [("vit_tiny", 5.34e6, 1.59e6), ("vit_small", 21.29e6, 6.32e6),
                                                    ("vit_base", 85.05e6, 25.22e6)])
def test_block_parameter_counts_match_table_1(arch, encoder, decoder):
    with torch.device("meta"):
        model = MaskedAutoencoderViT(**ARCHS[arch])
    enc = sum(p.numel() for p in model.blocks.parameters())
    dec = sum(p.numel() for p in model.decoder_blocks.parameters())
    assert abs(enc - encoder) / encoder < 0.01 and abs(dec - decoder) / decoder < 0.01
    if arch == "vit_tiny":
        assert enc == 5_338_368


def test_state_dict_keys_follow_facebookresearch_mae():
    keys = set(MaskedAutoencoderViT(**TINY).state_dict())
    for key in ("patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.1.attn.qkv.weight", "blocks.0.mlp.fc2.bias",
                "norm.weight", "decoder_embed.weight", "mask_token", "decoder_pos_embed",
                "decoder_blocks.0.norm1.weight", "decoder_norm.bias", "decoder_pred.weight"):
        assert key in keys


def test_official_layout_to_pfvit_to_timm_gives_same_features(tmp_path):
    torch.manual_seed(0)
    cfg = dict(ARCHS["vit_tiny"], img_size=224)
    official = MaskedAutoencoderViT(**cfg).eval()
    torch.save({"model": official.state_dict(), "epoch": 3}, tmp_path / "official.pth")
    ours = MaskedAutoencoderViT(**cfg)
    report = load_state(ours, read_torch_state(tmp_path / "official.pth"), source="official.pth")
    assert report.loaded == len(official.state_dict()) and not report.missing and not report.unexpected
    timm_vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).eval()
    timm_vit.load_state_dict(encoder_state(ours.state_dict()), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(timm_vit.forward_features(x), ours.eval().forward_features(x), atol=1e-5)
    # And back: a timm encoder into a fresh MAE (its decoder stays as initialised) gives the same features.
    back = MaskedAutoencoderViT(**cfg).eval()
    with pytest.raises(CheckpointError, match=r"does not fit the model: \d+ missing \(e\.g\. decoder"):
        load_state(back, timm_vit.state_dict(), source="timm")  # a partial load must be asked for
    report = load_state(back, timm_vit.state_dict(), source="timm", allow_missing=DECODER_PREFIXES)
    assert report.loaded == len(timm_vit.state_dict()) and all(k.startswith(("decoder", "mask_token"))
                                                               for k in report.missing)
    with torch.no_grad():
        assert torch.allclose(back.forward_features(x), timm_vit.forward_features(x), atol=1e-5)


def test_pickled_checkpoint_is_refused_with_a_message(tmp_path):
    import argparse
    torch.save({"model": MaskedAutoencoderViT(**TINY).state_dict(), "args": argparse.Namespace(a=1)},
               tmp_path / "with_args.pth")
    with pytest.raises(CheckpointError, match="needs arbitrary pickles.*re-save only its state dict"):
        read_torch_state(tmp_path / "with_args.pth")
    other = MaskedAutoencoderViT(**{**TINY, "embed_dim": 64})
    with pytest.raises(CheckpointError, match=r"of another shape \(e\.g\. .*: checkpoint .* vs model"):
        load_state(MaskedAutoencoderViT(**TINY), other.state_dict(), source="other.pth")


def test_import_pipeline_writes_mae_and_timm_encoder(tmp_path):
    from conftest import PYTHON, run_script
    from pfvit.models.registry import load_model

    torch.manual_seed(1)
    official = MaskedAutoencoderViT(**ARCHS["vit_tiny"])
    encoder_only = encoder_state(official.state_dict())  # like mae_pretrain_vit_*.pth
    torch.save({"model": encoder_only}, tmp_path / "enc.pth")
    proc = run_script([PYTHON, "pipelines/import_mae.py", f"checkpoint={tmp_path / 'enc.pth'}",
                       f"out={tmp_path / 'out'}", "arch=vit_tiny"])
    assert proc.returncode == 0, proc.stderr
    assert f"loaded {len(encoder_only)} tensors" in proc.stdout
    encoder = load_model(tmp_path / "out" / "encoder", expected="vit")
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in encoder_only.items())
    # The spelling of earlier releases (FILE OUT --arch …) still runs, with one deprecation line.
    proc = run_script([PYTHON, "pipelines/import_mae.py", str(tmp_path / "enc.pth"), str(tmp_path / "o2"),
                       "--arch", "vit_small"])
    assert proc.returncode == 2 and "of another shape" in proc.stderr and "Traceback" not in proc.stderr
    assert f'write checkpoint="{tmp_path / "enc.pth"}" out="{tmp_path / "o2"}" arch=vit_small' in proc.stderr
