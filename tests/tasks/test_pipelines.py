"""Every registered task and mixture yields packed encoder-decoder batches from fake data."""

from __future__ import annotations

import numpy as np
import pytest
import seqio

from t5x_xfer import tasks

LENGTHS = {"inputs": 256, "targets": 128}


@pytest.mark.parametrize("name", tasks.TASKS + tasks.MIXTURES)
def test_packed_batches(name, registered, tfds_mock):
    split = "test" if "humanevalx" in name else "train"
    ds = seqio.get_dataset(
        name,
        LENGTHS,
        seqio.EncDecFeatureConverter(pack=True),
        dataset_split=split,
        batch_size=1,
    )
    batch = next(ds.as_numpy_iterator())
    assert batch["encoder_input_tokens"].shape == (1, LENGTHS["inputs"])
    assert batch["decoder_target_tokens"].shape == (1, LENGTHS["targets"])
    # Packing: several examples share a row (segment ids count them), each ends with EOS.
    assert batch["encoder_segment_ids"].max() >= 1
    eos = registered.eos_id
    targets = batch["decoder_target_tokens"][0]
    segments = batch["decoder_segment_ids"][0]
    for seg in range(1, segments.max() + 1):
        tokens = targets[segments == seg]
        assert tokens[-1] == eos or len(tokens) == LENGTHS["targets"]
    assert np.all((targets == 0) == (segments == 0))


def test_task_text_round_trips_through_tokenizer(registered, tfds_mock):
    """What the model sees decodes back to the preprocessed text (first example of MNLI)."""
    ds = tasks.get("xfer_mnli").get_dataset(None, split="train", shuffle=False)
    ex = next(ds.as_numpy_iterator())
    assert ex["inputs_pretokenized"].decode() == (
        "mnli premise: A man plays a guitar. hypothesis: A person makes music."
    )
    assert registered.decode(ex["inputs"].tolist()) == ex["inputs_pretokenized"].decode()
    assert ex["targets"][-1] == registered.eos_id


def test_mixture_rates_are_examples_proportional_with_cap(registered):
    nlu9 = tasks.get("xfer_mix_nlu9")
    cap = 2**17
    rates = nlu9.rate_per_task_name
    assert rates["xfer_mnli"] == cap and rates["xfer_commonsense_qa"] == 9_741
    assert rates["xfer_mix_anli_plus"] == cap  # 1.1M examples, capped as one task
    assert len(rates) == 9
    anli = tasks.get("xfer_mix_anli_plus")
    assert anli.get_rate(seqio.get_mixture_or_task("xfer_anli_plus_snli")) == 550_152
    all10 = tasks.get("xfer_mix_all10").rate_per_task_name
    assert set(all10) == set(rates) | {"xfer_cnn_dailymail"}


def test_registration_is_idempotent_and_replaceable(registered, data_dir):
    task = seqio.get_mixture_or_task("xfer_qqp")
    tasks.register_all(registered, data_dir)  # same arguments: nothing changes
    assert seqio.get_mixture_or_task("xfer_qqp") is task
    other = seqio.ByteVocabulary(extra_ids=3)
    try:
        tasks.register_all(other, data_dir)
        assert tasks.get("xfer_qqp").output_features["targets"].vocabulary is other
        assert tasks.get("xfer_mix_nlu9").tasks[0].output_features["inputs"].vocabulary is other
    finally:
        tasks.register_all(registered, data_dir)
    assert tasks.get("xfer_qqp").output_features["inputs"].vocabulary is registered


def test_unknown_name_lists_known_ones(registered):
    with pytest.raises(KeyError, match="unknown task or mixture 'xfer_mnly'") as err:
        tasks.get("xfer_mnly")
    assert "xfer_mnli" in str(err.value) and "xfer_mix_nlu9" in str(err.value)


def test_every_task_has_a_documented_row():
    doc = tasks.__doc__
    for name in tasks.TASKS:
        stem = name.split("_plus_")[0] if "_plus_" in name else name
        stem = stem.split("humanevalx_")[0] + "humanevalx_" if "humanevalx" in name else stem
        assert f"`{stem}" in doc, name


def test_model_lengths_are_checked_once_from_the_pipelines_shapes(registered, tfds_mock):
    """The models' converters skip seqio's per-example length assertions; get_dataset checks
    the padded shapes instead, before any example is read, naming the feature."""
    import doctest

    from t5x_xfer.tasks import batches

    assert doctest.testmod(batches).failed == 0

    class Longer(seqio.EncDecFeatureConverter):  # claims a length the padding does not give
        def get_model_feature_lengths(self, lengths):
            return {**super().get_model_feature_lengths(lengths), "decoder_target_tokens": 129}

    kwargs = {"shuffle": False, "seed": 0, "num_epochs": 1}
    ds = batches.get_dataset(
        "xfer_mbpp_completion",
        seqio.EncDecFeatureConverter(pack=True),
        LENGTHS,
        "train",
        2,
        **kwargs,
    )
    assert ds.element_spec["decoder_target_tokens"].shape.as_list() == [None, 128]
    with pytest.raises(ValueError, match=r"decoder_target_tokens has shape \[128\], not \[129\]"):
        batches.get_dataset(
            "xfer_mbpp_completion", Longer(pack=True), LENGTHS, "train", 2, **kwargs
        )
