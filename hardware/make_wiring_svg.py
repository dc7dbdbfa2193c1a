#!/usr/bin/env python3
"""Draw hardware/wiring.svg: the Pi's header, the button and the two LEDs.

The picture is made from this source so it can be reviewed and changed like code:
``python3 hardware/make_wiring_svg.py`` rewrites ``hardware/wiring.svg`` (deterministic output;
a test checks the committed file is current). Pins come from the tracker's defaults
(``[button] pin``, ``[leds] status_pin``/``link_pin``, BCM numbering).
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).with_name("wiring.svg")

# Physical header pins 1..20 (odd = left column, even = right column), BCM names.
HEADER = {
    1: "3V3", 2: "5V", 3: "GPIO2", 4: "5V", 5: "GPIO3", 6: "GND", 7: "GPIO4", 8: "GPIO14",
    9: "GND", 10: "GPIO15", 11: "GPIO17", 12: "GPIO18", 13: "GPIO27", 14: "GND",
    15: "GPIO22", 16: "GPIO23", 17: "3V3", 18: "GPIO24", 19: "GPIO10", 20: "GND",
}  # fmt: skip
USED = {11: "#1565c0", 13: "#c62828", 15: "#2e7d32", 20: "#333"}

PITCH = 26
HX, HY = 120, 70  # header: left column x, first row y


def pin_xy(n: int) -> tuple[int, int]:
    row = (n - 1) // 2
    return (HX if n % 2 else HX + PITCH, HY + row * PITCH)


class Svg:
    def __init__(self, width: int, height: int) -> None:
        self.parts: list[str] = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
            'font-size="12">',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        ]

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, s: str, **attrs: str) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
        self.add(f'<text x="{x}" y="{y}"{extra}>{escape(s)}</text>')

    def line(self, points: list[tuple[float, float]], color: str, width: float = 3) -> None:
        pts = " ".join(f"{x},{y}" for x, y in points)
        self.add(f'<polyline points="{pts}" fill="none" stroke="{color}" '
                 f'stroke-width="{width}" stroke-linejoin="round"/>')

    def done(self) -> str:
        return "\n".join([*self.parts, "</svg>", ""])


def resistor(svg: Svg, x: float, y: float, label: str) -> None:
    svg.add(f'<rect x="{x}" y="{y - 7}" width="44" height="14" rx="3" fill="#f3e5ab" '
            'stroke="#8d6e63" stroke-width="1.5"/>')
    for i, color in enumerate(("#ff8f00", "#ff8f00", "#6d4c41")):  # 330 ohm: orange orange brown
        svg.add(f'<rect x="{x + 9 + i * 9}" y="{y - 7}" width="4" height="14" fill="{color}"/>')
    svg.text(x + 22, y - 12, label, text_anchor="middle", font_size="11")


def led(svg: Svg, x: float, y: float, color: str, label: str) -> None:
    """An LED symbol pointing right: anode at (x, y), cathode at (x + 30, y)."""
    svg.add(f'<polygon points="{x},{y - 10} {x},{y + 10} {x + 18},{y}" fill="{color}" '
            'stroke="#222" stroke-width="1.5"/>')
    svg.add(f'<line x1="{x + 18}" y1="{y - 10}" x2="{x + 18}" y2="{y + 10}" stroke="#222" '
            'stroke-width="2"/>')
    svg.add(f'<line x1="{x + 18}" y1="{y}" x2="{x + 30}" y2="{y}" stroke="#222" '
            'stroke-width="2"/>')
    svg.text(x + 9, y + 26, label, text_anchor="middle", font_size="11")


def build() -> str:
    svg = Svg(720, 470)
    svg.text(20, 24, "tracker wiring: one button, two LEDs (BCM numbering, header pins 1-20)",
             font_size="15", font_weight="bold")
    # The header.
    svg.add(f'<rect x="{HX - 16}" y="{HY - 16}" width="{PITCH + 32}" height="{10 * PITCH + 6}" '
            'rx="4" fill="#263238"/>')
    for n, name in HEADER.items():
        x, y = pin_xy(n)
        fill = USED.get(n, "#b0bec5")
        svg.add(f'<circle cx="{x}" cy="{y}" r="7" fill="{fill}" stroke="#eceff1" '
                'stroke-width="1.5"/>')
        if n % 2:  # labels on the left; the right column's used pins are named by the wires
            svg.text(x - 14, y + 4, f"{name} ({n})", text_anchor="end", font_size="11")
    svg.text(HX + PITCH / 2, HY - 24, "Pi header (pin 1 = 3V3, top left)",
             text_anchor="middle", font_size="11")
    gnd_rail_x = 600

    # Button: GPIO17 (pin 11) → button → GND. Internal pull-up: no resistor.
    x11, y11 = pin_xy(11)
    bx, by = 300, 80
    svg.line([(x11, y11), (x11 + PITCH + 30, y11), (x11 + PITCH + 30, by), (bx, by)], USED[11])
    svg.add(f'<rect x="{bx}" y="{by - 18}" width="60" height="36" rx="6" fill="#eceff1" '
            'stroke="#37474f" stroke-width="2"/>')
    svg.add(f'<circle cx="{bx + 30}" cy="{by}" r="11" fill="#1565c0"/>')
    svg.text(bx + 30, by + 34, "push button (normally open)", text_anchor="middle")
    svg.line([(bx + 60, by), (gnd_rail_x, by)], "#333")

    # Status LED: GPIO27 (pin 13) → 330 ohm → LED → GND.
    x13, y13 = pin_xy(13)
    sy = 200
    svg.line([(x13, y13), (x13 + PITCH + 60, y13), (x13 + PITCH + 60, sy), (300, sy)], USED[13])
    resistor(svg, 300, sy, "330 Ω")
    svg.line([(344, sy), (400, sy)], USED[13])
    led(svg, 400, sy, "#ef5350", "status LED (red)")
    svg.line([(430, sy), (gnd_rail_x, sy)], "#333")

    # Link LED: GPIO22 (pin 15) → 330 ohm → LED → GND (optional).
    x15, y15 = pin_xy(15)
    ly = 290
    svg.line([(x15, y15), (x15 + PITCH + 75, y15), (x15 + PITCH + 75, ly), (300, ly)], USED[15])
    resistor(svg, 300, ly, "330 Ω (100 Ω for green/blue)")
    svg.line([(344, ly), (400, ly)], USED[15])
    led(svg, 400, ly, "#66bb6a", "link LED (green, optional)")
    svg.line([(430, ly), (gnd_rail_x, ly)], "#333")

    # Ground rail to GND (pin 20); any GND pin will do.
    x20, y20 = pin_xy(20)
    svg.line([(gnd_rail_x, by), (gnd_rail_x, 360)], "#333")
    svg.line([(x20, y20), (x20, 360), (gnd_rail_x, 360)], "#333")
    svg.text(x20 + 22, y20 + 4, "GND (20)", font_size="11")
    svg.text(gnd_rail_x + 8, 200, "GND", font_weight="bold")

    # Legend.
    notes = [
        "Button: GPIO17 (pin 11) to GND (pin 20 here; any GND pin); internal pull-up, no resistor.",
        "Status LED: GPIO27 (pin 13) → 330 Ω → LED anode (long leg); cathode → GND.",
        "Link LED: GPIO22 (pin 15), same way; set [leds] link_pin = -1 if not fitted.",
        "GPS receiver: any USB port (becomes /dev/gps0) or Bluetooth (rfcomm).",
    ]
    for i, note in enumerate(notes):
        svg.text(20, 392 + i * 17, note, font_size="11")
    return svg.done()


def main(argv: list[str]) -> int:
    text = build()
    if "--check" in argv:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
