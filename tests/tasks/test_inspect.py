"""The inspect binary prints raw and preprocessed examples with token counts."""

from __future__ import annotations

from t5x_xfer import tasks
from t5x_xfer.tasks import inspect as inspect_cli
from t5x_xfer.vocabularies import train_byte_level_bpe


def test_inspect_task_and_mixture(tmp_path, data_dir, registered, capsys):
    tok = train_byte_level_bpe(["def add(a, b):\n    return a + b\n"] * 10, tmp_path / "t.json")
    flags = [
        "--gin_file=gin/models/tiny.gin",
        f"--gin.TOKENIZER='{tok}'",
        "--data_dir",
        str(data_dir),
    ]
    try:
        inspect_cli.main(["--task", "xfer_ccg", "--split", "validation", "-n", "1", *flags])
        out = capsys.readouterr().out
        assert (
            "--- example 0: raw record" in out and "tags: ['NP', '(S[dcl]\\\\NP)/NP', 'N']" in out
        )
        assert "inputs (" in out and "tokens): ccg: Pierre likes cats" in out
        inspect_cli.main(["--task", "xfer_mix_target_mbpp", "-n", "1", *flags])
        out = capsys.readouterr().out
        assert "xfer_mbpp: 1" in out and "Your code should pass these tests:" in out
        assert inspect_cli.main(["--task", "nope", *flags]) == 2  # one line, exit 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "known tasks: xfer_anli_plus_r1" in err, err
    finally:
        tasks.register_all(registered, data_dir)
