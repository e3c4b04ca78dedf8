"""Convert NER and text classification data sets to spaCy ``Doc`` objects and
``.spacy`` files."""
from .char_spans import STOCKMARK_TO_UNER, convert_char_span_json, read_char_span_json
from .iob2 import convert_iob2, read_iob2
from .stats import ConversionStats
from .textcat import (
    TEXTCAT_FORMATS,
    convert_textcat,
    detect_textcat_format,
    read_labels,
    read_textcat,
)

__all__ = [
    "ConversionStats",
    "STOCKMARK_TO_UNER",
    "TEXTCAT_FORMATS",
    "convert_char_span_json",
    "convert_iob2",
    "convert_textcat",
    "detect_textcat_format",
    "read_char_span_json",
    "read_iob2",
    "read_labels",
    "read_textcat",
]
