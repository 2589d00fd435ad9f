"""The check of recorded critical sections: it must catch an overlap, a section that never
ended, and a token that did not grow, and pass a clean handover."""

from __future__ import annotations

from pathlib import Path

from kvnode.cluster.locks import check_sections, read_sections


def write_log(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_handovers_in_turn_with_growing_tokens_are_valid(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "s.log",
        "start a 5 10.0 100",
        "end a 5 10.5 100",
        "start b 9 10.6 101",
        "end b 9 11.0 101",
    )
    verdict = check_sections(read_sections(log))
    assert verdict == {"sections": 2, "problems": [], "valid": True}


def test_an_overlap_in_real_time_is_caught(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "s.log",
        "start a 5 10.0 100",
        "start b 9 10.4 101",
        "end a 5 10.5 100",
        "end b 9 11.0 101",
    )
    verdict = check_sections(read_sections(log))
    assert not verdict["valid"]
    assert verdict["problems"] == [
        "overlap: b (token 9) started at 10.400 while a (token 5) held the lock (ended at 10.500)"
    ]


def test_a_section_that_never_ended_overlaps_everything_after_it(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "s.log", "start a 5 10.0 100", "start b 9 12.0 101", "end b 9 13.0 101"
    )
    (problem,) = check_sections(read_sections(log))["problems"]
    assert "never ended" in problem


def test_a_token_that_does_not_grow_is_caught(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "s.log",
        "start a 9 10.0 100",
        "end a 9 10.5 100",
        "start b 5 10.6 101",
        "end b 5 11.0 101",
    )
    (problem,) = check_sections(read_sections(log))["problems"]
    assert problem == "token order: b got 5 after a had 9"
