"""Everything synthetic the project generates for its tests, benchmarks and the offline debug run.

None of it is real data or a real model:

    smoke_data     deterministic smoke datasets in every task's real source format, and the
                   debug tokenizer trained on them (``python -m t5x_xfer.testing.smoke_data``);
                   the local debug grid reads them through the real task pipelines
    task_sources   a few hand-written records per source, a fake ``data_dir`` and mocked TFDS,
                   for the task tests and the input pipeline benchmark
    fakes          tiny Hugging Face T5 models (transformers), padded batches, tiny configs and
                   a tiny orbax checkpoint with a tokenizer, shared by the model tests

It lives in the package (not in tests/) because the debug grid, the console script and the
benchmarks use it too. Importing ``t5x_xfer.testing`` itself is cheap: the submodules import
TensorFlow, datasets, torch or transformers only where (and when) they need them.
"""
