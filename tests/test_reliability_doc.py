"""docs/RELIABILITY.md stays true: at least 40 rows, and every test it names exists."""

from __future__ import annotations

import re

from tests.conftest import REPO

DOC = REPO / "docs" / "RELIABILITY.md"


def rows() -> list[tuple[int, str]]:
    found = []
    for line in DOC.read_text().splitlines():
        m = re.match(r"\| (\d+) \|.*\| ([^|]+) \|$", line)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return found


def test_at_least_40_numbered_rows_and_the_total_matches():
    numbers = [n for n, _ in rows()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 40
    assert f"{len(numbers)} hostile inputs or faults" in DOC.read_text()


def test_every_named_test_exists():
    names = {path.name: path.read_text() for path in (REPO / "tests").glob("test_*.py")}
    for number, cell in rows():
        file = None
        refs = re.findall(r"`([^`]+)`", cell)
        assert refs, f"row {number} names no test"
        for ref in refs:
            if ref.startswith("...") or ref.startswith("["):
                continue  # a parametrised case of the test just named
            head, _, test = ref.partition("::")
            if head.endswith(".py"):
                file = head
            test = test.split("[")[0]
            assert file in names, f"row {number}: no tests/{file}"
            if test and test != "...":
                assert f"def {test}(" in names[file], f"row {number}: no {test} in {file}"
