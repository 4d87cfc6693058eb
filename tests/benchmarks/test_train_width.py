"""The width benchmark on a tiny set: speeds compared in the same run, and the profile of
the baseline's epoch split by operator and by feature-map size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import train_width

TINY = ["--widths", "0.125", "0.25", "--baseline", "0.25", "--samples", "64",
        "--batch-size", "16", "--repeats", "1"]


def test_profile_splits_the_baseline_epoch_by_operator_and_map(tmp_path: Path) -> None:
    assert train_width.main([*TINY, "--profile", "--name", "tw", "--out-dir",
                             str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "tw.json").read_text())
    assert payload["ratio_to_baseline"]["0.25"] == pytest.approx(1.0)
    assert "out_dir" not in payload["settings"]
    profile = payload["profile"]
    for table in ("by_operator", "by_map"):
        shares = [share for _, share in profile[table]]
        assert sum(shares) == pytest.approx(1.0)
        assert shares == sorted(shares, reverse=True)
    # Four blocks halve the 48x48 faces: every map size the network works on shows up.
    assert {"48x48", "24x24", "12x12", "6x6"} <= {name for name, _ in profile["by_map"]}
    assert any("convolution" in name for name, _ in profile["by_operator"])
    text = (tmp_path / "tw.md").read_text()
    assert "Where one epoch of width 0.25 spent its time" in text and "| 48x48 |" in text


def test_without_profile_nothing_is_profiled(tmp_path: Path) -> None:
    assert train_width.main([*TINY, "--name", "plain", "--out-dir", str(tmp_path)]) == 0
    assert "profile" not in json.loads((tmp_path / "plain.json").read_text())
    assert "spent its time" not in (tmp_path / "plain.md").read_text()


def test_every_batch_size_is_measured_against_the_first(tmp_path: Path) -> None:
    args = [arg for arg in TINY if arg not in ("--batch-size", "16")]
    assert train_width.main([*args, "--batch-size", "16", "32", "16", "--name", "batches",
                             "--out-dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "batches.json").read_text())
    assert set(payload["median"]) == {"0.125", "0.125 batch 32", "0.25", "0.25 batch 32"}
    assert payload["ratio_to_baseline"]["0.25"] == pytest.approx(1.0)
    assert payload["settings"]["batch_size"] == [16, 32]
    text = (tmp_path / "batches.md").read_text()
    assert "| 0.25 | 48 (whole) | 32 |" in text and "baseline: width 0.25, batch 16" in text


def test_a_batch_size_under_one_is_refused() -> None:
    with pytest.raises(SystemExit):
        train_width.parse_args(["--batch-size", "64", "0"])


@pytest.mark.parametrize("shapes,label", [
    ([[16, 32, 48, 48], [32]], "48x48"),
    ([[], [16, 64, 24, 24, 1]], "no 4-D input"),
    ([[7, 3], [2, 8, 6, 6]], "6x6"),
    ([], "no 4-D input"),
])
def test_map_label_reads_the_first_four_d_input(shapes, label) -> None:
    assert train_width.map_label(shapes) == label


def test_named_shapes_are_measured_beside_the_widths(tmp_path: Path) -> None:
    shape = '{"channels": [8, 16, 24, 32], "block_convs": [1, 2, 2, 2]}'
    args = ["--widths", "0.125", "0.25", "--samples", "64", "--batch-size", "16",
            "--repeats", "1"]
    assert train_width.main([*args, "--shapes", f"thin_early={shape}", "--baseline",
                             "thin_early", "--name", "shapes", "--out-dir",
                             str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "shapes.json").read_text())
    assert set(payload["median"]) == {"0.125", "0.25", "thin_early"}
    assert payload["ratio_to_baseline"]["thin_early"] == pytest.approx(1.0)
    # The shape's own network was built: its parameters differ from every width's.
    assert payload["parameters"]["thin_early"] not in (payload["parameters"]["0.125"],
                                                       payload["parameters"]["0.25"])
    text = (tmp_path / "shapes.md").read_text()
    assert f"- thin_early: baseline_cnn `{shape}`" in text
    assert "baseline: thin_early, batch 16" in text
    assert "| thin_early | 48 (whole) | 16 |" in text
    assert text.startswith("# Trainer throughput by width and shape: baseline_cnn")


def test_a_shape_may_build_another_architecture(tmp_path: Path) -> None:
    residual = '{"arch": "resnet_cnn", "width": 0.125, "blocks": [1, 1, 1, 1]}'
    assert train_width.main(["--widths", "0.125", "--baseline", "0.125", "--samples", "32",
                             "--batch-size", "16", "--repeats", "1",
                             "--shapes", f"residual={residual}",
                             "--name", "archs", "--out-dir", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "archs.json").read_text())
    assert set(payload["median"]) == {"0.125", "residual"}
    # The residual net was built: it has the parameters resnet_cnn has, not baseline_cnn's.
    expected = train_width.parameter_count("resnet_cnn", {"width": 0.125, "blocks": [1] * 4})
    assert payload["parameters"]["residual"] == expected != payload["parameters"]["0.125"]
    text = (tmp_path / "archs.md").read_text()
    assert '- residual: resnet_cnn `{"width": 0.125, "blocks": [1, 1, 1, 1]}`' in text


def test_a_width_baseline_may_be_written_either_way() -> None:
    assert train_width.parse_args(["--widths", "0.5", "--baseline", "0.50"]).baseline == "0.5"


@pytest.mark.parametrize("shape", [
    "no_equals",                                  # no JSON at all
    "=" + '{"width": 0.5}',                       # no name
    'bad={"width": ',                             # not JSON
    "list=[1, 2]",                                # not an object
    'typo={"widht": 0.5}',                        # an argument the network does not take
    'both={"width": 0.5, "channels": [8, 8, 8, 8]}',   # refused by the network itself
    '0.75={"width": 0.75}',                       # a number: it would read as a width
    'zoo={"arch": "resnet18", "width": 0.5}',     # an architecture the zoo lacks
    'res={"arch": "resnet_cnn", "blocks": [2]}',  # refused by the residual network
])
def test_a_bad_shape_is_refused_before_anything_trains(shape: str) -> None:
    with pytest.raises(SystemExit):
        train_width.parse_args(["--widths", "0.5", "--shapes", shape])


def test_a_baseline_that_names_nothing_measured_is_refused() -> None:
    with pytest.raises(SystemExit):
        train_width.parse_args(["--widths", "0.5", "--baseline", "late_wide"])
