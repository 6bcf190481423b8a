"""Counts passed, failed and skipped test cases in a JUnit XML report (bun, deno, pytest).

Usage: count_junit.py REPORT.xml  ->  prints "PASSED FAILED SKIPPED"
A missing or unreadable report counts as one failure: a suite that crashed must not look green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree


def count(path: str) -> tuple[int, int, int]:
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return 0, 1, 0
    passed = failed = skipped = 0
    for case in root.iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


if __name__ == "__main__":
    print(*count(sys.argv[1]))
