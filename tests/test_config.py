from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from pfvit.config import changed_keys, load_config, save_config
from pfvit.errors import ConfigError
from pfvit.schemas.mae import MAEPretrainConfig
from conftest import PYTHON, run_script


@dataclass
class Inner:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    names: list[str] = field(default_factory=list)
    mode: Literal["a", "b"] = "a"
    clip: Optional[float] = None


@dataclass
class Outer:
    seed: int = 0
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_overrides_apply_on_top_of_yaml_and_base(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\ninner:\n  lr: 0.5\n  mode: b\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\ninner:\n  names: [x, y]\n")
    cfg = load_config(Outer, tmp_path / "child.yaml", ["inner.lr=3e-4", "flag=true", "inner.betas=[0.5,0.9]",
                                                       "inner.clip=1"])
    assert cfg.seed == 3 and cfg.flag is True
    assert cfg.inner.lr == pytest.approx(3e-4) and isinstance(cfg.inner.lr, float)
    assert cfg.inner.betas == (0.5, 0.9) and cfg.inner.names == ["x", "y"] and cfg.inner.mode == "b"
    assert cfg.inner.clip == 1.0
    # YAML 1.2 booleans: `no` stays a string (it is a valid mixed-precision setting).
    assert load_config(MAEPretrainConfig, None, ["run.mixed_precision=no"]).run.mixed_precision == "no"
    with pytest.raises(ConfigError, match="expected true or false, got 'yes'"):
        load_config(Outer, None, ["flag=yes"])


@pytest.mark.parametrize("override, message", [
    ("inner.lrr=1", "unknown config key 'inner.lrr'; valid keys under 'inner': lr, betas, names, mode, clip"),
    ("sed=1", "unknown config key 'sed'; valid keys at the top level: seed, flag, inner"),
    ("seed=abc", "seed: expected an integer, got 'abc'"),
    ("flag=3", "flag: expected true or false, got 3"),
    ("inner.mode=c", "inner.mode: expected one of 'a' | 'b', got 'c'"),
    ("inner.betas=[1,2,3]", "inner.betas: expected 2 values, got 3"),
    ("inner=5", "inner: expected a mapping of lr, betas, names, mode, clip, got 5"),
    ("seed", "is not of the form key=value"),
])
def test_bad_keys_and_types_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(Outer, None, [override])
    assert message in str(err.value)


def test_bad_yaml_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\ninner: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml line \d+: not valid YAML"):
        load_config(Outer, bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Outer, tmp_path / "missing.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(MAEPretrainConfig, "configs/mae_pretrain/demo.yaml", ["optim.clip_grad=3.0"])
    assert cfg.model.img_size == 32 and cfg.model.patch_size == 8 and cfg.model.arch == "vit_tiny"
    assert cfg.run.grad_accum_steps == 1 and cfg.data.shards == "shards/synthetic"
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(MAEPretrainConfig, tmp_path / "config.yaml") == cfg


@pytest.mark.parametrize("name", ["vit_tiny", "vit_small", "vit_base", "demo"])
def test_shipped_configs_load(name):
    cfg = load_config(MAEPretrainConfig, f"configs/mae_pretrain/{name}.yaml")
    assert cfg.model.arch.startswith("vit_")


def test_changed_keys_names_nested_differences_and_one_sided_keys_only_when_asked():
    old = {"model": {"arch": "vit_tiny", "img_size": 64}, "seed": 0, "gone": 1}
    new = {"model": {"arch": "vit_small", "img_size": 64}, "seed": 0, "added": {"x": 1}}
    assert changed_keys(old, new) == ["model.arch"]
    assert changed_keys(old, new, one_sided=True) == ["added", "gone", "model.arch"]
    assert changed_keys(new, new, one_sided=True) == []


def test_stage_cli_prints_one_line_error_not_a_traceback():
    proc = run_script([PYTHON, "pipelines/mae_pretrain.py", "--config", "configs/mae_pretrain/demo.yaml",
                       "optim.lrr=1"])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: unknown config key 'optim.lrr'; valid keys under "
                                                           "'optim': blr, lr,")


@pytest.mark.parametrize("folder", ["mae_pretrain", "finetune_vit", "pfvit", "finetune_poster"])
def test_every_shipped_config_loads_against_its_stage_schema(folder):
    from pathlib import Path

    from pfvit.schemas.finetune import FinetuneConfig
    from pfvit.schemas.pfvit import PFViTConfig
    from pfvit.schemas.poster import PosterConfig

    schema = {"mae_pretrain": MAEPretrainConfig, "finetune_vit": FinetuneConfig, "pfvit": PFViTConfig,
              "finetune_poster": PosterConfig}[folder]
    files = sorted(Path("configs", folder).glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        assert load_config(schema, path).run.out.startswith("runs/"), path
