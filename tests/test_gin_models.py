"""Every gin model file parses and builds a model of the real size (checked with transformers)."""

from __future__ import annotations

import math

import gin
import jax
import pytest

from t5x_xfer import gin_utils, hf
from t5x_xfer.models import BaseModel, DecoderConfig, T5Config

MODEL_FILES = sorted(p.stem for p in (gin_utils.REPO_ROOT / "gin" / "models").glob("*.gin"))
torch = pytest.importorskip("torch", reason="sizes are checked against transformers (torch)")


def _reference_size(model) -> int:
    """Parameters of transformers' PyTorch class for the same config, built on the meta device."""
    from transformers import AutoConfig, AutoModelForCausalLM, T5ForConditionalGeneration
    from transformers import T5Config as HFConfig

    config = hf.config_to_hf(model)
    with torch.device("meta"):
        if model.family == "t5":
            reference = T5ForConditionalGeneration(HFConfig(**config))
        else:
            hf_config = AutoConfig.for_model(**config)
            reference = AutoModelForCausalLM.from_config(hf_config)
    theirs = sum(p.numel() for p in reference.parameters())
    if model.family == "t5" and not model.config.tie_word_embeddings:
        theirs += model.vocab_size * model.config.d_model  # transformers 5 shares lm_head
    return theirs


@pytest.mark.parametrize("name", MODEL_FILES)
def test_model_gin_file_builds_the_real_size(name):
    gin_utils.parse(
        [f"gin/models/{name}.gin"], ['TOKENIZER="unused"'] if name.startswith("tiny") else []
    )
    model = gin_utils.macro("MODEL")
    assert isinstance(model, BaseModel)
    assert type(model.config) is {"t5": T5Config, "llama": DecoderConfig}[model.family]
    ours = sum(math.prod(x.shape) for x in jax.tree.leaves(model.abstract_params()))
    assert ours == _reference_size(model)
    print(f"{name}: {ours:,} parameters")
    gin.clear_config()


def test_unknown_gin_file_and_binding_fail_clearly():
    with pytest.raises(FileNotFoundError, match="gin file 'gin/models/nope.gin' not found"):
        gin_utils.parse(["gin/models/nope.gin"])
    with pytest.raises(ValueError, match="'T5Config' doesn't have a parameter named 'd_modle'"):
        gin_utils.parse(["gin/models/codet5p_220m.gin"], ["T5Config.d_modle = 3"])
    gin.clear_config()
