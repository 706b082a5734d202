"""Flax models (encoder-decoder T5 family) and their family-agnostic wrapper."""

from t5x_xfer.models.config import T5Config
from t5x_xfer.models.t5 import T5
from t5x_xfer.models.wrapper import EncoderDecoderModel

__all__ = ["EncoderDecoderModel", "T5", "T5Config"]
