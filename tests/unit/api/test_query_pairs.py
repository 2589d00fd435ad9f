"""A query with nothing percent-encoded is split without yarl's multidict
(kvnode.http.request.plain_query_pairs): it must give exactly the pairs yarl gives. A
read's usual queries are parsed once (kvnode.http.keys.READ_QUERIES): exactly as
query_of parses them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from kvnode.http.keys import GET_PARAMS, READ_QUERIES
from kvnode.http.request import plain_query_pairs, query_of

QUERY_CHARACTERS = st.sampled_from(list("ab1=&+;._-~,:/?!$'()*@"))


@given(st.text(QUERY_CHARACTERS, max_size=24))
def test_plain_pairs_are_yarls_pairs(query: str) -> None:
    url = URL(f"/kv/k?{query}")
    raw = url.raw_query_string
    assert "%" not in raw
    assert plain_query_pairs(raw) == list(url.query.items())


def test_a_plus_is_a_space_and_empty_parts_are_skipped() -> None:
    assert plain_query_pairs("a=b+c&&d&=e") == [("a", "b c"), ("d", ""), ("", "e")]


class _Read:
    """What query_of reads of a request: its URL, method and path."""

    method = "GET"

    def __init__(self, url: URL) -> None:
        self.rel_url = url
        self.query = url.query
        self.path = url.path


def test_the_reads_usual_queries_are_what_query_of_makes_of_them() -> None:
    """kvnode.http.keys.READ_QUERIES stands in for query_of on a read's usual queries."""
    for raw, parsed in READ_QUERIES.items():
        url = URL(f"/kv/k?{raw}") if raw else URL("/kv/k")
        assert url.raw_query_string == raw
        assert query_of(_Read(url), GET_PARAMS) == parsed  # type: ignore[arg-type]
