"""POSTER, POSTER++ and POSTER-Var on the papers' IR-50 + MobileFaceNet backbone or on the pipeline's encoder."""

from .poster import VARIANTS, Poster, PosterV2, poster_config

__all__ = ["VARIANTS", "Poster", "PosterV2", "poster_config"]
