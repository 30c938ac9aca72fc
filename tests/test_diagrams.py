"""`python -m amsda_keras.diagrams`: the block diagrams, where Graphviz is installed."""

import shutil

import pytest

from amsda_keras import diagrams


def test_without_graphviz_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(FileNotFoundError, match="apt-get install graphviz"):
        diagrams.write_diagrams(tmp_path)
    assert not list(tmp_path.iterdir())


def test_both_models_are_drawn_at_the_papers_widths(tmp_path):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz).")
    paths = diagrams.write_diagrams(tmp_path)
    assert [path.name for path in paths] == ["mahfnet.png", "amsda.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in paths)
