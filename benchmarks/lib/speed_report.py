"""speed.py's report: words/s and ratios, comparisons between systems
(QA answers, reduced-precision fidelity), and the markdown tables.
``systems`` is speed.py's systems table (``lib.systems.System`` rows)."""
import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional

from .fidelity import ner_fidelity
from .results import fmt

QA_SCORE_TOLERANCE = 1e-4


def summarize(result: Dict, docs: List[Dict], reference: Optional[Dict], systems: Dict) -> None:
    """Add words/s, the ratio to the reference and the piece accounting."""
    if "error" in result:
        return
    words = sum(d["words"] for d in docs)
    needed = sum(d["pieces"] + d.get("specials", 2) for d in docs)
    result["words"] = words
    result["words_per_s"] = words / result["median_s"]
    if docs and "questions" in docs[0]:
        questions = sum(len(d["questions"]) for d in docs)
        result["questions"] = questions
        result["questions_per_s"] = questions / result["median_s"]
        result["questions_per_cpu_s"] = questions / statistics.median(result["cpu_s"])
    result["cpu_per_wall"] = statistics.median(
        c / w for c, w in zip(result["cpu_s"], result["runs_s"])
    )
    result["other_cpu_share"] = statistics.median(result["other_processes_cpu_share"])
    # Throughput per CPU-second of this process: less sensitive to other jobs
    # than wall time when torch runs one thread (with more, waiting threads
    # spin and count as CPU time).
    result["words_per_cpu_s"] = words / statistics.median(result["cpu_s"])
    if systems[result["system"]].reference == result["system"]:
        result["ratio_to_limit"] = 1.0
        result["cpu_ratio_to_limit"] = 1.0
    elif reference and "error" not in reference and "words_per_s" in reference:
        result["ratio_to_limit"] = result["words_per_s"] / reference["words_per_s"]
        result["cpu_ratio_to_limit"] = result["words_per_cpu_s"] / reference["words_per_cpu_s"]
    pos = result["positions"]
    # What the text needs: its pieces plus one <s> and </s> per doc (QA: the
    # pieces of each pair plus its 4 special tokens).
    result["needed_positions"] = needed
    result["computed_over_needed"] = pos["positions"] / result["needed_positions"]
    result["real_over_needed"] = pos["real_positions"] / result["needed_positions"]


def compare_answers(
    reference: Dict[str, Dict], answers: Dict[str, Dict], items: List[Dict]
) -> Dict:
    """Per question: the same top answer (text, start, end) and scores within
    ``QA_SCORE_TOLERANCE``; the questions that differ."""
    n = same_span = identical = 0
    score_diffs, rel_diffs, differing = [], [], []
    for item in items:
        for question, windows in zip(item["questions"], item["windows"]):
            qid = question["id"]
            ref, ans = reference.get(qid), answers.get(qid)
            n += 1
            if ref is None or ans is None:
                differing.append({"id": qid, "missing": ref is None and "reference" or "answer"})
                continue
            span = all(ref[k] == ans[k] for k in ("answer", "start", "end"))
            diff = abs(ref["score"] - ans["score"])
            if span:
                same_span += 1
                score_diffs.append(diff)
                rel_diffs.append(diff / max(abs(ref["score"]), abs(ans["score"]), 1e-30))
            if span and diff <= QA_SCORE_TOLERANCE:
                identical += 1
            else:
                differing.append({
                    "id": qid, "lang": item["lang"], "source": item["source"],
                    "question": question["question"], "windows": windows,
                    "context_pieces": item["context_pieces"], "reference": ref, "answer": ans,
                })
    return {
        "questions": n, "identical": identical, "identical_share": identical / max(n, 1),
        "same_span": same_span, "same_span_share": same_span / max(n, 1),
        "score_tolerance": QA_SCORE_TOLERANCE,
        "max_score_abs_diff_same_span": max(score_diffs, default=None),
        "max_score_rel_diff_same_span": max(rel_diffs, default=None),
        "differing": differing,
    }


def compare(
    result: Dict, ran: Dict[str, Dict], docs: List[Dict], compare_with: Dict[str, str]
) -> None:
    """Speed and outputs of ``result`` against the system it is compared
    with (``compare_with``), when that ran in this set (``ran``)."""
    key = result["system"]
    ref_key = compare_with.get(key)
    ref = ran.get(ref_key) if ref_key else None
    if "error" in result or not ref or "error" in ref:
        return
    result["compared_with"] = ref_key
    result["speedup"] = ref["median_s"] / result["median_s"]
    result["cpu_speedup"] = statistics.median(ref["cpu_s"]) / statistics.median(result["cpu_s"])
    if not result.get("outputs") or not ref.get("outputs"):
        return
    mine = json.loads(Path(result["outputs"]).read_text(encoding="utf8"))
    theirs = json.loads(Path(ref["outputs"]).read_text(encoding="utf8"))
    if "answers" in mine:
        result["answers_vs_hf"] = compare_answers(theirs["answers"], mine["answers"], docs)
    else:
        result["fidelity"] = {
            head: ner_fidelity(theirs[head], mine[head]) for head in mine if head in theirs
        }


def markdown_table(results: Dict, systems: Dict) -> str:
    lines = [
        "| set | system | words/s | × limit | words/CPU-s | × limit (CPU) | peak RSS (MB) "
        "| RSS after load (MB) | inference peak (MB) | padding % "
        "| computed / needed positions | non-pad / needed | forward calls | median run (s) "
        "| CPU/wall | others' CPU % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            label = f"`{key}`"
            if key.startswith("xlmr_") and r.get("xlmr_encoder_config"):
                label += " " + json.dumps(r["xlmr_encoder_config"]).replace("|", "/")
            if "error" in r:
                lines.append(f"| {set_name} | {label} | failed: {r['error']} |" + " |" * 14)
                continue
            pos = r["positions"]
            ref = systems[key].reference
            ratio = fmt(r.get("ratio_to_limit"), ".2f")
            cpu_ratio = fmt(r.get("cpu_ratio_to_limit"), ".2f")
            if ref != "limit" and key != ref:
                ratio += f" (of `{ref}`)"
                cpu_ratio += f" (of `{ref}`)"
            lines.append(
                f"| {set_name} | {label} | {fmt(r['words_per_s'])} | {ratio} | "
                f"{fmt(r['words_per_cpu_s'])} | {cpu_ratio} | "
                f"{fmt(r['peak_rss_mb'])} | {fmt(r['rss_after_setup_mb'])} | "
                f"{fmt(r['peak_rss_inference_mb'])} | "
                f"{fmt(pos['padding_share'], '.1f', 100)} | "
                f"{fmt(r['computed_over_needed'], '.2f')} | "
                f"{fmt(r['real_over_needed'], '.2f')} | {pos['forward_calls']} | "
                f"{fmt(r['median_s'], '.1f')} | {fmt(r['cpu_per_wall'], '.2f')} | "
                f"{fmt(r['other_cpu_share'], '.0f', 100)} |"
            )
    return "\n".join(lines)


def qa_table(results: Dict, systems: Dict) -> str:
    lines = [
        "| set | system | questions/s | × hf_qa | questions/CPU-s | × hf_qa (CPU) "
        "| × limit_qa (CPU) | peak RSS (MB) | padding % | computed / needed | forward calls "
        "| identical answers | same span | max score diff (same span) "
        "| max relative score diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            if systems[key].texts != "qa":
                continue
            if "error" in r:
                lines.append(f"| {set_name} | `{key}` | failed: {r['error']} |" + " |" * 12)
                continue
            cmp = r.get("answers_vs_hf") or {}
            n = cmp.get("questions")
            lines.append(
                f"| {set_name} | `{key}` | {fmt(r['questions_per_s'], '.2f')} | "
                f"{fmt(r.get('speedup'), '.2f') if key != 'hf_qa' else '1.00'} | "
                f"{fmt(r['questions_per_cpu_s'], '.2f')} | "
                f"{fmt(r.get('cpu_speedup'), '.2f') if key != 'hf_qa' else '1.00'} | "
                f"{fmt(r.get('cpu_ratio_to_limit'), '.2f')} | {fmt(r['peak_rss_mb'])} | "
                f"{fmt(r['positions']['padding_share'], '.1f', 100)} | "
                f"{fmt(r['computed_over_needed'], '.2f')} | {r['positions']['forward_calls']} | "
                + (
                    f"{cmp['identical']}/{n} | {cmp['same_span']}/{n} | "
                    f"{fmt(cmp['max_score_abs_diff_same_span'], '.1e')} | "
                    f"{fmt(cmp['max_score_rel_diff_same_span'], '.1e')} |"
                    if n else "– | – | – | – |"
                )
            )
    return "\n".join(lines)


def precision_table(results: Dict, precisions: Dict[str, str]) -> str:
    lines = [
        "| set | system | words/CPU-s | × xlmr_ner (wall) | × xlmr_ner (CPU) | peak RSS (MB) "
        "| head | fp32 entities kept | entities in fp32 | entity F | token argmax agreement "
        "| max abs logit dev | mean abs logit dev | max abs prob dev | fp32 max abs logit "
        "| fp32 median top-2 margin |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for set_name, entry in results["sets"].items():
        for key, r in entry["systems"].items():
            if key not in precisions and key != "xlmr_ner":
                continue
            if "error" in r:
                lines.append(f"| {set_name} | `{key}` | failed: {r['error']} |" + " |" * 13)
                continue
            speed = (f"| {set_name} | `{key}` | {fmt(r['words_per_cpu_s'])} | "
                     f"{fmt(r.get('speedup', 1.0 if key == 'xlmr_ner' else None), '.2f')} | "
                     f"{fmt(r.get('cpu_speedup', 1.0 if key == 'xlmr_ner' else None), '.2f')} | "
                     f"{fmt(r['peak_rss_mb'])} |")
            fidelity = r.get("fidelity") or {}
            if not fidelity:
                lines.append(speed + " – |" + " |" * 9)
            for head, f in fidelity.items():
                lines.append(
                    speed + f" {head.replace('_head', '')} | "
                    f"{fmt(f['fp32_entities_kept'], '.1f', 100)}% "
                    f"({f['both']}/{f['fp32_entities']}) | "
                    f"{fmt(f['entities_in_fp32'], '.1f', 100)}% | "
                    f"{fmt(f['entity_f'], '.1f', 100)}% | "
                    f"{fmt(f['token_argmax_agreement'], '.2f', 100)}% | "
                    f"{fmt(f['max_abs_logit_dev'], '.2e')} | "
                    f"{fmt(f['mean_abs_logit_dev'], '.1e')} | "
                    f"{fmt(f['max_abs_prob_dev'], '.1e')} | "
                    f"{fmt(f['fp32_max_abs_logit'], '.2f')} | "
                    f"{fmt(f['fp32_median_top2_margin'], '.3f')} |"
                )
    return "\n".join(lines)
