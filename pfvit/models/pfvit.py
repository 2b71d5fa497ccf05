"""PF-ViT (seed 004, §3.2): encoder E, token separator S, generator G with the cross-fusion block MCA,
discriminator D and classifier C.

* :class:`EmotionClassifier` — E + S + C, the part kept for deployment (``pfvit_classifier``).
* :class:`PokerFaceViT` — the classifier plus MCA + G (``pfvit``): reconstruction x̂, poker face x̃ and the
  "emotion image" rendered from V_e alone (Fig. 3).
* :class:`Discriminator` — D, a ViT of the MAE decoder's size with K+1 outputs (``pfvit_discriminator``).

E is a timm ViT in the MAE encoder's layout; G keeps the MAE decoder's key names (``decoder_embed``,
``mask_token``, ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``, ``decoder_pred``) and D's blocks
and norm start as copies of the decoder's (Fig. 2: "G and D have the same initial weights"), so
:func:`init_from_mae` fills every pretrained part from one MAE state dict by name.

Images in and out are in the encoder's normalised space (ImageNet mean/std). G predicts normalised pixels
directly, not MAE's per-patch-normalised targets: a per-patch un-normalisation would copy the input's patch
means and contrasts into the poker face.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from ..checkpoint import load_state
from ..errors import CheckpointError
from .convert import DECODER_PREFIXES, encoder_state
from .geometry import fit_position_tables
from .mae import ARCHS, sincos_pos_embed_2d
from .registry import register, register_variant
from .vit import build_vit



def _layer_norm(dim: int, **kwargs) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6, **kwargs)


class TokenSeparator(nn.Module):
    """S: a squeeze-and-excitation gate over the token width (§4 "Implementation details": SE, Hu et al.).

    Squeeze: the mean over the N+1 tokens; excitation: Linear → ReLU → Linear → σ, giving one selection mask in
    [0, 1]^{1×L} per image (Eq. 2), shared by every token. The last bias starts at 0, so the mask starts at ½.
    """

    def __init__(self, dim: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(dim, max(1, dim // reduction))
        self.fc2 = nn.Linear(max(1, dim // reduction), dim)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """σ(S(z)), shape (B, 1, L)."""
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z.mean(dim=1, keepdim=True)))))


class EmotionClassifier(nn.Module):
    """E + S + C: z = E(x) (Eq. 1), V_e / V_p (Eq. 2), logits = C(V_e[CLS]) (Eqs. 4–5)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12,
                 num_heads: int = 3, num_classes: int = 7, se_reduction: int = 4, drop_path_rate: float = 0.0):
        super().__init__()
        self.encoder = build_vit(img_size=img_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                                 num_heads=num_heads, num_classes=0, drop_path_rate=drop_path_rate)
        self.separator = TokenSeparator(embed_dim, se_reduction)
        self.head = nn.Linear(embed_dim, num_classes)
        # timm's ViT head init; over a loaded MAE encoder init_from_mae redraws it (MAE: 2e-5), as the fine-tune does.
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.num_classes = num_classes

    def separate(self, x: torch.Tensor):
        """(z, V_e, V_p), each (B, N+1, L); V_e + V_p = z exactly."""
        z = self.encoder.forward_features(x)
        gate = self.separator(z)
        return z, z * gate, z * (1 - gate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """V_e, the expression tokens (B, N+1, L)."""
        return self.separate(x)[1]

    def forward_head(self, v_e: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """C(V_e[CLS]) (Eq. 5); ``pre_logits``: V_e[CLS]."""
        return v_e[:, 0] if pre_logits else self.head(v_e[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def cam_target_layers(self):
        return self.encoder.cam_target_layers()

    @property
    def img_size(self) -> int:
        return self.encoder.img_size


class Generator(nn.Module):
    """MCA + G (Eq. 3): queries m + E_pos (the MAE mask token at every position plus the fixed sin-cos table),
    keys/values the projected tokens; then the MAE decoder blocks and pixel head.

    MCA is "a multi-head cross-attention block implemented by self-attention": one timm ``Block`` runs over
    [queries; memory] and only the query positions are kept, so the queries attend to the memory (and to each
    other) with the same pre-norm attention + MLP as every other block.
    """

    def __init__(self, embed_dim: int, grid_size: tuple[int, int], patch_size: int, decoder_embed_dim: int = 128,
                 decoder_depth: int = 8, decoder_num_heads: int = 4, mlp_ratio: float = 4.0, in_chans: int = 3):
        super().__init__()
        num_tokens = grid_size[0] * grid_size[1] + 1
        self.grid_size = grid_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.from_numpy(sincos_pos_embed_2d(decoder_embed_dim, grid_size)).unsqueeze(0), requires_grad=False)
        self.mca = Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(decoder_depth)])
        self.decoder_norm = _layer_norm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)
        self.num_tokens = num_tokens

    def memory(self, tokens: torch.Tensor) -> torch.Tensor:
        """MCA's keys and values: the projected tokens plus the fixed table, as MAE's decoder sees visible tokens."""
        return self.decoder_embed(tokens) + self.decoder_pos_embed

    def fuse(self, memory: torch.Tensor) -> torch.Tensor:
        """MCA: queries m + E_pos attend to [queries; memory]; the query positions are kept (B, N+1, D)."""
        queries = (self.mask_token + self.decoder_pos_embed).expand(memory.shape[0], -1, -1)
        return self.mca(torch.cat([queries, memory], dim=1))[:, :self.num_tokens]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Encoder-width tokens (B, N+1, L) → an image (B, C, H, W) in the normalised input space."""
        x = self.fuse(self.memory(tokens))
        for block in self.decoder_blocks:
            x = block(x)
        patches = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        return self.unpatchify(patches)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        p, c = self.patch_size, self.in_chans
        h, w = self.grid_size
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)


class PokerFaceViT(nn.Module):
    """E, S, C and G: the part of PF-ViT trained against D."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, embed_dim: int = 192, depth: int = 12,
                 num_heads: int = 3, decoder_embed_dim: int = 128, decoder_depth: int = 8, decoder_num_heads: int = 4,
                 num_classes: int = 7, se_reduction: int = 4, drop_path_rate: float = 0.0):
        super().__init__()
        self.classifier = EmotionClassifier(img_size, patch_size, embed_dim, depth, num_heads, num_classes,
                                            se_reduction, drop_path_rate)
        self.generator = Generator(embed_dim, self.classifier.encoder.patch_embed.grid_size, patch_size,
                                   decoder_embed_dim, decoder_depth, decoder_num_heads)

    def forward(self, x: torch.Tensor, render_emotion: bool = True) -> dict[str, torch.Tensor]:
        """logits, z, V_e, V_p, x̂ = G(V_e + V_p), x̃ = G(V_p) and (optionally) the emotion image G(V_e).

        The generator runs once over the concatenated inputs (one batch of 2B or 3B token sets)."""
        z, v_e, v_p = self.classifier.separate(x)
        parts = [v_e + v_p, v_p] + ([v_e] if render_emotion else [])
        images = self.generator(torch.cat(parts)).split(x.shape[0])
        out = {"logits": self.classifier.forward_head(v_e), "z": z, "v_e": v_e, "v_p": v_p,
               "reconstruction": images[0], "poker_face": images[1]}
        if render_emotion:
            out["emotion_image"] = images[2]
        return out

    # The classifier contract (models/vit.py) is E + S + C's: a full PF-ViT checkpoint classifies as its export.
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.forward_features(x)

    def forward_head(self, v_e: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.classifier.forward_head(v_e, pre_logits)

    def cam_target_layers(self):
        return self.classifier.cam_target_layers()

    @property
    def img_size(self) -> int:
        return self.classifier.img_size

    @torch.no_grad()
    def poker_face(self, x: torch.Tensor) -> torch.Tensor:
        _, _, v_p = self.classifier.separate(x)
        return self.generator(v_p)


class Discriminator(nn.Module):
    """D: a ViT of the decoder's width and depth on images, K+1 logits from [CLS] (Eqs. 7–8): K emotion units
    and a last real/fake unit. Blocks and final norm start from the MAE decoder's; the patch projection, [CLS]
    and head are new (the decoder has none)."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, decoder_embed_dim: int = 128,
                 decoder_depth: int = 8, decoder_num_heads: int = 4, num_classes: int = 7, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, 3, decoder_embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.pos_embed = nn.Parameter(torch.from_numpy(
            sincos_pos_embed_2d(decoder_embed_dim, self.patch_embed.grid_size)).unsqueeze(0), requires_grad=False)
        self.blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=_layer_norm)
            for _ in range(decoder_depth)])
        self.norm = _layer_norm(decoder_embed_dim)
        self.head = nn.Linear(decoder_embed_dim, num_classes + 1)
        nn.init.normal_(self.cls_token, std=0.02)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x) + self.pos_embed[:, 1:]
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


def classifier_part(config: dict) -> dict:
    """The ``pfvit_classifier`` config inside a ``pfvit`` config."""
    keys = ("img_size", "patch_size", "embed_dim", "depth", "num_heads", "num_classes", "se_reduction")
    return {k: config[k] for k in keys if k in config}


def discriminator_part(config: dict) -> dict:
    keys = ("img_size", "patch_size", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "num_classes")
    return {k: config[k] for k in keys if k in config}


PFVIT_MODELS = ("pfvit", "pfvit_classifier")


def backbone_state(state: dict[str, torch.Tensor], model: str) -> tuple[dict, dict]:
    """E's and S's tensors (``encoder.*``, ``separator.*`` without the prefix) of a ``pfvit`` or
    ``pfvit_classifier`` checkpoint's state: PF-ViT's key filter for consumers of its encoder (POSTER)."""
    prefix = "classifier." if model == "pfvit" else ""
    def part(name: str) -> dict:
        return {k.removeprefix(prefix + name): v for k, v in state.items() if k.startswith(prefix + name)}
    return part("encoder."), part("separator.")


def init_from_mae(model: PokerFaceViT, disc: Discriminator, mae_state: dict[str, torch.Tensor],
                  head_init_std: float = 2e-5) -> dict[str, int]:
    """Fill E from the MAE encoder and G and D from the MAE decoder, by name; returns the tensor counts. C starts
    at N(0, ``head_init_std``) over the loaded encoder (MAE's 2e-5 by default; a from-scratch model keeps timm's).

    Every encoder and decoder tensor of the state must land: a partial match is an error (a wrong architecture or
    image size), not a silent random init.
    """
    def load(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> int:
        return load_state(module, fit_position_tables(state, module), source="the MAE checkpoint",
                          what=f"PF-ViT's {what}",
                          allow_missing=True).loaded

    enc = encoder_state(mae_state)
    dec = {k: v for k, v in mae_state.items() if k.startswith(DECODER_PREFIXES)}
    if not enc or "decoder_embed.weight" not in dec:
        raise CheckpointError("the checkpoint has no MAE encoder and decoder; PF-ViT needs a full MAE checkpoint "
                              "(runs/…/mae/checkpoint), not an encoder export")
    counts = {"encoder": load(model.classifier.encoder, enc, "encoder E"),
              "generator": load(model.generator, dec, "generator G")}
    disc_state = {k.removeprefix("decoder_"): v for k, v in dec.items()
                  if k.startswith(("decoder_blocks.", "decoder_norm."))}
    counts["discriminator"] = load(disc, disc_state, "discriminator D")
    nn.init.trunc_normal_(model.classifier.head.weight, std=head_init_std)
    return counts


def fit_positional_copy(generator: Generator, tokens: torch.Tensor, steps: int = 200, lr: float = 1e-3,
                        batch_size: int = 64, seed: int = 0) -> float:
    """Start MCA as a positional copy: fit MCA alone (Adam, ``steps`` batches of ``tokens``, the encoder's tokens of
    training faces) so that each query returns its own position's memory token, ‖MCA(m + E_pos, M) − M‖² → 0. G(z)
    then starts as the MAE decoder with every token visible, instead of routing content through a random block.
    Only MCA's parameters change. Returns the final relative error ‖MCA − M‖² / ‖M‖²."""
    params = list(generator.mca.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        memory = torch.cat([generator.memory(chunk) for chunk in tokens.split(256)])
    error = float("nan")
    was_training = generator.training
    generator.train()
    for _ in range(steps):
        target = memory[torch.randint(0, memory.shape[0], (min(batch_size, memory.shape[0]),), generator=rng)]
        loss = (generator.fuse(target) - target).pow(2).mean() / target.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        error = loss.item()
    generator.train(was_training)
    for p in generator.parameters():
        p.grad = None
    return error


@register("pfvit")
def build_pfvit(**config) -> PokerFaceViT:
    return PokerFaceViT(**config)


@register("pfvit_classifier")
def build_pfvit_classifier(**config) -> EmotionClassifier:
    return EmotionClassifier(**config)


@register("pfvit_discriminator")
def build_discriminator(**config) -> Discriminator:
    return Discriminator(**config)


for _arch, _sizes in ARCHS.items():  # pfvit_tiny …: E of vit_tiny, G of mae_vit_tiny's decoder
    register_variant(f"pfvit_{_arch.removeprefix('vit_')}", "pfvit", **_sizes)
    register_variant(f"pfvit_classifier_{_arch.removeprefix('vit_')}", "pfvit_classifier",
                     **{k: _sizes[k] for k in ("embed_dim", "depth", "num_heads")})

