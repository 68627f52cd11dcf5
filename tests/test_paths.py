"""Tests for `dataspec.paths`: discovery, Windows paths, image roots, image resolution.

Every test works on real files in `tmp_path` (JPEGs written with Pillow, JSON on disk).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataspec import DataSpecError
from dataspec import load as dataspec_load
from dataspec.paths import (
    ImageResolver,
    discover,
    infer_image_relpath,
    is_windows_path,
    split_roots,
    windows_to_local,
)
from tests.conftest import write_image, write_json

# --- discover --------------------------------------------------------------------------------


def test_discover_recurses_sorted_and_ignores_non_json(tmp_path: Path) -> None:
    """A directory yields every `*.json` below it, nested folders included, sorted."""
    for rel in ("b/2.json", "a/z/9.json", "a/1.json", "0.json"):
        write_json(tmp_path / rel, {})
    (tmp_path / "a" / "notes.txt").write_text("not a page", encoding="utf-8")
    write_image(tmp_path / "a" / "1.jpg", (10, 10))
    (tmp_path / "c.json.bak").write_text("{}", encoding="utf-8")

    found = discover(tmp_path)

    assert found == [
        tmp_path / "0.json",
        tmp_path / "a" / "1.json",
        tmp_path / "a" / "z" / "9.json",
        tmp_path / "b" / "2.json",
    ]
    assert discover(tmp_path) == found  # deterministic


def test_discover_single_file_and_several_sources(tmp_path: Path) -> None:
    """Files are taken as given; a file also reached through a directory is listed once."""
    one = write_json(tmp_path / "d" / "one.json", {})
    two = write_json(tmp_path / "d" / "two.json", {})
    assert discover(one) == [one]
    assert discover([one, tmp_path / "d"]) == [one, two]


def test_discover_txt_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list: blank lines skipped, duplicates removed, relative lines against its folder."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # a working directory where the relative lines do not exist
    lists = tmp_path / "lists"
    a = write_json(lists / "sub" / "a.json", {})
    b = write_json(tmp_path / "elsewhere" / "b.json", {})
    listing = lists / "pages.txt"
    listing.write_text(
        "\n".join(
            [
                "sub/a.json",  # relative to the list's folder
                "",
                "   ",
                str(b),  # absolute
                "./sub/a.json",  # the same file again, spelled differently
                str(a),  # and once more, absolute
                str(b),  # duplicate
                "",
            ]
        )
        + "\n",
        encoding="utf-8",
    )

    found = discover(listing)

    assert [p.resolve() for p in found] == [a.resolve(), b.resolve()]
    assert len(found) == 2


def test_discover_txt_list_with_bom_and_crlf(tmp_path: Path) -> None:
    """A list saved by Windows tools (UTF-8 BOM, CRLF line ends) reads the same."""
    a = write_json(tmp_path / "a.json", {})
    b = write_json(tmp_path / "b.json", {})
    listing = tmp_path / "win.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + f"{a}\r\n\r\n{b}\r\n".encode())
    assert discover(listing) == [a, b]


def test_discover_txt_list_converts_windows_lines_for_mnt_root(tmp_path: Path) -> None:
    """`E:\\...` lines become `/mnt/e/...` when the image root is a WSL `/mnt/*` path."""
    listing = tmp_path / "win.txt"
    listing.write_text(
        "E:\\Comics\\Series\\JPG4CBZ_0001.json\r\ne:\\Comics\\Other\\p 2.json\r\n",
        encoding="utf-8",
    )

    found = discover(listing, image_root="/mnt/e/Comics")

    assert found == [
        Path("/mnt/e/Comics/Series/JPG4CBZ_0001.json"),
        Path("/mnt/e/Comics/Other/p 2.json"),
    ]


def test_discover_missing_path_raises_naming_it(tmp_path: Path) -> None:
    """A source that does not exist is an error that names it."""
    missing = tmp_path / "no" / "such.json"
    with pytest.raises(DataSpecError) as info:
        discover(missing)
    assert str(missing) in str(info.value)
    assert info.value.file == str(missing)


def test_discover_missing_list_raises(tmp_path: Path) -> None:
    """A `.txt` list that does not exist is an error that names it."""
    missing = tmp_path / "gone.txt"
    with pytest.raises(DataSpecError) as info:
        discover(missing)
    assert str(missing) in str(info.value)


# --- windows_to_local / split_roots ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "root", "expected"),
    [
        # WSL: the drive letter becomes /mnt/<lowercase letter>
        ("E:\\Comics\\A\\1.jpg", "/mnt/e/Comics", "/mnt/e/Comics/A/1.jpg"),
        # forward slashes after the drive are converted the same way
        ("E:/Comics/A/1.jpg", "/mnt/e/Comics", "/mnt/e/Comics/A/1.jpg"),
        # a lowercase drive letter stays lowercase
        ("d:\\x\\y.png", "/mnt/e", "/mnt/d/x/y.png"),
        # no /mnt root: backslashes become slashes, the drive is kept
        ("E:\\Comics\\A\\1.jpg", None, "E:/Comics/A/1.jpg"),
        # a non-WSL root: the same
        ("E:\\Comics\\A\\1.jpg", "/data/comics", "E:/Comics/A/1.jpg"),
        # POSIX absolute paths are untouched
        ("/data/comics/A/1.jpg", "/mnt/e/Comics", "/data/comics/A/1.jpg"),
        # POSIX relative paths are untouched
        ("A/1.jpg", "/mnt/e/Comics", "A/1.jpg"),
    ],
)
def test_windows_to_local(path: str, root: str | None, expected: str) -> None:
    """Drive-letter paths are converted; everything else is returned as it is."""
    assert windows_to_local(path, root) == expected


def test_is_windows_path() -> None:
    """Only drive-letter paths count as Windows paths."""
    assert is_windows_path("E:\\a.jpg")
    assert is_windows_path("c:/a.jpg")
    assert not is_windows_path("/mnt/e/a.jpg")
    assert not is_windows_path("a\\b.jpg")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # nothing given
        (None, []),
        # one root
        ("/data/a", ["/data/a"]),
        # comma separated, spaces stripped
        ("/data/a, /data/b", ["/data/a", "/data/b"]),
        # semicolon separated (Windows style), empty parts dropped
        ("/data/a;/data/b;;", ["/data/a", "/data/b"]),
        # both separators mixed
        ("/a,/b;/c", ["/a", "/b", "/c"]),
        # a sequence, each item split too
        (["/a", "/b;/c"], ["/a", "/b", "/c"]),
    ],
)
def test_split_roots(value: str | list[str] | None, expected: list[str]) -> None:
    """Roots come from comma/semicolon lists or sequences."""
    assert split_roots(value) == expected


def test_split_roots_keeps_existing_path_with_comma(tmp_path: Path) -> None:
    """A real folder whose name holds a comma is one root, not two."""
    odd = tmp_path / "Comics, Vol. 1"
    odd.mkdir()
    assert split_roots(str(odd)) == [str(odd)]
    assert split_roots(odd) == [str(odd)]


# --- ImageResolver ---------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An image root holding `Series/JPG4CBZ/0001.jpg`."""
    base = tmp_path / "root"
    write_image(base / "Series" / "JPG4CBZ" / "0001.jpg", (40, 60))
    return base


def test_resolve_explicit_absolute_path(root: Path) -> None:
    """An existing absolute path is returned as it is."""
    image = root / "Series" / "JPG4CBZ" / "0001.jpg"
    assert ImageResolver(root).resolve(str(image)) == image
    assert ImageResolver(None).resolve(str(image)) == image


def test_resolve_relative_to_root(root: Path) -> None:
    """A relative path is looked up under the root."""
    found = ImageResolver(root).resolve("Series/JPG4CBZ/0001.jpg")
    assert found == root / "Series" / "JPG4CBZ" / "0001.jpg"
    assert found.is_absolute()


def test_resolve_relative_with_backslashes(root: Path) -> None:
    """A relative Windows-style path is looked up under the root."""
    found = ImageResolver(root).resolve("Series\\JPG4CBZ\\0001.jpg")
    assert found == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_two_roots(tmp_path: Path) -> None:
    """Each root is tried; the image may be under the second one."""
    first, second = tmp_path / "r1", tmp_path / "r2"
    first.mkdir()
    image = write_image(second / "B" / "p.jpg", (10, 10))
    assert ImageResolver(f"{first},{second}").resolve("B/p.jpg") == image
    assert ImageResolver([first, second]).resolve("B/p.jpg") == image
    assert ImageResolver(f"{first};{second}").resolve("B/p.jpg") == image


def test_resolve_first_root_wins(tmp_path: Path) -> None:
    """When both roots hold the path, the first root's file is returned."""
    first = write_image(tmp_path / "r1" / "B" / "p.jpg", (10, 10))
    write_image(tmp_path / "r2" / "B" / "p.jpg", (10, 10))
    assert ImageResolver([tmp_path / "r1", tmp_path / "r2"]).resolve("B/p.jpg") == first


def test_resolve_wrong_extension_relative(root: Path) -> None:
    """`.png` given, `.jpg` on disk: the extension variant is found."""
    found = ImageResolver(root).resolve("Series/JPG4CBZ/0001.png")
    assert found == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_wrong_extension_absolute_under_root(root: Path) -> None:
    """An absolute `.png` path whose `.jpg` exists is found."""
    given = root / "Series" / "JPG4CBZ" / "0001.png"
    assert ImageResolver(root).resolve(str(given)) == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_wrong_extension_uppercase_on_disk(tmp_path: Path) -> None:
    """`.jpg` given, `.JPG` on disk: found (extensions are matched case-insensitively)."""
    image = write_image(tmp_path / "r" / "A" / "0002.JPG", (10, 10), fmt="JPEG")
    assert ImageResolver(tmp_path / "r").resolve("A/0002.png") == image


def test_resolve_wrong_extension_absolute_outside_roots(tmp_path: Path) -> None:
    """The explicit absolute path gets its extension variants even outside every root."""
    image = write_image(tmp_path / "elsewhere" / "X" / "0007.jpg", (10, 10))
    (tmp_path / "root").mkdir()
    given = str(tmp_path / "elsewhere" / "X" / "0007.png")
    assert ImageResolver(tmp_path / "root").resolve(given) == image


def test_resolve_windows_absolute_path_tail_under_root(root: Path) -> None:
    """`E:\\CalibreComics_extracted\\Series\\JPG4CBZ\\0001.jpg` → the same tail under the root."""
    given = "E:\\CalibreComics_extracted\\Series\\JPG4CBZ\\0001.jpg"
    assert ImageResolver(root).resolve(given) == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_infers_from_json_folders(root: Path, tmp_path: Path) -> None:
    """No image path: `<anything>/Series/JPG4CBZ/0001.json` → `<root>/Series/JPG4CBZ/0001.jpg`."""
    page = write_json(tmp_path / "vlm" / "deep" / "Series" / "JPG4CBZ" / "0001.json", {})
    assert ImageResolver(root).resolve(None, page) == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_infers_from_flat_json_name(root: Path, tmp_path: Path) -> None:
    """`<anything>/Series/JPG4CBZ_0001.json` → `<root>/Series/JPG4CBZ/0001.jpg`."""
    page = write_json(tmp_path / "vlm" / "Series" / "JPG4CBZ_0001.json", {})
    assert ImageResolver(root).resolve(None, page) == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_infers_when_image_path_is_a_wrong_guess(root: Path, tmp_path: Path) -> None:
    """A stale image path that leads nowhere still resolves through the JSON's name."""
    page = tmp_path / "vlm" / "Series" / "JPG4CBZ_0001.json"
    found = ImageResolver(root).resolve("Series/0001.jpg", page)
    assert found == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_chained_extension_on_disk(tmp_path: Path) -> None:
    """`0001.jpg.png` on disk is found from the JSON `0001.json`."""
    base = tmp_path / "root"
    image = write_image(base / "Series" / "JPG4CBZ" / "0001.jpg.png", (10, 10))
    page = tmp_path / "vlm" / "Series" / "JPG4CBZ" / "0001.json"
    assert ImageResolver(base).resolve(None, page) == image


def test_resolve_chained_extension_in_json_name(root: Path, tmp_path: Path) -> None:
    """The JSON `0001.jpg.json` names the image `0001.jpg`."""
    page = tmp_path / "vlm" / "Series" / "JPG4CBZ" / "0001.jpg.json"
    assert ImageResolver(root).resolve(None, page) == root / "Series" / "JPG4CBZ" / "0001.jpg"


def test_resolve_index_fallback_deep_folder(tmp_path: Path) -> None:
    """A file deep in an unexpected folder is found through the root's index."""
    base = tmp_path / "root"
    image = write_image(base / "dump" / "2024" / "x" / "Series" / "JPG4CBZ" / "0042.jpg", (8, 8))
    write_image(base / "dump" / "Other" / "JPG4CBZ" / "0043.jpg", (8, 8))
    resolver = ImageResolver(base)
    assert resolver.resolve("Series/JPG4CBZ/0042.jpg") == image
    # the index is built once and serves later lookups, from a JSON name this time
    page = tmp_path / "vlm" / "Series" / "JPG4CBZ_0042.json"
    assert resolver.resolve(None, page) == image


def test_resolve_index_does_not_guess_between_series(tmp_path: Path) -> None:
    """Two series both with `JPG4CBZ/0001.jpg`: an ambiguous key is an error, not a guess."""
    base = tmp_path / "root"
    write_image(base / "deep" / "SeriesA" / "JPG4CBZ" / "0001.jpg", (8, 8))
    write_image(base / "deep" / "SeriesB" / "JPG4CBZ" / "0001.jpg", (8, 8))
    with pytest.raises(DataSpecError) as info:
        ImageResolver(base).resolve("JPG4CBZ/0001.jpg")
    message = str(info.value)
    assert "tried" in message
    assert str(base / "JPG4CBZ" / "0001.jpg") in message  # a tried path is listed
    assert "index" in message


def test_resolve_index_does_not_guess_from_json_name(tmp_path: Path) -> None:
    """Ambiguous too when the page is only known by a JSON name without its series."""
    base = tmp_path / "root"
    write_image(base / "deep" / "SeriesA" / "JPG4CBZ" / "0001.jpg", (8, 8))
    write_image(base / "deep" / "SeriesB" / "JPG4CBZ" / "0001.jpg", (8, 8))
    page = tmp_path / "vlm" / "Unknown" / "JPG4CBZ" / "0001.json"
    with pytest.raises(DataSpecError) as info:
        ImageResolver(base).resolve(None, page)
    assert info.value.file == str(page)


def test_resolve_index_disambiguates_by_series(tmp_path: Path) -> None:
    """With the series in the key, the index picks the one matching file."""
    base = tmp_path / "root"
    write_image(base / "deep" / "SeriesA" / "JPG4CBZ" / "0001.jpg", (8, 8))
    b = write_image(base / "deep" / "SeriesB" / "JPG4CBZ" / "0001.jpg", (8, 8))
    assert ImageResolver(base).resolve("SeriesB/JPG4CBZ/0001.jpg") == b


def test_resolve_index_does_not_match_contradicting_folders(tmp_path: Path) -> None:
    """The only `0001.jpg` in the root belongs to SeriesA: a SeriesB page must not get it."""
    base = tmp_path / "root"
    write_image(base / "deep" / "SeriesA" / "JPG4CBZ" / "0001.jpg", (8, 8))
    resolver = ImageResolver(base)
    # same folder, another series
    with pytest.raises(DataSpecError):
        resolver.resolve("SeriesB/JPG4CBZ/0001.jpg")
    # nothing in common but the stem
    with pytest.raises(DataSpecError):
        resolver.resolve("SeriesB/Other/0001.jpg")


def test_resolve_index_is_case_insensitive(tmp_path: Path) -> None:
    """Folder and file case may differ from the page's path (Windows-made data)."""
    base = tmp_path / "root"
    image = write_image(base / "x" / "Series" / "JPG4CBZ" / "0009.jpg", (8, 8))
    assert ImageResolver(base).resolve("series/jpg4cbz/0009.JPG") == image


def test_resolve_failure_raises(tmp_path: Path) -> None:
    """Nothing found: `DataSpecError` naming the requested path and the root."""
    base = tmp_path / "root"
    write_image(base / "A" / "0001.jpg", (8, 8))
    page = tmp_path / "p.json"
    with pytest.raises(DataSpecError) as info:
        ImageResolver(base).resolve("B/0999.jpg", page)
    message = str(info.value)
    assert "B/0999.jpg" in message
    assert str(base) in message
    assert info.value.file == str(page)


def test_resolve_without_roots_missing_file_raises(tmp_path: Path) -> None:
    """No root and a relative path: nothing to look under, so an error."""
    with pytest.raises(DataSpecError) as info:
        ImageResolver(None).resolve("A/0001.jpg")
    assert "no image root" in str(info.value)


def test_resolve_ignores_non_image_files(tmp_path: Path) -> None:
    """A JSON or text file with the page's stem is never returned as the image."""
    base = tmp_path / "root"
    write_json(base / "deep" / "S" / "JPG4CBZ" / "0005.json", {})
    (base / "S" / "JPG4CBZ").mkdir(parents=True)
    (base / "S" / "JPG4CBZ" / "0005.txt").write_text("x", encoding="utf-8")
    with pytest.raises(DataSpecError):
        ImageResolver(base).resolve("S/JPG4CBZ/0005.jpg")


# --- infer_image_relpath ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("json_path", "expected"),
    [
        # the parent folder and the stem, with .jpg
        ("/x/Series/JPG4CBZ/0001.json", "JPG4CBZ/0001.jpg"),
        # a chained JSON name keeps its image extension
        ("/x/Series/JPG4CBZ/0001.jpg.json", "JPG4CBZ/0001.jpg"),
        # a PNG named in the JSON name stays PNG
        ("/x/Series/JPG4CBZ/0001.png.json", "JPG4CBZ/0001.png"),
        # an upper-case .JSON suffix
        ("/x/A/0002.JSON", "A/0002.jpg"),
        # a bare file name has no parent folder
        ("0003.json", "0003.jpg"),
    ],
)
def test_infer_image_relpath(json_path: str, expected: str) -> None:
    """The seed's guess of the image path from a JSON path."""
    assert infer_image_relpath(json_path) == expected


def test_confined_resolver_refuses_paths_outside_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    inside = write_image(root / "S" / "0001.jpg")
    outside = write_image(tmp_path / "elsewhere" / "0002.jpg")
    (root / "S" / "link.jpg").symlink_to(outside)
    confined = ImageResolver(root, confine=True)
    assert confined.resolve("S/0001.jpg") == inside
    for sneaky in (str(outside), "../elsewhere/0002.jpg", "S/link.jpg"):  # absolute, .., symlink
        with pytest.raises(DataSpecError, match="outside the image roots"):
            confined.resolve(sneaky)
    assert ImageResolver(root).resolve(str(outside)) == outside  # not confined: allowed


def test_degenerate_paths_and_special_files_are_not_found(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_image(root / "S" / "0001.jpg")
    os.mkfifo(root / "S" / "0002.jpg")  # would block whoever opens it
    (root / "S" / "0003.jpg").symlink_to(root / "nowhere.jpg")  # dangling
    resolver = ImageResolver(root)
    for image in ("/", "E:\\", "S/0002.jpg", "S/0003.jpg"):
        with pytest.raises(DataSpecError, match="image not found"):
            resolver.resolve(image, tmp_path / "pages" / "x.json")
    # the JSON's own name is still tried when the explicit path names nothing
    assert resolver.resolve("/", tmp_path / "pages" / "S" / "0001.json").name == "0001.jpg"
    from dataspec.imagesize import image_size

    assert image_size(root / "S" / "0002.jpg") is None  # returns at once, never blocks
    with pytest.raises(DataSpecError, match="not a regular file"):
        dataspec_load(root / "S" / "0002.jpg")


def test_index_never_gives_a_page_another_series_image(tmp_path: Path) -> None:
    # regression: a JSON-derived key of only (JPG4CBZ, 0020) matched another series' page
    root = tmp_path / "root"
    other = write_image(root / "She Hulk 2014 01" / "JPG4CBZ" / "0020.jpg")
    resolver = ImageResolver(root)
    with pytest.raises(DataSpecError, match="image not found"):
        resolver.resolve(None, tmp_path / "pages" / "Paper Girls #3" / "JPG4CBZ_0020.json")
    with pytest.raises(DataSpecError, match="image not found"):
        resolver.resolve(None, tmp_path / "pages" / "Paper Girls #3" / "JPG4CBZ" / "0020.json")
    # its own series still resolves, through the index too (image moved under a batch folder)
    assert (
        resolver.resolve(None, tmp_path / "p" / "She Hulk 2014 01" / "JPG4CBZ_0020.json") == other
    )
