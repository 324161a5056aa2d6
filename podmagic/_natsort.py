"""Natural order for names: ``web-2`` before ``web-10``, easier to read than byte order.

:func:`natural_key` is a sort key in the order of ``sortorder.NaturalLess``
(github.com/fvbommel/sortorder), which ``kubectl get --sort-by`` used up to kubectl 1.30;
kubectl 1.31 and later sort text byte-wise there (``web-10`` before ``web-2``, kubernetes
PR #124514). podmagic keeps the natural order on purpose, for pods, results and groups:

* runs of ASCII digits compare as numbers (``web-2`` < ``web-10``); other text compares by
  code point, which is UTF-8's byte order;
* where one name has a digit and the other does not, the digit sorts first (``ab1`` <
  ``abc``), and a name that ends sorts before one that goes on (``web`` < ``web-1``);
* equal numbers with more leading zeros sort later (``web-2`` < ``web-02``), decided at the
  first such number.

The key of two different names is never equal, so sorting by it needs no tie-breaker.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["natural_key"]

_DIGITS: Final = re.compile(r"([0-9]+)")

# A key alternates text and numbers, starting and ending with text (possibly empty), so the
# same position always holds the same type and tuples compare without a TypeError.
NaturalKey = tuple[str | tuple[int, int], ...]


def natural_key(name: str) -> NaturalKey:
    """Sort key that puts ``web-2`` before ``web-10`` (``sortorder.NaturalLess``'s order)."""
    parts = _DIGITS.split(name)
    key: list[str | tuple[int, int]] = []
    for index, part in enumerate(parts):
        if index % 2:
            significant = part.lstrip("0")
            key.append((int(part), len(part) - len(significant)))
        else:
            key.append(part)
    return tuple(key)
