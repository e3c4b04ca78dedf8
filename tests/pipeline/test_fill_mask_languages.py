"""xlmr_fill_mask in pipelines whose tokenizer has no special cases (zh, vi):
the component can be added, and each ``<mask>`` still reaches the encoder as
one ``<mask>`` piece (the encoder tokenizes the doc's text, not its tokens),
so the predictions equal the HF fill-mask pipeline's. spaCy's zh tokenizer
runs here with its default "char" segmenter (no jieba or pkuseg) and the vi
one with ``use_pyvi = false`` (no pyvi)."""
import pytest
import spacy

LANGS = {
    "zh": ({}, ["北京是<mask>的首都。", "<mask>是中华人民共和国的<mask>。"]),
    "vi": (
        {"nlp": {"tokenizer": {"use_pyvi": False}}},
        ["Hà Nội là <mask> của Việt Nam.", "<mask> là thủ đô của<mask>."],
    ),
}


@pytest.fixture(scope="module")
def hf_pipe(masked_lm_checkpoint):
    from transformers import pipeline

    return pipeline("fill-mask", model=str(masked_lm_checkpoint), top_k=5, device="cpu")


def _fill_mask_nlp(lang: str, checkpoint) -> spacy.Language:
    nlp = spacy.blank(lang, config=LANGS[lang][0])
    assert not hasattr(nlp.tokenizer, "add_special_case")
    encoder = {"model": {"name": str(checkpoint)}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=encoder)
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask")
    nlp.config["initialize"]["components"]["fill_mask"] = {"hf_checkpoint": str(checkpoint)}
    nlp.initialize()
    return nlp


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_fill_mask_without_special_cases_equals_hf(lang, masked_lm_checkpoint, hf_pipe, tmp_path):
    nlp = _fill_mask_nlp(lang, masked_lm_checkpoint)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline", config=LANGS[lang][0])
    mask_id = hf_pipe.tokenizer.mask_token_id
    for text in LANGS[lang][1]:
        expected = hf_pipe(text)
        if isinstance(expected[0], dict):
            expected = [expected]
        doc = nlp(text)
        ids = doc._.trf_data.wordpieces.input_ids
        assert int((ids == mask_id).sum()) == text.count("<mask>")
        assert len(doc._.fill_mask) == len(expected) == text.count("<mask>")
        for ours, theirs in zip(doc._.fill_mask, expected):
            assert [p["token"] for p in ours] == [p["token"] for p in theirs]
            assert [p["sequence"] for p in ours] == [p["sequence"] for p in theirs]
            for a, b in zip(ours, theirs):
                assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        assert loaded(text)._.fill_mask == doc._.fill_mask


def test_mask_token_where_the_tokenizer_keeps_it_whole(masked_lm_checkpoint):
    """vi splits on spaces, so a spaced "<mask>" is one token and gets its
    predictions; zh's char segmenter splits it into characters, which get
    none (the predictions are in doc._.fill_mask)."""
    vi = _fill_mask_nlp("vi", masked_lm_checkpoint)
    doc = vi("Hà Nội là <mask> của Việt Nam.")
    (mask,) = [token for token in doc if token.text == "<mask>"]
    assert mask._.fill_mask == doc._.fill_mask[0]
    zh = _fill_mask_nlp("zh", masked_lm_checkpoint)
    doc = zh("北京是<mask>的首都。")
    assert len(doc._.fill_mask) == 1
    assert all(token._.fill_mask is None for token in doc)
