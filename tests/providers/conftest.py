"""Each provider's own tests, `test_<provider>[_<topic>].py`: collected while its folder is
registered, so removing a provider folder leaves no test of it behind to fail."""

from __future__ import annotations

from pathlib import Path

from sources import provider_names


def _provider_of(test_file: Path) -> str | None:
    stem = test_file.stem.removeprefix("test_")
    return max((n for n in provider_names() if stem == n or stem.startswith(n + "_")),
               key=len, default=None)


collect_ignore = [f.name for f in Path(__file__).parent.glob("test_*.py")
                  if _provider_of(f) is None]
