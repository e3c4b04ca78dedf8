"""What every head shares through HeadPipe."""
import pytest
import spacy


@pytest.mark.parametrize("factory", ["xlmr_ner", "xlmr_textcat"])
def test_add_pipe_in_one_line_adds_the_encoder(factory):
    nlp = spacy.blank("xx")
    nlp.add_pipe(factory)
    assert nlp.pipe_names == ["transformer", factory]
    assert nlp.get_pipe_meta("transformer").factory == "xlmr_transformer"
    # A second head reuses it.
    nlp.add_pipe(factory, name="second")
    assert nlp.pipe_names == ["transformer", factory, "second"]
