"""PF-ViT's losses (seed 004, Eqs. 2 and 5–8, and the FR orthogonality of §4.2), one function each."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..labels import NEUTRAL

REAL, RECONSTRUCTION, POKER_FACE = "real", "reconstruction", "poker_face"


def emotion_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None):
    """L_emo (Eq. 5): cross-entropy of C(V_e) against the K-class label."""
    return F.cross_entropy(logits.float(), labels, weight=class_weights)


def reconstruction_loss(x: torch.Tensor, reconstruction: torch.Tensor, poker_face: torch.Tensor,
                        labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """L_rec (Eq. 6) as (face term, poker term): E‖x̂ − x‖ and E 𝕀[y = neutral]‖x̃ − x‖, each the mean squared
    error per pixel. The indicator sits inside the expectation over the whole batch, so the poker term is 0 for a
    batch without neutral faces and each neutral face weighs as much as in the face term."""
    face = (reconstruction.float() - x.float()).pow(2).mean()
    per_sample = (poker_face.float() - x.float()).pow(2).flatten(1).mean(dim=1)
    poker = (per_sample * (labels == NEUTRAL).float()).mean()
    return face, poker


def discriminator_targets(labels: torch.Tensor, kind: str, num_classes: int) -> torch.Tensor:
    """The K+1 targets d of Eqs. 7–8 for a batch of one kind of image.

    Emotion units: the true class for real faces and reconstructions, the neutral class for poker faces (Eq. 8).
    Last unit: 1 for real faces, 0 for generated ones."""
    if kind not in (REAL, RECONSTRUCTION, POKER_FACE):
        raise ValueError(f"unknown image kind {kind!r}")
    cls = torch.full_like(labels, NEUTRAL) if kind == POKER_FACE else labels
    target = torch.zeros(labels.shape[0], num_classes + 1, device=labels.device)
    target[torch.arange(labels.shape[0], device=labels.device), cls] = 1.0
    target[:, num_classes] = 1.0 if kind == REAL else 0.0
    return target


def discrimination_loss(logits: torch.Tensor, targets: torch.Tensor, units: slice | None = None) -> torch.Tensor:
    """L_dis (Eq. 7) for one kind of image: binary cross-entropy of σ(D(x')) against d, summed over the K+1
    units (or over ``units`` only) and averaged over the batch."""
    if units is not None:
        logits, targets = logits[:, units], targets[:, units]
    return F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none").sum(dim=1).mean()


def generator_adversarial_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str, num_classes: int,
                               mode: str = "nonsaturating") -> torch.Tensor:
    """The objective of E, S, G against D for generated images (x̂ or x̃).

    ``minimax``: −L_dis, the literal "maximise L_dis" of §3.2 — it also pushes x̂ away from its own class and x̃
    away from neutral. ``nonsaturating`` (default): the usual GAN reading of the game — minimise L_dis with the
    real/fake unit's target flipped to "real" and the class targets of Eq. 8 kept, so G is pushed towards
    realistic faces of the right class (neutral for poker faces), which is what the paper says D forces.
    ``classes``: the same on the K emotion units alone (G is not pushed on D's real/fake unit, which D still
    learns)."""
    targets = discriminator_targets(labels, kind, num_classes)
    if mode == "minimax":
        return -discrimination_loss(logits, targets)
    if mode == "classes":  # only the emotion units: D as a classifier guiding G, its real/fake verdict unused
        return discrimination_loss(logits, targets, slice(0, num_classes))
    if mode != "nonsaturating":
        raise ValueError(f"unknown adversarial mode {mode!r}")
    targets[:, num_classes] = 1.0
    return discrimination_loss(logits, targets)


def token_orthogonality(v_e: torch.Tensor, v_p: torch.Tensor) -> torch.Tensor:
    """The constraint of Eq. 2 as a loss: |⟨V_e, V_p⟩| / (‖V_e‖‖V_p‖) per token, averaged over tokens and batch."""
    return F.cosine_similarity(v_e.float(), v_p.float(), dim=-1, eps=1e-6).abs().mean()


def embedding_orthogonality(emb_e: torch.Tensor, emb_p: torch.Tensor) -> torch.Tensor:
    """The FR orthogonality of §4.2: |cos| between the face embeddings of G(V_e) and G(V_p)."""
    return F.cosine_similarity(emb_e.float(), emb_p.float(), dim=-1, eps=1e-6).abs().mean()
