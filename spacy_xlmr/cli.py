"""``spacy-xlmr`` command line: build local XLM-R checkpoints, convert data,
train (also data-parallel under torchrun), evaluate and annotate corpora."""
from pathlib import Path
from typing import Optional

import typer

from .checkpoints import DEFAULT_TEXT_DIR, SIZES, build_checkpoint, shipped_texts
from .errors import Errors

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


@app.command("build-checkpoint")
def build_checkpoint_cli(
    output_dir: Path = typer.Argument(..., help="Directory to write the checkpoint to"),
    size: str = typer.Option("tiny", help=f"Architecture size: {', '.join(SIZES)}"),
    text_dir: Path = typer.Option(
        DEFAULT_TEXT_DIR, help="Plain-text files to train the tokenizer on"
    ),
    vocab_size: int = typer.Option(8000, help="SentencePiece vocabulary size"),
    seed: int = typer.Option(0, help="Random seed of the weights"),
) -> None:
    """Build a random XLM-R checkpoint with a tokenizer trained on local text,
    loadable by path wherever a hub name like xlm-roberta-base is."""
    path = build_checkpoint(
        output_dir, shipped_texts(text_dir), size=size, vocab_size=vocab_size, seed=seed
    )
    typer.echo(f"Saved a {size} XLM-R checkpoint to {path}")


@app.command("convert-iob2")
def convert_iob2_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Output .spacy file"),
    lang: str = typer.Option("xx", help="spaCy language of the tokenizer/vocab"),
    n_sents: int = typer.Option(1, help="Sentences per doc"),
    limit: Optional[int] = typer.Option(None, help="Read at most this many sentences"),
) -> None:
    """Convert a Universal NER / CoNLL IOB2 file to a .spacy file."""
    from .convert import convert_iob2

    stats = convert_iob2(input_path, output_path, lang=lang, n_sents=n_sents, limit=limit)
    typer.echo(stats.summary())
    typer.echo(f"Saved to {output_path}")


@app.command("convert-char-spans")
def convert_char_spans_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Output .spacy file"),
    lang: str = typer.Option("xx", help="spaCy language whose tokenizer splits the text"),
    uner_labels: bool = typer.Option(False, help="Map Stockmark types to PER/ORG/LOC"),
    limit: Optional[int] = typer.Option(None, help="Read at most this many items"),
) -> None:
    """Convert character-offset NER JSON (Stockmark format) to a .spacy file."""
    from .convert import STOCKMARK_TO_UNER, convert_char_span_json

    stats = convert_char_span_json(
        input_path, output_path, lang=lang, limit=limit,
        label_map=STOCKMARK_TO_UNER if uner_labels else None,
    )
    typer.echo(stats.summary())
    typer.echo(f"Saved to {output_path}")


@app.command("convert-textcat")
def convert_textcat_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Output .spacy file"),
    lang: str = typer.Option("xx", help="spaCy language of the tokenizer/vocab"),
    format: Optional[str] = typer.Option(
        None, help="sib200, nusax, jsonl, csv or tsv (default: from the file)"
    ),
    labels: Optional[Path] = typer.Option(
        None, exists=True, dir_okay=False, help="File with the label set, one per line"
    ),
    text_column: Optional[str] = typer.Option(None, help="Text column of a csv/tsv file"),
    label_column: Optional[str] = typer.Option(None, help="Label column of a csv/tsv file"),
    limit: Optional[int] = typer.Option(None, help="Read at most this many examples"),
) -> None:
    """Convert SIB-200 TSV, NusaX CSV, JSONL ({"text", "cats"}) or a generic
    CSV/TSV text classification file to a .spacy file."""
    from .convert import convert_textcat, read_labels

    stats = convert_textcat(
        input_path, output_path, lang=lang, format=format,
        labels=read_labels(labels) if labels else None,
        text_column=text_column, label_column=label_column, limit=limit,
    )
    typer.echo(stats.summary())
    typer.echo(f"Saved to {output_path}")


@app.command("convert-squad")
def convert_squad_cli(
    input_path: Path = typer.Argument(..., exists=True, dir_okay=False),
    output_path: Path = typer.Argument(..., help="Output .spacy file"),
    lang: str = typer.Option("xx", help="spaCy language whose tokenizer splits the contexts"),
    limit: Optional[int] = typer.Option(None, help="Read at most this many paragraphs"),
) -> None:
    """Convert SQuAD 1.1 / 2.0 JSON (also XQuAD, SQuAD-es) to a .spacy file
    with one doc per paragraph and its questions in doc._.qa_questions."""
    from .convert import convert_squad

    stats = convert_squad(input_path, output_path, lang=lang, limit=limit)
    typer.echo(stats.summary())
    typer.echo(f"Saved to {output_path}")


@app.command("evaluate")
def evaluate_cli(
    model: str = typer.Argument(..., help="Pipeline directory or package name"),
    data_path: Path = typer.Argument(
        ..., exists=True, help=".spacy file or directory; .txt/.jsonl raw text for masked-LM scores"
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="JSON file for all scores"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU to use, -1 for CPU"),
) -> None:
    """Evaluate a pipeline and print every score, including those `spacy
    evaluate` leaves out (qa_* of xlmr_qa, mlm_* of xlmr_fill_mask)."""
    import spacy
    import srsly
    from spacy.training import Corpus, JsonlCorpus, PlainTextCorpus

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    readers = {".txt": PlainTextCorpus, ".jsonl": JsonlCorpus}
    reader = readers.get(data_path.suffix, Corpus)(data_path)
    examples = list(reader(nlp))
    if not examples:
        raise typer.BadParameter(
            Errors.NO_EXAMPLES.format(path=data_path), param_hint="data_path"
        )
    scores = nlp.evaluate(examples)
    for name, value in scores.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue  # per-type tables: in the JSON output
        shown = f"{value:.0f}" if isinstance(value, int) or name == "speed" else f"{value:.4f}"
        typer.echo(f"{name:<24} {shown}")
    if output is not None:
        srsly.write_json(output, scores)
        typer.echo(f"Saved to {output}")


@app.command(
    "train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def train_cli(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Config file"),
    output_path: Optional[Path] = typer.Option(
        None, "--output", "--output-path", "-o", help="Directory for model-best / model-last"
    ),
    code_path: Optional[Path] = typer.Option(
        None, "--code", "-c", help="Python file with registered functions to import"
    ),
    verbose: bool = typer.Option(False, "--verbose", "-V", help="Debug logging"),
    use_gpu: int = typer.Option(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    dist_timeout: float = typer.Option(
        1800, "--dist-timeout", help="Under torchrun: seconds a rank waits for the others"
    ),
) -> None:
    """Train a pipeline: exactly `spacy train` when run plainly; data-parallel
    on every rank when launched by torchrun (gloo on CPU, nccl with
    --gpu-id, each rank on its LOCAL_RANK GPU). Config overrides as in
    `spacy train`: --training.max_steps 1000."""
    import logging
    from datetime import timedelta

    from spacy import util
    from spacy.cli._util import import_code, parse_config_overrides

    from torch.distributed.elastic.multiprocessing.errors import record

    from .scale.training import launched_distributed, train_distributed

    if verbose:
        util.logger.setLevel(logging.DEBUG)
    overrides = parse_config_overrides(ctx.args)
    import_code(code_path)
    if launched_distributed():
        # record: torchrun reports this rank's traceback when it fails.
        record(train_distributed)(
            config_path, output_path, use_gpu=use_gpu, overrides=overrides,
            timeout=timedelta(seconds=dist_timeout),
        )
    else:
        from spacy.cli.train import train

        train(config_path, output_path, use_gpu=use_gpu, overrides=overrides)


@app.command("apply")
def apply_cli(
    pipeline: str = typer.Argument(..., help="Pipeline directory or package name"),
    input_spec: str = typer.Argument(
        ..., metavar="INPUT", help=".jsonl, .txt or .parquet file, or a directory or glob of them"
    ),
    output: Path = typer.Argument(
        ..., help=".jsonl, .parquet or .spacy file, or a directory for sharded output"
    ),
    engine: str = typer.Option("local", help="local (nlp.pipe here) or ray (Ray Data actors)"),
    fmt: Optional[str] = typer.Option(
        None, "--format", help="Shard format of a directory OUTPUT: jsonl, parquet or spacy"
    ),
    text_key: str = typer.Option("text", help="Text field of .jsonl/.parquet rows"),
    id_key: str = typer.Option("id", help="Id field (default id: the row's 0-based index)"),
    shard_size: int = typer.Option(
        1000, help="Rows per output shard (the unit of resuming and of a Ray worker's work)",
    ),
    batch_size: int = typer.Option(64, help="nlp.pipe batch size"),
    n_process: int = typer.Option(1, "--n-process", "-n", help="Processes (local engine)"),
    threads: Optional[int] = typer.Option(
        None, help="torch threads per process / Ray worker (default: its share of the CPUs)"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU of the local engine, -1 for CPU"),
    workers: int = typer.Option(
        1, help="Ray actors (ray engine), each loads the pipeline once and reads its shards"
    ),
    gpus_per_worker: float = typer.Option(0.0, help="GPUs per Ray actor (e.g. 0.5: two per GPU)"),
    address: Optional[str] = typer.Option(
        None, help="Ray cluster to join: HOST:PORT of its head node, or auto; default: a local one"
    ),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)"
    ),
) -> None:
    """Annotate every row of INPUT with PIPELINE, like `spacy apply`, into
    resumable shards: a rerun skips the shards an interrupted run finished."""
    from .scale.apply import apply

    try:
        result = apply(
            pipeline, input_spec, output, engine=engine, fmt=fmt, text_key=text_key,
            id_key=id_key, shard_size=shard_size, batch_size=batch_size, n_process=n_process,
            threads=threads, gpu_id=gpu_id, workers=workers, gpus_per_worker=gpus_per_worker,
            address=address, progress=progress,
        )
    except ValueError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{result.rows} rows: {result.annotated} annotated now ({result.errors} with an "
        f"error), {result.rows - result.annotated} by an earlier run. Saved to {result.output}"
    )


def main() -> None:  # pragma: no cover
    app()
