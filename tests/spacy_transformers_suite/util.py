"""Helpers of the adapted suite. ``_assert_equal_tensors`` is spacy-transformers
1.4.0's (``spacy_transformers/tests/util.py``, MIT, Copyright (c) 2019
ExplosionAI GmbH; see NOTICE); its dummy tokenizer and model are spacy-transformers
internals, not used here."""
from pathlib import Path
from typing import Union

import numpy
from thinc.api import Config, get_current_ops

# The encoder's factory and architecture, and spacy-xlmr's listener.
ENCODER_FACTORY = "xlmr_transformer"
ENCODER_ARCHITECTURE = "spacy-xlmr.Encoder.v1"
LISTENER = "spacy-xlmr.TransformerListener.v1"
# The listener name of configs written for spacy-transformers (spacy-xlmr
# registers it itself when spacy-transformers isn't installed).
SPACY_TRANSFORMERS_LISTENER = "spacy-transformers.TransformerListener.v1"
# The name of thinc's model built by spacy-xlmr.Encoder.v1.
ENCODER_MODEL_NAME = "xlmr_encoder"
# The counterpart of spacy-transformers' Tok2VecTransformer: an encoder inside
# a component (arguments: encoder, pooling, grad_factor), what
# replace_listeners writes into the component's config.
INLINE_ENCODER = "spacy-xlmr.Tok2VecEncoder.v1"

# Placeholders in the config strings of the adapted tests.
CHECKPOINT_PLACEHOLDER = "TINY_CHECKPOINT"
INLINE_PLACEHOLDER = "INLINE_ENCODER"


def config_string(cfg_string: str, checkpoint: Union[str, Path]) -> str:
    """``cfg_string`` with the tiny checkpoint's path as the encoder's name."""
    return cfg_string.replace(CHECKPOINT_PLACEHOLDER, str(checkpoint)).replace(
        INLINE_PLACEHOLDER, INLINE_ENCODER
    )


def load_config(cfg_string: str, checkpoint: Union[str, Path]) -> Config:
    return Config().from_str(config_string(cfg_string, checkpoint))


def _assert_equal_tensors(tensors1, tensors2):
    ops = get_current_ops()
    for i in range(len(tensors1)):
        t1 = ops.asarray(tensors1[i])
        t2 = ops.asarray(tensors2[i])
        # Use assert_allclose for floating point comparison with tolerance
        # to handle tiny numerical differences between runs
        numpy.testing.assert_allclose(
            ops.to_numpy(t1),
            ops.to_numpy(t2),
            rtol=1e-4,
            atol=1e-5
        )
