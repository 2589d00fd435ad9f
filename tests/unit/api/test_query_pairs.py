"""A query with nothing percent-encoded is split without yarl's multidict
(kvnode.http.request.plain_query_pairs): it must give exactly the pairs yarl gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from kvnode.http.request import plain_query_pairs

QUERY_CHARACTERS = st.sampled_from(list("ab1=&+;._-~,:/?!$'()*@"))


@given(st.text(QUERY_CHARACTERS, max_size=24))
def test_plain_pairs_are_yarls_pairs(query: str) -> None:
    url = URL(f"/kv/k?{query}")
    raw = url.raw_query_string
    assert "%" not in raw
    assert plain_query_pairs(raw) == list(url.query.items())


def test_a_plus_is_a_space_and_empty_parts_are_skipped() -> None:
    assert plain_query_pairs("a=b+c&&d&=e") == [("a", "b c"), ("d", ""), ("", "e")]
