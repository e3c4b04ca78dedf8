"""Convert NER, text classification and extractive QA data sets to spaCy
``Doc`` objects and ``.spacy`` files."""
from .char_spans import STOCKMARK_TO_UNER, convert_char_span_json, read_char_span_json
from .iob2 import convert_iob2, read_iob2
from .squad import convert_squad, read_squad
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
    "convert_squad",
    "convert_textcat",
    "detect_textcat_format",
    "read_char_span_json",
    "read_iob2",
    "read_labels",
    "read_squad",
    "read_textcat",
]
