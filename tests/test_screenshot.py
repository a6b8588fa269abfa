"""Screenshots of the example issue, taken by the real headless Chromium from Debian.

The PNGs are read with the standard library (header for the size, zlib and the
PNG row filters for a pixel), so the test needs no imaging package. Without
Chromium these tests fail with a message saying how to install it; they are
never skipped.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import NewsletterError
from newsletter.screenshot import BROWSER_ENV, default_widths, find_chromium, screenshot_issue

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def chromium() -> str:
    try:
        return find_chromium()
    except NewsletterError as err:
        pytest.fail(f"the screenshot tests need Chromium: {err}", pytrace=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def png_pixel(path: Path, x: int, y: int) -> tuple[int, int, int]:
    """The RGB colour of one pixel of an 8-bit RGB or RGBA PNG."""
    data = path.read_bytes()
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, _height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), "expected an 8-bit RGB(A) PNG"
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    previous = bytearray(stride)
    for row in range(y + 1):
        kind, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, up_left = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        previous = line
    return tuple(previous[x * bpp:x * bpp + 3])


def test_screenshots_have_the_requested_widths_and_the_whole_email(settings, example_issue, tmp_path):
    shots = screenshot_issue(settings, example_issue, tmp_path / "shots", [375, 600, 1024])
    assert [s.path.name for s in shots] == [f"{example_issue.name}-{w}.png" for w in (375, 600, 1024)]
    for shot in shots:
        width, height = png_size(shot.path)
        assert (width, height) == (shot.width, shot.height)
        assert height > 900  # the whole email, not one window's worth
    heights = {s.width: s.height for s in shots}
    assert heights[375] > heights[1024]  # the narrow layout wraps into more lines


def content_column(path: Path) -> tuple[int, int]:
    """Where the email's white content column lies in a PNG, as (left, right) pixel columns: the
    run of white pixels through the middle of the first row that is white in the middle (the top
    of the first card)."""
    from PIL import Image

    with Image.open(path) as picture:
        image = picture.convert("RGB")
    width, height = image.size
    middle = width // 2
    row = next(y for y in range(height) if image.getpixel((middle, y)) == (255, 255, 255))
    left = right = middle
    while left > 0 and image.getpixel((left - 1, row)) == (255, 255, 255):
        left -= 1
    while right < width - 1 and image.getpixel((right + 1, row)) == (255, 255, 255):
        right += 1
    return left, right


def test_default_screenshots_show_the_phone_and_the_desktop_layout(settings, example_issue, tmp_path):
    phone, desktop = screenshot_issue(settings, example_issue, tmp_path)
    assert phone.width <= 620 < desktop.width  # either side of the theme's breakpoint
    # The phone layout drops the page margins: the column runs edge to edge. The desktop layout is
    # the 600 px column centred on the page colour.
    assert content_column(phone.path) == (0, phone.width - 1)
    left, right = content_column(desktop.path)
    assert right - left + 1 == 600 and left > 0 and right < desktop.width - 1
    assert abs(left - (desktop.width - 1 - right)) <= 1


def test_default_widths_follow_the_themes_breakpoint(own_theme):
    css = own_theme / "style.css"
    css.write_text(css.read_text().replace("max-width: 620px", "max-width: 900px"))
    assert default_widths(own_theme) == (375, 901)
    css.write_text(".card { padding: 20px; }\n")  # one layout for every width
    assert default_widths(own_theme) == (375, 800)


def test_dark_screenshot_renders_the_themes_dark_mode(settings, example_issue, tmp_path):
    light = screenshot_issue(settings, example_issue, tmp_path, [600])[0]
    dark = screenshot_issue(settings, example_issue, tmp_path, [600], dark=True)[0]
    assert dark.path.name.endswith("-600-dark.png")
    assert png_pixel(light.path, 2, 2) == (0xF4, 0xF1, 0xEC)  # the theme's light page colour
    assert png_pixel(dark.path, 2, 2) == (0x11, 0x14, 0x18)  # its @media (prefers-color-scheme: dark) colour


def test_cli_writes_pngs_to_the_build_folder_by_default(newsletter_root, example_issue):
    result = CliRunner().invoke(main, ["screenshot", str(example_issue), "--width", "375", "--width", "800"])
    assert result.exit_code == 0, result.output
    folder = newsletter_root / "build" / example_issue.name
    assert png_size(folder / f"{example_issue.name}-375.png")[0] == 375
    assert png_size(folder / f"{example_issue.name}-800.png")[0] == 800
    assert "2 screenshots" in result.output


def test_cli_rejects_a_width_no_screen_has(example_issue):
    result = CliRunner().invoke(main, ["screenshot", str(example_issue), "--width", "20"])
    assert result.exit_code == 2
    assert "--width" in result.output


def test_a_missing_browser_says_how_to_install_one(example_issue, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium, chromium-browser or google-chrome here
    monkeypatch.delenv(BROWSER_ENV, raising=False)
    result = CliRunner().invoke(main, ["screenshot", str(example_issue), "--out", str(tmp_path / "shots")])
    assert result.exit_code == 2
    assert "no Chromium browser found" in result.output
    assert "apt-get install chromium" in result.output and BROWSER_ENV in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "shots").exists()


def test_a_browser_named_in_the_environment_must_exist(example_issue, tmp_path, monkeypatch):
    monkeypatch.setenv(BROWSER_ENV, str(tmp_path / "no-such-chromium"))
    result = CliRunner().invoke(main, ["screenshot", str(example_issue), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{BROWSER_ENV}=" in result.output and "apt-get install chromium" in result.output


def _without_playwright(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process where Playwright cannot be imported, as after ``pip install newsletter``
    without the screenshot extra (``sys.modules[name] = None`` makes every import of it fail)."""
    program = ("import sys\n"
               "for name in ('playwright', 'playwright.sync_api'):\n"
               "    sys.modules[name] = None\n"
               "from newsletter.cli import main\n"
               "main(sys.argv[1:])\n")
    return subprocess.run([sys.executable, "-c", program, *args], cwd=root, capture_output=True, text=True,
                          timeout=120, check=False)


def test_without_the_screenshot_extra_the_error_names_it_and_how_to_install_it(newsletter_root, example_issue,
                                                                                tmp_path):
    done = _without_playwright(newsletter_root, "screenshot", str(example_issue), "--out", str(tmp_path / "shots"))
    assert done.returncode == 2, done.stderr
    assert "needs Playwright" in done.stderr and "pip install 'newsletter[screenshot]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "shots").exists()


def test_the_readmes_first_commands_work_without_the_screenshot_extra(newsletter_root, example_issue):
    built = _without_playwright(newsletter_root, "build", str(example_issue))
    assert built.returncode == 0, built.stderr
    sent = _without_playwright(newsletter_root, "send", str(example_issue), "--list", "example", "--dry-run")
    assert sent.returncode == 0, sent.stderr
    assert "This was a dry run" in sent.stdout
