"""The t5x-xfer console script dispatches to the binaries and names the known ones."""

from __future__ import annotations

from t5x_xfer import cli


def test_unknown_binary_lists_known(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown binary 'trian'" in err and "convert" in err and "smoke" in err


def test_dispatches_to_convert(capsys, tmp_path):
    assert (
        cli.main(["convert", "export_hf", "--checkpoint", str(tmp_path / "x"), "--out", "o"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
