"""Which extra or related documents hold a held-out text is searched once per content and
then read from ``$SEQPIPE_CACHE/held_out`` (the search takes ~12 s on IMDb's reviews)."""

from __future__ import annotations

import pytest

from pipeline.data.extra_texts import HeldOut, dropped_indices

DOCUMENTS = [
    "a quiet film about nothing much",
    "A gentle, moving film. And a sad one.",  # holds the first held-out text
    "what's next",  # is the second one
    "what's next? another sequel",  # a short text only counts as the whole document
]
HELD = ["a gentle , moving film .", "what 's next"]


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQPIPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "held_out"


def refuse_to_search(monkeypatch) -> None:
    def searched(self, text):
        raise AssertionError("searched again instead of reading the cache")

    monkeypatch.setattr(HeldOut, "found_in", searched)


def test_the_second_search_of_the_same_texts_is_read_from_the_cache(cache, monkeypatch):
    assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]
    assert len(list(cache.glob("*.json"))) == 1
    refuse_to_search(monkeypatch)
    assert dropped_indices(list(DOCUMENTS), HeldOut(list(reversed(HELD)))) == [1, 2]


@pytest.mark.parametrize("change", ["documents", "held_out"])
def test_other_texts_are_searched_again(cache, change):
    assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]
    if change == "documents":
        assert dropped_indices([*DOCUMENTS[:1], "What's next"], HeldOut(HELD)) == [1]
    else:
        assert dropped_indices(DOCUMENTS, HeldOut(HELD[:1])) == [1]
    assert len(list(cache.glob("*.json"))) == 2


def test_a_damaged_cache_entry_is_searched_again(cache):
    assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]
    (entry,) = cache.glob("*.json")
    for damage in ["{not json", '{"dropped": [7]}', '{"dropped": "1"}']:
        entry.write_text(damage, encoding="utf-8")
        assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]


def test_an_unwritable_cache_still_filters(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("SEQPIPE_CACHE", str(blocker))  # a file: no folder can be made in it
    assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]
    assert dropped_indices(DOCUMENTS, HeldOut(HELD)) == [1, 2]
