"""Every extension attribute spacy-xlmr sets, added in one place
(``install_extensions``, which importing the package runs once):

* ``doc._.trf_data`` (spacy-transformers adds the same one), and
  ``doc._.xlmr_trf_data_encoder`` / ``doc._.xlmr_other_trf_data``, which keep
  the outputs of several encoders apart (``encoder/data.py``);
* ``span._.ent_score``: an entity's confidence (``xlmr_ner``);
* ``doc._.fill_mask`` / ``token._.fill_mask``: predictions for ``<mask>``;
* ``doc._.qa_questions``, ``doc._.qa_answers``, ``doc._.qa_null_scores``, and
  ``span._.qa_answer`` / ``span._.qa_question`` of answer spans (``qa/``).
"""
from spacy.tokens import Doc, Span, Token

from .encoder.data import OTHER_TRF_DATA, TRF_DATA, TRF_DATA_ENCODER
from .qa.answers import span_answer, span_question
from .qa.data import EXTENSION as QA_QUESTIONS

_WITH_DEFAULT_NONE = (
    (Doc, TRF_DATA),
    (Doc, TRF_DATA_ENCODER),
    (Doc, OTHER_TRF_DATA),
    (Span, "ent_score"),
    (Doc, "fill_mask"),
    (Token, "fill_mask"),
    (Doc, QA_QUESTIONS),
    (Doc, "qa_answers"),
    (Doc, "qa_null_scores"),
)
_WITH_GETTER = ((Span, "qa_answer", span_answer), (Span, "qa_question", span_question))


def install_extensions() -> None:
    """Add every extension that doesn't exist yet."""
    for cls, name in _WITH_DEFAULT_NONE:
        if not cls.has_extension(name):
            cls.set_extension(name, default=None)
    for cls, name, getter in _WITH_GETTER:
        if not cls.has_extension(name):
            cls.set_extension(name, getter=getter)
