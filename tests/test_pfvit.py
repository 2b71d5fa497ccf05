"""PF-ViT: shapes, the separator's complementarity, Eqs. 6–8, which step's gradient reaches what, the frozen FR
network, MAE initialisation, a CPU training run with export and evaluation, and exact resume."""

import json
import math

import pytest
import torch

from pfvit.errors import CheckpointError, UserError
from pfvit.labels import NEUTRAL, class_names
from pfvit.models import pfvit_losses as L
from pfvit.models.mae import MaskedAutoencoderViT, arch_config
from pfvit.models.pfvit import Discriminator, PokerFaceViT, discriminator_part, init_from_mae
from pfvit.train.pfvit_train import discriminator_loss, generator_losses
from pfvit.schemas.pfvit import PFLossConfig
from conftest import PYTHON, assert_kill_resume_identical, run_script

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=2,
            decoder_num_heads=2, num_classes=8)


def tiny(seed=0):
    torch.manual_seed(seed)
    return PokerFaceViT(**TINY), Discriminator(**discriminator_part(TINY))


@pytest.mark.parametrize("config", [TINY, arch_config("vit_tiny", img_size=64, patch_size=16, num_classes=7)])
def test_shapes(config):
    model, disc = PokerFaceViT(**config).eval(), Discriminator(**discriminator_part(config))
    size, k = config["img_size"], config["num_classes"]
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = model(x)
    tokens = (size // config["patch_size"]) ** 2 + 1
    assert out["z"].shape == out["v_e"].shape == out["v_p"].shape == (2, tokens, config["embed_dim"])
    for name in ("reconstruction", "poker_face", "emotion_image"):
        assert out[name].shape == x.shape
    assert out["logits"].shape == (2, k)
    assert disc(x).shape == (2, k + 1)
    assert model.classifier(x).shape == (2, k)


def test_separator_masks_are_complementary():
    model, _ = tiny()
    z, v_e, v_p = model.classifier.separate(torch.randn(3, 3, 32, 32))
    torch.testing.assert_close(v_e + v_p, z)
    gate = model.classifier.separator(z)
    assert gate.shape == (3, 1, TINY["embed_dim"]) and 0 <= gate.min() and gate.max() <= 1
    assert not torch.allclose(v_e, v_p)


def test_discriminator_targets_follow_eq8():
    y = torch.tensor([2, 0, 5])
    real = L.discriminator_targets(y, L.REAL, 7)
    rec = L.discriminator_targets(y, L.RECONSTRUCTION, 7)
    poker = L.discriminator_targets(y, L.POKER_FACE, 7)
    assert real.shape == (3, 8)
    assert real[:, 7].tolist() == [1, 1, 1] and rec[:, 7].tolist() == [0, 0, 0] and poker[:, 7].tolist() == [0, 0, 0]
    assert real[:, :7].argmax(1).tolist() == rec[:, :7].argmax(1).tolist() == [2, 0, 5]
    assert real[:, :7].sum(1).tolist() == [1, 1, 1]
    # Poker faces are neutral whatever the input was; neutral is index 0 in the 7- and 8-class protocols.
    assert poker[:, :7].argmax(1).tolist() == [NEUTRAL] * 3 and poker[:, :7].sum(1).tolist() == [1, 1, 1]
    assert class_names(7)[NEUTRAL] == class_names(8)[NEUTRAL] == "neutral" and NEUTRAL == 0
    # Eq. 7 on a hand example: BCE summed over the K+1 units.
    logits = torch.zeros(1, 8)
    assert L.discrimination_loss(logits, real[:1]).item() == pytest.approx(8 * torch.log(torch.tensor(2.0)).item())


def test_poker_term_of_eq6_vanishes_without_neutral_faces():
    x = torch.randn(4, 3, 8, 8)
    rec, poker = x + 0.1, x + 1.0
    face, p = L.reconstruction_loss(x, rec, poker, torch.tensor([1, 2, 3, 4]))
    assert face.item() == pytest.approx(0.01, rel=1e-4) and p.item() == 0.0
    _, p = L.reconstruction_loss(x, rec, poker, torch.tensor([0, 2, 3, 4]))
    assert p.item() == pytest.approx(0.25, rel=1e-4)  # one neutral face in four, error 1 per pixel


def test_adversarial_objectives():
    y = torch.tensor([3])
    confident_real_surprise = torch.full((1, 8), -8.0)
    confident_real_surprise[0, 3] = confident_real_surprise[0, 7] = 8.0
    ns = L.generator_adversarial_loss(confident_real_surprise, y, L.RECONSTRUCTION, 7)
    assert ns.item() < 0.01  # D fooled and the class right: nothing for G to gain
    mm = L.generator_adversarial_loss(confident_real_surprise, y, L.RECONSTRUCTION, 7, "minimax")
    d = L.discrimination_loss(confident_real_surprise, L.discriminator_targets(y, L.RECONSTRUCTION, 7))
    assert mm.item() == pytest.approx(-d.item())


def grads(module):
    return {n: p.grad for n, p in module.named_parameters() if p.requires_grad}


def test_each_step_reaches_only_its_own_networks():
    model, disc = tiny()
    trainable = [n for n, p in disc.named_parameters() if p.requires_grad]
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    losses, out = generator_losses(model, disc, None, x, y, PFLossConfig(), 8)
    assert set(losses) == {"emo", "rec", "poker_rec", "adv", "orth", "total"}
    losses["total"].backward()
    assert all(g is None for g in grads(disc).values())  # D is only read in the generator step
    for part in (model.classifier.encoder, model.classifier.separator, model.classifier.head, model.generator):
        assert any(g is not None and g.abs().sum() > 0 for g in grads(part).values())
    assert [n for n, p in disc.named_parameters() if p.requires_grad] == trainable  # unfrozen again
    model.zero_grad(set_to_none=True)
    discriminator_loss(disc, x, out, y, 8).backward()
    assert all(g is None for g in grads(model).values())  # fakes are detached in the D step
    assert all(g is not None for n, g in grads(disc).items())


def test_adversarial_gradient_alone_reaches_generator_not_discriminator():
    model, disc = tiny()
    weights = PFLossConfig(emo=0, rec=0, poker_rec=0, adv=1.0, orth=0, orth_fr=0)
    losses, _ = generator_losses(model, disc, None, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]), weights, 8)
    losses["total"].backward()
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.generator).values())
    assert all(g is None for g in grads(disc).values())


def test_face_recognition_network_is_frozen_in_eval_and_passes_gradients(capsys):
    from pfvit.models.facerec import build_face_embedder

    fr = build_face_embedder("inception_resnet_v1", None)
    assert "RANDOMLY" in capsys.readouterr().err
    fr.train()
    assert not fr.training and not any(m.training for m in fr.modules())
    assert not any(p.requires_grad for p in fr.parameters())
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    emb = fr(images)
    assert emb.shape == (2, 512) and torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    emb.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert build_face_embedder("none", None) is None


def test_fr_term_runs_through_the_emotion_image():
    from pfvit.models.facerec import build_face_embedder

    model, disc = tiny()
    fr = build_face_embedder("sface", None)  # what fr.model=auto uses when no weights are given
    losses, out = generator_losses(model, disc, fr, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]),
                                   PFLossConfig(), 8)
    assert "orth_fr" in losses and 0 <= losses["orth_fr"].item() <= 1 + 1e-5 and "emotion_image" in out
    losses["orth_fr"].backward()
    assert any(g is not None and g.abs().sum() > 0 for g in grads(model.classifier.separator).values())


def test_the_documented_paper_commands_select_inception_resnet_v1_from_fr_weights(tmp_path, capsys):
    """README step 4 and the pfvit_train.py docstring give fr.weights with a paper config and no fr.model: the
    paper's InceptionResnetV1 must be what runs; without weights, fr.model=auto says loudly that SFace runs."""
    import shlex

    from facenet_pytorch import InceptionResnetV1

    from pfvit.config import load_config
    from pfvit.models.facerec import build_face_embedder
    from pfvit.schemas.pfvit import PFViTConfig
    from conftest import ROOT

    weights = tmp_path / "vggface2.pt"
    torch.save(InceptionResnetV1(pretrained=None, classify=False).state_dict(), weights)
    for text in ((ROOT / "README.md").read_text(), (ROOT / "pfvit" / "cli" / "pfvit_train.py").read_text()):
        start = text.index("pipelines/pfvit_train.py --config configs/pfvit/vit_base.yaml")
        line = text[start:].replace("\\\n", " ").split("\n", 1)[0]  # one logical command line
        words = shlex.split(line)
        overrides = [f"fr.weights={weights}" if w.startswith("fr.weights=") else w for w in words[3:] if "=" in w]
        assert any(w.startswith("fr.weights=") for w in overrides) and not any("fr.model" in w for w in overrides)
        cfg = load_config(PFViTConfig, ROOT / words[2], overrides)
        fr = build_face_embedder(cfg.fr.model, cfg.fr.weights)
        assert fr.name == "inception_resnet_v1" and fr.pretrained, line
    assert build_face_embedder("auto", None).name == "sface"
    assert "not the paper's InceptionResnetV1" in capsys.readouterr().err


def test_fr_weights_of_another_model_are_refused(tmp_path):
    from pfvit.models.facerec import build_face_embedder

    path = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not an InceptionResnetV1 state dict"):
        build_face_embedder("inception_resnet_v1", str(path))


def test_init_from_mae_fills_encoder_generator_and_discriminator():
    torch.manual_seed(1)
    mae = MaskedAutoencoderViT(**arch_config("vit_tiny", img_size=32, patch_size=8, depth=2, decoder_depth=2))
    config = arch_config("vit_tiny", img_size=32, patch_size=8, depth=2, decoder_depth=2, num_classes=7)
    model, disc = PokerFaceViT(**config), Discriminator(**discriminator_part(config))
    # C: timm's N(0, 0.02) from scratch, MAE's 2e-5 (or model.head_init_std) over the loaded encoder.
    assert model.classifier.head.weight.std().item() == pytest.approx(0.02, rel=0.25)
    init_from_mae(model, disc, mae.state_dict(), head_init_std=0.005)
    assert model.classifier.head.weight.std().item() == pytest.approx(0.005, rel=0.25)
    counts = init_from_mae(model, disc, mae.state_dict())
    assert model.classifier.head.weight.std().item() == pytest.approx(2e-5, rel=0.25)
    assert counts["generator"] == sum(1 for k in mae.state_dict() if k.startswith(("decoder", "mask_token")))
    torch.testing.assert_close(model.classifier.encoder.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)
    torch.testing.assert_close(model.generator.decoder_blocks[0].attn.qkv.weight, mae.decoder_blocks[0].attn.qkv.weight)
    torch.testing.assert_close(disc.blocks[1].norm1.weight, mae.decoder_blocks[1].norm1.weight)
    torch.testing.assert_close(model.generator.mask_token, mae.mask_token)
    # Another image size: E's learned table is resampled, G's fixed sin-cos table is its own for the new grid.
    larger = PokerFaceViT(**{**config, "img_size": 2 * config["img_size"]})
    own_table = larger.generator.decoder_pos_embed.detach().clone()
    init_from_mae(larger, Discriminator(**discriminator_part({**config, "img_size": 2 * config["img_size"]})),
                  mae.state_dict())
    assert larger.classifier.encoder.pos_embed.shape[1] == 1 + 4 * (mae.pos_embed.shape[1] - 1)
    torch.testing.assert_close(larger.classifier.encoder.pos_embed[:, 0], mae.pos_embed[:, 0])
    assert torch.equal(larger.generator.decoder_pos_embed, own_table)
    wrong = PokerFaceViT(**{**config, "patch_size": config["patch_size"] * 2})
    with pytest.raises(CheckpointError, match="does not fit"):
        init_from_mae(wrong, Discriminator(**discriminator_part({**config, "patch_size": config["patch_size"] * 2})),
                      mae.state_dict())
    with pytest.raises(CheckpointError, match="full MAE checkpoint"):
        init_from_mae(model, disc, {k: v for k, v in mae.state_dict().items() if not k.startswith("decoder")})


PF_ARGS = ["pipelines/pfvit_train.py", "--config", "configs/pfvit/demo.yaml", "model.img_size=32",
           "model.patch_size=8", "model.init=null", "data.batch_size=16", "data.num_workers=0", "run.log_every=1",
           "vis_every=1000", "model.mca_copy_steps=10", "optim.d_warmup_steps=5"]


def test_expression_region_psnr_matches_a_hand_computation():
    from pfvit.eval.pokerface import expression_region_psnr

    twins = torch.full((2, 3, 8, 8), 0.5)
    inputs = twins.clone()
    inputs[0, :, 2:4, 2:4] += 0.4  # sample 0: a 2x2 "expression"; sample 1: no change at all
    images = twins.clone()
    images[0, :, 2:4, 2:4] += 0.1  # error 0.1 inside the region, and far larger outside it (not counted)
    images[0, :, 6:, 6:] = 0.0
    psnr = expression_region_psnr(images, inputs, twins)
    assert psnr[0].item() == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.1²)
    assert psnr[1].isnan()
    assert expression_region_psnr(inputs, inputs, twins)[0].item() == pytest.approx(-10 * math.log10(0.16), abs=1e-4)


def test_the_judge_is_read_on_poker_faces_inputs_reconstructions_and_true_twins_apart(synthetic_shards):
    """An oracle judge that calls a face neutral exactly when it is some sample's true neutral twin, and a generator
    whose poker face is the twin and whose reconstruction is the input: each judge share must come from its own
    images (1 on poker faces and twins, the identical-to-twin share on inputs and reconstructions)."""
    from pfvit.data.shards import IndexedShards
    from pfvit.data.transforms import denormalize, eval_transform
    from pfvit.eval.pokerface import pokerface_metrics

    data = IndexedShards(synthetic_shards, "test")
    transform = eval_transform(64)

    def as_bytes(images):
        return [bytes((denormalize(i[None]) * 255).round().byte().flatten().tolist()) for i in images]

    pairs = [(transform(s["jpg"]), transform(s["neutral.jpg"])) for s in map(data.sample, range(len(data)))]
    twin_of = dict(zip(as_bytes([x for x, _ in pairs]), (t for _, t in pairs)))
    twin_bytes = set(as_bytes([t for _, t in pairs]))

    class TwinModel(torch.nn.Module):
        img_size = 64

        def forward(self, x, render_emotion=False):
            return {"reconstruction": x, "poker_face": torch.stack([twin_of[b] for b in as_bytes(x)])}

    class OracleJudge:
        preprocess = staticmethod(lambda images: images)

        def __call__(self, images):  # uint8 images in, logits out: neutral (class 0) for a true twin
            neutral = torch.tensor([bytes(i.flatten().tolist()) in twin_bytes for i in images])
            return torch.stack([neutral.float(), (~neutral).float()], 1)

    poker = pokerface_metrics(TwinModel(), str(synthetic_shards), "test", judge=OracleJudge(), batch_size=16)
    identical = poker["expressive_inputs_identical_to_twin"] / poker["expressive_samples"]
    assert poker["expressive_samples"] > 20 and identical < 0.5
    assert poker["judge_neutral_poker"] == poker["judge_neutral_twin"] == 1.0
    assert poker["judge_neutral_input"] == poker["judge_neutral_reconstruction"] == pytest.approx(identical)
    assert poker["judge_neutral_poker_neutral_inputs"] == 1.0  # a neutral face is its own twin
    # A perfect poker face has an infinite PSNR against its twin everywhere: counted, and closer than anything.
    assert poker["poker_faces_identical_to_twin"] == poker["expressive_samples"]
    assert poker["poker_closer_to_twin_than_input"] and poker["poker_closer_to_twin_than_reconstruction"]
    assert poker["poker_closer_to_twin_than_input_in_expression_region"]


@pytest.mark.slow
def test_cpu_run_lowers_losses_exports_and_evaluates(tmp_path):
    from pfvit.inference import load_classifier
    from pfvit.models.registry import load_model
    from pfvit.runtime import read_metrics

    # 48 training faces seen ~23 times each: the losses must fall on the faces trained on (the loop works); whether
    # the classifier generalises is the fine-tune stage's question, not this one's.
    shards = tmp_path / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=60", "identities=6", "img_size=64",
                       f"out={shards}"])
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "pf"
    proc = run_script([PYTHON, *PF_ARGS, f"data.shards={shards}", f"run.out={out}", "optim.max_steps=70",
                       "optim.lr=5e-4", "optim.epochs=100"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RANDOM weights" in proc.stdout  # model.init=null is announced
    records = [r for r in read_metrics(out / "metrics.jsonl") if "rec" in r]
    first, last = records[:10], records[-10:]
    for key in ("rec", "emo"):
        before, after = (sum(r[key] for r in part) / len(part) for part in (first, last))
        assert after < 0.9 * before, (key, before, after)
    assert (out / "samples" / "step_0000070.png").is_file() and (out / "loss.png").is_file()
    assert {"dis", "adv", "orth", "poker_rec"} <= set(records[-1])

    # Export (the script is exercised by the chain smoke test, tests/test_chain.py) and evaluation with the
    # poker-face measures, in-process.
    from pfvit.eval.evaluate import evaluate
    from pfvit.schemas.evaluate import EvalConfig
    from pfvit.export import export_classifier

    exported = export_classifier(out / "best", tmp_path / "classifier")
    clf = load_classifier(exported)  # the export alone: no training config needed
    assert type(clf.model).__name__ == "EmotionClassifier"
    full = load_model(out / "best", expected="pfvit")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf(x), full.classifier(x))
    assert sum(p.numel() for p in clf.parameters()) < 0.8 * sum(p.numel() for p in full.parameters())

    ev = tmp_path / "eval"
    metrics = evaluate(EvalConfig(checkpoint=str(out / "best"), shards=str(shards), split="test", out=str(ev),
                                  pokerface=True, judge=str(exported), num_workers=0))
    assert metrics["num_samples"] == 6 and json.loads((ev / "metrics.json").read_text())["num_samples"] == 6
    poker = metrics["pokerface"]
    assert poker["has_twins"] and poker["samples"] == 6 and 0 <= poker["judge_neutral_poker"] <= 1
    assert poker["psnr_input_vs_twin"] > 15  # the input differs from its twin by the expression only
    # ...and is, by construction, far from it where it differs
    assert poker["psnr_input_vs_twin_expression_region"] < poker["psnr_input_vs_twin"] - 5
    assert (ev / "pokerface.png").is_file()
    with pytest.raises(UserError, match="has no generator"):
        evaluate(EvalConfig(checkpoint=str(exported), shards=str(shards), out=str(tmp_path / "ev2"), pokerface=True))


@pytest.mark.slow
def test_killed_pfvit_run_resumes_identically(synthetic_shards, tmp_path):
    args = [PYTHON, *PF_ARGS, f"data.shards={synthetic_shards}", "optim.max_steps=8", "run.save_every=4"]
    assert_kill_resume_identical(args, tmp_path, state_step=4, last_step=8, keys=("total", "dis"))


def test_init_needs_a_full_mae(synthetic_shards, tmp_path):
    from pfvit.config import load_config
    from pfvit.train.pfvit_train import train
    from pfvit.schemas.pfvit import PFViTConfig

    cfg = load_config(PFViTConfig, PF_ARGS[2], [*PF_ARGS[3:], f"data.shards={synthetic_shards}",
                                                f"run.out={tmp_path / 'x'}", "model.init=runs/does-not-exist"])
    with pytest.raises(CheckpointError, match="does-not-exist"):
        train(cfg)


def test_poker_faces_of_real_face_files_with_a_broken_one(shared_data, tmp_path):
    import shutil

    from PIL import Image

    from pfvit.eval.pokerface import generate_poker_faces
    from pfvit.checkpoint import save_checkpoint

    model, _ = tiny()
    ckpt = save_checkpoint(tmp_path / "ckpt", model, name="pfvit", config=TINY, label_names=class_names(8))
    faces = tmp_path / "faces"
    faces.mkdir()
    for src in sorted((shared_data / "ckplus48" / "CK+48" / "happy").iterdir())[:3]:
        shutil.copy(src, faces / src.name)  # 48x48 greyscale crops
    (faces / "empty.png").write_bytes(b"")
    summary = generate_poker_faces(ckpt, tmp_path / "out", images=str(faces))
    assert summary["generated"] == 3
    assert [s["reason"] for s in summary["skipped"]] == ["empty file"]
    written = sorted((tmp_path / "out").glob("*_poker.png"))
    assert len(written) == 3 and Image.open(written[0]).size == (32, 32)
    assert (tmp_path / "out" / "sheet.png").is_file()
