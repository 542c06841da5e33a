"""How every chart looks: one colour-blind-safe palette, sizes legible at 100 % zoom, and
the PNG writer. Containing no data handling.

Colours are Okabe and Ito's palette (distinguishable with the common colour-vision
deficiencies); lines also differ by dash pattern, so no chart relies on colour alone.
matplotlib is imported here only, and only when a report is made (DESIGN.md: lazy import).
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
SKY = "#56B4E9"
YELLOW = "#F0E442"
BLACK = "#000000"
GREY = "#777777"

SERIES = (BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY, BLACK)
DASHES = ("-", "--", "-.", ":")

# outcome -> colour, so a failure has the same colour in every chart
OUTCOME_COLOURS = {
    "succeeded": GREEN,
    "port_exhausted": VERMILLION,
    "bind_in_use": ORANGE,
    "refused": PURPLE,
    "timeout": BLACK,
    "close_timeout": "#8C564B",  # brown: connected, then the server never closed
    "response_incomplete": "#E377C2",  # pink: connected, the response cut short
    "http_error": "#7F7F00",  # olive: connected, an HTTP status other than 2xx/3xx
    "reset": SKY,
    "fd_limit": YELLOW,
    "no_buffers": BLUE,
    "unreachable": GREY,
    "other": "#AAAAAA",
}

WIDTH_IN = 10.0
DPI = 100  # 1,000 px wide: sharp at 100 % zoom, scaled down by CSS on narrow screens
RC: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}


def charting() -> AbstractContextManager[None]:
    """The chart style, for the time charts are drawn and saved (rcParams are read when
    artists are made and when they are drawn); restored afterwards."""
    import matplotlib

    return matplotlib.rc_context(RC)  # type: ignore[arg-type]


def new_figure(height_in: float, width_in: float = WIDTH_IN) -> Figure:
    """A figure on the Agg canvas (no pyplot, no display): draw inside ``charting()``."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")


def render_png(fig: Figure) -> bytes:
    """The PNG's bytes, in memory: the report writes every file at the end, together
    (report/__init__.py), and the HTML embeds the same image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def count_log_axis(ax: Axes, linthresh: float) -> None:
    """A symlog y axis of counts, its ticks written as numbers ("0", "100", "10,000"), as
    the linear axes' are. matplotlib's own labels there are TeX (10^4 as mathtext), which
    an ops reader must decode, and typesetting them builds pyparsing's grammar on the
    first label (a 1-second run's report: 3.00 against 3.15 CPU-s, 5 runs each)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("symlog", linthresh=linthresh)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def line(
    ax: Axes,
    pts: Sequence[tuple[float, float]],
    colour: str,
    dash: str,
    label: str,
    markers: bool = True,
) -> None:
    """One time series as a line (dots on the samples), above shading and the ceiling."""
    ax.plot(
        [t for t, _ in pts],
        [v for _, v in pts],
        color=colour,
        ls=dash,
        lw=2,
        marker="o" if markers else None,
        ms=3,
        label=label,
        zorder=3,
    )


def stacked(
    ax: Axes, xs: Sequence[float], bands: Sequence[tuple[str, Sequence[float], str, str]]
) -> None:
    """Series stacked as bands, (label, values, colour, hatch) from the bottom up: each
    band's top is the sum so far. Hatched apart, so colour is not the only difference;
    over shading and a ceiling's band, under the lines."""
    polys = ax.stackplot(
        xs,
        *(ys for _label, ys, _colour, _hatch in bands),
        labels=[label for label, _ys, _colour, _hatch in bands],
        colors=[colour for _label, _ys, colour, _hatch in bands],
        alpha=0.45,
        zorder=2,
    )
    for poly, (_label, _ys, colour, hatch) in zip(polys, bands, strict=True):
        poly.set_hatch(hatch)
        poly.set_edgecolor(colour)


def legend_columns(labels: Sequence[str], most: int = 3) -> int:
    """How many columns a legend below a full-width chart can have and still fit inside
    the figure: a legend wider than the figure is cut at both edges (constrained layout
    moves it, it does not shrink it). Entries are as wide as the longest label, at about
    6.5 px a character of legend.fontsize 10 plus 50 px of handle and padding."""
    if not labels:
        return 1
    entry_px = 6.5 * max(len(label) for label in labels) + 50
    return max(1, min(most, len(labels), int(WIDTH_IN * DPI * 0.95 // entry_px)))


def styles() -> Iterator[tuple[str, str]]:
    """(colour, dash) pairs for overlaid series: both change from one series to the next,
    so neighbours differ in dash pattern as well as colour (28 distinct pairs)."""
    for i in itertools.count():
        yield SERIES[i % len(SERIES)], DASHES[i % len(DASHES)]
