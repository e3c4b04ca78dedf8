"""Callbacks the distributed training tests load with ``--code``: each rank
records its steps and a checksum of its weights before every update, and
can be made to fail at a given step, or be interrupted (Ctrl-C) at a step
or in the middle of saving a checkpoint."""
import builtins
import io
import json
import os
import signal

from spacy.util import registry

from spacy_xlmr.scale.collectives import pipeline_weights


@registry.callbacks("spacy_xlmr_tests.record_steps.v1")
def make_step_recorder(path: str, fail_on_rank: int = -1, fail_at_step: int = -1):
    def before_update(nlp, info):
        rank = int(os.environ.get("RANK", "0"))
        if rank == fail_on_rank and info["step"] == fail_at_step:
            raise RuntimeError(f"rank {rank} fails on purpose at step {fail_at_step}")
        checksum = sum(
            float(weight.value().double().abs().sum())
            for weight in pipeline_weights(nlp, trainable_only=False)
        )
        record = {"step": info["step"], "epoch": info["epoch"], "checksum": checksum}
        with open(f"{path}.rank{rank}", "a", encoding="utf8") as file:
            file.write(json.dumps(record) + "\n")

    return before_update


@registry.callbacks("spacy_xlmr_tests.interrupt.v1")
def make_interrupter(at_step: int, during_save: bool = False, at_write: int = 5):
    """Ctrl-C (a real SIGINT) before the update of step ``at_step``, or, with
    ``during_save``, in every later save (the checkpoint after that step and
    the save on the way out) when it opens its ``at_write``-th file for
    writing (the file is left empty)."""
    def before_update(nlp, info):
        if info["step"] != at_step:
            return
        if not during_save:
            signal.raise_signal(signal.SIGINT)
            return
        opened = []
        original = io.open

        def open_(file, mode="r", *args, **kwargs):
            handle = original(file, mode, *args, **kwargs)
            if any(flag in mode for flag in "wax+") and "model-" in str(file):
                opened.append(file)
                if len(opened) % at_write == 0:
                    handle.close()
                    signal.raise_signal(signal.SIGINT)
            return handle

        builtins.open = io.open = open_

    return before_update
