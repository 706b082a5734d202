"""Every gin model file parses and builds a model of the real size (checked with transformers)."""

from __future__ import annotations

import math

import gin
import jax
import pytest

from t5x_xfer import gin_utils, hf
from t5x_xfer.models import EncoderDecoderModel, T5Config

MODEL_FILES = sorted(p.stem for p in (gin_utils.REPO_ROOT / "gin" / "models").glob("*.gin"))
torch = pytest.importorskip("torch", reason="sizes are checked against transformers (torch)")


@pytest.mark.parametrize("name", MODEL_FILES)
def test_model_gin_file_builds_the_real_size(name):
    gin_utils.parse([f"gin/models/{name}.gin"], ['TOKENIZER="unused"'] if name == "tiny" else [])
    model = gin_utils.macro("MODEL")
    assert isinstance(model, EncoderDecoderModel) and model.family == "t5"
    cfg = model.config
    assert isinstance(cfg, T5Config)
    ours = sum(math.prod(x.shape) for x in jax.tree.leaves(model.abstract_params()))

    from transformers import T5Config as HFConfig
    from transformers import T5ForConditionalGeneration

    with torch.device("meta"):
        reference = T5ForConditionalGeneration(HFConfig(**hf.config_to_hf(model)))
    theirs = sum(p.numel() for p in reference.parameters())
    if not cfg.tie_word_embeddings:  # transformers 5 shares lm_head; real v1.1/mT5 do not
        theirs += cfg.vocab_size * cfg.d_model
    assert ours == theirs
    gin.clear_config()


def test_unknown_gin_file_and_binding_fail_clearly():
    with pytest.raises(FileNotFoundError, match="gin file 'gin/models/nope.gin' not found"):
        gin_utils.parse(["gin/models/nope.gin"])
    with pytest.raises(ValueError, match="'T5Config' doesn't have a parameter named 'd_modle'"):
        gin_utils.parse(["gin/models/codet5p_220m.gin"], ["T5Config.d_modle = 3"])
    gin.clear_config()
