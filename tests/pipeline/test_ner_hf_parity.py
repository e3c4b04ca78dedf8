"""xlmr_ner with an imported XLMRobertaForTokenClassification gives HF's
numbers: per-piece logits within 1e-4, and with the greedy decoder the same
entities as the HF token-classification pipeline (aggregation "first")."""
import numpy
import pytest
import torch
from spacy.tokens import Doc
from spacy.training import Example

from spacy_xlmr.heads.torch_head import get_head_module

from spacy_xlmr.load import from_huggingface

from ..util import NER_TAGS

# Whitespace-tokenized text whose words the tiny tokenizer splits without a
# lone "▁" piece (see test_lone_metaspace_pieces_are_where_hf_differs).
TEXTS = [
    "Gwyneth Paltrow and David Johnson visited California in June",
    "O Governo da Indonésia e a Comissão Europa em Atenas",
    "Kim Jones of Liverpool met President John Adams at Chelsea",
    "Ninguém na Assembleia Geral falou com Paul Martin sobre Napoli",
    "The Labour Government in Britain and the American Commission",
]


@pytest.fixture(scope="module")
def imported_nlp(token_classification_checkpoint):
    return from_huggingface(
        str(token_classification_checkpoint), "token-classification",
        config={"decoder": "greedy"},
    )


@pytest.fixture(scope="module")
def hf_model(token_classification_checkpoint):
    from transformers import XLMRobertaForTokenClassification

    return XLMRobertaForTokenClassification.from_pretrained(
        token_classification_checkpoint
    ).eval()


def _whitespace_doc(nlp, text):
    return Doc(nlp.vocab, words=text.split(" "))


def test_import_takes_labels_from_id2label(imported_nlp):
    ner = imported_nlp.get_pipe("ner")
    assert ner.tags == tuple(NER_TAGS)
    assert set(ner.labels) == {"PER", "ORG", "LOC"}


def _has_lone_metaspace(tokenizer, text):
    return "▁" in tokenizer.tokenize(text)


@pytest.mark.parametrize("text", TEXTS)
def test_piece_logits_equal_hf(imported_nlp, hf_model, text):
    tokenizer = imported_nlp.get_pipe("transformer").encoder.tokenizer
    inputs = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        expected = hf_model(**inputs).logits[0].numpy()
    doc = imported_nlp(_whitespace_doc(imported_nlp, text))
    hidden = doc._.trf_data.model_output.last_hidden_state[0]
    assert doc._.trf_data.wordpieces.input_ids[0].tolist() == inputs["input_ids"][0].tolist()
    head = get_head_module(imported_nlp.get_pipe("ner").model.get_ref("head")).eval()
    with torch.no_grad():
        ours = head(torch.from_numpy(numpy.ascontiguousarray(hidden))).numpy()
    numpy.testing.assert_allclose(ours, expected, atol=1e-4)


def test_encoder_weights_are_the_checkpoints(imported_nlp, hf_model):
    ours = imported_nlp.get_pipe("transformer").encoder.torch_module.state_dict()
    theirs = hf_model.roberta.state_dict()
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        torch.testing.assert_close(value, theirs[key])


@pytest.mark.parametrize("text", TEXTS)
def test_entities_equal_hf_pipeline(imported_nlp, token_classification_checkpoint, text):
    from transformers import pipeline

    hf_pipe = pipeline(
        "token-classification",
        model=str(token_classification_checkpoint),
        tokenizer=str(token_classification_checkpoint),
        aggregation_strategy="first",
        device="cpu",
    )
    expected = []
    for entity in hf_pipe(text):
        # HF reports the offsets of the pieces, whose leading "▁" covers the
        # space before a word; the entity's text starts after it.
        start, end = entity["start"], entity["end"]
        while text[start].isspace():
            start += 1
        expected.append((entity["entity_group"], start, end, entity["score"]))
    tokenizer = imported_nlp.get_pipe("transformer").encoder.tokenizer
    assert not _has_lone_metaspace(tokenizer, text)
    doc = imported_nlp(_whitespace_doc(imported_nlp, text))
    ours = [(e.label_, e.start_char, e.end_char, e._.ent_score) for e in doc.ents]
    assert [e[:3] for e in ours] == [e[:3] for e in expected]
    numpy.testing.assert_allclose(
        [e[3] for e in ours], [e[3] for e in expected], atol=1e-4
    )
    assert len(ours) > 0


def test_lone_metaspace_pieces_are_where_hf_differs(imported_nlp, token_classification_checkpoint):
    """Where a word starts with a lone "▁" piece (common before CJK, digits and
    rare words), HF's pipeline treats "▁" as a word of its own, with its own
    label and a span that is no word: empty or space-only on transformers
    4.53, the next character on 5.x (whose tokenizer gives a lone "▁" that
    character's offsets). xlmr_ner keeps the "▁" in the word's pieces, as HF
    training does, and its entities stay on tokens."""
    from transformers import pipeline

    text = "Maria Silva mora em Lisboa e trabalha para a Google em Madrid"
    tokenizer = imported_nlp.get_pipe("transformer").encoder.tokenizer
    assert _has_lone_metaspace(tokenizer, text)
    hf_pipe = pipeline(
        "token-classification", model=str(token_classification_checkpoint),
        aggregation_strategy="first", device="cpu",
    )
    words = set(text.split(" "))
    hf_texts = [text[e["start"]:e["end"]].strip() for e in hf_pipe(text)]
    assert set(hf_texts) - words  # an entity made of a lone "▁"
    doc = imported_nlp(_whitespace_doc(imported_nlp, text))
    assert doc.ents and all(set(e.text.split(" ")) <= words for e in doc.ents)


def test_training_continues_after_import(imported_nlp):
    nlp = imported_nlp
    examples = [
        Example.from_dict(
            _whitespace_doc(nlp, TEXTS[0]),
            {"entities": [(0, 15, "PER"), (20, 33, "PER"), (42, 52, "LOC")]},
        )
    ]
    optimizer = nlp.resume_training()
    losses = [nlp.update(examples, sgd=optimizer)["ner"] for _ in range(15)]
    assert losses[-1] < losses[0] / 2
    doc = nlp(_whitespace_doc(nlp, TEXTS[0]))
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Gwyneth Paltrow", "PER"), ("David Johnson", "PER"), ("California", "LOC")
    ]


def test_import_needs_first_piece_pooling(token_classification_checkpoint):
    with pytest.raises(ValueError, match="first piece"):
        from_huggingface(
            str(token_classification_checkpoint),
            config={"model": {"tok2vec": {"pooling": {"@layers": "reduce_mean.v1"}}}},
        )


def test_import_with_conflicting_labels_is_an_error(token_classification_checkpoint):
    nlp = from_huggingface(str(token_classification_checkpoint))
    with pytest.raises(ValueError, match="differ from those of"):
        nlp.get_pipe("ner").initialize(
            lambda: [], nlp=nlp, labels=["PER", "MISC"],
            hf_checkpoint=str(token_classification_checkpoint),
        )


def test_import_of_a_checkpoint_without_labels_is_an_error(tiny_checkpoint, tmp_path):
    """A token-classification checkpoint with transformers' invented
    LABEL_0... names can't say which entities it finds."""
    from transformers import AutoTokenizer, XLMRobertaForTokenClassification

    unlabelled = XLMRobertaForTokenClassification.from_pretrained(tiny_checkpoint, num_labels=3)
    unlabelled.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no entity labels"):
        from_huggingface(str(tmp_path))


# Words that HF's pipeline splits: characters that NFKC expands into several
# pieces at the start of a word (ﬁ, ﬂ, …, ½) and <unk> pieces (Ꭰ, 😀).
SPLIT_TEXTS = [
    "Os ﬁlmes de David Johnson em ﬁnlândia",
    "Paul Martin xᎠy visitou Atenas",
    "John Adams disse … e ﬁcou em Napoli",
    "Chelsea ½ Liverpool ½ Napoli",
    "Gwyneth ﬁnal ﬁm ﬂor Paltrow",
]


def _hf_word_starts(tokenizer, text):
    """The start offsets of the pieces where HF's pipeline starts a word
    (XLM-R's tokenizer has no subword prefix, so it guesses): a piece whose
    start is the text's start or next to a space, and every <unk> piece. A
    "▁" piece's offsets include the space before its word."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return [
        start
        for piece, (start, _) in zip(encoding["input_ids"], encoding["offset_mapping"])
        if start == 0 or " " in text[max(0, start - 1):start + 1]
        or piece == tokenizer.unk_token_id
    ]


def _word_spans(text):
    spans, start = [], 0
    for word in text.split(" "):
        spans.append((start, start + len(word)))
        start += len(word) + 1
    return spans


def _visible(text, start, end):
    while start < end and text[start].isspace():
        start += 1
    return start, end


def test_words_hf_splits_are_where_hf_differs(token_classification_checkpoint):
    """HF's pipeline splits a whitespace word into several words where more
    than one of its pieces starts next to a space (every piece of a character
    that NFKC expands, at the word's start: ﬁ, …, ½; also the lone "▁") or is
    <unk> (anywhere in the word); each part takes its own label, so HF's
    entities can start, end or overlap inside the word. xlmr_ner labels the
    whole token by its first piece; on the words HF doesn't split, the labels
    are the same."""
    from transformers import pipeline

    hf_pipe = pipeline(
        "token-classification", model=str(token_classification_checkpoint),
        aggregation_strategy="first", device="cpu",
    )
    # Not the module's imported_nlp, which another test trains further.
    nlp = from_huggingface(
        str(token_classification_checkpoint), "token-classification",
        config={"decoder": "greedy"},
    )
    tokenizer = nlp.get_pipe("transformer").encoder.tokenizer
    n_split = {"unk": 0, "nfkc": 0}
    for text in SPLIT_TEXTS:
        word_starts = _hf_word_starts(tokenizer, text)
        hf_ents = [
            (e["entity_group"], *_visible(text, e["start"], e["end"])) for e in hf_pipe(text)
        ]
        doc = nlp(_whitespace_doc(nlp, text))
        for token, (start, end) in zip(doc, _word_spans(text)):
            # the space before the word belongs to its "▁" piece
            split_by_rule = sum(start - 1 <= s < end for s in word_starts) > 1
            touching = [e for e in hf_ents if e[1] < end and e[2] > start]
            split_by_hf = len(touching) > 1 or any(
                start < boundary < end for e in touching for boundary in e[1:]
            )
            if split_by_hf:
                assert split_by_rule, (text, token.text)
                has_unk = tokenizer.unk_token_id in tokenizer(token.text)["input_ids"]
                n_split["unk" if has_unk else "nfkc"] += 1
            if not split_by_rule:
                assert token.ent_type_ == (touching[0][0] if touching else ""), (text, token.text)
        # Ours: whole tokens, each in at most one entity.
        assert all(ent.text == " ".join(t.text for t in ent) for ent in doc.ents)
    assert n_split["unk"] > 0 and n_split["nfkc"] > 0
