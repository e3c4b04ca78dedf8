"""The encoder's settings: invalid window_size/stride pairs name a valid
pair, at construction and against the loaded model; ``~`` in ``name``."""
import re

import pytest
import spacy

from spacy_xlmr.encoder.windows import check_window_settings, window_spans

from ..util import assert_encoded, make_nlp


def _suggested(message):
    found = re.search(r"e\.g\. window_size = (\d+), stride = (\d+)", message)
    assert found, message
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize(
    "window_size,stride,most",
    [(1, 1, None), (0, 0, None), (1, 5, None), (100, 100, None), (100, 0, None),
     (2, 2, None), (600, 550, 510), (600, 300, 510), (200, 300, 126), (3, 3, 126)],
)
def test_invalid_window_pairs_name_a_valid_pair(window_size, stride, most):
    with pytest.raises(ValueError, match=r"\[xlmr_transformer\] model\.") as err:
        check_window_settings(window_size, stride, most)
    suggested_size, suggested_stride = _suggested(str(err.value))
    check_window_settings(suggested_size, suggested_stride, most)
    assert window_spans(5 * suggested_size, suggested_size, suggested_stride)


def test_window_size_of_one_names_a_valid_choice(tiny_checkpoint):
    """There is no stride for one-piece windows: the error says so and gives
    a pair that builds (it used to suggest stride = 1, which is invalid)."""
    with pytest.raises(ValueError, match="window_size = 1 is too small") as err:
        make_nlp(tiny_checkpoint, window_size=1, stride=1)
    size, stride = _suggested(str(err.value))
    make_nlp(tiny_checkpoint, window_size=size, stride=stride).initialize()


def test_too_large_window_at_load_names_a_pair_that_loads(tiny_checkpoint, tmp_path):
    """A window too large for the model, with a stride too large for the
    largest window: the suggested pair fits both."""
    nlp = make_nlp(tiny_checkpoint)
    nlp.initialize()
    nlp.to_disk(tmp_path / "encoder")
    override = {"components": {"transformer": {"model": {"window_size": 600, "stride": 550}}}}
    with pytest.raises(ValueError, match="window_size = 600 is too large") as err:
        spacy.load(tmp_path / "encoder", config=override)
    size, stride = _suggested(str(err.value))
    assert (size, stride) == (510, 448)
    override["components"]["transformer"]["model"].update(window_size=size, stride=stride)
    spacy.load(tmp_path / "encoder", config=override)


def test_tilde_in_name_is_the_home_directory(tiny_checkpoint, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_checkpoint, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    nlp = make_nlp("~/models/tiny")
    nlp.initialize()
    assert_encoded(nlp("Olá mundo."))
