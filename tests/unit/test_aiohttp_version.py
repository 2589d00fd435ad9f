"""kvnode serve refuses an aiohttp whose internals it was not checked against."""

from __future__ import annotations

import pytest

from kvnode.config import ConfigError
from kvnode.http.guard import check_aiohttp_version


@pytest.mark.parametrize("version", ["3.14.0", "3.14.5", "3.14.12rc1"])
def test_the_tested_series_is_accepted(version: str) -> None:
    check_aiohttp_version(version)


@pytest.mark.parametrize("version", ["3.13.3", "3.15.0", "4.0.0", "nonsense"])
def test_another_series_is_refused_in_one_line(version: str) -> None:
    with pytest.raises(ConfigError, match=rf"aiohttp {version} is installed.*3\.14") as refused:
        check_aiohttp_version(version)
    assert "\n" not in str(refused.value)
