"""CSS colours as sRGB, and the WCAG contrast between two of them.

tinycss2's CSS Color Level 4 parser reads every colour a stylesheet can hold: names (``rebeccapurple``),
hex with alpha (``#0008``), ``rgb()``/``hsl()``/``hwb()`` in the old comma form and the new space form
(``rgb(1 2 3 / 50%)``), ``lab()``, ``lch()``, ``oklab()``, ``oklch()`` and ``color(display-p3 ...)``. Each is
brought to sRGB here (through CIE XYZ with the matrices of the CSS Color 4 specification's sample code),
then clipped to the sRGB gamut, since WCAG's contrast is defined on sRGB channels. A value that is not a
colour (``inherit``, ``currentcolor``, ``var(--x)``) gives None: the caller falls back to what the
element inherits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import tinycss2
from tinycss2 import color4

Color = tuple[float, float, float, float]  # sRGB red, green, blue and alpha, each 0..1

_Matrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
_Vector = tuple[float, float, float]

# Linear-light RGB of each space -> CIE XYZ (D65, or D50 for ProPhoto), from CSS Color 4's conversions.js.
_DISPLAY_P3_TO_XYZ: _Matrix = ((608311 / 1250200, 189793 / 714400, 198249 / 1000160),
                               (35783 / 156275, 247089 / 357200, 198249 / 2500400),
                               (0, 32229 / 714400, 5220557 / 5000800))
_A98_TO_XYZ: _Matrix = ((573536 / 994567, 263643 / 1420810, 187206 / 994567),
                        (591459 / 1989134, 6239551 / 9945670, 374412 / 4972835),
                        (53769 / 1989134, 351524 / 4972835, 4929758 / 4972835))
_REC2020_TO_XYZ: _Matrix = ((63426534 / 99577255, 20160776 / 139408157, 47086771 / 278816314),
                            (26158966 / 99577255, 0.677998071518871, 8267143 / 139408157),
                            (0, 19567812 / 697040785, 1.0609850577107909))
_PROPHOTO_TO_XYZ_D50: _Matrix = ((0.7977666449006423, 0.13518129740053308, 0.0313477341283922),
                                 (0.2880748288194013, 0.711835234241873, 8.993693872564e-05),
                                 (0, 0, 0.8251046025104602))
_D50_TO_D65: _Matrix = ((0.9554734527042182, -0.023098536874261423, 0.0632593086610217),
                        (-0.028369706963208136, 1.0099954580058226, 0.021041398966943008),
                        (0.012314001688319899, -0.020507696433477912, 1.3303659366080753))
_XYZ_TO_LINEAR_SRGB: _Matrix = ((3.2409699419045226, -1.537383177570094, -0.4986107602930034),
                                (-0.9692436362808796, 1.8759675015077202, 0.04155505740717559),
                                (0.05563007969699366, -0.20397695888897652, 1.0569715142428786))


def _times(matrix: _Matrix, vector: Sequence[float]) -> _Vector:
    x, y, z = vector
    first, second, third = (row[0] * x + row[1] * y + row[2] * z for row in matrix)
    return first, second, third


def _signed(curve: Callable[[float], float]) -> Callable[[float], float]:
    """A transfer curve extended to negative values by symmetry, as CSS Color 4 does."""
    return lambda c: math.copysign(curve(abs(c)), c)


_srgb_to_linear = _signed(lambda c: c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
_linear_to_srgb = _signed(lambda c: c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055)
_a98_to_linear = _signed(lambda c: c ** (563 / 256))
_rec2020_to_linear = _signed(lambda c: c ** 2.4)
_prophoto_to_linear = _signed(lambda c: c / 16 if c <= 16 / 512 else c ** 1.8)

# An RGB space -> (its transfer curve to linear light, its matrix to XYZ, whether that XYZ is D50)
_RGB_SPACES: dict[str, tuple[Callable[[float], float], _Matrix, bool]] = {
    "display-p3": (_srgb_to_linear, _DISPLAY_P3_TO_XYZ, False),
    "a98-rgb": (_a98_to_linear, _A98_TO_XYZ, False),
    "rec2020": (_rec2020_to_linear, _REC2020_TO_XYZ, False),
    "prophoto-rgb": (_prophoto_to_linear, _PROPHOTO_TO_XYZ_D50, True),
}


def _xyz_d65(color: color4.Color) -> _Vector | None:
    """CIE XYZ (D65) of a colour given in a space other than sRGB and its cylindrical forms."""
    space = color.space
    coordinates = [c or 0.0 for c in color.coordinates]  # 'none' components are 0
    if space in _RGB_SPACES:
        curve, matrix, d50 = _RGB_SPACES[space]
        xyz = _times(matrix, [curve(c) for c in coordinates])
        return _times(_D50_TO_D65, xyz) if d50 else xyz
    if space in ("xyz", "xyz-d65"):
        return coordinates[0], coordinates[1], coordinates[2]
    if space == "xyz-d50":
        return _times(_D50_TO_D65, coordinates)
    if space in ("lab", "lch"):
        return _times(_D50_TO_D65, tuple(color.to("xyz-d50").coordinates))
    if space in ("oklab", "oklch"):
        x, y, z = color.to("xyz-d65").coordinates
        return x or 0.0, y or 0.0, z or 0.0
    return None


def _srgb(color: color4.Color) -> _Vector | None:
    if color.space in ("hsl", "hwb"):
        color = color.to("srgb")
    if color.space == "srgb":
        red, green, blue = (c or 0.0 for c in color.coordinates)
        return red, green, blue
    if color.space == "srgb-linear":
        red, green, blue = (_linear_to_srgb(c or 0.0) for c in color.coordinates)
        return red, green, blue
    xyz = _xyz_d65(color)
    if xyz is None:
        return None
    red, green, blue = (_linear_to_srgb(c) for c in _times(_XYZ_TO_LINEAR_SRGB, xyz))
    return red, green, blue


def _from(parsed: color4.Color | str | None) -> Color | None:
    if not isinstance(parsed, color4.Color):  # None, or 'currentcolor'
        return None
    rgb = _srgb(parsed)
    if rgb is None or not all(math.isfinite(c) for c in rgb):
        return None
    red, green, blue = (min(1.0, max(0.0, c)) for c in rgb)
    return red, green, blue, parsed.alpha


@functools.lru_cache(maxsize=1024)
def parse_color(value: str) -> Color | None:
    """(r, g, b, alpha) in 0..1 for a CSS colour, clipped to sRGB; None for a value that is not a colour."""
    return _from(color4.parse_color(value.strip()))


@functools.lru_cache(maxsize=256)
def color_in(value: str) -> Color | None:
    """The colour a ``background`` shorthand (or ``background-color``) sets, wherever it stands in it
    (``url(x.png) no-repeat rgb(0 0 0 / 50%)``)."""
    for token in tinycss2.parse_component_value_list(value, skip_comments=True):
        if token.type not in ("whitespace", "literal"):
            color = _from(color4.parse_color(token))
            if color is not None:
                return color
    return None


def blend(top: Color, bottom: Color) -> Color:
    """``top`` painted over an opaque ``bottom``."""
    alpha = top[3]
    red, green, blue = (t * alpha + b * (1 - alpha) for t, b in zip(top[:3], bottom[:3], strict=True))
    return red, green, blue, 1.0


def relative_luminance(color: Color) -> float:
    """WCAG 2's relative luminance of an sRGB colour (its alpha ignored)."""
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: Color, background: Color) -> float:
    """WCAG contrast ratio, 1 to 21."""
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def hex_of(color: Color) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in color[:3])
