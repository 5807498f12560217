"""Read a corpus file that must be valid (for stats, show, training, evaluation).

Invalid files are refused with the same `FILE:LINE: message` lines `data check` prints,
so a user never trains or evaluates on records nobody validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoptune.core.errors import BadInputError
from shoptune.shop import resources
from shoptune.shop.check import check_file, iter_lines, parse_json_line
from shoptune.shop.records import RecordValidator

SHOWN_PROBLEMS = 20


def require_valid(*paths: Path) -> None:
    """BadInputError listing the problems of every given file at once (not just the first bad file)."""
    validator = RecordValidator(resources.schemas())
    problems = [str(p) for path in paths for p in check_file(Path(path), validator)]
    if problems:
        names = " ".join(str(path) for path in paths)
        shown = "\n".join(f"  {p}" for p in problems[:SHOWN_PROBLEMS])
        more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise BadInputError(
            f"{names}: {len(problems)} problem(s); fix them first (`shoptune data check {names}`):\n{shown}{more}"
        )


def read_records(path: Path) -> list[dict[str, Any]]:
    """All records of a valid JSONL corpus; BadInputError listing the problems otherwise."""
    require_valid(path)
    records = []
    for _, raw, _ in iter_lines(Path(path)):
        assert raw is not None
        record, _ = parse_json_line(raw.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\r").decode("utf-8"))
        records.append(record)
    return records
