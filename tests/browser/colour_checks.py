"""Colour checks on what the page shows: WCAG contrast of text against what is behind it, and
how far apart two colours look (CIE76 distance in CIELAB)."""

from __future__ import annotations

import math

from playwright.sync_api import Locator

#: For every visible element under the root that holds text of its own: its text colour and the
#: first opaque background behind it, both as the browser resolves them (theme variables,
#: any CSS colour syntax: a canvas turns each into sRGB bytes), with opacity blended in.
_TEXT_COLOURS_JS = """
(root) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const rgba = (css) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = '#000';
    ctx.fillStyle = css;
    ctx.fillRect(0, 0, 1, 1);
    const [r, g, b, a] = ctx.getImageData(0, 0, 1, 1).data;
    return [r, g, b, a / 255];
  };
  const background = (el) => {
    for (let node = el; node; node = node.parentElement) {
      const c = rgba(getComputedStyle(node).backgroundColor);
      if (c[3] > 0.5) return c;
    }
    return rgba(getComputedStyle(document.body).backgroundColor);
  };
  const opacity = (el) => {
    let o = 1;
    for (let node = el; node; node = node.parentElement) o *= parseFloat(getComputedStyle(node).opacity);
    return o;
  };
  const found = [];
  for (const el of [root, ...root.querySelectorAll('*')]) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent).join('').trim();
    if (!own) continue;
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (box.width === 0 || box.height === 0 || style.visibility !== 'visible') continue;
    const fg = rgba(style.color);
    const bg = background(el);
    const alpha = fg[3] * opacity(el);
    const seen = [0, 1, 2].map((i) => fg[i] * alpha + bg[i] * (1 - alpha));
    found.push({text: own.slice(0, 40), fg: seen, bg: bg.slice(0, 3),
                hook: el.closest('[data-podmagic]')?.dataset.podmagic ?? null});
  }
  return found;
}
"""

#: The computed colour of each element as sRGB bytes (any CSS colour syntax).
_COLOURS_JS = """
(elements, property) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  return elements.map((el) => {
    ctx.clearRect(0, 0, 1, 1);
    ctx.fillStyle = getComputedStyle(el)[property];
    ctx.fillRect(0, 0, 1, 1);
    return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3));
  });
}
"""

RGB = tuple[float, float, float]


def _linear(channel: float) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(rgb: RGB) -> float:
    r, g, b = (_linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def hex_of(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c):02x}" for c in rgb)


def text_colours(root: Locator) -> list[dict[str, object]]:
    """Every visible text under ``root`` with the colour it is drawn in and its background."""
    found: list[dict[str, object]] = root.evaluate(_TEXT_COLOURS_JS)
    return found


def low_contrast_text(root: Locator, minimum: float = 4.5) -> list[str]:
    """The texts under ``root`` drawn below ``minimum`` contrast, described one per line."""
    low = []
    for item in text_colours(root):
        fg, bg = item["fg"], item["bg"]
        assert isinstance(fg, list) and isinstance(bg, list)
        ratio = contrast(tuple(fg), tuple(bg))  # type: ignore[arg-type]
        if ratio < minimum:
            low.append(
                f"{item['text']!r} ({item['hook'] or 'output'}): {hex_of(tuple(fg))} on "  # type: ignore[arg-type]
                f"{hex_of(tuple(bg))} is {ratio:.2f}:1"  # type: ignore[arg-type]
            )
    return low


def colours_of(elements: Locator, prop: str = "color") -> list[RGB]:
    """The computed ``prop`` (``color``, ``backgroundColor``, ...) of each element."""
    values = elements.evaluate_all(_COLOURS_JS, prop)
    return [(float(r), float(g), float(b)) for r, g, b in values]


def _lab(rgb: RGB) -> RGB:
    r, g, b = (_linear(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def distance(a: RGB, b: RGB) -> float:
    """CIE76 colour difference: about 2.3 is just noticeable, 10 and more is plainly another colour."""
    return math.dist(_lab(a), _lab(b))
