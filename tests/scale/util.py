"""Helpers of the scale-out tests: pipelines saved to disk, input rows,
and comparison of output rows."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import spacy
from spacy.language import Language

DATA = Path(__file__).parents[2] / "data" / "text"
TEXTS = sorted(DATA.glob("ntrex128-*.txt"))


def save_ner_pipeline(checkpoint: Path, path: Path) -> Path:
    from spacy_xlmr.load import from_huggingface

    from_huggingface(str(checkpoint), "token-classification").to_disk(path)
    return path


def save_multi_head_pipeline(checkpoint: Path, path: Path) -> Path:
    """Encoder + xlmr_ner (imported head) + xlmr_textcat + xlmr_qa +
    xlmr_fill_mask (random heads) on one encoder."""
    nlp = spacy.blank("xx")
    encoder = {"model": {"name": str(checkpoint)}}
    nlp.add_pipe("xlmr_transformer", name="transformer", config=encoder)
    nlp.add_pipe("xlmr_ner", name="ner")
    textcat = nlp.add_pipe("xlmr_textcat", name="textcat")
    for label in ("news", "sports", "science"):
        textcat.add_label(label)
    nlp.add_pipe("xlmr_qa", name="qa", config={"top_k": 2})
    nlp.add_pipe("xlmr_fill_mask", name="fill_mask", config={"top_k": 2})
    nlp.config["initialize"]["components"]["ner"] = {"hf_checkpoint": str(checkpoint)}
    nlp.initialize()
    nlp.to_disk(path)
    return path


def save_tagger_spancat_pipeline(checkpoint: Path, path: Path) -> Path:
    """Encoder + spaCy's own ``tagger`` (listening to the encoder) and
    ``spancat`` (its own tok2vec), trained for 20 steps on 16 shipped
    English, Portuguese, German and Spanish sentences to tag capitalised
    words, punctuation and the rest, and to find capitalised words after
    the first as NAME spans."""
    from spacy.tokens import Span
    from spacy.training import Example

    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("xx")
    nlp.add_pipe("xlmr_transformer", name="transformer",
                 config={"model": {"name": str(checkpoint)}})
    listener = {"@architectures": "spacy-transformers.TransformerListener.v1",
                "grad_factor": 1.0, "upstream": "transformer",
                "pooling": {"@layers": "reduce_mean.v1"}}
    nlp.add_pipe("tagger", config={"model": {
        "@architectures": "spacy.Tagger.v2", "nO": None, "normalize": False,
        "tok2vec": listener,
    }})
    nlp.add_pipe("spancat", config={"spans_key": "sc", "threshold": 0.5})
    examples, texts = [], []
    for name in ("eng", "por", "deu", "spa"):
        lines = (DATA / f"ntrex128-{name}.txt").read_text(encoding="utf8").splitlines()
        texts += [line for line in lines if line.strip()][:4]
    for text in texts:
        doc = nlp.make_doc(text)
        tags = ["CAP" if t.text[:1].isupper() else "PUNCT" if t.is_punct else "X" for t in doc]
        example = Example.from_dict(doc, {"tags": tags})
        example.reference.spans["sc"] = [Span(example.reference, t.i, t.i + 1, label="NAME")
                                         for t in example.reference
                                         if t.i > 0 and t.text[:1].isupper()]
        examples.append(example)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(20):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


def shipped_sentences(n: int) -> List[str]:
    """``n`` NTREX sentences, taken in turn from each language."""
    per_language = [path.read_text(encoding="utf8").splitlines() for path in TEXTS]
    mixed = [line for lines in zip(*per_language) for line in lines if line.strip()]
    return mixed[:n]


def write_jsonl(path: Path, rows: List[Any]) -> Path:
    with path.open("w", encoding="utf8") as file:
        for row in rows:
            file.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def read_jsonl_dir(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for part in sorted(path.glob("part-*.jsonl"))
            for line in part.read_text(encoding="utf8").splitlines()]


def multi_head_rows(n: int) -> List[Dict[str, Any]]:
    rows = []
    for i, text in enumerate(shipped_sentences(n)):
        row: Dict[str, Any] = {"id": f"doc-{i}", "text": text}
        if i % 3 == 0:
            row["questions"] = ["Who?", {"id": "where", "question": "Where?"}]
        if i % 4 == 0:
            words = text.split()
            row["text"] = " ".join(["<mask>"] + words[1:])
        rows.append(row)
    return rows


def expected_row(nlp: Language, row: Dict[str, Any]) -> Dict[str, Any]:
    """The row, computed with the pipeline's own API (not doc_to_row)."""
    doc = nlp(row["text"])
    questions = [q if isinstance(q, dict) else {"id": f"q{i}", "question": q}
                 for i, q in enumerate(row.get("questions", []))]
    asked = nlp.get_pipe("qa").ask(row["text"], questions)
    return {
        "id": row["id"], "text": row["text"],
        "ents": [{"start_char": e.start_char, "end_char": e.end_char, "label": e.label_,
                  "score": e._.ent_score} for e in doc.ents],
        "cats": dict(doc.cats),
        "answers": {qid: [{"text": a["answer"], "start": a["start"], "end": a["end"],
                           "score": a["score"]} for a in answers]
                    for qid, answers in asked._.qa_answers.items()},
        "fill_mask": [[{k: p[k] for k in ("token_str", "score", "sequence")} for p in mask]
                      for mask in doc._.fill_mask],
        "error": None,
    }


def assert_rows_close(found: List[Dict], expected: List[Dict], tol: float = 1e-5) -> None:
    """Equal row for row; floats (scores) within ``tol``."""
    assert len(found) == len(expected)
    for row, other in zip(found, expected):
        assert _close(row, other, tol), (row, other)


def _close(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return a == b


def tags_and_spans_rows(nlp: Language, n: int) -> Tuple[List[Dict], List[Dict]]:
    """``n`` input rows (the 6th with an empty text) and the rows of a
    pipeline with spaCy's tagger and spancat, from what ``nlp(text)`` sets."""
    rows = [{"id": f"t{i}", "text": text} for i, text in enumerate(shipped_sentences(n))]
    rows[5]["text"] = ""
    expected = []
    for row in rows:
        if not row["text"]:
            expected.append({**row, "tags": None, "spans": None,
                             "error": "text is empty or whitespace: nothing to annotate"})
            continue
        doc = nlp(row["text"])
        group = doc.spans["sc"]
        expected.append({
            **row,
            "tags": [{"start_char": t.idx, "end_char": t.idx + len(t.text), "tag": t.tag_}
                     for t in doc],
            "spans": {"sc": [{"start_char": s.start_char, "end_char": s.end_char,
                              "label": s.label_, "score": float(score)}
                             for s, score in zip(group, group.attrs["scores"])]},
            "error": None,
        })
    return rows, expected


def assert_tags_and_spans_predicted(rows: List[Dict[str, Any]]) -> None:
    assert {t["tag"] for r in rows if r["tags"] for t in r["tags"]} == {"CAP", "PUNCT", "X"}
    assert sum(len(r["spans"]["sc"]) for r in rows if r["spans"]) > len(rows) // 2


def kill_after_shards(command: List[str], out: Path, log: Path, shards: int = 2,
                      timeout: float = 120) -> Dict[str, int]:
    """Run ``command`` in its own process group, SIGKILL the group once
    ``shards`` shards are in ``out`` (the first ones), and return the
    finished shards' names and modification times."""
    last = out / f"part-{shards - 1:05d}.jsonl"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not last.exists():
                assert process.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            end_session(process.pid)
    return {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.jsonl")}


def end_session(sid: int, grace: float = 30) -> None:
    """Wait for the processes of session ``sid`` that left its process group
    (Ray's workers do, and exit once their raylet is gone) to exit; SIGKILL
    any still there after ``grace`` seconds."""
    deadline = time.monotonic() + grace
    while True:
        left = [pid for pid in _pids() if _session(pid) == sid]
        if not left:
            return
        if time.monotonic() > deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        time.sleep(0.2)


def _pids() -> List[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _session(pid: int) -> Optional[int]:
    """The session id of process ``pid`` (None if it's gone)."""
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None
