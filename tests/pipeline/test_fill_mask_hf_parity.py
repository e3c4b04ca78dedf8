"""xlmr_fill_mask with an imported XLMRobertaForMaskedLM gives the HF
fill-mask pipeline's top-k tokens and scores (within 1e-4)."""
import pytest

from spacy_xlmr.heads.torch_head import get_head_module
from spacy_xlmr.load import from_huggingface

TEXTS = [
    "Lisboa é a <mask> de Portugal.",
    "<mask> is the capital of France.",
    "The president of the <mask>",
    "O <mask> fica no <mask> do país.",
]


@pytest.fixture(scope="module")
def imported(masked_lm_checkpoint):
    return from_huggingface(str(masked_lm_checkpoint), "fill-mask")


@pytest.fixture(scope="module")
def hf_pipe(masked_lm_checkpoint):
    from transformers import pipeline

    return pipeline("fill-mask", model=str(masked_lm_checkpoint), top_k=5, device="cpu")


def assert_predictions_equal_hf(ours_per_mask, hf_per_mask) -> None:
    """Tokens, token strings and sequences equal; scores within 1e-4."""
    for ours, theirs in zip(ours_per_mask, hf_per_mask):
        assert [p["token"] for p in ours] == [p["token"] for p in theirs]
        assert [p["token_str"] for p in ours] == [p["token_str"] for p in theirs]
        assert [p["sequence"] for p in ours] == [p["sequence"] for p in theirs]
        for a, b in zip(ours, theirs):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)


@pytest.mark.parametrize("text", TEXTS)
def test_top_k_equal_hf(imported, hf_pipe, text):
    expected = hf_pipe(text)
    if isinstance(expected[0], dict):
        expected = [expected]
    doc = imported(text)
    assert len(doc._.fill_mask) == len(expected) == text.count("<mask>")
    assert_predictions_equal_hf(doc._.fill_mask, expected)
    masks = [token for token in doc if token.text == "<mask>"]
    assert [t._.fill_mask for t in masks] == doc._.fill_mask


def test_batch_of_docs_equals_hf_doc_by_doc(imported, hf_pipe):
    """All masks of a batch go through the LM head in one call; each doc
    still gets its own predictions."""
    docs = list(imported.pipe(TEXTS + ["Sem máscara.", ""], batch_size=8))
    assert docs[-1]._.fill_mask == docs[-2]._.fill_mask == []
    for text, doc in zip(TEXTS, docs):
        expected = hf_pipe(text)
        if isinstance(expected[0], dict):
            expected = [expected]
        assert [[p["token"] for p in mask] for mask in doc._.fill_mask] == [
            [p["token"] for p in mask] for mask in expected
        ]


def test_targets_equal_hf(masked_lm_checkpoint, hf_pipe):
    nlp = from_huggingface(
        str(masked_lm_checkpoint), "fill-mask", config={"targets": ["▁de", "▁a", "▁o"]}
    )
    text = TEXTS[0]
    expected = hf_pipe(text, targets=["▁de", "▁a", "▁o"])
    ours = nlp(text)._.fill_mask[0]
    assert [p["token"] for p in ours] == [p["token"] for p in expected]
    for a, b in zip(ours, expected):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)


def test_no_mask_gives_an_empty_list(imported):
    doc = imported("Sem máscara aqui.")
    assert doc._.fill_mask == []


def test_decoder_is_tied_not_copied(imported, tmp_path):
    """The head holds no vocab x hidden matrix; it decodes with the encoder's
    word embeddings, also after saving and loading."""
    import spacy

    head = get_head_module(imported.get_pipe("fill_mask").model.get_ref("head"))
    assert all(p.numel() < 64 * 64 * 2 or p.dim() == 1 for p in head.parameters())
    text = TEXTS[0]
    expected = imported(text)._.fill_mask
    imported.to_disk(tmp_path / "pipeline")
    size = sum(f.stat().st_size for f in (tmp_path / "pipeline" / "fill_mask").rglob("*"))
    assert size < 200_000  # a copy of the 8002 x 64 embeddings would be ~2 MB
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded(text)._.fill_mask == expected


def test_mask_glued_to_a_word_is_predicted_but_not_given_to_a_token(imported, hf_pipe):
    """"x-<mask>-y" is one spaCy token but still holds a mask piece: it gets its
    predictions in doc._.fill_mask (as in HF) and the standalone "<mask>"
    token keeps its own."""
    text = "x-<mask>-y é a <mask> de Portugal."
    doc = imported(text)
    expected = hf_pipe(text)
    assert len(doc._.fill_mask) == len(expected) == 2
    for ours, theirs in zip(doc._.fill_mask, expected):
        assert [p["token"] for p in ours] == [p["token"] for p in theirs]
    standalone = [token for token in doc if token.text == "<mask>"]
    assert len(standalone) == 1
    assert standalone[0]._.fill_mask == doc._.fill_mask[1]
    assert all(t._.fill_mask is None for t in doc if t.text != "<mask>")


# Plain pieces that are in the vocabulary as written ("de" is id 96, "▁de" id
# 8 in the tiny vocabulary), the same with "▁", and targets that aren't one
# piece: HF uses a piece as written when the vocabulary has it, else the first
# piece of the target's tokenization, with a warning.
TARGETS = [
    ["de", "a", "o", "tu"],
    ["de", "▁de", "a", "▁a"],
    ["capital", "Portugal", "de"],
    ["", "de", "xyzq"],
]


@pytest.mark.parametrize("targets", TARGETS)
def test_plain_piece_targets_equal_hf(masked_lm_checkpoint, hf_pipe, targets, recwarn):
    nlp = from_huggingface(str(masked_lm_checkpoint), "fill-mask", config={"targets": targets})
    for text in TEXTS:
        expected = hf_pipe(text, targets=targets)
        if isinstance(expected[0], dict):
            expected = [expected]
        doc = nlp(text)
        assert len(doc._.fill_mask) == len(expected)
        assert_predictions_equal_hf(doc._.fill_mask, expected)


def test_targets_that_are_not_pieces_warn_as_hf(masked_lm_checkpoint):
    """As HF's pipeline: a target that isn't a piece of the vocabulary is
    replaced by the first piece of its tokenization (with a warning naming
    both), one without pieces is ignored (with a warning), and none left is an
    error."""
    with pytest.warns(UserWarning, match=r"\[fill_mask\] Target 'capital'.*'▁ca'"):
        from_huggingface(str(masked_lm_checkpoint), "fill-mask", config={"targets": ["capital"]})
    with pytest.warns(UserWarning, match=r"\[fill_mask\] Target ' '.*ignored"):
        from_huggingface(str(masked_lm_checkpoint), "fill-mask", config={"targets": [" ", "de"]})
    with pytest.raises(ValueError, match=r"\[fill_mask\] None of the targets"):
        with pytest.warns(UserWarning):
            from_huggingface(str(masked_lm_checkpoint), "fill-mask", config={"targets": [""]})
