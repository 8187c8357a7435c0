"""The profile summary of `make bench --profile`: shares per function from py-spy's raw
format."""

from pathlib import Path

import pytest

from bench.profile import summarize

RAW = """\
main (agents/cli.py:10);handle (agents/engine/events.py:5);loads (streams/decode.py:60) 6
main (agents/cli.py:10);handle (agents/engine/events.py:7) 2
main (agents/cli.py:11);walk (streams/tree.py:3);walk (streams/tree.py:4) 2
<module> (<frozen importlib._bootstrap>:1176) 0
not a sample line
"""


@pytest.fixture
def summary(tmp_path: Path) -> dict[str, object]:
    raw = tmp_path / "profile.txt"
    raw.write_text(RAW)
    return summarize(raw)


@pytest.mark.parametrize(
    ("kind", "function", "share"),
    [
        ("inclusive", "main (agents/cli.py)", 1.0),  # lines of one function merge
        ("inclusive", "handle (agents/engine/events.py)", 0.8),
        ("inclusive", "loads (streams/decode.py)", 0.6),
        ("inclusive", "walk (streams/tree.py)", 0.2),  # recursion counted once per sample
        ("own", "loads (streams/decode.py)", 0.6),
        ("own", "handle (agents/engine/events.py)", 0.2),
        ("own", "walk (streams/tree.py)", 0.2),
    ],
)
def test_shares(summary: dict[str, object], kind: str, function: str, share: float) -> None:
    assert summary["samples"] == 10
    shares = dict(summary[kind])  # type: ignore[call-overload]
    assert shares[function] == pytest.approx(share)
    assert "main (agents/cli.py)" not in dict(summary["own"])  # type: ignore[call-overload]


def test_empty_profile(tmp_path: Path) -> None:
    raw = tmp_path / "profile.txt"
    raw.write_text("")
    assert summarize(raw) == {"samples": 0, "inclusive": [], "own": []}
