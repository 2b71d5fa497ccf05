"""POSTER family: shapes, dead parameters, the variational head and its KL, LoRA, weight loading and a CPU run."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import PYTHON, run_script
from pfvit.errors import CheckpointError
from pfvit.models.poster.layers import VariationalHead, gaussian_kl
from pfvit.models.poster.poster import PosterV2, poster_config
from pfvit.models.poster.weights import _released_prefixes, load_face_weights
from pfvit.models.registry import build_model


def tiny(variant: str, backbone: str = "encoder", **overrides):
    """A small model: encoder backbone = a 2-block, 64-wide ViT at 32 px; the fusion 64 wide."""
    name, config = poster_config(variant, 7, backbone, img_size=32, patch_size=8, **overrides)
    if backbone == "encoder":
        config["encoder"].update(embed_dim=48, depth=3, num_heads=3)
    if variant == "poster":
        config.update(dim=64, depth=2)
    else:
        config.update(embed_dim=64)
    return build_model(name, config)


def test_poster_pp_shapes_at_every_stage():
    torch.manual_seed(0)
    name, config = poster_config("poster++", 7, "face")
    model = build_model(name, config).eval()
    seen = {}

    def hook(key):
        return lambda module, args, out: seen.__setitem__(key, (args, out))

    for i in range(3):
        model.cross_attn[i].register_forward_hook(hook(f"attn{i}"))
        model.embed[i].register_forward_hook(hook(f"embed{i}"))
    model.backbone.register_forward_hook(hook("backbone"))
    model.blocks.register_forward_hook(hook("fusion"))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 7)
    image, landmarks = seen["backbone"][1]
    assert [tuple(t.shape[1:]) for t in image] == [(64, 56, 56), (128, 28, 28), (256, 14, 14)]
    assert [tuple(t.shape[1:]) for t in landmarks] == [(64, 28, 28), (128, 14, 14), (512, 7, 7)]
    for i, (c, s) in enumerate(((64, 28), (128, 14), (256, 7))):
        img_in, lm_in = seen[f"attn{i}"][0]
        assert img_in.shape[1:] == lm_in.shape[1:] == (c, s, s)
        assert seen[f"attn{i}"][1].shape[1:] == (c, s, s)
        assert seen[f"embed{i}"][1].shape[1:] == (768, 7, 7)
    assert seen["fusion"][0][0].shape[1:] == (148, 768)  # [CLS] + 3 × 49 tokens
    # 43.7 M parameters in the POSTER++ paper (its count includes dead layers; ours has none, see the next test).
    assert abs(sum(p.numel() for p in model.parameters()) / 1e6 - 43.7) < 0.2


@pytest.mark.parametrize("variant", ["poster", "poster++", "poster-var"])
def test_every_trainable_parameter_gets_a_gradient(variant):
    torch.manual_seed(0)
    model = tiny(variant).train()
    model(torch.randn(2, 3, 32, 32)).square().sum().backward()
    # None = not connected to the output (a zero gradient can also come from drop path).
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead


def test_face_backbone_poster_has_no_dead_parameters_and_a_frozen_landmark_net():
    torch.manual_seed(0)
    model = tiny("poster++", "face").train()
    bn = model.backbone.landmark_net.conv1.bn
    stats = bn.running_mean.clone()
    model(torch.randn(2, 3, 112, 112)).sum().backward()
    assert not model.backbone.landmark_net.training  # stays in eval inside a training model
    assert torch.equal(bn.running_mean, stats)  # BatchNorm statistics never drift
    assert all(p.grad is None for p in model.backbone.landmark_net.parameters())
    dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead


def test_kl_equals_the_closed_form_on_a_hand_example():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # −½(1 + 0 − 1 − 1) + −½(1 + ln 2 − 0 − 2) = ½ + ½(1 − ln 2)
    assert gaussian_kl(mu, logvar).item() == pytest.approx(0.5 + 0.5 * (1 - math.log(2.0)))
    q = torch.distributions.Normal(torch.randn(4, 7), torch.rand(4, 7) + 0.5)
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1).mean()
    torch.testing.assert_close(gaussian_kl(q.loc, 2 * q.scale.log()), expected)


def test_variational_head_samples_in_training_and_uses_mu_at_evaluation():
    torch.manual_seed(0)
    head = VariationalHead(16, 7)
    x = torch.randn(3, 16)
    head.eval()
    logits, mu, _ = head(x)
    torch.testing.assert_close(logits, head.fc_mu(x))
    head.train()
    samples = torch.stack([head(x)[0] for _ in range(2000)])
    assert not torch.equal(samples[0], samples[1])
    torch.testing.assert_close(samples.mean(0), mu, atol=0.1, rtol=0)
    std = torch.exp(0.5 * head.fc_logvar(x))
    torch.testing.assert_close(samples.std(0), std, atol=0.1, rtol=0)
    model = tiny("poster-var").eval()
    x = torch.randn(2, 3, 32, 32)
    out = model(x, all_outputs=True)
    torch.testing.assert_close(out["logits"], out["mu"])
    torch.testing.assert_close(model(x), out["mu"])


@pytest.mark.parametrize("variant", ["poster", "poster++"])
def test_lora_trains_only_adapters_and_head(variant):
    torch.manual_seed(0)
    model = tiny(variant, lora_r=4, lora_alpha=8)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable)
    assert all("lora_" in n or n.startswith(("head.", "se_block.")) for n in trainable), trainable
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # LoRA's B starts at zero: A moves from the second step on
        F.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(trainable)


def _released_layout(model: PosterV2, var_fusion: bool) -> dict:
    """The model's state in the released layout: keys renamed back, the release's dead layers and buffers added,
    ``module.``-prefixed (DataParallel)."""
    state = {}
    pairs = _released_prefixes(var_fusion)
    for key, value in model.state_dict().items():
        old = next(o for o, n in pairs if key.startswith(n))
        new = next(n for o, n in pairs if key.startswith(n))
        state["module." + old + key[len(new):]] = value.clone()
    for dead in ("VIT.patch_embed.proj.weight", "VIT.blocks.0.conv.weight", "VIT.CON1.weight",
                 "ir_back.output_layer.3.weight", "face_landback.output_layer.linear.weight",
                 "attn1.relative_position_index"):
        state["module." + dead] = torch.randn(3, 3)
    return state


@pytest.mark.parametrize("variant", ["poster++", "poster-var"])
def test_released_layout_loads_to_identical_logits(variant, tmp_path):
    from pfvit.inference import load_classifier
    from pfvit.labels import CANONICAL
    from pfvit.models.poster.weights import import_released_poster

    torch.manual_seed(0)
    name, config = poster_config(variant, 7, "face")
    model = build_model(name, config).eval()
    path = tmp_path / "released.pth"
    torch.save({"state_dict": _released_layout(model, config.get("var_fusion", False))}, path)
    report = import_released_poster(path, tmp_path / "imp", variant, CANONICAL[:7])
    assert report["unused"] == 6 and report["loaded"] == len(model.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(load_classifier(tmp_path / "imp")(x), model(x))
    if variant == "poster++":  # the release's RAF-DB class order is permuted into the canonical one
        from pfvit.labels import RELEASED_LABEL_ORDERS

        import_released_poster(path, tmp_path / "raf", variant, RELEASED_LABEL_ORDERS["rafdb"])
        with torch.no_grad():
            assert torch.equal(load_classifier(tmp_path / "raf")(x)[:, 3], model(x)[:, 0])  # surprise: row 0 → 3


def test_face_weights_load_with_counts_and_partial_files_are_errors(tmp_path):
    torch.manual_seed(0)
    model = tiny("poster++", "face")
    image_net = model.backbone.image_net
    # face.evoLVe layout: one `body` of 24 units (stage 4 too) and an output layer.
    evolve, offset = {}, {"body1": 0, "body2": 3, "body3": 7}
    for key, value in image_net.state_dict().items():
        if key.startswith("body"):
            stage, unit, rest = key.split(".", 2)
            key = f"body.{offset[stage] + int(unit)}.{rest}"
        evolve[key] = value + 1
    evolve["body.22.res_layer.0.weight"] = torch.randn(512)
    evolve["output_layer.4.weight"] = torch.randn(512)
    torch.save(evolve, tmp_path / "ir50.pth")
    mfn = {k: v + 1 for k, v in model.backbone.landmark_net.state_dict().items()}
    mfn["output_layer.linear.weight"] = torch.randn(136, 512)
    torch.save({"state_dict": mfn}, tmp_path / "mfn.pth.tar")
    counts = load_face_weights(model.backbone, tmp_path / "ir50.pth", tmp_path / "mfn.pth.tar")
    assert counts == {"ir50_tensors": len(image_net.state_dict()),
                      "mobilefacenet_tensors": len(model.backbone.landmark_net.state_dict())}
    assert torch.equal(image_net.body2[0].res_layer[1].weight, evolve["body.3.res_layer.1.weight"])
    del evolve["body.12.res_layer.1.weight"]
    torch.save(evolve, tmp_path / "ir50_partial.pth")
    with pytest.raises(CheckpointError, match="body3.5.res_layer.1.weight"):
        load_face_weights(model.backbone, tmp_path / "ir50_partial.pth", None)
    with pytest.raises(CheckpointError, match="MobileFaceNet"):
        load_face_weights(model.backbone, None, tmp_path / "ir50.pth")


@pytest.mark.slow
def test_cpu_finetune_from_a_pfvit_encoder_runs_and_evaluates(synthetic_shards, tmp_path):
    from pfvit.models.pfvit import EmotionClassifier
    from pfvit.checkpoint import save_checkpoint

    torch.manual_seed(0)
    enc_cfg = dict(img_size=64, patch_size=16, embed_dim=192, depth=12, num_heads=3, num_classes=8)
    pf = EmotionClassifier(**enc_cfg)
    save_checkpoint(tmp_path / "pf", pf, name="pfvit_classifier", config=enc_cfg)
    out = tmp_path / "poster_var"
    proc = run_script([PYTHON, "pipelines/finetune_poster.py", "--config",
                       "configs/finetune_poster/demo_poster_var.yaml", f"data.shards={synthetic_shards}",
                       "model.img_size=64", "model.patch_size=16", f"model.init={tmp_path / 'pf'}", f"run.out={out}",
                       "optim.max_steps=4",
                       "optim.sam_rho=0.05", "data.batch_size=8", "data.num_workers=0", "run.log_every=1",
                       "model.fusion_dim=64", "loss.kind=poster", "aug.lighting=0.1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "best" / "meta.json").read_text())
    assert meta["model"] == "poster_v2" and meta["extra"]["separator_tensors"] == 4
    assert meta["extra"]["encoder_tensors"] == len(pf.encoder.state_dict())
    from pfvit.eval.evaluate import evaluate
    from pfvit.schemas.evaluate import EvalConfig

    metrics = evaluate(EvalConfig(checkpoint=str(out / "best"), shards=str(synthetic_shards), split="test",
                                  out=str(tmp_path / "eval"), num_workers=0))
    assert metrics["num_samples"] == 40
    # The wrong file for the encoder is a clear one-line error.
    proc = run_script([PYTHON, "pipelines/finetune_poster.py", "--config",
                       "configs/finetune_poster/demo_poster_pp.yaml", f"data.shards={synthetic_shards}",
                       f"model.init={synthetic_shards / 'manifest.json'}", f"run.out={tmp_path / 'bad'}"])
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "manifest.json" in proc.stderr


def test_sam_step_applies_the_gradient_taken_at_the_perturbed_weights(tmp_path):
    """SAM (Foret et al.): w ← w − lr·∇L(w + ρ·g/‖g‖), g = ∇L(w); ρ = 0 is a plain step."""
    from pfvit.runtime import Run
    from pfvit.schemas.run import RunConfig

    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    base = torch.nn.Linear(5, 3)

    def sam_by_hand(rho: float) -> torch.Tensor:
        m = torch.nn.Linear(5, 3)
        m.load_state_dict(base.state_dict())
        grads = torch.autograd.grad(F.cross_entropy(m(x), y), list(m.parameters()))
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        with torch.no_grad():
            for p, g in zip(m.parameters(), grads):
                p.add_(rho * g / norm)
        grads = torch.autograd.grad(F.cross_entropy(m(x), y), list(m.parameters()))
        return torch.cat([(p0 - 0.1 * g).flatten() for p0, g in zip(base.parameters(), grads)])

    run = Run(RunConfig(out=str(tmp_path)), {}, "sam_test")
    for rho in (0.0, 0.5):
        model = torch.nn.Linear(5, 3)
        model.load_state_dict(base.state_dict())
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        run.train_step(model, opt, lambda: F.cross_entropy(model(x), y), clip_grad=None, step=0,
                       sam_rho=rho)
        torch.testing.assert_close(torch.cat([p.detach().flatten() for p in model.parameters()]), sam_by_hand(rho))
    plain = torch.cat([(p - 0.1 * g).flatten() for p, g in zip(
        base.parameters(), torch.autograd.grad(F.cross_entropy(base(x), y), list(base.parameters())))])
    assert not torch.allclose(sam_by_hand(0.5), plain)
