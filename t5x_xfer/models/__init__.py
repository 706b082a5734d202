"""Flax models behind one family-agnostic seam (``BaseModel``) and the registry of families.

Families: ``t5`` (T5, T5 v1.1, mT5, CodeT5+ encoder-decoders: ``EncoderDecoderModel`` over
the Flax module ``T5`` with a ``T5Config``) and ``llama`` (decoder-only Llama, Qwen2 and Qwen3:
``DecoderOnlyModel`` over ``DecoderLM`` with a ``DecoderConfig``).
"""

from t5x_xfer.models import registry
from t5x_xfer.models.base import DTYPES, BaseModel
from t5x_xfer.models.config import T5Config
from t5x_xfer.models.decoder import DecoderLM
from t5x_xfer.models.decoder_config import DecoderConfig
from t5x_xfer.models.decoder_only import DecoderOnlyModel
from t5x_xfer.models.encoder_decoder import EncoderDecoderModel
from t5x_xfer.models.t5 import T5

registry.register(EncoderDecoderModel)
registry.register(DecoderOnlyModel)

__all__ = [
    "DTYPES",
    "BaseModel",
    "DecoderConfig",
    "DecoderLM",
    "DecoderOnlyModel",
    "EncoderDecoderModel",
    "T5",
    "T5Config",
    "registry",
]
