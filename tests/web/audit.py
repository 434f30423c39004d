"""Checks run in the rendered page: WCAG contrast from computed styles, and boxes that overflow.

Both return a list of findings (empty when all is well), so a failing test names every element
and the numbers that fail, not just the first. The checks themselves are the JavaScript files
beside this one (contrast.js, overflow.js), each one function evaluated in the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
_CONTRAST_JS = (_HERE / "contrast.js").read_text()
_OVERFLOW_JS = (_HERE / "overflow.js").read_text()


async def contrast_findings(page: Any, root: str = "body") -> list[str]:
    """Every text, field edge and control icon under ``root`` whose contrast is below WCAG AA."""
    return list(await page.evaluate(_CONTRAST_JS, root))


async def overflow_findings(page: Any, containers: str, slack: float = 0.5) -> list[str]:
    """Every element that sticks out of one of ``containers`` or the viewport, or is cut silently."""
    return list(await page.evaluate(_OVERFLOW_JS, [containers, slack]))
