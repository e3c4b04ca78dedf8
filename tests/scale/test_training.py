"""`spacy-xlmr train` under torchrun (gloo, 2 CPU processes): the same
weights and predictions as one process that sees the whole batch, ranks in
step, one output directory, clear failures instead of hangs."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin
from thinc.api import Config

from spacy_xlmr.scale.collectives import pipeline_weights

ROOT = Path(__file__).parents[2]
RECORDER = Path(__file__).parent / "rank_recorder.py"
LABELS = ["PER", "ORG", "LOC"]
TOPICS = ["sports", "politics", "health"]
TIMEOUT = 300

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_without_dropout(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny encoder with dropout off, so that runs can be compared."""
    path = tmp_path_factory.mktemp("tiny-xlmr-no-dropout") / "encoder"
    shutil.copytree(tiny_checkpoint, path)
    config = json.loads((path / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config))
    return path


# Entity layouts where every move of spaCy's ner (B, I, L, U, O) occurs.
ALL_MOVES = [["U", "O", "B", "I", "L", "O"], ["O", "B", "I", "L", "O", "U"]]


def make_docs(n_docs: int, seed: int, all_moves: bool = False) -> List[Doc]:
    """Docs of six words each, with one entity and one topic: every half of
    a batch has the same number of gold tokens and annotated docs (each
    rank's loss is a mean, as in one process). With ``all_moves``, two PER
    entities in each doc use every move of spaCy's ner: until a move has
    been seen in training, spaCy scores it with the batch's lowest score,
    which depends on how the batch is split."""
    text = (ROOT / "data" / "text" / "ntrex128-por.txt").read_text()
    # Alphabetic words: each is one token for the tokenizer too.
    words = [word for word in text.split() if word.isalpha()][:400]
    rng = numpy.random.default_rng(seed)
    nlp = spacy.blank("xx")
    docs = []
    for _ in range(n_docs):
        doc_words = [str(word) for word in rng.choice(words, 6)]
        tags = ["O"] * 6
        start = int(rng.integers(0, 5))
        label = LABELS[int(rng.integers(0, 3))]
        tags[start] = f"B-{label}"
        if rng.random() < 0.5:
            tags[start + 1] = f"I-{label}"
        doc = Doc(nlp.vocab, words=doc_words, spaces=[True] * 5 + [False], ents=tags)
        if all_moves:
            layout = ALL_MOVES[int(rng.integers(0, 2))]
            iob = {"U": "B", "B": "B", "I": "I", "L": "I"}
            tags = ["O" if move == "O" else f"{iob[move]}-PER" for move in layout]
            doc = Doc(nlp.vocab, words=doc_words, spaces=[True] * 5 + [False], ents=tags)
        topic = TOPICS[int(rng.integers(0, 3))]
        doc.cats = {t: float(t == topic) for t in TOPICS}
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Dict[str, Path]:
    path = tmp_path_factory.mktemp("corpus")
    files = {}
    for split, n_docs, seed in (("train", 16, 0), ("dev", 8, 1), ("odd", 10, 2), ("moves", 16, 3)):
        files[split] = path / f"{split}.spacy"
        docs = make_docs(n_docs, seed, all_moves=split == "moves")
        DocBin(docs=docs, store_user_data=True).to_disk(files[split])
    return files


SPACY_NER = {
    "factory": "ner",
    "model": {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 32,
        "maxout_pieces": 2,
        "use_upper": False,
        "tok2vec": {
            "@architectures": "spacy-transformers.TransformerListener.v1",
            "grad_factor": 1.0,
            "upstream": "transformer",
            "pooling": {"@layers": "reduce_mean.v1"},
        },
    },
}


def write_config(
    path: Path, pipeline: str, corpus: Dict[str, Path], encoder: Path, *,
    batch_size: int, max_steps: int, recorder: Path, train: str = "train",
    patience: int = 0, eval_frequency: int = 2, **recorder_options,
) -> Path:
    """A tiny config for ``pipeline`` (xlmr_ner, multitask or spacy_ner)
    with a fixed batch schedule and no dropout."""
    base = "multitask-tiny.cfg" if pipeline == "multitask" else "ner-tiny.cfg"
    config = Config().from_disk(ROOT / "configs" / base, interpolate=False)
    config["paths"].update(train=str(corpus[train]), dev=str(corpus["dev"]), encoder=str(encoder))
    training = config["training"]
    training.update(
        dropout=0.0, max_steps=max_steps, max_epochs=0, patience=patience,
        eval_frequency=eval_frequency,
    )
    training["batcher"] = {
        "@batchers": "spacy.batch_by_sequence.v1", "size": batch_size, "get_length": None,
    }
    training["before_update"] = {
        "@callbacks": "spacy_xlmr_tests.record_steps.v1", "path": str(recorder),
        **recorder_options,
    }
    training["score_weights"] = {"ents_f": 1.0}
    if pipeline == "spacy_ner":
        config["components"]["ner"] = SPACY_NER
        config["initialize"]["components"].pop("ner", None)
    for name in ("ner", "textcat"):
        if name in config["components"] and "dropout" in config["components"][name]["model"]:
            config["components"][name]["model"]["dropout"] = 0.0
    config.to_disk(path)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(n_ranks: int, config: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n_ranks),
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "spacy_xlmr", "train", str(config), "--output", str(output),
        "--code", str(RECORDER), *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def read_steps(recorder: Path, rank: int) -> List[dict]:
    lines = Path(f"{recorder}.rank{rank}").read_text().splitlines()
    return [json.loads(line) for line in lines]


# spaCy's PrecomputableAffine (the lower layer of its ner and parser)
# backpropagates missing state features (token id -1) through the last token
# vector of the batch, so its weight gradient depends on how a batch is split
# even in one process (measured: the gradient of a batch of 4 differs from the
# sum of its halves' by 5.0, max 8.5). Every other weight is compared exactly.
SPLIT_DEPENDENT = "ner:precomputable_affine:W"


def weight_differences(a, b) -> Dict[str, float]:
    weights_a = pipeline_weights(a, trainable_only=False)
    weights_b = pipeline_weights(b, trainable_only=False)
    assert [w.key for w in weights_a] == [w.key for w in weights_b]
    return {
        x.key: float((x.value() - y.value()).abs().max()) for x, y in zip(weights_a, weights_b)
    }


def max_weight_difference(a, b) -> float:
    return max(weight_differences(a, b).values())


@pytest.mark.parametrize("pipeline", ["xlmr_ner", "multitask", "spacy_ner"])
def test_two_ranks_equal_one_process_seeing_the_whole_batch(
    pipeline, corpus, encoder_without_dropout, tmp_path
):
    runs = {}
    for n_ranks, batch_size in ((1, 4), (2, 2)):
        recorder = tmp_path / f"steps-{n_ranks}"
        config = write_config(
            tmp_path / f"{n_ranks}.cfg", pipeline, corpus, encoder_without_dropout,
            batch_size=batch_size, max_steps=6, recorder=recorder,
            train="moves" if pipeline == "spacy_ner" else "train",
        )
        result = torchrun(n_ranks, config, tmp_path / f"out-{n_ranks}")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[n_ranks] = spacy.load(tmp_path / f"out-{n_ranks}" / "model-last")
        steps = [read_steps(recorder, rank) for rank in range(n_ranks)]
        assert [s["step"] for s in steps[0]] == list(range(7))
        # Every rank holds the same weights before every step.
        for other in steps[1:]:
            assert [s["step"] for s in other] == [s["step"] for s in steps[0]]
            for mine, theirs in zip(steps[0], other):
                assert theirs["checksum"] == pytest.approx(mine["checksum"], rel=1e-9)
    one, two = runs[1], runs[2]
    differences = weight_differences(one, two)
    if pipeline == "spacy_ner":
        assert differences.pop(SPLIT_DEPENDENT) <= 1e-3
    assert max(differences.values()) <= 1e-5
    # Training moved the weights: the comparison above is not vacuous.
    checksums = [step["checksum"] for step in read_steps(tmp_path / "steps-1", 0)]
    assert abs(checksums[-1] - checksums[0]) > 0.01
    texts = [doc.text for doc in make_docs(8, 1)]
    for doc_one, doc_two in zip(one.pipe(texts), two.pipe(texts)):
        assert [(e.start_char, e.end_char, e.label_) for e in doc_one.ents] == [
            (e.start_char, e.end_char, e.label_) for e in doc_two.ents
        ]
        if pipeline != "spacy_ner":
            scores_one = [e._.ent_score for e in doc_one.ents]
            assert [e._.ent_score for e in doc_two.ents] == pytest.approx(scores_one, abs=1e-5)
        if pipeline == "multitask":
            assert doc_two.cats == pytest.approx(doc_one.cats, abs=1e-5)


def test_a_rank_without_a_batch_still_steps(corpus, encoder_without_dropout, tmp_path):
    """10 docs in batches of 4, one epoch: 3 batches for 2 ranks, so rank 1
    has no batch at the second step (its heads have no gradients) and still
    steps with rank 0; rank 0 alone writes the output, which loads in a
    fresh process."""
    recorder = tmp_path / "steps"
    config = write_config(
        tmp_path / "odd.cfg", "multitask", corpus, encoder_without_dropout, train="odd",
        batch_size=4, max_steps=0, eval_frequency=1, recorder=recorder,
    )
    result = torchrun(2, config, tmp_path / "out", "--training.max_epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [read_steps(recorder, rank) for rank in (0, 1)]
    assert [s["step"] for s in steps[0]] == [s["step"] for s in steps[1]] == [0, 1]
    for mine, theirs in zip(*steps):
        assert theirs["checksum"] == pytest.approx(mine["checksum"], rel=1e-9)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model-best", "model-last"]
    assert result.stdout.count("Pipeline: ['transformer', 'ner', 'textcat']") == 1
    assert "2 steps on 2 rank(s)" in result.stdout
    load = "import spacy, sys; nlp = spacy.load(sys.argv[1]); print(nlp.pipe_names)"
    loaded = subprocess.run(
        [sys.executable, "-c", load, str(tmp_path / "out" / "model-last")],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert loaded.stdout.strip() == "['transformer', 'ner', 'textcat']", loaded.stderr


def test_patience_ends_all_ranks_at_the_same_step(corpus, encoder_without_dropout, tmp_path):
    recorder = tmp_path / "steps"
    config = write_config(
        tmp_path / "patience.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=2, max_steps=100, patience=2, eval_frequency=1, recorder=recorder,
    )
    result = torchrun(2, config, tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [[s["step"] for s in read_steps(recorder, rank)] for rank in (0, 1)]
    assert steps[0] == steps[1]
    # The logged table (rank 0 only): step and score of every evaluation.
    rows = [line.split() for line in result.stdout.splitlines()]
    table = [row for row in rows if len(row) > 3 and row[0].isdigit() and row[1].isdigit()]
    scores = {int(row[1]): float(row[-1]) for row in table}
    assert sorted(scores) == steps[0]
    best_step = min(step for step, score in scores.items() if score == max(scores.values()))
    assert steps[0][-1] == best_step + 2 < 100


def test_a_failing_rank_stops_the_others_with_its_message(
    corpus, encoder_without_dropout, tmp_path
):
    config = write_config(
        tmp_path / "fail.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=2, max_steps=20, recorder=tmp_path / "steps", fail_on_rank=1, fail_at_step=2,
    )
    result = torchrun(2, config, tmp_path / "out")
    assert result.returncode != 0
    assert "rank 1 fails on purpose at step 2" in result.stdout + result.stderr
    assert len(read_steps(tmp_path / "steps", 0)) <= 3


def run_rank(rank: int, port: int, config: Path, output: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable, "-m", "spacy_xlmr", "train", str(config), "--output", str(output),
        "--code", str(RECORDER), *extra,
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_ranks_with_different_configs_are_refused(corpus, encoder_without_dropout, tmp_path):
    config = write_config(
        tmp_path / "a.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=2, max_steps=2, recorder=tmp_path / "steps",
    )
    port = free_port()
    ranks = [
        run_rank(0, port, config, tmp_path / "out"),
        run_rank(1, port, config, tmp_path / "out", "--training.max_steps", "3"),
    ]
    outputs = [rank.communicate(timeout=TIMEOUT)[0] for rank in ranks]
    for rank, output in zip(ranks, outputs):
        assert rank.returncode != 0
        assert "Rank(s) 1 have other pipelines than rank 0" in output
        assert "Start every rank with the same config" in output
    assert not (tmp_path / "out" / "model-last").exists()


def test_an_unreachable_rendezvous_names_the_address(corpus, encoder_without_dropout, tmp_path):
    config = write_config(
        tmp_path / "a.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=2, max_steps=2, recorder=tmp_path / "steps",
    )
    port = free_port()  # nobody listens there: rank 0 never starts
    rank = run_rank(1, port, config, tmp_path / "out", "--dist-timeout", "5")
    output = rank.communicate(timeout=TIMEOUT)[0]
    assert rank.returncode != 0
    assert f"could not join the process group at 127.0.0.1:{port}" in output


def test_plain_spacy_xlmr_train_is_spacy_train(corpus, encoder_without_dropout, tmp_path):
    """Without torchrun, `spacy-xlmr train` is `spacy train`: with the
    same seed, the same pipeline (and the usual dropout)."""
    config = write_config(
        tmp_path / "plain.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=4, max_steps=3, recorder=tmp_path / "steps",
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    outputs: Dict[str, Optional[str]] = {}
    for name, module in (("xlmr", "spacy_xlmr"), ("spacy", "spacy")):
        command = [
            sys.executable, "-m", module, "train", str(config), "--output",
            str(tmp_path / name), "--code", str(RECORDER), "--training.dropout", "0.1",
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = result.stdout
    assert "Data-parallel" not in (outputs["xlmr"] or "")
    xlmr = spacy.load(tmp_path / "xlmr" / "model-last")
    plain = spacy.load(tmp_path / "spacy" / "model-last")
    assert max_weight_difference(xlmr, plain) == 0.0


def test_ray_train_runs_the_same_training_as_torchrun(
    corpus, encoder_without_dropout, tmp_path, ray_cluster, time_limit
):
    """The Ray Train recipe (README): `ray_train_loop` in a `TorchTrainer`
    with 2 CPU workers trains the same pipeline as torchrun with 2 ranks."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from spacy_xlmr.scale.training import ray_train_loop

    configs = {
        launcher: write_config(
            tmp_path / f"{launcher}.cfg", "xlmr_ner", corpus, encoder_without_dropout,
            batch_size=2, max_steps=3, recorder=tmp_path / f"steps-{launcher}",
        )
        for launcher in ("torchrun", "ray")
    }
    result = torchrun(2, configs["torchrun"], tmp_path / "torchrun")
    assert result.returncode == 0, result.stderr[-3000:]
    TorchTrainer(
        ray_train_loop,
        train_loop_config={
            "config_path": str(configs["ray"]), "output_path": str(tmp_path / "ray"),
            "code_path": str(RECORDER),
        },
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(storage_path=str(tmp_path / "ray_results")),
    ).fit()
    for rank in (0, 1):
        assert [s["step"] for s in read_steps(tmp_path / "steps-ray", rank)] == [0, 1, 2, 3]
    by_torchrun = spacy.load(tmp_path / "torchrun" / "model-last")
    by_ray = spacy.load(tmp_path / "ray" / "model-last")
    assert max_weight_difference(by_torchrun, by_ray) <= 1e-5


@pytest.mark.parametrize("task", ["mlm", "qa"])
def test_raw_text_and_qa_data_train_with_ranks_in_step(task, encoder_without_dropout, tmp_path):
    """The masked-LM config (spaCy's plain-text reader) and the QA config
    (questions on the docs) train on 2 ranks that hold the same weights
    before every step; the saved pipeline loads."""
    if task == "mlm":
        train = dev = ROOT / "data" / "text-dev"
    else:
        from spacy_xlmr.convert import convert_squad

        train = dev = tmp_path / "qa.spacy"
        convert_squad(ROOT / "data" / "qa" / "xquad" / "xquad.en.json", train)
    config = Config().from_disk(ROOT / "configs" / f"{task}-tiny.cfg", interpolate=False)
    config["paths"].update(train=str(train), dev=str(dev), encoder=str(encoder_without_dropout))
    config["training"].update(max_steps=3, eval_frequency=3)
    recorder = tmp_path / "steps"
    config["training"]["before_update"] = {
        "@callbacks": "spacy_xlmr_tests.record_steps.v1", "path": str(recorder),
    }
    config.to_disk(tmp_path / "config.cfg")
    result = torchrun(2, tmp_path / "config.cfg", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [read_steps(recorder, rank) for rank in (0, 1)]
    assert [s["step"] for s in steps[0]] == [s["step"] for s in steps[1]] == [0, 1, 2, 3]
    for mine, theirs in zip(*steps):
        assert theirs["checksum"] == pytest.approx(mine["checksum"], rel=1e-9)
    assert steps[0][-1]["checksum"] != steps[0][0]["checksum"]
    assert spacy.load(tmp_path / "out" / "model-last").pipe_names[0] == "transformer"


def test_two_machines_rendezvous_like_one(corpus, encoder_without_dropout, tmp_path):
    """The README's several-machines command (`--nnodes 2 --rdzv-backend c10d
    --rdzv-endpoint HOST:PORT`, one process per "machine", both on
    127.0.0.1) trains the same pipeline as 2 processes on one machine."""
    config = write_config(
        tmp_path / "nodes.cfg", "xlmr_ner", corpus, encoder_without_dropout,
        batch_size=2, max_steps=3, recorder=tmp_path / "steps",
    )
    one_machine = torchrun(2, config, tmp_path / "one")
    assert one_machine.returncode == 0, one_machine.stderr[-3000:]
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    nodes = [
        subprocess.Popen(
            [
                sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
                "--rdzv-id", "spacy-xlmr-test", "-m", "spacy_xlmr", "train", str(config),
                "--output", str(tmp_path / "two"), "--code", str(RECORDER),
            ],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    one = spacy.load(tmp_path / "one" / "model-last")
    two = spacy.load(tmp_path / "two" / "model-last")
    assert max_weight_difference(one, two) <= 1e-6


def interrupted_config(path: Path, corpus, encoder: Path, **interrupt) -> Path:
    """The xlmr_ner config, evaluated and saved every 2 steps, with Ctrl-C
    as ``spacy_xlmr_tests.interrupt.v1`` says."""
    write_config(
        path, "xlmr_ner", corpus, encoder, batch_size=4, max_steps=12, recorder=path.parent,
    )
    config = Config().from_disk(path, interpolate=False)
    config["training"]["before_update"] = {
        "@callbacks": "spacy_xlmr_tests.interrupt.v1", **interrupt
    }
    config.to_disk(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("at_step", [0, 5])
def test_ctrl_c_during_plain_training_saves_a_loadable_model_last(
    corpus, encoder_without_dropout, tmp_path, at_step
):
    """spaCy's loop saves model-last on its way out, also on Ctrl-C (with the
    weights of that moment); model-best is the best evaluated checkpoint."""
    config = interrupted_config(
        tmp_path / "c.cfg", corpus, encoder_without_dropout, at_step=at_step
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    command = [
        sys.executable, "-m", "spacy_xlmr", "train", str(config), "--output",
        str(tmp_path / "out"), "--code", str(RECORDER),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert result.returncode == 130, result.stderr[-2000:]  # Ctrl-C
    assert spacy.load(tmp_path / "out" / "model-last").pipe_names == ["transformer", "ner"]
    # Step 0 is interrupted before its evaluation.
    assert (tmp_path / "out" / "model-best").exists() == (at_step > 0)


@pytest.mark.slow
@pytest.mark.parametrize("at_write", [2, 9])
def test_ctrl_c_while_a_distributed_run_saves_keeps_the_previous_checkpoint(
    corpus, encoder_without_dropout, tmp_path, at_write
):
    """Under torchrun, checkpoints are saved all or nothing: Ctrl-C in the
    middle of saving the step-4 checkpoint, and again in the save on the way
    out, leaves step 2's model-last whole."""
    config = interrupted_config(
        tmp_path / "c.cfg", corpus, encoder_without_dropout,
        at_step=4, during_save=True, at_write=at_write,
    )
    result = torchrun(1, config, tmp_path / "out")
    assert result.returncode != 0 and "exitcode  : 130" in result.stderr  # Ctrl-C
    nlp = spacy.load(tmp_path / "out" / "model-last")
    assert nlp.pipe_names == ["transformer", "ner"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model-best", "model-last"]
