"""The pieces of data-parallel training that need no process group: how
batches are dealt to ranks, the batch stream's own random state, which
components sum their gradients, launch detection and set-up errors."""
import random

import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example

from spacy_xlmr.scale.loop import Ranks, deal_batches, own_random_state, summed_components
from spacy_xlmr.scale.training import join_process_group, launched_distributed


def examples(texts):
    nlp = spacy.blank("xx")
    return [Example(nlp.make_doc(t), Doc(nlp.vocab, words=t.split())) for t in texts]


def ranks(rank: int, world_size: int = 2) -> Ranks:
    return Ranks(rank, world_size, torch.device("cpu"), -1)


def test_each_step_deals_one_batch_per_rank_and_ranks_without_one_still_step():
    batches = [(0, examples([f"doc {i}"] * (i + 1))) for i in range(5)]
    dealt = [list(deal_batches(batches, ranks(rank))) for rank in (0, 1)]
    assert len(dealt[0]) == len(dealt[1]) == 3
    assert [len(batch) for _, batch, _, _ in dealt[0]] == [1, 3, 5]
    assert [len(batch) for _, batch, _, _ in dealt[1]] == [2, 4, 0]
    # Words of both ranks' batches, and the same data digest on both ranks.
    assert [words for _, _, words, _ in dealt[0]] == [2 * 3, 2 * 7, 2 * 5]
    assert [step[2:] for step in dealt[0]] == [step[2:] for step in dealt[1]]


def test_the_batch_stream_draws_the_same_numbers_whatever_training_draws():
    def shuffled_epochs():
        items = list(range(20))
        while True:
            random.shuffle(items)
            yield list(items)

    state = random.Random(0).getstate()
    streams = []
    for training_draws in (0, 3):
        stream = own_random_state(shuffled_epochs(), state)
        epochs = []
        for _ in range(3):
            epochs.append(next(stream))
            for _ in range(training_draws):  # dropout, parser cuts ... on one rank only
                random.random()
        streams.append(epochs)
    assert streams[0] == streams[1]
    assert streams[0][0] != streams[0][1]


def test_spacy_components_sum_gradients_and_xlmr_heads_average_them(tiny_checkpoint):
    nlp = spacy.blank("xx")
    config = {"model": {"name": str(tiny_checkpoint)}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=config)
    nlp.add_pipe("xlmr_ner", name="xlmr_ner")
    nlp.add_pipe("xlmr_textcat", name="xlmr_textcat")
    nlp.add_pipe("ner")
    nlp.add_pipe("tagger")
    assert summed_components(nlp) == ["ner", "tagger"]


def test_launch_is_detected_from_the_launchers_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not launched_distributed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_distributed()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without GPUs")
def test_more_ranks_than_gpus_names_the_fix(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match=r"Local rank 1 has no GPU: this machine has 0 visible"):
        join_process_group(use_gpu=0)
