"""The built-in synthetic faces as a shard source: ``jpg``, ``neutral.jpg`` (the true poker face), ``cls`` and a
``json`` holding the identity id and every rendering parameter."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...labels import CANONICAL
from ..shards import ShardSpec, encode_jpeg
from ..synthetic import SPLITS, SyntheticSample, render, synthetic_samples

LANDMARK_NAMES = ("eye_left", "eye_right", "nose", "mouth_left", "mouth_right")


@dataclass
class SyntheticSampleMaker:
    """Renders one sample and its neutral twin (a class, not a closure, so worker processes can receive it)."""

    size: int = 224
    quality: int = 95

    def __call__(self, sample: SyntheticSample) -> dict:
        image, landmarks = render(sample.identity, sample.expression, sample.disturbance, self.size,
                                  return_landmarks=True)
        meta = {"dataset": "synthetic", "source": sample.key, "label_name": CANONICAL[sample.label],
                "original_label": sample.label, "landmarks": [[round(float(v), 2) for v in p] for p in landmarks],
                "landmark_names": list(LANDMARK_NAMES), "size": self.size, **sample.to_json()}
        return {"__key__": sample.key, "jpg": encode_jpeg(image, self.quality),
                "neutral.jpg": encode_jpeg(sample.neutral_twin(self.size), self.quality),
                "cls": sample.label, "json": meta}


def synthetic_specs(num: int, identities: int, seed: int = 0, size: int = 224, quality: int = 95,
                    disturbance: float = 1.0) -> list[ShardSpec]:
    """Train / val / test specs with disjoint identities."""
    try:
        samples = synthetic_samples(num, identities, seed, disturbance=disturbance)
    except ValueError as err:  # the generator's own parameter checks, reported as one line like any user input
        raise UserError(f"source=synthetic: {err}") from None
    maker = SyntheticSampleMaker(size, quality)
    return [ShardSpec(split, samples[split], maker,
                      extra={"identities": sorted({s.identity_id for s in samples[split]})}) for split in SPLITS]
