"""The masked-LM scores: masked-piece accuracy (``mlm_acc``) and perplexity
(``mlm_ppl``) of a fill-mask model on masked copies of the docs' texts
(``score_mlm``, what ``spacy-xlmr.mlm_scorer.v1`` gives), the masks drawn with
a fixed seed (``SCORE_SEED``) so that every evaluation of the same texts is
comparable."""
import math
from typing import Any, Dict, Iterable

import numpy
from spacy.training import Example
from spacy.util import minibatch
from thinc.api import Model

from ..heads.losses import log_softmax
from ..heads.masked_lm import masked_lm_logits

# Masks of the evaluation texts are drawn with this seed at every evaluation.
SCORE_SEED = 0


def score_mlm(
    examples: Iterable[Example], *, model: Model, mask_probability: float, **kwargs: Any
) -> Dict[str, Any]:
    """Masked-piece accuracy (``mlm_acc``) and perplexity (``mlm_ppl``) of
    ``model`` (a fill-mask component's model) on masked copies of the
    predicted docs' texts, ``mask_probability`` of their pieces masked as in
    training. The masks are drawn with a fixed seed, so every evaluation of
    the same texts uses the same masks. Both are None if no piece was
    masked."""
    rng = numpy.random.default_rng(SCORE_SEED)
    xp = model.ops.xp
    n_pieces = n_correct = 0
    neg_log_likelihood = 0.0
    for batch in minibatch(examples, 32):
        logits, targets, _ = masked_lm_logits(
            model, [eg.predicted for eg in batch], rng, probability=mask_probability,
        )
        if len(targets) == 0:
            continue
        log_probs = log_softmax(model.ops, logits)
        neg_log_likelihood -= float(log_probs[xp.arange(len(targets)), targets].sum())
        n_correct += int((logits.argmax(axis=1) == targets).sum())
        n_pieces += len(targets)
    if n_pieces == 0:
        return {"mlm_acc": None, "mlm_ppl": None}
    return {
        "mlm_acc": n_correct / n_pieces,
        "mlm_ppl": math.exp(neg_log_likelihood / n_pieces),
    }
