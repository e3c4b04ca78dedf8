"""Error and warning texts, each naming its fix.

As in ``spacy.errors``, the texts live here and the code raises them:
``raise ValueError(Errors.NO_ENCODER_OUTPUT.format(name=name, found=found))``.
The hints several texts give are written once (``ADD_ENCODER``,
``SAVE_AGAIN``). Texts are grouped by the layer that raises them.
"""

# Hints shared by several texts.
ADD_ENCODER = 'nlp.add_pipe("xlmr_transformer", name="transformer", first=True)'
SAVE_AGAIN = "Save the pipeline again, or copy the whole directory again."


class DamagedPipelineError(ValueError):
    """A file of a saved pipeline is missing, or can't be read."""


class CheckpointError(ValueError):
    """A model name or directory that can't be used as an XLM-R checkpoint."""


class Warnings:
    # -- encoder ------------------------------------------------------------
    MIXED_PRECISION_ON_CPU = (
        "mixed_precision = true needs a GPU (CUDA autocast and loss "
        "scaling): on CPU the encoder trains in fp32. Train with --gpu-id, "
        "or set mixed_precision = false to silence this. For faster CPU "
        "predictions, see inference_precision."
    )
    # -- pipeline -----------------------------------------------------------
    TRAINING_DATA_PROBLEM = (
        "[{component}] {count} of {n_examples} training examples: {problem}. "
        "The first: {first!r}"
    )
    HEAD_FROM_OTHER_CHECKPOINT = (
        "[{component}] The head comes from '{checkpoint}' but the encoder was "
        "loaded from '{name}'. Set the encoder's name to the same checkpoint "
        "unless this is intended."
    )
    # -- tasks: qa, mlm -----------------------------------------------------
    TARGET_NOT_IN_VOCAB = (
        "[{component}] Target '{target}' has no pieces in the vocabulary: "
        "ignored. Give pieces of the vocabulary as targets."
    )
    TARGET_NOT_A_PIECE = (
        "[{component}] Target '{target}' isn't a piece of the vocabulary: "
        "replaced by its first piece, '{piece}' (as HF's fill-mask pipeline "
        "does). Give pieces of the vocabulary as targets "
        "(tokenizer.tokenize(word) lists a word's pieces)."
    )


class Errors:
    # -- storage: saved pipelines -------------------------------------------
    FILE_MISSING = (
        "[{component}] The saved pipeline is damaged: '{path}' is missing. "
        + SAVE_AGAIN
    )
    FILE_UNREADABLE = (
        "[{component}] The saved pipeline is damaged: '{path}' can't be loaded "
        "({error_type}: {error}). It is corrupt, or doesn't match this "
        "component's settings in config.cfg. " + SAVE_AGAIN
    )
    SAVED_WITH_OTHER_ENCODER = (
        "[{component}] The saved pipeline is damaged: this component was saved "
        "with other encoder weights than the pipeline's encoder has (an "
        "interrupted nlp.to_disk over an older pipeline mixes old and new "
        "components). Save the pipeline again, with spacy_xlmr.save_pipeline "
        "to save all or nothing."
    )
    # -- encoder ------------------------------------------------------------
    NO_ENCODER_OUTPUT = (
        "A component listening to the XLM-R encoder '{name}' got a doc without "
        "its output ({found}). Run the encoder first: keep '{name}' in the "
        "pipeline and enabled (spacy.load(..., disable=[...]) or exclude=[...] "
        "must not name it), or add it with " + ADD_ENCODER + " for a component "
        "that was never trained. A component sourced from a trained pipeline "
        "needs that pipeline's encoder: source it too, or give the component "
        "its own copy there first with nlp.replace_listeners. When training "
        "with a frozen encoder, list it in [training] annotating_components."
    )
    NOT_CONNECTED = (
        "This head isn't connected to an xlmr_transformer encoder. Add it "
        "after the encoder in the pipeline: " + ADD_ENCODER + "."
    )
    # -- pipeline -----------------------------------------------------------
    ENCODER_WIDTH_UNKNOWN = (
        "[{component}] Can't find the width of the encoder this component "
        "listens to. Initialize the pipeline with the encoder in front of it "
        "(nlp.initialize()), or add one with " + ADD_ENCODER + ". An encoder in "
        "[training] frozen_components isn't initialized by spacy train: source "
        "it from a trained pipeline ([components.transformer] source = ...)."
    )
    # -- hf: checkpoints and head import ------------------------------------
    # -- heads: torch heads and losses --------------------------------------
    # -- tasks: qa, mlm -----------------------------------------------------
    # -- convert: data readers ----------------------------------------------
    # -- scale: training, annotation ----------------------------------------
