from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hyenadna import VOCAB, CharacterTokenizer, reverse_complement_ids
from tests.conftest import FIXTURES

REF = json.loads((FIXTURES / "tokenizer.json").read_text())


def test_vocabulary_matches_reference():
    assert REF["vocab"] == VOCAB


@pytest.mark.parametrize("case", REF["cases"], ids=[repr(c["text"]) for c in REF["cases"]])
def test_reference_policy_reproduces_every_case(case):
    assert CharacterTokenizer("cls_sep", "reference").encode(case["text"]) == case["ids_with_special_tokens"]
    assert CharacterTokenizer("none", "reference").encode(case["text"]) == case["ids_without_special_tokens"]


def test_default_uppercases_and_maps_iupac_to_n():
    tok = CharacterTokenizer()
    assert tok.encode("acgtn") == tok.encode("ACGTN") == [7, 8, 9, 10, 11]
    assert tok.encode("ACGTRYKMSWBDHV") == [7, 8, 9, 10] + [11] * 10
    assert tok.encode("ryu") == [11, 11, 10]  # U is read as T
    assert tok.encode("ACGT\n") == [7, 8, 9, 10]  # outer whitespace is not part of the sequence


@pytest.mark.parametrize(
    ("text", "position", "char"),
    [("AC GT", 3, " "), ("ACGT-A", 5, "-"), ("A1", 2, "1"), ("ACé", 3, "é"), ("  AC\tG", 5, "\t"), ("AC.", 3, ".")],
)
def test_invalid_character_names_sequence_position_and_character(text, position, char):
    with pytest.raises(ValueError) as e:
        CharacterTokenizer().encode(text, index=4, name="chr1:10-20")
    msg = str(e.value)
    assert f"sequence 4 (chr1:10-20), position {position}: invalid character {char!r}" in msg


def test_strict_policy_rejects_iupac():
    with pytest.raises(ValueError, match="position 3: invalid character 'R'"):
        CharacterTokenizer(policy="strict").encode("ACRT")


def test_framings():
    assert CharacterTokenizer("none").encode("AC") == [7, 8]
    assert CharacterTokenizer("sep").encode("AC") == [7, 8, 1]
    assert CharacterTokenizer("cls_sep").encode("AC") == [0, 7, 8, 1]
    with pytest.raises(ValueError, match="framing"):
        CharacterTokenizer("left")


def test_n_to_pad():
    assert CharacterTokenizer(n_to_pad=True).encode("ANRn") == [7, 4, 4, 4]


def test_right_padding_with_mask():
    enc = CharacterTokenizer("sep")(["A", "ACGT"])
    assert enc.input_ids.tolist() == [[7, 1, 4, 4, 4], [7, 8, 9, 10, 1]]
    assert enc.attention_mask.tolist() == [[True, True, False, False, False], [True] * 5]
    assert enc.lengths.tolist() == [2, 5]
    assert enc.input_ids.dtype == torch.int64


def test_reverse_complement_and_decode():
    tok = CharacterTokenizer()
    ids = tok.encode_bases("AACGTN")
    assert tok.decode(reverse_complement_ids(ids)) == "NACGTT"
    assert tok.decode(CharacterTokenizer("cls_sep").encode("ACGT")) == "ACGT"
    assert tok.decode([0, 7, 1, 4, 12], skip_special_tokens=False) == "<A>_*"
    # a batch: one string a row (decode ran the rows together into one sequence)
    batch = CharacterTokenizer("sep")(["AC", "GTTA"]).input_ids
    assert tok.batch_decode(batch) == ["AC", "GTTA"]
    with pytest.raises(ValueError, match=r"decode takes one sequence's ids; got shape \(2, 5\): batch_decode"):
        tok.decode(batch)
    for bad in (99, -1):  # were "*" and "" (or "<"): an id no model produces
        with pytest.raises(ValueError, match=f"id {bad} at position 1 is not a token id \\(0 to 15\\)"):
            tok.decode([7, bad])


def test_encoding_is_vectorised_uint8():
    ids = CharacterTokenizer().encode_bases("ACGT" * 250_000)
    assert ids.dtype == np.uint8 and ids.shape == (1_000_000,)
    assert np.array_equal(ids[:4], [7, 8, 9, 10])
