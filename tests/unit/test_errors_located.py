from __future__ import annotations

from reconciler.errors import Located, first_line, render


def test_text_form_is_path_line_column_message() -> None:
    assert str(Located("a.yaml", 3, 7, "boom")) == "a.yaml:3:7: boom"
    assert str(Located("a.yaml", 3, None, "boom")) == "a.yaml:3: boom"
    assert str(Located("a.yaml", None, None, "boom", stage="spec")) == "a.yaml: boom"


def test_ordering_helpers() -> None:
    errs = [Located("b.yaml", 1, 1, "x"), Located("a.yaml", 9, 2, "y"), Located("a.yaml", 2, 5, "z")]
    assert first_line(errs) == "a.yaml:2:5: z"
    assert render(errs).splitlines() == ["a.yaml:2:5: z", "a.yaml:9:2: y", "b.yaml:1:1: x"]
    assert first_line([]) is None
