"""Every dataset's codes → canonical labels, checked against shared/research/data-formats.md §4."""

import pytest

from pfvit.errors import UserError
from pfvit.labels import CANONICAL, NEUTRAL, UNLABELED, class_names, index_of, to_canonical, to_protocol

C = {name: i for i, name in enumerate(CANONICAL)}


def test_canonical_order_is_affectnets():
    assert CANONICAL == ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
    assert NEUTRAL == 0


@pytest.mark.parametrize("dataset, table", [
    ("fer2013_csv", ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]),
    ("fer2013_folder", ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]),
    ("ferplus", ["neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"]),
    ("affectnet", ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]),
    ("ckplus", ["neutral", "anger", "contempt", "disgust", "fear", "happy", "sad", "surprise"]),
])
def test_zero_based_tables(dataset, table):
    assert [to_canonical(dataset, code) for code in range(len(table))] == [C[n] for n in table]


def test_rafdb_is_one_based():
    table = ["surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"]
    assert [to_canonical("rafdb", code) for code in range(1, 8)] == [C[n] for n in table]
    assert to_canonical("rafdb", "7") == NEUTRAL  # codes read from text files
    for bad in (0, 8, 11):  # compound-subset labels are rejected
        with pytest.raises(UserError, match="not a code of rafdb"):
            to_canonical("rafdb", bad)


def test_non_class_codes_are_unlabeled():
    assert [to_canonical("affectnet", c) for c in (8, 9, 10)] == [UNLABELED] * 3
    assert [to_canonical("ferplus", c) for c in (8, 9)] == [UNLABELED] * 2
    with pytest.raises(UserError):
        to_canonical("affectnet", 11)
    with pytest.raises(UserError, match="unknown dataset"):
        to_canonical("jaffe", 0)


def test_folder_names_of_fer2013_and_ckplus48():
    fer = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert [index_of(n) for n in fer] == [C[n] for n in ["anger", "disgust", "fear", "happy", "neutral", "sad",
                                                          "surprise"]]
    ck = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    assert [CANONICAL[index_of(n)] for n in ck] == ["anger", "contempt", "disgust", "fear", "happy", "sad",
                                                   "surprise"]
    with pytest.raises(UserError, match="unknown expression name"):
        index_of("bored")


def test_protocols_keep_neutral_first_and_seven_drops_contempt():
    assert class_names(8) == CANONICAL and class_names(7) == CANONICAL[:7]
    assert class_names(7)[NEUTRAL] == "neutral"
    assert to_protocol(C["contempt"], 7) == UNLABELED and to_protocol(C["contempt"], 8) == 7
    assert [to_protocol(i, 7) for i in range(7)] == list(range(7))
    with pytest.raises(UserError, match="use 7"):
        class_names(6)


def test_outside_protocol_counts_by_name():
    from pfvit.labels import outside_protocol

    labels = [0, 7, 7, -1, 3, 6]
    assert outside_protocol(labels, 7) == {"contempt": 2, "unlabeled": 1}
    assert outside_protocol(labels, 8) == {"unlabeled": 1}
    assert outside_protocol([0, 1], 7) == {}
