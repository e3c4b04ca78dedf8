"""Convert NER data sets to spaCy ``Doc`` objects and ``.spacy`` files."""
from .char_spans import STOCKMARK_TO_UNER, convert_char_span_json, read_char_span_json
from .iob2 import convert_iob2, read_iob2
from .stats import ConversionStats

__all__ = [
    "ConversionStats",
    "STOCKMARK_TO_UNER",
    "convert_char_span_json",
    "convert_iob2",
    "read_char_span_json",
    "read_iob2",
]
