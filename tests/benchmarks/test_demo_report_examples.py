"""demo.md's held-out photos: each way the predict stage sent them, counted."""

from __future__ import annotations

from benchmarks.demo_report import example_lines


def _example(name: str, true: str, predicted: str | None, plain: str | None | bool = False):
    record = {"photo": f"data/{name}", "true": true, "predicted": predicted,
              "probability": None if predicted is None else 0.9}
    if plain is not False:
        record.update(plain_predicted=plain, plain_probability=None if plain is None else 0.5)
    return record


def test_plain_photo_answers_are_counted_beside_the_eye_aligned_ones():
    lines = example_lines([_example("a.png", "anger", "anger", "anger"),
                           _example("b.png", "fear", "fear", None)])
    assert lines[1] == ("## Held-out photos: 2 of 2 right with the recorded eye centres; 1 of 2 "
                        "as plain photos (1 without a found face)")
    assert "- b.png: true fear, predicted fear (0.90); as a plain photo no face" in lines


def test_without_plain_answers_one_count():
    lines = example_lines([_example("a.png", "anger", "fear"), _example("b.png", "fear", None)])
    assert lines[1] == "## Held-out photos: 0 of 2 right"
    assert "- a.png: true anger, predicted fear (0.90)" in lines
    assert "- b.png: true fear, predicted no face" in lines
