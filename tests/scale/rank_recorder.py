"""Callbacks the distributed training tests load with ``--code``: each rank
records its steps and a checksum of its weights before every update, and
can be made to fail at a given step."""
import json
import os

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
