"""Reading tagged data (pipeline.data.tagged): CoNLL-U through ``conllu`` (only integer word
IDs are words), CoNLL-2003 style files, the EWT preset, and one clear error per bad input."""

from __future__ import annotations

import gzip

import pytest

from pipeline.data.tagged import load_tagged, parse_text, read_file, to_tagged_config
from pipeline.errors import ConfigError, DataError

CONLLU = """\
# sent_id = 1
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t4\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\t_
4.1\tit\tit\tPRON\tPRP\t_\t_\t_\t4:obj\t_
5\t.\t.\tPUNCT\t.\t_\t4\tpunct\t_\t_

# sent_id = 2
1\tWell-known\twell-known\tADJ\tJJ\t_\t0\troot\t_\t_

"""

CONLL2003 = """\
-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

-DOCSTART- -X- -X- O

Peter\tB-PER
Blackburn\tI-PER
"""


def test_conllu_keeps_integer_ids_only_and_reads_upos_or_xpos():
    upos = parse_text(CONLLU, "conllu", "upos")
    assert upos == [
        (["I", "do", "n't", "know", "."], ["PRON", "AUX", "PART", "VERB", "PUNCT"]),
        (["Well-known"], ["ADJ"]),
    ]  # no "don't" (a multiword range), no "it" (an empty node), no comment
    xpos = parse_text(CONLLU, "conllu", "xpos")
    assert [tags for _, tags in xpos] == [["PRP", "VBP", "RB", "VB", "."], ["JJ"]]


def test_conll2003_reads_the_last_column_and_skips_docstart(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text(CONLL2003)
    assert read_file(path, None) == [
        (["EU", "rejects", "German"], ["B-ORG", "O", "B-MISC"]),
        (["Peter", "Blackburn"], ["B-PER", "I-PER"]),
    ]


def test_the_format_comes_from_the_extension_gzipped_too(tmp_path):
    path = tmp_path / "train.conllu.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(CONLLU)
    assert len(read_file(path, None)) == 2


def test_ewt_dev_has_the_documented_words(data_dir):
    config = to_tagged_config(
        {"name": "ud_ewt", "type": "tagged", "dir": str(data_dir), "local_splits": {}}
    )
    assert config.tag_column == "upos"
    sentences = read_file(data_dir / "ud_ewt" / "en_ewt-ud-dev.conllu.gz", None)
    assert len(sentences) == 2001  # SOURCES.md, section 10
    assert sum(len(words) for words, _ in sentences) == 25_147
    assert all(len(words) == len(tags) for words, tags in sentences)


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("1\tI\tI\tPRON\n\n", "conllu", r"line 1: .*10 TAB-separated columns"),
        ("# text = x\n1-2\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n\n", "conllu", "line 1: .*no words"),
        ("1\tI\tI\t_\tPRP\t_\t0\troot\t_\t_\n\n", "conllu", "line 1: .*no upos tag"),
        ("EU B-ORG\nrejects\n", "conll", "line 2: one column"),
        ("\n\n", "conll", "holds no sentences"),
    ],
)
def test_bad_input_is_one_error_naming_the_file_and_line(tmp_path, text, fmt, message):
    path = tmp_path / f"bad.{fmt}"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_file(path, fmt)
    assert str(path) in str(caught.value)


def test_a_missing_file_and_an_unknown_tag_column_are_named(tmp_path):
    with pytest.raises(DataError, match="nope.conllu does not exist"):
        load_tagged(to_tagged_config({"name": "files", "train": str(tmp_path / "nope.conllu")}))
    with pytest.raises(ConfigError, match="tag_column"):
        to_tagged_config({"name": "ud_ewt", "type": "tagged", "tag_column": "lemma"})


def test_missing_validation_and_test_are_carved_from_the_end_of_train(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("\n\n".join(f"w{i} T{i % 2}" for i in range(20)) + "\n")
    data = load_tagged(to_tagged_config({"name": "files", "train": str(path)}))
    assert [len(data.splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert data.carved == ["validation", "test"] and data.tags == ["T0", "T1"]
