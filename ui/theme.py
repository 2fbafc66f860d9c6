"""The timeline's light and dark themes: colours as hex strings, fonts as family lists.

State colours come from the Okabe-Ito palette, chosen to stay distinct under the common
kinds of colour blindness; the loop lane's waiting state (poll) is a neutral grey so that
the eye goes to what runs. No Qt here: ui.paint turns these into QColors and QFonts.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopscope.tracer.events import Code

# Families tried in order; the last is whatever sans-serif the system has.
UI_FONTS = (
    "Inter", "Segoe UI", "Noto Sans", "DejaVu Sans", "Helvetica Neue", "Arial", "sans-serif",
)


@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    label_background: str  # the lane-name column and the axis strip
    row_stripe: str  # every other lane row, so rows can be followed across
    text: str
    text_dim: str
    grid: str
    separator: str
    states: dict[int, str]
    wake: str
    switch: str
    output: str
    end: str
    mark: str
    now_line: str
    selection: str
    error: str = "#d62728"  # an exception's end marker
    cancelled: str = "#8c564b"  # a cancelled lane's end marker
    font_families: tuple[str, ...] = UI_FONTS
    # Sizes in pixels, not points, so a PNG, an SVG and a PDF (devices with different dots
    # per inch) all get the same proportions as the screen.
    font_px: int = 13
    title_px: int = 22
    subtitle_px: int = 13

    def state_color(self, state: int) -> str:
        return self.states.get(state, self.text_dim)


LIGHT = Theme(
    name="light",
    background="#ffffff",
    label_background="#f4f5f7",
    row_stripe="#f8f9fb",
    text="#1f2328",
    text_dim="#5c6470",
    grid="#e3e6ea",
    separator="#c9ced6",
    states={
        Code.RUNNING: "#009e73",  # bluish green
        Code.READY: "#f0e442",  # yellow
        Code.IO_WAIT: "#0072b2",  # blue
        Code.SLEEPING: "#56b4e9",  # sky blue
        Code.BLOCKED: "#cc79a7",  # reddish purple
        Code.POLL: "#b8bec6",  # neutral grey: the loop waiting
        Code.DISPATCH: "#d55e00",  # vermillion: the loop running callbacks
    },
    wake="#1f2328",
    switch="#e69f00",
    output="#6a3d9a",
    end="#1f2328",
    mark="#d55e00",
    now_line="#d62728",
    selection="#000000",
)

DARK = Theme(
    name="dark",
    background="#17191c",
    label_background="#1f2226",
    row_stripe="#1c1f23",
    text="#e6e8eb",
    text_dim="#9aa3ad",
    grid="#2c3036",
    separator="#3a3f46",
    states={
        Code.RUNNING: "#1fb38a",
        Code.READY: "#f0e442",
        Code.IO_WAIT: "#3d8fd6",
        Code.SLEEPING: "#7cc6ef",
        Code.BLOCKED: "#d889b5",
        Code.POLL: "#4a5058",
        Code.DISPATCH: "#e8772e",
    },
    wake="#e6e8eb",
    switch="#f5b53d",
    output="#c3a6e8",
    end="#e6e8eb",
    mark="#e8772e",
    now_line="#ff6b6b",
    selection="#ffffff",
    error="#ff6b6b",
    cancelled="#d0a293",
)

THEMES: dict[str, Theme] = {theme.name: theme for theme in (LIGHT, DARK)}


def get_theme(name: str) -> Theme:
    """The theme called `name`; a ValueError that lists the choices otherwise."""
    try:
        return THEMES[name]
    except KeyError:
        raise ValueError(
            f"unknown theme {name!r}: choose one of {', '.join(sorted(THEMES))}"
        ) from None
