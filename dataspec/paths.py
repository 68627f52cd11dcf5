"""Paths: discovering page JSONs, converting Windows paths, resolving page images.

The analyzer and the trainer both call these; neither has its own path rules.
"""

from __future__ import annotations

import functools
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import DataSpecError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""Image extensions tried when a page's image must be found (case-insensitive)."""

_CHAINED = (".jpg.png", ".png.jpg", ".jpeg.png", ".jpg.jpg", ".png.png")
_WINDOWS_ABS = re.compile(r"^([A-Za-z]):[\\/]")
_IMAGE_EXT_SET = frozenset(IMAGE_EXTS)
_STEM_EXTS = frozenset((*IMAGE_EXTS, ".json"))
_POSIX = os.name != "nt"


CONTAINERS = frozenset(
    {
        "jpg4cbz",
        "jpg4cbr",
        "cbz",
        "cbr",
        "jpg",
        "jpeg",
        "png",
        "webp",
        "pages",
        "page",
        "images",
        "image",
        "img",
        "imgs",
        "scans",
        "scan",
    }
)
"""Folder names (letters and digits, lower case) that hold pages but name no series."""

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=65536)
def alnum(text: str) -> str:
    """Lower-case letters and digits only, accents removed."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    return _NOT_ALNUM.sub("", text.casefold())


def is_container(name: str) -> bool:
    """True for a generic folder that holds pages but names no series (`JPG4CBZ`, `pages`)."""
    return alnum(name) in CONTAINERS


def posix_parts(text: str) -> list[str]:
    """`PurePosixPath(text).parts` by string work (no `Path` made): a `/` or `//` root,
    then the parts without empty ones and `.`."""
    parts = [p for p in text.split("/") if p and p != "."]
    if text[:1] == "/":
        parts.insert(0, "//" if text[:2] == "//" and text[:3] != "///" else "/")
    return parts


def _name_parts(path: str | os.PathLike[str]) -> list[str]:
    """The parts of `Path(path)` below its root (`Path.name` is the last one)."""
    if not _POSIX:
        pure = Path(path)
        return list(pure.parts[1:] if pure.anchor else pure.parts)
    text = os.fspath(path)
    return [p for p in text.split("/") if p and p != "."]


def is_windows_path(path: str) -> bool:
    """True for a drive-letter path such as `E:\\Comics\\x.jpg`."""
    return bool(_WINDOWS_ABS.match(path))


def windows_to_local(path: str, image_root: str | os.PathLike[str] | None = None) -> str:
    """`E:\\a\\b.jpg` → `/mnt/e/a/b.jpg` when the image root is a `/mnt/*` path (WSL).

    On Windows, or for a path that is not a drive-letter path, the path is returned
    unchanged; otherwise backslashes become slashes.
    """
    if os.name == "nt" or not is_windows_path(path):
        return path
    rest = "/".join(p for p in path[3:].replace("\\", "/").split("/") if p and p != ".")
    if image_root is not None and str(image_root).replace("\\", "/").startswith("/mnt/"):
        return f"/mnt/{path[0].lower()}/{rest}"
    return path.replace("\\", "/")


def split_roots(
    value: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> list[str]:
    """Image roots from a comma/semicolon separated string or a sequence."""
    if value is None:
        return []
    items = [value] if isinstance(value, str | os.PathLike) else list(value)
    roots: list[str] = []
    for item in items:
        text = os.fspath(item)
        parts = re.split(r"[;,]", text) if not os.path.exists(text) else [text]
        roots.extend(p.strip() for p in parts if p.strip())
    return roots


def discover(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    image_root: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Page JSON paths from directories (recursive `*.json`), `.txt` lists and files.

    A list file has one path per line; blank lines are skipped, a relative line is taken
    relative to the current directory if it exists there, else to the list's folder,
    and Windows paths are converted as `windows_to_local` says. Duplicates are removed;
    directory listings are sorted so the order is deterministic.
    """
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    seen: set[str] = set()
    out: list[Path] = []

    def add(path: Path) -> None:
        key = os.path.normpath(os.fspath(path))
        if key not in seen:
            seen.add(key)
            out.append(path)

    for item in items:
        path = Path(item)
        if path.is_dir():
            for found in sorted(path.rglob("*.json")):
                if found.is_file():
                    add(found)
        elif path.suffix.lower() == ".txt":
            for line in _read_list(path):
                local = Path(windows_to_local(line, image_root))
                if not local.is_absolute() and not local.exists():
                    local = path.parent / local
                add(local)
        elif path.exists():
            add(path)
        else:
            raise DataSpecError("no such file or directory", file=path)
    return out


def _read_list(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise DataSpecError(f"cannot read list: {exc.strerror}", file=path) from exc
    return [line.strip() for line in text.splitlines() if line.strip()]


@functools.lru_cache(maxsize=16384)
def image_stem(name: str) -> str:
    """A file name without its image/JSON extensions: `0001.jpg.png` → `0001`; case kept."""
    stem = name
    while True:
        base, ext = os.path.splitext(stem)
        if base and ext.lower() in _STEM_EXTS:
            stem = base
        else:
            return stem


@functools.lru_cache(maxsize=2048)
def _name_variants(name: str) -> tuple[str, ...]:
    """File names an image called `name` (or named after a JSON) may have on disk."""
    stem = image_stem(name)
    names = [name] if os.path.splitext(name)[1].lower() in _IMAGE_EXT_SET else []
    for ext in IMAGE_EXTS:
        names.extend((stem + ext, stem + ext.upper()))
    names.extend(stem + chain for chain in _CHAINED)
    return tuple(dict.fromkeys(names))


def infer_image_relpath(json_path: str | os.PathLike[str]) -> str:
    """The seed's guess for a JSON with no image field: `<parent>/<stem>.jpg` (unresolved)."""
    path = Path(json_path)
    stem = path.name[: -len(".json")] if path.name.lower().endswith(".json") else path.stem
    if os.path.splitext(stem)[1].lower() not in IMAGE_EXTS:
        stem += ".jpg"
    parent = path.parent.name
    return f"{parent}/{stem}" if parent else stem


_LISTED_ENTRIES = 65536
"""Folder entries one `ImageResolver` keeps (about 100 bytes each): beyond that the
oldest folders are dropped (the last one listed is kept, however big)."""

_Listing = dict[str, bool | None] | bool
"""A folder's entries by name (True: a regular file, False: something else, None: a
symlink, followed when asked); False: no such folder; True: not listable (ask `stat`)."""


def _kind(entry: os.DirEntry[str]) -> bool | None:
    """True for a regular file, False for anything else, None for a symlink (from the
    folder listing: no system call where the file system gives the entry's type)."""
    try:
        if entry.is_symlink():
            return None
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return None


def _fold(name: str) -> str:
    """A file name as a case- and normalization-insensitive file system compares it."""
    return unicodedata.normalize("NFC", name).casefold()


class ImageResolver:
    """Finds a page's image under one or more image roots.

    Order: the explicit path (absolute, WSL-converted, or relative to a root, with
    extension variants) → inference from the JSON's name and parent folders → a
    one-time index of each root (built on first need; O(1) lookups afterwards).
    Only existing files are returned; failure raises `DataSpecError` listing what was tried.
    With `confine=True` a file outside the roots (an absolute path elsewhere, `..`, or a
    symlink leading out) is refused with `DataSpecError`.

    Whether a candidate path is a file is answered from its folder's listing, read once
    per resolver (`os.scandir`), so a page costs dictionary look-ups, not system calls; a
    folder that cannot be listed, or a name that differs from a listed one only in case
    or Unicode form, is asked with `os.stat`. Files added to a folder after it was listed
    are not seen by that resolver.
    """

    def __init__(
        self,
        image_roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
        *,
        confine: bool = False,
    ):
        self.roots = [Path(r) for r in split_roots(image_roots)]
        self.confine = confine
        self._root_strs = [str(r) for r in self.roots]
        self._real_roots = [os.path.realpath(r) for r in self.roots]
        self._index: dict[tuple[str, ...], list[str]] | None = None
        self._lock = threading.Lock()
        self._folders: dict[str, _Listing] = {}
        self._listed = 0
        """Entries in `_folders`."""
        self._folded: dict[str, frozenset[str]] = {}
        self._folders_lock = threading.Lock()

    def inside_roots(self, path: str | os.PathLike[str]) -> bool:
        """True when `path`, symlinks followed, lies under one of the image roots."""
        real = os.path.realpath(path)
        return any(
            real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self._real_roots
        )

    def resolve(
        self,
        image_path: str | None,
        json_path: str | os.PathLike[str] | None = None,
    ) -> Path:
        """The existing image for a page, as an absolute path."""
        return Path(self.find(image_path, json_path))

    def find(
        self,
        image_path: str | None,
        json_path: str | os.PathLike[str] | None = None,
    ) -> str:
        """`resolve`'s answer as a string (no `Path` is made): the existing image, absolute."""
        seen: dict[str, None] = {}
        for candidate in self._candidates(image_path, json_path):
            if candidate in seen:
                continue
            seen[candidate] = None
            if self._is_file(candidate):
                return self._checked(candidate, image_path, json_path)
        found = self._from_index(image_path, json_path)
        if found is not None:
            return self._checked(found, image_path, json_path)
        tried = list(seen)
        shown = "; ".join(tried[:12]) + (f"; … {len(tried) - 12} more" if len(tried) > 12 else "")
        if not self.roots:
            raise DataSpecError(
                f"image not found for page_image_path={image_path!r}: no image root was given "
                "(--image_roots for the analyzer, --image_root or --image-root elsewhere), so "
                "only an existing absolute path can be found"
                + (f"; tried {shown}" if tried else ""),
                file=json_path,
            )
        roots = ", ".join(map(str, self.roots))
        raise DataSpecError(
            f"image not found for page_image_path={image_path!r} under {roots}; tried "
            f"{shown or 'no path under a root'} and the index of each root",
            file=json_path,
        )

    def _checked(
        self, found: str, image_path: str | None, json_path: str | os.PathLike[str] | None
    ) -> str:
        """`found` as an absolute path; with `confine`, refused unless inside the roots."""
        if self.confine and not self.inside_roots(found):
            raise DataSpecError(
                f"page_image_path={image_path!r} resolves to {found}, outside the image roots "
                f"({', '.join(map(str, self.roots)) or 'none given'})",
                file=json_path,
            )
        return os.path.abspath(found)

    def _is_file(self, path: str) -> bool:
        """`os.path.isfile(path)`, answered from the listing of its folder where it can be."""
        if not _POSIX:
            return os.path.isfile(path)
        full = path
        if path[:1] != "/":
            try:
                full = os.getcwd() + "/" + path
            except OSError:
                return os.path.isfile(path)
        folder, _, name = full.rpartition("/")
        if name in ("", ".", ".."):
            return os.path.isfile(path)
        folder = folder or "/"
        listing = self._folders.get(folder)
        if listing is None:
            listing = self._list(folder)
        if listing is False:
            return False
        if listing is True:
            return os.path.isfile(path)
        if name in listing:
            kind = listing[name]
            if kind is None:  # a symlink: followed once
                kind = listing[name] = os.path.isfile(path)
            return kind
        folded = self._folded.get(folder)
        if folded is None:
            folded = self._folded[folder] = frozenset(_fold(n) for n in listing)
        # a case-insensitive file system (WSL's /mnt/*, macOS) may still have it
        return _fold(name) in folded and os.path.isfile(path)

    def _list(self, folder: str) -> _Listing:
        """The folder's entries (kept for the next pages of that folder)."""
        listing: _Listing
        try:
            with os.scandir(folder) as entries:
                listing = {e.name: _kind(e) for e in entries}
        except (FileNotFoundError, NotADirectoryError, ValueError):
            listing = False
        except OSError:  # a folder one may enter but not list, a loop, a name too long
            listing = True
        size = len(listing) if isinstance(listing, dict) else 1
        with self._folders_lock:
            while self._folders and self._listed + size > _LISTED_ENTRIES:
                oldest = next(iter(self._folders))
                dropped = self._folders.pop(oldest)
                self._listed -= len(dropped) if isinstance(dropped, dict) else 1
                self._folded.pop(oldest, None)
            self._folders[folder] = listing
            self._listed += size
        return listing

    def _candidates(
        self, image_path: str | None, json_path: str | os.PathLike[str] | None
    ) -> Iterator[str]:
        """Paths to try, most likely first (generated lazily: the first hit ends the search)."""
        roots = self._root_strs
        join = os.path.join
        if image_path:
            local = windows_to_local(image_path, roots[0] if roots else None)
            posix = local.replace("\\", "/")
            if os.path.isabs(local):
                folder, name = os.path.split(local)
                yield join(folder, name)
                for variant in _name_variants(name):
                    yield join(folder, variant)
            else:
                for root in roots:
                    yield join(root, posix)
            if not roots:  # what follows is looked for under a root
                return
            parts = [p for p in posix_parts(posix) if p not in ("/", "")]
            if is_windows_path(image_path):
                parts = parts[1:]  # drop "E:"
            # the tail of the path under each root, longest first, with extension variants;
            # a bare file name only when the path names no folder ("/" names nothing)
            for depth in range(min(len(parts), 4), min(len(parts), 2) - 1, -1):
                if depth == 0:
                    break
                tail = parts[-depth:]
                for root in roots:
                    folder = join(root, *tail[:-1])
                    for variant in _name_variants(tail[-1]):
                        yield join(folder, variant)
        if json_path is not None and roots:
            names = _name_parts(json_path)
            name = names[-1] if names else ""
            base = name[:-5] if name.lower().endswith(".json") else name
            parent = names[-2] if len(names) > 1 else ""
            grand = names[-3] if len(names) > 2 else ""
            layouts: list[tuple[list[str], str]] = [([parent], base), ([grand, parent], base)]
            layouts.append(([], base))
            stem = image_stem(base)
            if "_" in stem:  # <Series>/JPG4CBZ_0001.json → <Series>/JPG4CBZ/0001.jpg
                head, rest = stem.split("_", 1)
                layouts.insert(0, ([parent, head], rest))
                layouts.append(([head], rest))
            for root in roots:
                for dirs, layout_name in layouts:
                    folder = join(root, *[d for d in dirs if d])
                    for variant in _name_variants(layout_name):
                        yield join(folder, variant)

    def _build_index(self) -> None:
        with self._lock:
            if self._index is not None:
                return
            index: dict[tuple[str, ...], list[str]] = {}
            for root in self._root_strs:
                for dirpath, files in _walk(root):
                    parent = os.path.basename(dirpath).lower()
                    grand = os.path.basename(os.path.dirname(dirpath)).lower()
                    for entry in files:
                        name = entry.name
                        if os.path.splitext(name)[1].lower() not in _IMAGE_EXT_SET:
                            continue
                        try:
                            if not entry.is_file():  # FIFOs, sockets, dangling links
                                continue
                        except OSError:  # a symlink loop
                            continue
                        full = os.path.join(dirpath, name)
                        stem = image_stem(name).lower()
                        for key in ((grand, parent, stem), (parent, stem), (stem,)):
                            index.setdefault(key, []).append(full)
            self._index = index

    def _from_index(
        self, image_path: str | None, json_path: str | os.PathLike[str] | None
    ) -> str | None:
        """A file the index holds under exactly one (folders, stem) key; never a guess."""
        if not self.roots:
            return None
        if self._index is None:
            self._build_index()
        assert self._index is not None
        # (folders + stem, how many trailing parts must match): every folder the image path
        # names must agree (up to three parts); a JSON's own folders may be arbitrary
        # (batch folders), so its keys need the parent folder and the stem, and one more
        # when that folder is a generic container (`JPG4CBZ`) that names no series.
        chains: list[tuple[list[str], int]] = []
        if image_path:
            parts = posix_parts(image_path.replace("\\", "/"))
            if parts:
                chain = [p for p in (*parts[:-1], image_stem(parts[-1])) if p not in ("/", "")]
                chains.append((chain, min(3, len(chain))))
        if json_path is not None:
            names = _name_parts(json_path)
            stem = image_stem(names[-1] if names else "")
            parent = names[-2] if len(names) > 1 else ""
            grand = names[-3] if len(names) > 2 else ""
            chains.append(([grand, parent, stem], 3 if is_container(parent) else 2))
            if "_" in stem:  # <Series>/JPG4CBZ_0001.json: the series must agree too
                head, rest = stem.split("_", 1)
                chains.append(([parent, head, rest], 3 if is_container(head) else 2))
        for depth in (3, 2, 1):
            for chain, needed in chains:
                if depth < needed or len(chain) < depth:
                    continue
                key = tuple(p.lower() for p in chain[-depth:])
                matches = self._index.get(key, [])
                if len(matches) == 1:
                    return matches[0]
        return None


def _walk(root: str) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
    """(folder, its non-folder entries by name) under `root`, top-down, folders in name
    order, symlinked folders not followed: `os.walk`'s order, with the entries kept."""
    stack = [root]
    while stack:
        top = stack.pop()
        dirs: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir()
                    except OSError:
                        is_dir = False
                    (dirs if is_dir else files).append(entry)
        except OSError:
            continue
        files.sort(key=lambda e: e.name)
        yield top, files
        for entry in sorted(dirs, key=lambda e: e.name, reverse=True):
            try:
                link = entry.is_symlink()
            except OSError:
                link = False
            if not link:
                stack.append(os.path.join(top, entry.name))
