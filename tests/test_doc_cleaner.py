"""spaCy's own `doc_cleaner` drops the per-doc encoder output once the heads
have run: the heads' annotations stay, `doc._.trf_data` goes."""
from spacy_xlmr.load import from_huggingface

from .util import assert_encoded


def test_doc_cleaner_drops_encoder_output(token_classification_checkpoint):
    nlp = from_huggingface(str(token_classification_checkpoint), "token-classification")
    texts = ["Maria mora em Lisboa e trabalha no Porto.", "O Benfica ganhou em Madrid."]
    kept = list(nlp.pipe(texts))
    for doc in kept:
        assert_encoded(doc)
    nlp.add_pipe("doc_cleaner", config={"attrs": {"_.trf_data": None}})
    cleaned = list(nlp.pipe(texts))
    assert all(doc._.trf_data is None for doc in cleaned)
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in cleaned] == [
        [(e.start, e.end, e.label_) for e in d.ents] for d in kept
    ]
    assert [[e._.ent_score for e in d.ents] for d in cleaned] == [
        [e._.ent_score for e in d.ents] for d in kept
    ]
