"""Shared file helpers: JSONL errors name the line; atomic writes leave no temporary files."""

from __future__ import annotations

import gzip
import os
import stat

import pytest

from t5x_xfer.io_utils import iter_jsonl, write_atomic


def test_iter_jsonl_reads_plain_and_gzip_and_names_bad_lines(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n\n{"x": 2}\n')
    assert [r["x"] for _, r in iter_jsonl(tmp_path / "a.jsonl")] == [1, 2]
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write('{"x": 3}\n')
    assert [w for w, _ in iter_jsonl(tmp_path / "b.jsonl.gz", "HumanEval-X")] == [
        f"HumanEval-X {tmp_path / 'b.jsonl.gz'}:1"
    ]
    (tmp_path / "c.jsonl").write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(ValueError, match=r"c\.jsonl:2: malformed JSON"):
        list(iter_jsonl(tmp_path / "c.jsonl"))
    (tmp_path / "d.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"d\.jsonl:1: expected a JSON object, got list"):
        list(iter_jsonl(tmp_path / "d.jsonl"))


def test_write_atomic_replaces_whole_files(tmp_path):
    write_atomic(tmp_path / "sub" / "f.txt", "one")
    write_atomic(tmp_path / "sub" / "f.txt", "two")
    assert (tmp_path / "sub" / "f.txt").read_text() == "two"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["f.txt"]


def test_write_atomic_writes_bytes_with_the_umask_mode_not_mkstemps_0600(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "plot.png", b"\x89PNG\x00")
    finally:
        os.umask(old)
    assert (tmp_path / "plot.png").read_bytes() == b"\x89PNG\x00"
    assert stat.S_IMODE((tmp_path / "plot.png").stat().st_mode) == 0o640
