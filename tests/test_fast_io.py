"""The fast paths of `dataspec.paths` and `dataspec.io`: answers equal to the slow ones.

`ImageResolver` answers "is this candidate a file?" from folder listings read once; the
atomic write creates its temp file with `os.open` and renames it. These tests check the
answers against `os.path.isfile` and the documented write guarantees on real files.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath

import pytest

from dataspec.errors import DataSpecError
from dataspec.io import atomic_open, atomic_write_bytes, read_bytes, write_atomic
from dataspec.keys import page_key
from dataspec.paths import ImageResolver, posix_parts
from tests.conftest import write_image

_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


@pytest.mark.parametrize(
    "text", ["", "/", "//", "///", "//a/b", "///a", "a/./b/", "./", ".", "a//b", "../x", "E:/a"]
)
def test_posix_parts_is_purepath_parts(text: str) -> None:
    assert posix_parts(text) == list(PurePosixPath(text).parts)


@pytest.mark.skipif(os.name == "nt", reason="POSIX file kinds")
def test_listing_answers_as_isfile_would(tmp_path: Path) -> None:
    """Every kind of entry a folder may hold is a file exactly when `os.path.isfile` says so."""
    root = tmp_path / "root"
    folder = root / "S"
    image = write_image(folder / "0001.jpg", (8, 8))
    (folder / "0002.jpg").symlink_to(image)  # a symlink to a file: a file
    (folder / "0003.jpg").symlink_to(folder / "nowhere.jpg")  # dangling
    (folder / "0004.jpg").symlink_to(folder / "0004.jpg")  # a loop
    os.mkfifo(folder / "0005.jpg")
    (folder / "0006.jpg").mkdir()
    (folder / "0007.jpg").symlink_to(folder / "0006.jpg")  # a symlink to a folder
    resolver = ImageResolver(root)
    for n in range(1, 9):
        path = str(folder / f"000{n}.jpg")
        assert resolver._is_file(path) == os.path.isfile(path), path
    assert not resolver._is_file(str(root / "missing" / "0001.jpg"))
    assert not resolver._is_file(str(image / "inside-a-file.jpg"))


def test_a_listed_folder_is_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first page of a folder, its other pages cost no `stat`."""
    root = tmp_path / "root"
    for n in range(1, 4):
        write_image(root / "S" / "JPG4CBZ" / f"000{n}.jpg", (8, 8))
    resolver = ImageResolver(root)
    first = resolver.resolve("S/JPG4CBZ/0001.png")  # extension variants tried
    assert first == root / "S" / "JPG4CBZ" / "0001.jpg"
    # the folders a Windows path names under the root are missing: listed once, as missing
    assert resolver.find("E:\\Comics\\S\\JPG4CBZ\\0001.jpg") == str(first)

    calls: list[str] = []
    expected = [root / "S" / "JPG4CBZ" / "0002.jpg", str(root / "S" / "JPG4CBZ" / "0003.jpg")]
    with monkeypatch.context() as patch:
        for module, name in ((os, "stat"), (os.path, "isfile"), (os, "scandir")):
            real = getattr(module, name)

            def counted(*args: object, _real: object = real, _name: str = name) -> object:
                calls.append(_name)
                return _real(*args)  # type: ignore[operator]

            patch.setattr(module, name, counted)
        found = [
            resolver.resolve("S/JPG4CBZ/0002.jpg"),
            resolver.find("E:\\Comics\\S\\JPG4CBZ\\0003.jpg"),
        ]
    assert found == expected
    assert calls == []


def test_relative_roots_follow_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative root is read from the current folder at each call, listings included."""
    for side in ("one", "two"):
        write_image(tmp_path / side / "images" / "S" / f"{side}.jpg", (8, 8))
    resolver = ImageResolver("images")
    monkeypatch.chdir(tmp_path / "one")
    assert resolver.resolve("S/one.jpg") == tmp_path / "one" / "images" / "S" / "one.jpg"
    monkeypatch.chdir(tmp_path / "two")
    assert resolver.resolve("S/two.jpg") == tmp_path / "two" / "images" / "S" / "two.jpg"
    with pytest.raises(DataSpecError, match="image not found"):
        resolver.resolve("S/one.jpg")


def test_no_root_tries_only_an_absolute_path(tmp_path: Path) -> None:
    image = write_image(tmp_path / "S" / "0001.jpg", (8, 8))
    resolver = ImageResolver(None)
    assert resolver.find(str(image)) == str(image)
    with pytest.raises(DataSpecError, match="no image root was given"):
        resolver.resolve("E:\\Comics\\S\\0001.jpg", tmp_path / "vlm" / "S" / "0001.json")


def test_page_key_reads_containers_series_and_parents() -> None:
    key = page_key("E:\\Root\\Top\\X-Men 01\\jpg4cbz\\pages\\JPG4CBZ_0007.jpg")
    assert (key.series, key.containers, key.stem, key.parents) == (
        "X-Men 01",
        ("jpg4cbz", "pages", "jpg4cbz"),
        "0007",
        ("Top", "Root"),
    )
    assert key.series_page == "xmen01#7"
    assert page_key("") == page_key("/./") == page_key("E:\\")


# --- atomic writes ----------------------------------------------------------------------------


def test_atomic_write_makes_the_folder_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "x.json"
    write_atomic(str(target), b"one")
    assert target.read_bytes() == b"one"
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_atomic_write_gives_a_new_file_the_usual_mode(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        write_atomic(str(tmp_path / "x.json"), b"{}")
        with atomic_open(tmp_path / "y.csv") as fh:
            fh.write("a\n")
    finally:
        os.umask(umask)
    for name in ("x.json", "y.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640


def test_atomic_write_replaces_a_symlink_never_its_target(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_bytes(b"keep")
    link = tmp_path / "out" / "x.json"
    link.parent.mkdir()
    link.symlink_to(elsewhere)
    write_atomic(str(link), b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert elsewhere.read_bytes() == b"keep"


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.csv"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("half")
        raise RuntimeError("killed")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.csv"]


def test_temp_files_are_named_as_the_cleanup_expects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.<name>.<8 characters>.tmp` beside the target, the name `remove_stale_temps` matches."""
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_atomic(str(tmp_path / "page.json"), b"{}")
    match = _TEMP.match(seen[0])
    assert match is not None and match["name"] == "page.json"


def test_a_file_where_the_folder_should_be_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("x", encoding="utf-8")
    with pytest.raises(OSError):
        write_atomic(str(tmp_path / "a" / "x.json"), b"{}")


def test_read_bytes_reads_whole_files_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    for size in (0, 1, 4095, 4096, 3 * 1024 * 1024 + 7):
        data = os.urandom(size)
        (tmp_path / f"f{size}").write_bytes(data)
        assert read_bytes(tmp_path / f"f{size}") == data
    os.mkfifo(tmp_path / "fifo")  # opened without blocking, then refused
    (tmp_path / "folder").mkdir()
    for name, why in (("fifo", "not a regular file"), ("folder", "not a regular file"),
                      ("missing", "cannot read: No such file or directory")):  # fmt: skip
        with pytest.raises(DataSpecError) as caught:
            read_bytes(tmp_path / name)
        assert why in str(caught.value) and name in str(caught.value)
    (tmp_path / "locked").write_bytes(b"{}")
    os.chmod(tmp_path / "locked", 0)
    if os.geteuid() != 0:  # root reads it anyway
        with pytest.raises(DataSpecError, match="cannot read: Permission denied"):
            read_bytes(tmp_path / "locked")
