"""Issue 20's tests that can fail: a few dozen PF-ViT steps from a tiny MAE sharpen G's reconstruction and move the
poker faces of neutral inputs towards the input, and the expression judge reaches its bar on faces of other
identities. Apart from tests/test_pfvit.py so that `make test`'s workers (whole files each) can run the two at once."""

import pytest
import torch

from pfvit.models.pfvit import Discriminator, PokerFaceViT, discriminator_part, init_from_mae
from conftest import PYTHON, run_main, run_script


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """The study's recipe at toy length: calm 32 px faces, a 150-step PF-ViT-ready MAE, 48 PF-ViT steps of 16 from it
    over the recipe's schedule shape (2 epochs, warm-up, cosine), its rates scaled to a quarter of its batch: E, S,
    C linearly (2.5e-4), G by the square root (5e-4). At the recipe's own 1e-3 on batches of 16, G loses 1.5 dB."""
    base = tmp_path_factory.mktemp("study")
    shards = base / "shards"
    proc = run_script([PYTHON, "pipelines/make_shards.py", "num=480", "identities=48", "img_size=32",
                       "disturbance=0", "maxcount=200", "workers=2", f"out={shards}"])
    assert proc.returncode == 0, proc.stderr
    # The two stages run in this process (run_main): no interpreter and torch start-up of their own.
    code, err, _ = run_main("pipelines/mae_pretrain.py", [
        "--config", "configs/mae_pretrain/study.yaml", f"data.shards={shards}", f"run.out={base / 'mae'}",
        "optim.max_steps=150", "optim.epochs=1000", "data.batch_size=32", "data.num_workers=0", "vis_every=1000"])
    assert code == 0, err[-2000:]
    code, err, _ = run_main("pipelines/pfvit_train.py", [
        "--config", "configs/pfvit/study.yaml", f"data.shards={shards}", f"model.init={base / 'mae' / 'checkpoint'}",
        f"run.out={base / 'pf'}", "optim.max_steps=48", "optim.epochs=2", "optim.warmup_epochs=0.25",
        "optim.lr=2.5e-4", "optim.g_lr=5e-4", "data.batch_size=16", "data.num_workers=0", "optim.d_warmup_steps=20",
        "model.mca_copy_steps=50", "vis_every=1000"])
    assert code == 0, err[-2000:]
    return shards, base


@pytest.fixture(scope="module")
def study_psnr(study_run) -> dict[str, tuple[float, float]]:
    """PSNR of x̂ vs x over all test faces and of x̃ vs x over the neutral ones, for G as PF-ViT starts it (MAE init,
    MCA copy fitted as the run fits it) and after the run."""
    from pfvit.config import load_config
    from pfvit.data.shards import IndexedShards
    from pfvit.data.transforms import denormalize, eval_transform
    from pfvit.models.convert import read_pretrained
    from pfvit.models.geometry import inherit_geometry
    from pfvit.models.pfvit import fit_positional_copy
    from pfvit.models.registry import load_model
    from pfvit.train.pfvit_train import model_config, training_tokens
    from pfvit.schemas.pfvit import PFViTConfig

    shards, base = study_run
    cfg = load_config(PFViTConfig, "configs/pfvit/study.yaml", [f"data.shards={shards}", "model.mca_copy_steps=50",
                                                                f"model.init={base / 'mae' / 'checkpoint'}"])
    inherit_geometry(cfg.model)
    torch.manual_seed(0)
    start = PokerFaceViT(**model_config(cfg.model))
    init_from_mae(start, Discriminator(**discriminator_part(model_config(cfg.model))),
                  read_pretrained(base / "mae" / "checkpoint", ("mae",)), 0.02)
    fit_positional_copy(start.generator, training_tokens(start, cfg), 50)
    end = load_model(base / "pf" / "last", expected="pfvit")
    data = IndexedShards(shards, "test")
    samples = [data.sample(i) for i in range(len(data))]
    x = torch.stack([eval_transform(32)(s["jpg"]) for s in samples])
    neutral = torch.tensor([s["cls"] == 0 for s in samples])
    assert neutral.sum() >= 3

    def psnr(a, b):
        return (-10 * torch.log10((denormalize(a) - denormalize(b)).pow(2).flatten(1).mean(1))).mean().item()

    out = {}
    with torch.no_grad():
        for name, model in (("start", start.eval()), ("end", end.eval())):
            result = model(x, render_emotion=False)
            out[name] = (psnr(result["reconstruction"], x),
                         psnr(result["poker_face"][neutral], x[neutral]))
    return {"reconstruction": (out["start"][0], out["end"][0]), "neutral_poker": (out["start"][1], out["end"][1])}


@pytest.mark.slow
def test_a_few_dozen_pfvit_steps_from_a_tiny_mae_sharpen_the_reconstruction(study_psnr):
    before, after = study_psnr["reconstruction"]
    assert after > before + 0.5, (before, after)  # 48 steps of 16 from a 150-step MAE: +1.1 dB on unseen faces


@pytest.mark.slow
def test_poker_faces_of_neutral_inputs_move_towards_the_input(study_psnr):
    before, after = study_psnr["neutral_poker"]
    assert after > before + 0.5, (before, after)  # a neutral face is its own poker face (Eq. 6's second term): +1.1


@pytest.mark.slow
def test_the_judge_cnn_reaches_its_bar_on_faces_of_other_identities_and_another_seed(tmp_path):
    """Issue 20's judge: trained on calm 32 px faces of one family seed, it must read ≥ 85 % of the expressions of
    the study's test faces (another seed, identities it never saw) — the bar that makes its verdict on poker faces
    mean something."""
    from pfvit.eval.evaluate import evaluate
    from pfvit.schemas.evaluate import EvalConfig

    shards = {}
    # JudgeConfig's defaults (3000 steps) on 8000 faces of 800 other identities, read on 300 test faces of the
    # study's seed. make pfvit-study gives its judge eight times the faces and steps (STUDY_JUDGE_*: 92 % on its
    # val split, docs/results.md); the smaller recipe keeps this test within the suite's time.
    for name, seed, num, identities in (("judge", 1, 8000, 800), ("study", 0, 3000, 300)):
        shards[name] = tmp_path / name
        proc = run_script([PYTHON, "pipelines/make_shards.py", f"num={num}", f"identities={identities}",
                           f"seed={seed}", "img_size=32", "disturbance=0", "maxcount=1000",
                           "workers=2", f"out={shards[name]}"])
        assert proc.returncode == 0, proc.stderr
    code, err, _ = run_main("pipelines/train_judge.py", [f"shards={shards['judge']}", f"out={tmp_path / 'judge'}",
                                                         "img_size=32"])
    assert code == 0, err[-2000:]
    metrics = evaluate(EvalConfig(checkpoint=str(tmp_path / "judge"), shards=str(shards["study"]), split="test",
                                  out=str(tmp_path / "eval"), num_workers=0))
    assert metrics["num_samples"] >= 250
    assert metrics["accuracy"] >= 0.85, metrics["accuracy"]
