"""What the built email keeps of what the writer wrote: table alignment, image sizes that
Outlook for Windows obeys, and only valid size attributes."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest
from PIL import Image

from newsletter.compose.build import build_issue
from newsletter.compose.markdown import to_html
from newsletter.errors import NewsletterError


def write_issue(root: Path, body: str, front: str = "") -> Path:
    folder = root / "issues" / "2027-03-03-fidelity"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "a.md").write_text(f"---\ntitle: An article\n{front}---\n\n{body}\n", encoding="utf-8")
    (folder / "issue.md").write_text("---\nsubject: Fidelity\narticles:\n- a.md\n---\n\nHello.\n", encoding="utf-8")
    return folder


def picture(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (200, 120, 40)).save(path)


def article_body(html: str):
    return lxml.html.fromstring(html).find_class("article-body")[0]


# -- tables ------------------------------------------------------------------------------------------


def test_markdown_table_alignment_reaches_the_email(settings, newsletter_root):
    folder = write_issue(newsletter_root, "| Item | Price | Note |\n|:-----|------:|:----:|\n| Tea | 3.50 | hot |\n")
    built = build_issue(settings, folder)

    cells = article_body(built.html).iter("th", "td")
    aligned = [(cell.get("align"), cell.get("style")) for cell in cells]
    assert [align for align, _ in aligned] == ["left", "right", "center"] * 2
    # the cell's own alignment wins over the theme's `text-align: left` when CSS is inlined
    for align, style in aligned:
        assert f"text-align:{align}" in style.replace(" ", "")
        assert style.replace(" ", "").count("text-align") == 1


def test_only_alignment_survives_of_a_cells_own_style():
    html = to_html('<table><tr><td style="color:red; text-align: Right">x</td>'
                   '<td style="background:url(https://example.com/t.png)">y</td></tr></table>')
    first, second = lxml.html.fromstring(html).iter("td")
    assert first.get("style") == "text-align:right"
    assert second.get("style") is None


# -- image sizes -------------------------------------------------------------------------------------


def test_local_images_get_a_width_no_wider_than_the_column(settings, newsletter_root):
    folder = write_issue(
        newsletter_root,
        "![A wide photo](images/wide.png)\n\n![A small one](small%20one.png)\n\n"
        "![Remote](https://example.com/remote.png)",
        front="image: images/wide.png\nimage_alt: The lead photo\n")
    picture(folder / "images" / "wide.png", 1600, 900)
    picture(folder / "small one.png", 300, 200)
    built = build_issue(settings, folder)

    doc = lxml.html.fromstring(built.html)
    sizes = {img.get("alt"): (img.get("width"), img.get("height")) for img in doc.iter("img")}
    assert sizes["A wide photo"] == ("536", "302")  # 1600x900 shown in the theme's 536 px column
    assert sizes["The lead photo"] == ("536", "302")
    assert sizes["A small one"] == ("300", "200")  # never enlarged
    assert sizes["Remote"] == (None, None)  # not measured: the build never fetches
    for img in doc.iter("img"):  # fluid everywhere CSS works
        style = img.get("style").replace(" ", "")
        assert "max-width:100%" in style and "height:auto" in style


def test_the_column_width_comes_from_the_themes_layout(settings, newsletter_root, own_theme):
    (own_theme / "theme.toml").write_text("[layout]\ncontent_width = 400\n", encoding="utf-8")
    folder = write_issue(newsletter_root, "![A wide photo](images/wide.png)")
    picture(folder / "images" / "wide.png", 1600, 900)

    img = article_body(build_issue(settings, folder).html).find(".//img")
    assert (img.get("width"), img.get("height")) == ("400", "225")


def test_a_bad_layout_setting_names_the_file(settings, newsletter_root, own_theme):
    (own_theme / "theme.toml").write_text("[layout]\ncontent_width = 'wide'\n", encoding="utf-8")
    folder = write_issue(newsletter_root, "Text.")
    with pytest.raises(NewsletterError) as caught:
        build_issue(settings, folder)
    assert "theme.toml" in str(caught.value) and "content_width" in str(caught.value)


def test_no_invalid_width_or_height_attribute_reaches_the_email(settings, newsletter_root):
    folder = write_issue(
        newsletter_root,
        "![Local](images/wide.png)\n\n![Remote](https://example.com/remote.png)\n\n| a | b |\n|---|--:|\n| 1 | 2 |",
        front="image: https://example.com/lead.png\nimage_alt: Lead\n")
    picture(folder / "images" / "wide.png", 1600, 900)
    built = build_issue(settings, folder)

    doc = lxml.html.fromstring(built.html)
    sized = [(el.tag, name, el.get(name)) for el in doc.iter() if isinstance(el.tag, str)
             for name in ("width", "height") if el.get(name) is not None]
    assert any(tag == "img" for tag, _, _ in sized)
    for tag, name, value in sized:
        if tag == "img":
            assert value.isdigit(), f'<img {name}="{value}">'
        else:
            assert value.rstrip("%").isdigit(), f'<{tag} {name}="{value}">'


def test_a_writers_own_invalid_image_size_is_dropped_and_a_valid_one_kept():
    html = to_html('<img src="https://example.com/a.png" alt="A" width="536" height="auto">\n\n'
                   '<img src="https://example.com/b.png" alt="B" width="50%" height="300px">')
    images = lxml.html.fragment_fromstring(html, create_parent="div").findall(".//img")
    assert [(img.get("width"), img.get("height")) for img in images] == [("536", None), (None, None)]


def test_a_theme_built_on_the_default_gets_the_defaults_column(settings, newsletter_root):
    plain = newsletter_root / "templates" / "plain"
    plain.mkdir(parents=True)
    (plain / "email.html.j2").write_text('{% extends "default/email.html.j2" %}\n', encoding="utf-8")
    (plain / "email.txt.j2").write_text('{% extends "default/email.txt.j2" %}\n', encoding="utf-8")
    folder = write_issue(newsletter_root, "![A wide photo](images/wide.png)")
    (folder / "issue.md").write_text((folder / "issue.md").read_text().replace("subject:", "theme: plain\nsubject:"))
    picture(folder / "images" / "wide.png", 1600, 900)

    built = build_issue(settings, folder)
    assert built.rendered.theme == "plain"
    img = article_body(built.html).find(".//img")
    assert (img.get("width"), img.get("height")) == ("536", "302")


def test_a_very_large_local_image_is_sized_without_a_python_warning(settings, newsletter_root):
    """Pillow reads only the header, so its decompression-bomb warning (printed on the writer's terminal
    with a source path) is beside the point: the image gets its width like any other."""
    import struct
    import warnings
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    folder = write_issue(newsletter_root, "![A huge scan](images/scan.png)")
    (folder / "images" / "scan.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 10000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = build_issue(settings, folder)

    img = article_body(built.html).find(".//img")
    assert (img.get("width"), img.get("height")) == ("536", "447")
