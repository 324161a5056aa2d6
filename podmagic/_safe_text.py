"""Pod output made safe to print: control characters shown, never obeyed.

A pod's output is the pod's, and whoever controls the pod controls it. Printed raw in a
terminal, its escape sequences would act there: set the window title (OSC 0), write the
clipboard (OSC 52), clear the screen, plant hyperlinks (OSC 8), move the cursor, ring the bell,
or overwrite a line (``\\r``, backspace) so that ``rm -rf /`` reads as ``ok``. Text views
therefore pass every string that did not come from podmagic itself through
:func:`visible_controls`, which turns each control character into visible text:

* C0 controls and DEL in caret notation, as ``cat -v`` shows them: ESC is ``^[``, BEL ``^G``,
  NUL ``^@``, backspace ``^H``, a lone carriage return ``^M``, DEL ``^?``;
* C1 controls (U+0080–U+009F: 8-bit CSI, OSC, NEL …), Unicode bidirectional overrides and
  isolates (which reorder what a line appears to say), the Unicode line and paragraph
  separators, and invisible format characters (U+FEFF byte order mark, zero-width space and
  joiners U+200B–U+200D, word joiner, soft hyphen, tag characters) as ``<U+009B>``;
* tabs, newlines and a ``\\r\\n`` line end stay as they are (``\\r\\n`` becomes ``\\n``).

Invalid UTF-8 never gets this far: output is decoded with ``errors="replace"``, so it shows as
U+FFFD. Only what is *shown* changes; results keep the exact bytes the pod sent.
"""

from __future__ import annotations

import re

__all__ = ["visible_controls"]


def _caret(code: int) -> str:
    return "^?" if code == 0x7F else "^" + chr(code + 0x40)


_SHOWN_AS_CODE_POINT = (
    *range(0x80, 0xA0),  # C1 controls
    0x061C,
    0x200E,
    0x200F,  # bidi marks (Arabic letter mark, LRM, RLM)
    *range(0x202A, 0x202F),  # bidi embeddings and overrides (LRE … RLO)
    *range(0x2066, 0x206A),  # bidi isolates (LRI … PDI)
    0x2028,
    0x2029,  # line and paragraph separators
    # Invisible format characters: text that looks the same but is not (a BOM or zero-width
    # space inside a name, tag characters smuggling hidden text).
    0x00AD,
    0x180E,  # soft hyphen, Mongolian vowel separator
    *range(0x200B, 0x200E),  # zero-width space, non-joiner, joiner
    *range(0x2060, 0x2065),  # word joiner, invisible operators
    *range(0x206A, 0x2070),  # deprecated format controls
    0xFEFF,  # byte order mark / zero-width no-break space
    *range(0xFFF9, 0xFFFC),  # interlinear annotation controls
    0xE0001,
    *range(0xE0020, 0xE0080),  # tag characters
)

_TABLE: dict[int, str] = {
    code: _caret(code) for code in (*range(0x20), 0x7F) if code not in (0x09, 0x0A)
}
_TABLE.update({code: f"<U+{code:04X}>" for code in _SHOWN_AS_CODE_POINT})

_NEEDS_WORK = re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(_TABLE)) + "]")


def visible_controls(text: str) -> str:
    """``text`` with every control character shown as visible text (see the module doc).

    Idempotent (``^[`` is plain text), so a string may pass through it twice. Text without
    control characters is returned unchanged, at the cost of one regular-expression scan.
    """
    if _NEEDS_WORK.search(text) is None:
        return text
    return text.replace("\r\n", "\n").translate(_TABLE)
