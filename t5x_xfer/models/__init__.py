"""Flax models behind one family-agnostic seam (``BaseModel``) and the registry of families.

Families: ``t5`` (T5, T5 v1.1, mT5, CodeT5+ encoder-decoders: ``EncoderDecoderModel`` over
the Flax module ``T5`` with a ``T5Config``).
"""

from t5x_xfer.models import registry
from t5x_xfer.models.base import DTYPES, BaseModel
from t5x_xfer.models.config import T5Config
from t5x_xfer.models.encoder_decoder import EncoderDecoderModel
from t5x_xfer.models.t5 import T5

registry.register(EncoderDecoderModel)

__all__ = ["DTYPES", "BaseModel", "EncoderDecoderModel", "T5", "T5Config", "registry"]
