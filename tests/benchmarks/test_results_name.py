"""Every benchmark's ``--name`` is the stem of its results files: a name that would write
outside ``benchmarks/results`` (or is empty) ends the command with one usage line, before
anything is measured."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import fer2013_accuracy, train_precision, train_width, tta_views
from benchmarks.report import results_name


@pytest.mark.parametrize("bad", ["../elsewhere", "a/b", "", "name.md", "two words"])
def test_a_name_with_a_path_or_odd_character_is_refused(bad) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="letters, digits"):
        results_name(bad)


def test_plain_names_pass_unchanged() -> None:
    assert results_name("train_precision_avx512bf16") == "train_precision_avx512bf16"
    assert results_name("fer2013-gpu") == "fer2013-gpu"


@pytest.mark.parametrize("main", [train_precision.main, train_width.main, tta_views.main,
                                  fer2013_accuracy.main])
def test_each_benchmark_refuses_it_in_one_line(main, capsys) -> None:
    argv = ["--name", "../elsewhere"]
    if main is tta_views.main:
        argv += ["--model", "-", "--data", "-"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "letters, digits, '-' and '_'" in err[-1] and "../elsewhere" in err[-1]
