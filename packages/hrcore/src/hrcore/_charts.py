"""Charts as inline SVG text: no script, no font or file fetched, so that a page holding
them can be read offline or in a mail. Every bar carries its exact number (a
``<title>`` tooltip and ``data-*`` attributes)."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948")
_BAR, _GAP, _HEIGHT, _LEFT, _BOTTOM, _TOP = 28, 14, 220, 48, 120, 24


def axis(highest: float) -> tuple[int, int]:
    """The top of a y axis holding ``highest``, and its step: 1, 2 or 5 times a power
    of ten, about 4 steps, so that every tick is a whole number."""
    rough = max(highest / 4, 1.0)
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return step * max(math.ceil(highest / step), 1), step


def _frame(width: int, body: list[str], top: int, step: int, label: str) -> str:
    """An SVG with a y axis from 0 to ``top`` by ``step`` (from :func:`axis`) around
    ``body``."""
    ticks = []
    steps = top // step
    for i in range(steps + 1):
        value = step * i
        y = _TOP + _HEIGHT - _HEIGHT * i / steps
        ticks.append(
            f'<line x1="{_LEFT}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{value:,.0f}</text>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
        f'width="{width}" height="{_TOP + _HEIGHT + _BOTTOM}" font-family="sans-serif">'
        + "".join(ticks)
        + "".join(body)
        + "</svg>"
    )


def _scale(value: float, top: float) -> float:
    return _HEIGHT * value / top if top else 0.0


def _category_label(x: float, text: str) -> str:
    y = _TOP + _HEIGHT + 10
    return (
        f'<text x="{x:.1f}" y="{y}" font-size="11" text-anchor="end" '
        f'transform="rotate(-45 {x:.1f} {y})">{escape(text)}</text>'
    )


def stacked_bars(categories: list[str], series: dict[str, list[int]], label: str) -> str:
    """One bar per category, stacked by series (``series[name][i]`` for category i)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    top, step = axis(max(totals, default=0))
    width = _width(categories)
    body: list[str] = []
    for i, category in enumerate(categories):
        x, base = _LEFT + _GAP + i * (_BAR + _GAP), float(_TOP + _HEIGHT)
        body.append(f'<g class="bar" data-category="{escape(category)}" data-total="{totals[i]}">')
        for (name, values), color in zip(series.items(), PALETTE, strict=False):
            height = _scale(values[i], top)
            base -= height
            body.append(
                f'<rect x="{x}" y="{base:.2f}" width="{_BAR}" height="{height:.2f}" '
                f'fill="{color}" data-series="{escape(name)}" data-value="{values[i]}">'
                f"<title>{escape(category)}, {escape(name)}: {values[i]:,}</title></rect>"
            )
        body.append("</g>")
        body.append(_category_label(x + _BAR / 2, category))
    legend_x = width - 80
    for j, (name, color) in enumerate(zip(series, PALETTE, strict=False)):
        y = _TOP + j * 18
        body.append(
            f'<rect x="{legend_x}" y="{y}" width="12" height="12" fill="{color}"/>'
            f'<text x="{legend_x + 18}" y="{y + 10}" font-size="12">{escape(name)}</text>'
        )
    return _frame(width, body, top, step, label)


def _bars(categories: list[str], values: list[int], top: float) -> list[str]:
    body: list[str] = []
    for i, (category, value) in enumerate(zip(categories, values, strict=True)):
        x = _LEFT + _GAP + i * (_BAR + _GAP)
        height = _scale(value, top)
        body.append(
            f'<rect class="bar" x="{x}" y="{_TOP + _HEIGHT - height:.2f}" width="{_BAR}" '
            f'height="{height:.2f}" fill="{PALETTE[0]}" data-category="{escape(category)}" '
            f'data-value="{value}"><title>{escape(category)}: {value:,}</title></rect>'
        )
        body.append(_category_label(x + _BAR / 2, category))
    return body


def _width(categories: list[str]) -> int:
    return _LEFT + len(categories) * (_BAR + _GAP) + _GAP + 90


def bars(categories: list[str], values: list[int], label: str) -> str:
    """One bar per category."""
    top, step = axis(max(values, default=0))
    width = _width(categories)
    return _frame(width, _bars(categories, values, top), top, step, label)


def bars_with_line(
    categories: list[str], values: list[int], line: float, line_label: str, label: str
) -> str:
    """One bar per category, and a horizontal line at ``line`` (a mean, say)."""
    top, step = axis(max([*values, line], default=0))
    width = _width(categories)
    body = _bars(categories, values, top)
    y = _TOP + _HEIGHT - _scale(line, top)
    body.append(
        f'<line class="mean" x1="{_LEFT}" x2="{width - 90}" y1="{y:.2f}" y2="{y:.2f}" '
        f'stroke="{PALETTE[3]}" stroke-width="2" stroke-dasharray="6 4" data-value="{line}">'
        f"<title>{escape(line_label)}: {line:,.2f}</title></line>"
        f'<text x="{width - 86}" y="{y + 4:.2f}" font-size="12" fill="{PALETTE[3]}">'
        f"{escape(line_label)} {line:,.1f}</text>"
    )
    return _frame(width, body, top, step, label)
