"""The t5x-xfer console script dispatches to the binaries and names the known ones."""

from __future__ import annotations

from t5x_xfer import cli


def test_unknown_binary_lists_known(capsys):
    assert cli.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert "unknown binary 'trian'" in err and "convert" in err and "smoke_data" in err


def test_binaries_name_importable_modules():
    """Every binary's module exists and has the ``main`` the dispatcher calls (a moved or
    deleted module shows here, not when someone runs it)."""
    import importlib.util

    for name, module in cli.BINARIES.items():
        assert importlib.util.find_spec(module) is not None, (name, module)
    assert "smoke" not in cli.BINARIES


def test_smoke_data_binary_is_the_testing_package(monkeypatch):
    from t5x_xfer.testing import smoke_data

    calls = []
    monkeypatch.setattr(smoke_data, "main", lambda argv: calls.append(argv) or 0)
    assert cli.main(["smoke_data", "--out", "x"]) == 0
    assert calls == [["--out", "x"]]


def test_dispatches_to_convert(capsys, tmp_path):
    assert (
        cli.main(["convert", "export_hf", "--checkpoint", str(tmp_path / "x"), "--out", "o"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
