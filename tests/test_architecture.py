"""The package's import graph follows docs/architecture.md: every import, at module level or inside a function,
goes down the layers, and no modules import each other in a circle (read from the source, nothing imported)."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# docs/architecture.md's layers, bottom first: a module may import its own package and anything on a lower layer.
LAYERS = [
    {"pfvit", "errors"},
    {"labels", "config", "resources", "devices"},
    {"schemas"},
    {"checkpoint"},
    {"runtime"},
    {"data"},
    {"models"},
    {"inference"},
    {"eval"},
    {"train"},
    {"predict", "export", "report"},
    {"cli"},
    {"__main__"},
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "pfvit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_edges(found: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(importer, imported pfvit module, line) for every import statement anywhere in the package."""
    edges = []
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # `from pkg import module` imports the module; `from module import name` the module itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in found else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in found:  # `import pfvit.models.mae.x` → the deepest known module
                    target = target.rpartition(".")[0]
                if target.startswith("pfvit") and target != name:
                    edges.append((name, target, node.lineno))
    return edges


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "pfvit"


def test_every_module_has_a_layer_and_every_import_goes_down():
    found = modules()
    unplaced = sorted({top(m) for m in found} - set(LAYER))
    assert not unplaced, f"place {unplaced} on a layer in docs/architecture.md and LAYERS here"
    upward = [f"{found[a].relative_to(ROOT)}:{line} imports {b}" for a, b, line in import_edges(found)
              if top(a) != top(b) and LAYER[top(a)] <= LAYER[top(b)]]
    assert not upward, "imports that go up (or sideways) a layer:\n" + "\n".join(upward)


def test_no_modules_import_each_other_in_a_circle():
    graph: dict[str, set[str]] = {}
    for a, b, _ in import_edges(modules()):
        graph.setdefault(a, set()).add(b)
    circles, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not circles, "import circles:\n" + "\n".join(" → ".join(c) for c in circles)


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The two checks above can fail: a model that imports training code, and two modules importing each other."""
    package = tmp_path / "pfvit"
    (package / "models").mkdir(parents=True)
    (package / "train").mkdir()
    for init in (package, package / "models", package / "train"):
        (init / "__init__.py").write_text("")
    (package / "models" / "a.py").write_text("from ..train.b import x\n")
    (package / "train" / "b.py").write_text("def f():\n    from ..models import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    edges = import_edges(modules())
    assert ("pfvit.models.a", "pfvit.train.b", 1) in edges and ("pfvit.train.b", "pfvit.models.a", 2) in edges
    with pytest.raises(AssertionError, match=r"models/a\.py:1 imports pfvit\.train\.b"):
        test_every_module_has_a_layer_and_every_import_goes_down()
    with pytest.raises(AssertionError, match="pfvit.models.a → pfvit.train.b → pfvit.models.a"):
        test_no_modules_import_each_other_in_a_circle()


def _tiny_classifiers():
    """One small model of every registered classifier, as its checkpoint's config would build it."""
    from pfvit.models.poster.poster import poster_config
    from pfvit.models.registry import build_model

    vit = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=2)
    models = {"vit": build_model("vit", {**vit, "num_classes": 5}),
              "pfvit_classifier": build_model("pfvit_classifier", {**vit, "num_classes": 5}),
              "pfvit": build_model("pfvit", {**vit, "num_classes": 5, "decoder_embed_dim": 16, "decoder_depth": 1,
                                             "decoder_num_heads": 2}),
              "expression_cnn": build_model("expression_cnn", {"num_classes": 5, "img_size": 32})}
    for variant in ("poster", "poster++", "poster-var"):
        name, config = poster_config(variant, 5, backbone="encoder", arch="vit_tiny", img_size=32, patch_size=8)
        models[variant] = build_model(name, {**config, "encoder": {**config["encoder"], "depth": 3}})
    return models


def test_every_classifier_follows_one_contract_features_head_and_cam_layer():
    """timm's contract for every classifier: forward_head(forward_features(x)) is the logits, pre_logits the
    (B, D) vector the head reads, cam_target_layers() layers of the model itself, and img_size its input size —
    what inference, retrieval and the CAMs call, with no dispatch on the model's type."""
    import torch

    x = torch.randn(2, 3, 32, 32)
    for name, model in _tiny_classifiers().items():
        model.eval()
        with torch.no_grad():
            logits = model(x) if name != "pfvit" else model(x, render_emotion=False)["logits"]
            features = model.forward_features(x)
            torch.testing.assert_close(model.forward_head(features), logits, msg=name)
            vector = model.forward_head(features, pre_logits=True)
        assert vector.dim() == 2 and vector.shape[0] == 2, (name, vector.shape)
        layers, _ = model.cam_target_layers()
        assert layers and all(any(layer is m for m in model.modules()) for layer in layers), name
        assert model.img_size == 32, (name, model.img_size)  # the size its config says, what preprocessing uses


def test_named_variants_build_with_overrides_and_bad_names_or_keys_are_one_config_error():
    from pfvit.errors import ConfigError
    from pfvit.models.mae import ARCHS
    from pfvit.models.registry import create_model

    for arch, sizes in ARCHS.items():
        size = arch.removeprefix("vit_")
        for name in (arch, f"mae_{arch}", f"pfvit_{size}", f"pfvit_classifier_{size}"):
            model = create_model(name, img_size=32, patch_size=8)
            encoder = {"pfvit": lambda m: m.classifier.encoder, "pfvit_classifier": lambda m: m.encoder}.get(
                name.removesuffix(f"_{size}"), lambda m: m)(model)
            blocks = encoder.blocks
            assert len(blocks) == sizes["depth"] and blocks[0].norm1.normalized_shape == (sizes["embed_dim"],), name
    assert create_model("vit_small").patch_embed.img_size == (224, 224)  # timm's default geometry
    assert create_model("mae_vit_tiny", img_size=32, patch_size=8, decoder_depth=2).decoder_blocks.__len__() == 2
    with pytest.raises(ConfigError, match="unknown model 'vit_huge'; variants: .*mae_vit_tiny"):
        create_model("vit_huge")
    with pytest.raises(ConfigError, match="create_model\\('mae_vit_tiny'\\) takes the keys of 'mae'.*img_sise"):
        create_model("mae_vit_tiny", img_sise=32)
