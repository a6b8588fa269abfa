"""`newsletter check` catches what would ship broken: each finding names the file, the line and the fix."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.checks import ERROR, WARNING, check_issue
from newsletter.cli import main
from newsletter.looking.archive import write_archive

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "tests" / "data" / "import" / "page.html"


def _png(width: int = 4, height: int = 3) -> bytes:
    """A real PNG file of the given size (grey pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png()


def findings(settings, folder, code):
    _, found = check_issue(settings, folder)
    return [f for f in found if f.code == code]


def article(body: str, front: str = "title: First") -> dict[str, str]:
    return {"a.md": f"---\n{front}\n---\n\n{body}\n"}


# --- missing local images ---------------------------------------------------------------------------

def test_a_local_image_whose_file_is_missing_is_an_error_with_its_line(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("Intro.\n\n![A broom in the hall](images/broom.png)"))

    [finding] = findings(settings, folder, "missing-image")

    assert finding.severity == ERROR
    assert finding.where == "issues/2027-02-02-test/a.md" and finding.line == 7
    assert "images/broom.png" in finding.message
    assert "issues/2027-02-02-test/images/broom.png" in finding.fix
    result = CliRunner().invoke(main, ["check", str(folder)], catch_exceptions=False)
    assert result.exit_code == 1  # an error: the send would refuse it


def test_a_local_image_that_exists_passes(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("![A broom in the hall](images/broom.png)"))
    (folder / "images").mkdir()
    (folder / "images" / "broom.png").write_bytes(PNG)

    assert findings(settings, folder, "missing-image") == []


def test_the_articles_own_image_field_is_checked_too(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article(
        "Body.", front="title: First\nimage: images/hero.jpg\nimage_alt: The harbour at dawn"))

    [finding] = findings(settings, folder, "missing-image")

    assert finding.where.endswith("a.md") and finding.line == 3


# --- addresses an import made absolute against the newsletter's own domain --------------------------

def _page_without_address(tmp_path: Path) -> Path:
    page = tmp_path / "page.html"
    page.write_text(re.sub(r".*(canonical|og:url).*\n", "", PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    return page


def test_import_without_url_warns_about_relative_links(newsletter_root, tmp_path):
    folder = write_issue(newsletter_root)

    result = CliRunner().invoke(main, ["import", str(_page_without_address(tmp_path)), "--issue", str(folder)],
                                catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "/media/2025/04/garden-beds.jpg" in result.stderr
    assert "https://newsletter.example.com/media/2025/04/garden-beds.jpg" in result.stderr
    assert "--url" in result.stderr


def test_check_warns_about_links_and_images_that_point_at_the_newsletters_own_site(settings, newsletter_root,
                                                                                       tmp_path):
    folder = write_issue(newsletter_root)
    CliRunner().invoke(main, ["import", str(_page_without_address(tmp_path)), "--issue", str(folder)],
                       catch_exceptions=False)

    found = findings(settings, folder, "own-site-url")

    image = next(f for f in found if "/media/2025/04/garden-beds.jpg" in f.message)
    assert image.severity == WARNING
    assert image.where.endswith(".md") and image.line is not None
    assert "https://newsletter.example.com/media/2025/04/garden-beds.jpg" in image.message
    assert "--url" in image.fix
    assert any("/data/gardens-survey.csv" in f.message for f in found)


def test_links_with_full_addresses_are_not_reported(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("[Report](https://example.org/report) and [top](#top)"))

    assert findings(settings, folder, "own-site-url") == []


# --- the placeholder introduction -------------------------------------------------------------------

def test_the_untouched_placeholder_introduction_is_a_warning(settings, newsletter_root):
    result = CliRunner().invoke(main, ["new", "Second dispatch", "--date", "2027-03-03"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = newsletter_root / "issues" / "2027-03-03-second-dispatch"

    [finding] = findings(settings, folder, "placeholder-intro")

    assert finding.severity == WARNING
    assert finding.where == "issues/2027-03-03-second-dispatch/issue.md"
    lines = (folder / "issue.md").read_text(encoding="utf-8").splitlines()
    assert "Write a short introduction here" in lines[finding.line - 1]
    assert "introduction" in finding.fix


def test_a_written_introduction_passes(settings, newsletter_root):
    folder = write_issue(newsletter_root, intro="Welcome back. This week: gardens.")

    assert findings(settings, folder, "placeholder-intro") == []


# --- images without a width -------------------------------------------------------------------------

def test_an_image_without_a_width_is_a_warning(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("Text.\n\n![Seals on the rocks](https://example.org/seals.jpg)"))

    [finding] = findings(settings, folder, "image-no-width")

    assert finding.severity == WARNING
    assert finding.where.endswith("a.md") and finding.line == 7
    assert "https://example.org/seals.jpg" in finding.message
    assert 'width="' in finding.fix


def test_the_width_suggested_is_the_themes_column_not_the_defaults(settings, newsletter_root, own_theme):
    (own_theme / "theme.toml").write_text("[layout]\ncontent_width = 400\n", encoding="utf-8")
    folder = write_issue(newsletter_root, articles=article("![Seals on the rocks](https://example.org/seals.jpg)"))

    [finding] = findings(settings, folder, "image-no-width")

    assert 'width="400"' in finding.fix and "536" not in finding.fix and "default theme" not in finding.fix


def test_a_missing_local_image_is_one_error_not_also_a_width_warning(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("![A broom](images/broom.png)"))

    assert len(findings(settings, folder, "missing-image")) == 1
    assert findings(settings, folder, "image-no-width") == []


def test_an_image_with_a_width_passes(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article(
        'Text.\n\n<img src="https://example.org/seals.jpg" alt="Seals on the rocks" width="536">'))

    assert findings(settings, folder, "image-no-width") == []


# --- links into a web archive that is not published yet ---------------------------------------------

def test_links_into_an_unpublished_archive_are_a_warning_naming_the_command(settings, newsletter_root):
    folder = write_issue(newsletter_root)

    [finding] = findings(settings, folder, "archive-not-published")

    assert finding.severity == WARNING
    assert "https://newsletter.example.com/2027-02-02-test/" in finding.message
    assert "site/2027-02-02-test/" in finding.message
    assert "newsletter archive" in finding.fix and "site/" in finding.fix


def test_each_unpublished_local_image_is_named_with_its_line_and_how_to_publish_it(settings, newsletter_root):
    """Issue 20, finding 23: one general "archive not published" warning left the writer to guess
    that every reader would get the issue's own pictures broken."""
    folder = write_issue(newsletter_root, articles=article(
        "A broom.\n\n![A broom in the hall](images/broom.png)\n\nA mop.\n\n![A mop](images/mop.png)",
        front="title: First\nimage: images/lead.png\nimage_alt: The hall"))
    (folder / "images").mkdir()
    for name in ("broom.png", "mop.png", "lead.png"):
        (folder / "images" / name).write_bytes(PNG)

    found = findings(settings, folder, "archive-not-published")

    web_page = "links to its web archive (https://newsletter.example.com/2027-02-02-test/)"
    page = [f for f in found if web_page in f.message]
    images = {re.search(r"image (\S+) is not published", f.message)[1]: f for f in found if f not in page}
    assert len(page) == 1 and set(images) == {"broom.png", "mop.png", "lead.png"}
    assert (images["broom.png"].where, images["broom.png"].line) == ("issues/2027-02-02-test/a.md", 9)
    assert (images["mop.png"].where, images["mop.png"].line) == ("issues/2027-02-02-test/a.md", 13)
    assert (images["lead.png"].where, images["lead.png"].line) == ("issues/2027-02-02-test/a.md", 3)  # image:
    for name, finding in images.items():
        assert finding.severity == WARNING and "broken" in finding.message
        assert f"https://newsletter.example.com/2027-02-02-test/images/{name}" in finding.message
        assert "newsletter archive" in finding.fix and f"site/2027-02-02-test/images/{name}" in finding.fix
        assert "upload site/ to https://newsletter.example.com/" in finding.fix and "--test-to" in finding.fix
    result = CliRunner().invoke(main, ["check", str(folder)])
    assert all(f"image {name} is not published" in result.output for name in images)


def test_check_archive_reads_an_archive_written_elsewhere(settings, newsletter_root, tmp_path):
    """A writer who runs `newsletter archive --out public` tells check where the archive is."""
    folder = write_issue(newsletter_root)
    write_archive(settings, tmp_path / "public", [folder], drafts=True)  # dated 2027: in the future

    elsewhere = CliRunner().invoke(main, ["check", str(folder), "--archive", str(tmp_path / "public")])
    default = CliRunner().invoke(main, ["check", str(folder)])

    assert "archive-not-published" not in elsewhere.output and "is not published" not in elsewhere.output
    assert "is not published" in default.output
    assert "--archive" in default.output  # the fix says how to point check at another folder


def test_once_archived_the_issue_passes_and_a_new_image_is_reported(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles=article("![A broom in the hall](images/broom.png)"))
    (folder / "images").mkdir()
    (folder / "images" / "broom.png").write_bytes(PNG)
    before = findings(settings, folder, "archive-not-published")
    assert len(before) == 2  # the issue's page, and its image
    assert all("newsletter archive --drafts" in f.fix for f in before)  # dated 2027: left out without --drafts
    write_archive(settings, newsletter_root / "site", [folder], drafts=True)

    assert findings(settings, folder, "archive-not-published") == []

    (folder / "images" / "mop.png").write_bytes(PNG)
    (folder / "a.md").write_text("---\ntitle: First\n---\n\n![A broom](images/broom.png)\n\n![A mop](images/mop.png)\n",
                                 encoding="utf-8")
    [finding] = findings(settings, folder, "archive-not-published")
    assert "images/mop.png" in finding.message and finding.where.endswith("a.md") and finding.line == 7


def test_import_warns_about_a_local_image_it_did_not_bring(newsletter_root, tmp_path):
    """A Markdown draft's images stay beside the draft: the writer hears at once, not at check time."""
    folder = write_issue(newsletter_root)
    draft = tmp_path / "draft.md"
    draft.write_text("---\ntitle: With a picture\n---\n\n![A chart of opens](chart.png)\n", encoding="utf-8")
    (tmp_path / "chart.png").write_bytes(PNG)

    result = CliRunner().invoke(main, ["import", str(draft), "--issue", str(folder)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "image 'chart.png' is not in the issue folder" in result.stderr
    assert f"{folder.name}/chart.png" in result.stderr
    assert "--url" not in result.stderr  # nothing the page's address would fix
