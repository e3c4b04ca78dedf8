import pytest

from spacy_xlmr.qa.metrics import answer_tokens, normalize_answer, score_squad


def question(qid: str, *answers: str, impossible: bool = False) -> dict:
    """A question whose answers are only texts (all score_squad reads)."""
    return {
        "id": qid,
        "question": "?",
        "answers": [{"text": text, "answer_start": 0} for text in answers],
        "is_impossible": impossible,
    }


@pytest.mark.parametrize(
    "text,normalized",
    [
        ("The  Denver Broncos!", "denver broncos"),
        ("an apple, a day", "apple day"),
        ("Theater of the Absurd", "theater of absurd"),
        ("U.S.A.", "usa"),
        ("l'été\t(1990)", "lété 1990"),
        # only ASCII punctuation goes, like the official script
        ("丹佛，野马队。", "丹佛，野马队。"),
        ("  ", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_and_partial_f1():
    questions = [question("q1", "Denver Broncos"), question("q2", "Denver Broncos")]
    predictions = {"q1": "the Denver Broncos.", "q2": "the Denver Broncos team"}
    # q2: 2 common tokens, precision 2/3, recall 1, F1 0.8
    scores = score_squad(predictions, questions)
    assert scores == {"exact": 0.5, "f1": pytest.approx(0.9), "total": 2}


def test_best_gold_answer_and_repeated_tokens():
    questions = [
        question("q1", "Carolina Panthers", "Panthers"),
        question("q2", "new york new york"),
        question("q3", "Levi's Stadium"),
    ]
    predictions = {"q1": "the Panthers", "q2": "New York", "q3": "Santa Clara"}
    # q2: common tokens count each token at most as often as in both:
    # new 1, york 1, so precision 1, recall 2/4, F1 2/3. q3: no overlap.
    scores = score_squad(predictions, questions)
    assert scores["exact"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert set(scores) == {"exact", "f1", "total"}


def test_no_answer_and_split_scores():
    questions = [
        question("has1", "Denver Broncos"),
        question("has2", "Denver Broncos"),
        question("no1", impossible=True),
        question("no2", impossible=True),
    ]
    predictions = {"has1": "Denver Broncos", "has2": "Broncos", "no2": "Carolina"}
    # has2: precision 1, recall 1/2, F1 2/3; no1 is missing, so predicted ""
    # (right); no2 answers an unanswerable question (wrong).
    scores = score_squad(predictions, questions)
    assert scores == {
        "exact": pytest.approx(2 / 4),
        "f1": pytest.approx((1 + 2 / 3 + 1 + 0) / 4),
        "total": 4,
        "HasAns_exact": pytest.approx(1 / 2),
        "HasAns_f1": pytest.approx((1 + 2 / 3) / 2),
        "HasAns_total": 2,
        "NoAns_exact": pytest.approx(1 / 2),
        "NoAns_f1": pytest.approx(1 / 2),
        "NoAns_total": 2,
    }


def test_only_unanswerable_questions_and_missing_predictions():
    questions = [question("no1", impossible=True), question("no2", impossible=True)]
    assert score_squad({}, questions) == {
        "exact": 1.0, "f1": 1.0, "total": 2,
        "NoAns_exact": 1.0, "NoAns_f1": 1.0, "NoAns_total": 2,
    }
    scores = score_squad({"no1": "x", "no2": "the"}, questions)
    # "the" normalises to "", the same as no answer
    assert (scores["exact"], scores["f1"]) == (0.5, 0.5)


def test_gold_answer_normalising_to_nothing_is_no_answer():
    # As in the official script, such a gold answer is read as "", but the
    # question still counts as answerable (it has an answer).
    questions = [question("q1", "The"), question("q2", "A", "Denver")]
    scores = score_squad({"q1": "", "q2": ""}, questions)
    assert scores == {"exact": 0.5, "f1": 0.5, "total": 2}


def test_whitespace_tokens_make_chinese_answers_one_token():
    questions = [question("q1", "丹佛野马队")]
    scores = score_squad({"q1": "野马队"}, questions)
    assert (scores["exact"], scores["f1"]) == (0.0, 0.0)
    # per character: 3 of 5 characters, precision 1, recall 3/5, F1 0.75
    scores = score_squad({"q1": "野马队"}, questions, mixed_segmentation=True)
    assert scores["exact"] == 0.0
    assert scores["f1"] == pytest.approx(0.75)


def test_mixed_segmentation_tokens():
    assert answer_tokens("NFL 第50届 Super-Bowl") == ["nfl", "第50届", "superbowl"]
    assert answer_tokens("NFL 第50届 Super-Bowl", mixed_segmentation=True) == [
        "nfl", "第", "50", "届", "superbowl"
    ]
    assert answer_tokens("東京タワー。", mixed_segmentation=True) == [
        "東", "京", "タ", "ワ", "ー", "。"
    ]
    assert answer_tokens("กรุงเทพ 2016", mixed_segmentation=True) == [
        "ก", "ร", "ุ", "ง", "เ", "ท", "พ", "2016"
    ]
    # Korean and Latin words stay whole
    assert answer_tokens("서울 Café", mixed_segmentation=True) == ["서울", "café"]


def test_mixed_segmentation_exact_ignores_spaces_between_characters():
    questions = [question("q1", "丹佛野马队")]
    assert score_squad({"q1": "丹佛 野马队"}, questions)["exact"] == 0.0
    assert score_squad({"q1": "丹佛 野马队"}, questions, mixed_segmentation=True) == {
        "exact": 1.0, "f1": 1.0, "total": 1
    }


def test_score_errors():
    with pytest.raises(ValueError, match="no questions to score"):
        score_squad({}, [])
    with pytest.raises(ValueError, match="duplicate question id 'q1'"):
        score_squad({}, [question("q1", "x"), question("q1", "y")])
