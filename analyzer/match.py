"""Pages ↔ VLM JSONs, tier by tier: map → canonical id → exact key → series+page → fuzzy
(opt-in).

Each tier only sees pages the tiers before it left unmatched and VLM files no page has
claimed yet. Within a tier:

- a page with several candidates keeps the one whose folders above the series agree with
  its own the furthest (`PageKey.parents`); a tie is an ambiguity (`duplicate_vlm`);
- a VLM file several pages want goes to the page whose folders agree the furthest; a tie
  is an ambiguity (`vlm_claimed_twice`) for every page involved;
- an ambiguous page is never matched by a later tier (`match_tier` = `ambiguous`).

The canonical-id tier matches a VLM file whose path under `--vlm_dir` (without `.json`) is
the whole tail of the page's real image path (without extension), series folder included,
or the canonical id a `--manifest` gives the page's image path.

The series+page tier only runs for a normalized series spelled one way on each side
(twins such as "X-Men 01" / "X Men 01" are reported as `series_twins` and stay with their
exact keys). The fuzzy tier pairs a series that has no VLM counterpart with a VLM series
that has no image counterpart when their numbers agree and their letters are close.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dataspec.keys import PageKey, norm_path, page_key, page_number
from dataspec.paths import image_stem, is_container, is_windows_path

from .problems import Problem
from .vlm import MapEntry, VlmFile, locate_map_vlm

__all__ = [
    "AMBIGUITY_COLUMNS",
    "TIERS",
    "Ambiguity",
    "MatchResult",
    "canonical_key",
    "image_key",
    "match_pages",
    "real_paths",
]

TIERS = ("map", "canonical_id", "exact", "series_page", "fuzzy")
"""Match tiers, strongest first. A row's `match_tier` is one of these, `none` or `ambiguous`."""

FUZZY_MIN_RATIO = 0.85
"""Least difflib ratio between the letters of two series names for the fuzzy tier."""

AMBIGUITY_COLUMNS = ("kind", "key", "image_id", "image_path", "candidates", "detail")


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """A match that could not be made without guessing (or a series-name collision)."""

    kind: str
    key: str
    image_id: str
    image_path: str
    candidates: str
    detail: str
    page: int = -1
    """The page's index in the predictions file; -1 for a series-level row."""

    def row(self) -> tuple[str, ...]:
        """The CSV row."""
        return (self.kind, self.key, self.image_id, self.image_path, self.candidates, self.detail)


@dataclass
class MatchResult:
    """Per page: the matched VLM file (or None), the tier and the key used."""

    vlm: list[VlmFile | None]
    tier: list[str]
    key: list[str]
    ambiguities: list[Ambiguity] = field(default_factory=list)
    """Page-level ambiguities, in predictions-file order."""
    series_twins: list[Ambiguity] = field(default_factory=list)
    """Series-level collisions (not tied to one page)."""
    problems: list[Problem] = field(default_factory=list)


def _agreement(a: Sequence[str], b: Sequence[str]) -> int:
    """How many folders above the series agree, nearest first."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _best(scores: dict[int, int]) -> int | None:
    """The key with the strictly highest score, or None on a tie."""
    top = max(scores.values())
    winners = [k for k, v in scores.items() if v == top]
    return winners[0] if len(winners) == 1 else None


_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"[^a-z]+")


def _numbers(series_norm: str) -> tuple[int, ...]:
    return tuple(int(d) for d in _DIGITS.findall(series_norm))


class _Matcher:
    """Match state shared by the tiers: chosen file per page, claimed files, ambiguities."""

    def __init__(
        self,
        ids: Sequence[int | str],
        paths: Sequence[str],
        keys: Sequence[PageKey],
        vlm_files: list[VlmFile],
    ) -> None:
        self.ids, self.paths, self.keys = ids, paths, keys
        self.files = vlm_files
        self.file_index: dict[str, int] = {f.path: i for i, f in enumerate(vlm_files)}
        n = len(keys)
        self.chosen: list[int] = [-1] * n
        self.tier: list[str] = ["none"] * n
        self.key: list[str] = [k.series_page for k in keys]
        self.claimed: set[int] = set()
        self.ambiguous: dict[int, Ambiguity] = {}

    def file_id(self, f: VlmFile) -> int:
        """The index of a VLM file, added when new (map files outside --vlm_dir)."""
        found = self.file_index.get(f.path)
        if found is None:
            found = self.file_index[f.path] = len(self.files)
            self.files.append(f)
        return found

    def open_pages(self) -> list[int]:
        """Pages neither matched nor ambiguous yet."""
        return [i for i in range(len(self.keys)) if self.chosen[i] < 0 and i not in self.ambiguous]

    def flag(self, page: int, kind: str, key: str, cands: Sequence[int], detail: str) -> None:
        """Mark a page ambiguous (no later tier will match it)."""
        self.ambiguous[page] = Ambiguity(
            kind,
            key,
            str(self.ids[page]),
            self.paths[page],
            " | ".join(self.files[c].path for c in cands),
            detail,
            page,
        )

    def agreement(self, page: int, file: int) -> int:
        """How far the folders above the series of a page and of a VLM file agree."""
        return _agreement(self.keys[page].parents, self.files[file].key.parents)

    def run_tier(
        self,
        tier: str,
        proposals: dict[int, tuple[str, list[int]]],
        rank: Callable[[int, int], int] | None = None,
    ) -> None:
        """Settle one tier: page → (key, candidate file ids) → matches and ambiguities.

        Several candidates of a page, or several pages wanting a file, are told apart by
        `rank(page, file)` (default: `agreement`); a tie is an ambiguity.
        """
        rank = rank or self.agreement
        wanted: dict[int, list[int]] = defaultdict(list)
        picks: dict[int, tuple[str, int]] = {}
        for page, (key, cands) in proposals.items():
            cands = sorted({c for c in cands if c not in self.claimed})
            if not cands:
                continue
            if len(cands) > 1:
                scores = {c: rank(page, c) for c in cands}
                pick = _best(scores)
                if pick is None:
                    self.flag(page, "duplicate_vlm", key, cands, f"{tier}: several VLM JSONs")
                    continue
            else:
                pick = cands[0]
            picks[page] = (key, pick)
            wanted[pick].append(page)
        for file, pages in wanted.items():
            winner = pages[0]
            if len(pages) > 1:
                scores = {p: rank(p, file) for p in pages}
                best = _best(scores)
                if best is None:
                    for page in pages:
                        self.flag(
                            page,
                            "vlm_claimed_twice",
                            picks[page][0],
                            [file],
                            f"{tier}: {len(pages)} pages want this VLM JSON",
                        )
                    continue
                winner = best
            self.chosen[winner] = file
            self.tier[winner] = tier
            self.key[winner] = picks[winner][0]
            self.claimed.add(file)


def match_pages(
    ids: Sequence[int | str],
    paths: Sequence[str],
    vlm_files: Sequence[VlmFile],
    *,
    keys: Sequence[PageKey],
    vlm_map: Sequence[MapEntry] = (),
    map_file: str | None = None,
    vlm_dir: str | None = None,
    fuzzy: bool = False,
    manifest: Mapping[str, str] | None = None,
) -> MatchResult:
    """Match every page (image id, image path, page key) to at most one VLM file.

    `manifest` maps image keys (`image_key`) to canonical ids ('' for none).
    """
    m = _Matcher(ids, paths, keys, list(vlm_files))
    problems: list[Problem] = []
    if vlm_map:
        _map_tier(m, vlm_map, map_file or "", vlm_dir, problems)
    _canonical_tier(m, manifest or {})
    by_exact: dict[str, list[int]] = defaultdict(list)
    by_sp: dict[str, list[int]] = defaultdict(list)
    vlm_spell: dict[str, set[str]] = defaultdict(set)
    for i, f in enumerate(m.files):
        by_exact[f.key.exact].append(i)
        by_sp[f.key.series_page].append(i)
        vlm_spell[f.key.series_norm].add(f.key.series)
    img_spell: dict[str, set[str]] = defaultdict(set)
    for k in keys:
        img_spell[k.series_norm].add(k.series)

    exact = [k.exact for k in keys]
    m.run_tier(
        "exact",
        {i: (exact[i], by_exact[exact[i]]) for i in m.open_pages() if exact[i] in by_exact},
    )

    proposals: dict[int, tuple[str, list[int]]] = {}
    for i in m.open_pages():
        k = keys[i]
        cands = [c for c in by_sp.get(k.series_page, ()) if c not in m.claimed]
        if not cands:
            continue
        spellings = img_spell[k.series_norm] | vlm_spell[k.series_norm]
        if len(img_spell[k.series_norm]) > 1 or len(vlm_spell[k.series_norm]) > 1:
            m.flag(
                i,
                "series_twins",
                k.series_page,
                cands,
                "series+page: the series is spelled " + " / ".join(sorted(spellings)),
            )
            continue
        proposals[i] = (k.series_page, cands)
    m.run_tier("series_page", proposals)

    if fuzzy:
        _fuzzy_tier(m, keys, by_sp, img_spell, vlm_spell)

    twins = [
        Ambiguity(
            "series_twins",
            norm,
            "",
            "",
            " | ".join(sorted(img_spell.get(norm, set()) | vlm_spell.get(norm, set()))),
            "series names that reduce to the same key; kept apart by their exact keys",
        )
        for norm in sorted(set(img_spell) | set(vlm_spell))
        if len(img_spell.get(norm, set()) | vlm_spell.get(norm, set())) > 1
    ]
    extra = _extra_vlm(m, by_sp)
    result = MatchResult(
        vlm=[m.files[c] if c >= 0 else None for c in m.chosen],
        tier=m.tier,
        key=m.key,
        ambiguities=[
            a for _, a in sorted([*m.ambiguous.items(), *extra], key=lambda item: item[0])
        ],
        series_twins=twins,
        problems=problems,
    )
    for i in m.ambiguous:
        result.tier[i] = "ambiguous"
    return result


def _extra_vlm(m: _Matcher, by_sp: dict[str, list[int]]) -> list[tuple[int, Ambiguity]]:
    """Matched pages with another, unclaimed VLM JSON of the same series folder and page."""
    out: list[tuple[int, Ambiguity]] = []
    for i, file in enumerate(m.chosen):
        if file < 0:
            continue
        series = m.files[file].key.series
        others = [
            c
            for c in by_sp.get(m.files[file].key.series_page, ())
            if c != file and c not in m.claimed and m.files[c].key.series == series
        ]
        if others:
            out.append(
                (
                    i,
                    Ambiguity(
                        "extra_vlm",
                        m.key[i],
                        str(m.ids[i]),
                        m.paths[i],
                        " | ".join(m.files[c].path for c in [file, *others]),
                        f"{m.tier[i]} match kept (first listed); the others are not used",
                        i,
                    ),
                )
            )
    return out


def canonical_key(text: str) -> str:
    """A canonical id (or a VLM path under --vlm_dir without `.json`) as compared: forward
    slashes, no leading or trailing slash, case folded."""
    return text.replace("\\", "/").strip("/").casefold()


def _strip_ext(path: str) -> str:
    """`a/b/0001.jpg` → `a/b/0001` (image extensions, chained ones too)."""
    head, sep, name = path.rpartition("/")
    return f"{head}{sep}{image_stem(name)}"


def image_key(path: str) -> str:
    """An image path as compared with a manifest's: `norm_path` without its extension, a
    drive-letter path in its WSL form (`E:\\a\\b.jpg` and `/mnt/e/a/b.png` compare equal)."""
    if is_windows_path(path):
        path = f"/mnt/{path[0]}/{path[3:]}"
    return _strip_ext(norm_path(path))


def real_paths(path: str, from_id: bool) -> list[str]:
    """The image paths a page's path may stand for, `/`-separated.

    A path taken from a string image id (no file_name said better) is the user's
    detector's mangled form: the image path with its last separator turned into `_`
    (`…\\Saga\\JPG4CBZ_0001.jpg` names `…/Saga/JPG4CBZ/0001.jpg`). Its last part is then
    not a real file name: each `_` in it is tried as that separator instead. Any other path
    stands for itself.
    """
    text = path.replace("\\", "/")
    head, sep, name = text.rpartition("/")
    if not from_id or "_" not in name:
        return [text]
    out = []
    for i, char in enumerate(name):
        if char == "_" and 0 < i < len(name) - 1:
            out.append(f"{head}{sep}{name[:i]}/{name[i + 1 :]}")
    return out


def _tail_parts(path: str) -> list[str]:
    """The parts of a `/` path without drive, empty parts and the last part's extension."""
    if is_windows_path(path):
        path = path[2:]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if parts:
        parts[-1] = image_stem(parts[-1])
    return parts


def _series_depth(parts: Sequence[str]) -> int:
    """Trailing parts down to the series folder (page, containers, series); 0 without one."""
    i = len(parts) - 2
    while i >= 0 and is_container(parts[i]):
        i -= 1
    return len(parts) - i if i >= 0 else 0


def _no_json(rel: str) -> str:
    return rel[:-5] if rel.lower().endswith(".json") else rel


def _canonical_tier(m: _Matcher, manifest: Mapping[str, str]) -> None:
    """VLM files whose path under --vlm_dir is the tail of a page's real image path.

    The tail is whole trailing parts, compared case- and separator-insensitively, reaching
    at least the series folder (so never another series' page); the longest tail found
    wins. A `--manifest` row whose image is the page's image and whose `<canonical_id>.json`
    is indexed adds that file. Several files for a page, or a file for several pages, are
    told apart by an exact-case match (a manifest match counts as one), else they are
    ambiguities.
    """
    index: dict[str, list[int]] = defaultdict(list)
    for i, f in enumerate(m.files):
        if f.rel is not None:
            index[canonical_key(_no_json(f.rel))].append(i)
    if not index:
        return
    depths = sorted({key.count("/") + 1 for key in index}, reverse=True)  # longest first
    exact_case: set[tuple[int, int]] = set()
    proposals: dict[int, tuple[str, list[int]]] = {}
    for page in m.open_pages():
        ident = m.ids[page]
        path = m.paths[page] or str(ident)
        variants = real_paths(path, from_id=isinstance(ident, str) and path == ident)
        best = 0
        cands: dict[int, str] = {}  # file → the tail it matched (as written)
        for variant in variants:
            parts = _tail_parts(variant)
            least = _series_depth(parts)
            if least < 2:
                continue
            for depth in depths:
                if depth > len(parts) or depth < max(least, best):
                    continue
                tail = "/".join(parts[-depth:])
                hits = index.get(tail.casefold())
                if hits is None:
                    continue
                if depth > best:
                    best, cands = depth, {}
                if depth == best:
                    cands.update((h, tail) for h in hits)
                break
        for file, tail in cands.items():
            if _no_json(m.files[file].rel or "") == tail:
                exact_case.add((page, file))
        if manifest:
            for variant in variants:
                cid = manifest.get(image_key(variant)) or ""
                for file in index.get(canonical_key(cid), ()) if cid else ():
                    cands.setdefault(file, cid)
                    if _no_json(m.files[file].rel or "") == cid:
                        exact_case.add((page, file))
        if cands:
            proposals[page] = (cands[min(cands)], sorted(cands))
    m.run_tier("canonical_id", proposals, rank=lambda p, f: int((p, f) in exact_case))
    for page in proposals:  # the key of a match: the canonical id as the VLM tree spells it
        if m.tier[page] == "canonical_id":
            m.key[page] = _no_json(m.files[m.chosen[page]].rel or "")


def _map_tier(
    m: _Matcher,
    entries: Sequence[MapEntry],
    map_file: str,
    vlm_dir: str | None,
    problems: list[Problem],
) -> None:
    """Pages named by the map (by image path, else by the image's exact key)."""
    by_rel = {f.rel: f for f in m.files if f.rel is not None}
    map_dir = os.path.dirname(os.path.abspath(map_file)) if map_file else os.getcwd()
    by_path: dict[str, list[MapEntry]] = defaultdict(list)
    by_exact: dict[str, list[MapEntry]] = defaultdict(list)
    for entry in entries:
        if entry.image is not None:
            by_path[norm_path(entry.image)].append(entry)
            by_exact[page_key(entry.image).exact].append(entry)
        else:
            by_exact[page_key(entry.vlm).exact].append(entry)
    located: dict[str, int | None] = {}
    proposals: dict[int, tuple[str, list[int]]] = {}
    for i in m.open_pages():
        key = m.keys[i].exact
        hits = (by_path.get(norm_path(m.paths[i])) if m.paths[i] else None) or by_path.get(
            norm_path(str(m.ids[i]))
        )
        hits = hits or by_exact.get(key)
        if not hits:
            continue
        cands: list[int] = []
        for entry in hits:
            if entry.vlm not in located:
                found = locate_map_vlm(entry.vlm, map_dir, vlm_dir, by_rel)
                located[entry.vlm] = m.file_id(found) if found is not None else None
                if found is None:
                    problems.append(
                        Problem(map_file, entry.where, f"VLM JSON not found: {entry.vlm}")
                    )
            file = located[entry.vlm]
            if file is not None:
                cands.append(file)
        if cands:
            proposals[i] = (key, cands)
    m.run_tier("map", proposals)


def _fuzzy_tier(
    m: _Matcher,
    keys: Sequence[PageKey],
    by_sp: dict[str, list[int]],
    img_spell: dict[str, set[str]],
    vlm_spell: dict[str, set[str]],
) -> None:
    """Orphan image series ↔ orphan VLM series with equal numbers and close letters."""
    orphans_vlm: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for norm in sorted(vlm_spell):
        if norm and norm not in img_spell:
            orphans_vlm[_numbers(norm)].append(norm)
    series_for: dict[str, str | None] = {}
    ties: dict[str, list[str]] = {}
    for norm in sorted(img_spell):
        if not norm or norm in vlm_spell:
            continue
        letters = _LETTERS.sub("", norm)
        scores: dict[str, float] = {}
        for cand in orphans_vlm.get(_numbers(norm), ()):
            other = _LETTERS.sub("", cand)
            if letters and other and (letters in other or other in letters):
                ratio = 1.0 if letters == other else 0.95
            else:
                ratio = difflib.SequenceMatcher(None, letters, other).ratio()
            if ratio >= FUZZY_MIN_RATIO:
                scores[cand] = ratio
        if not scores:
            continue
        top = max(scores.values())
        best = sorted(c for c, v in scores.items() if v == top)
        series_for[norm] = best[0] if len(best) == 1 else None
        if len(best) > 1:
            ties[norm] = best
    proposals: dict[int, tuple[str, list[int]]] = {}
    for i in m.open_pages():
        k = keys[i]
        if k.series_norm not in series_for:
            continue
        target = series_for[k.series_norm]
        if target is None:
            cands = [
                c for s in ties[k.series_norm] for c in by_sp.get(f"{s}#{page_number(k.stem)}", ())
            ]
            if cands:
                m.flag(i, "fuzzy_tie", k.series_page, cands, "fuzzy: several series fit")
            continue
        key = f"{target}#{page_number(k.stem)}"
        if key in by_sp:
            proposals[i] = (key, list(by_sp[key]))
    m.run_tier("fuzzy", proposals)
