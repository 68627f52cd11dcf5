"""`measure` of `heldout_alignment.py`: the analyzer's emitted pages, and three baselines made
from the corpus files alone, against the corpus truth. See `heldout_alignment.py`'s docstring.

Figures (each with its counts), per method:

- usable pages (VLM file readable JSON with a panel list, >= 1 panel detection scoring
  >= 0.5) and the share emitted;
- text on a wrong panel: text-bearing emitted panels carrying a line whose true panel the
  emitted panel does not cover (coverage: intersection / true-panel area >= 0.5, so a
  detector-merged box covers both its panels), or a line on no true panel;
- true lines on their own panel: of ALL true lines of usable pages, those in the text of an
  emitted panel covering their true panel (lines of pages not emitted count as not);
- unknown-text marks (`text_known: false`) and known-empty panels that cover a true panel
  with text (a wrong claim of no text); lines kept in `Page.unpaired_text`; "nothing lost":
  lines on their own panel or in `unpaired_text`;
- reading order: pages whose order puts the detections covering a true panel in the true
  order (a box sits at its first covered panel's place; spurious boxes ignored), all pages
  and right-to-left pages; absent `reading_order` is read as the panel list order.

Baselines: (a) pair by position when the counts are equal, else skip the page; (b) the
seed's pair by position always (zip to the shorter); both with detections (score >= 0.5) in
rows-then-left-to-right order, and (c) that order as the reading order of every usable page.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

Json = Any
Box = Sequence[int]
METHODS = ("analyzer", "a: equal-or-skip", "b: seed zip", "c: layout order")


# ---- reading the corpus files (baselines; no analyzer, no dataspec rule) -------------------


def vlm_lines(path: str) -> list[list[str]] | None:
    """Lettered lines per VLM panel, in the file's order; None when the file is unreadable."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    panels = doc.get("panels") if isinstance(doc, dict) else None
    if not isinstance(panels, list):
        return None
    out = []
    for p in panels:
        items = (p.get("text_content") or p.get("speakers") or []) if isinstance(p, dict) else []
        lines = []
        for it in items if isinstance(items, list) else []:
            text = it.get("text", it.get("dialogue")) if isinstance(it, dict) else None
            if isinstance(text, str) and text.strip():
                lines.append(text.strip())
        out.append(lines)
    return out


def panel_detections(out: Path) -> dict[str, list[tuple[list[int], float]]]:
    """Panel detections (category 1) scoring >= 0.5, by COCO image id."""
    with open(out / "predictions.json", encoding="utf-8") as fh:
        coco = json.load(fh)
    dets: dict[str, list[tuple[list[int], float]]] = {im["id"]: [] for im in coco["images"]}
    for a in coco["annotations"]:
        if a["category_id"] == 1 and a["score"] >= 0.5:
            dets.setdefault(a["image_id"], []).append((a["bbox"], a["score"]))
    return dets


def rows_order(boxes: Sequence[Box]) -> list[int]:
    """Plain rows then left to right: a box joins the current row when it overlaps the row's
    vertical span by half its height (or the row's), rows top to bottom."""
    rows: list[list[int]] = []
    lo = hi = 0
    for i in sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0])):
        y0, y1 = boxes[i][1], boxes[i][1] + boxes[i][3]
        if rows and min(hi, y1) - max(lo, y0) >= 0.5 * min(hi - lo, y1 - y0):
            rows[-1].append(i)
            lo, hi = min(lo, y0), max(hi, y1)
        else:
            rows.append([i])
            lo, hi = y0, y1
    return [i for row in rows for i in sorted(row, key=lambda i: (boxes[i][0], boxes[i][1]))]


@dataclass(slots=True)
class Emitted:
    """One emitted page as the measure sees it."""

    boxes: list[Box]
    lines: list[list[str]]
    known: list[bool]
    order: list[int]
    unpaired: set[str] = field(default_factory=set)


def baseline(
    rule: str, dets: list[tuple[list[int], float]], vlm: list[list[str]]
) -> Emitted | None:
    order = rows_order([b for b, _ in dets])
    boxes: list[Box] = [dets[i][0] for i in order]
    if rule == "a" and len(boxes) != len(vlm):
        return None
    lines = [vlm[i] if i < len(vlm) else [] for i in range(len(boxes))]
    return Emitted(list(boxes), lines, [True] * len(boxes), list(range(len(boxes))))


def from_page(page: Any) -> Emitted:
    unpaired = {ln for u in page.unpaired_text or () for ln in u.text.lines()}
    order = list(page.reading_order) if page.reading_order is not None else None
    return Emitted(
        [list(p.panel_coords) for p in page.panels],
        [p.text.lines() for p in page.panels],
        [p.text_known is not False for p in page.panels],
        order if order is not None else list(range(len(page.panels))),
        unpaired,
    )


# ---- scoring --------------------------------------------------------------------------------


def _inter(a: Box, b: Box) -> int:
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, iw) * max(0, ih)


@dataclass(slots=True)
class Tally:
    pages: int = 0  # usable pages
    emitted: int = 0
    text_panels: int = 0  # text-bearing emitted panels
    wrong_panels: int = 0  # ... carrying a line of a panel they do not cover (or of none)
    foreign_panels: int = 0  # ... carrying a line on no true panel
    lines: int = 0  # all true lines of the usable pages
    own: int = 0
    on_wrong_only: int = 0  # on an emitted panel, never on one covering its panel
    in_unpaired: int = 0
    kept: int = 0  # own or in unpaired_text
    text_true_panels: int = 0
    panels_right: int = 0  # text-bearing true panels whose lines all sit on one covering
    # emitted panel carrying no wrong line
    emitted_panels: int = 0
    unknown: int = 0  # text_known false
    unknown_over_text: int = 0  # ... covering a true panel with text
    false_empty: int = 0  # known and empty, covering a true panel with text
    order_pages: int = 0
    order_right: int = 0
    order_trivial: int = 0  # <= 1 covering detection: right whatever the order
    rtl_pages: int = 0
    rtl_right: int = 0

    def add(self, other: Tally) -> None:
        for f in fields(Tally):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def evaluate(truth: dict[str, Json], em: Emitted | None) -> Tally:
    """One usable page against its truth (`em` None: not emitted)."""
    tps = truth["panels"]
    owner = {ln: k for k, p in enumerate(tps) for ln in p["lines"]}
    t = Tally(pages=1, lines=len(owner), text_true_panels=sum(bool(p["lines"]) for p in tps))
    if em is None:
        return t
    t.emitted = 1
    cov = [
        {k for k, p in enumerate(tps) if _inter(b, p["box"]) >= 0.5 * p["box"][2] * p["box"][3]}
        for b in em.boxes
    ]
    wrong = [
        any(owner.get(ln, -1) not in c for ln in lines)
        for lines, c in zip(em.lines, cov, strict=True)
    ]
    t.emitted_panels = len(em.boxes)
    for lines, c, bad, known in zip(em.lines, cov, wrong, em.known, strict=True):
        covers_text = any(tps[k]["lines"] for k in c)
        t.text_panels += bool(lines)
        t.wrong_panels += bad
        t.foreign_panels += any(ln not in owner for ln in lines)
        t.unknown += not known
        t.unknown_over_text += not known and covers_text
        t.false_empty += known and not lines and covers_text
    anywhere = {ln for lines in em.lines for ln in lines}
    for ln, k in owner.items():
        own = any(k in c and ln in lines for lines, c in zip(em.lines, cov, strict=True))
        t.own += own
        t.on_wrong_only += not own and ln in anywhere
        t.in_unpaired += ln in em.unpaired
        t.kept += own or ln in em.unpaired
    for k, p in enumerate(tps):
        if p["lines"]:
            t.panels_right += any(
                k in c and not bad and set(p["lines"]) <= set(lines)
                for lines, c, bad in zip(em.lines, cov, wrong, strict=True)
            )
    places = [min(cov[i]) for i in em.order if i < len(cov) and cov[i]]
    right = all(a <= b for a, b in itertools.pairwise(places))
    t.order_pages, t.order_right, t.order_trivial = 1, int(right), int(len(places) <= 1)
    if truth["direction"] == "rtl":
        t.rtl_pages, t.rtl_right = 1, int(right)
    return t


def groups_of(truth: dict[str, Json]) -> list[str]:
    d, v = truth["det"], truth["vlm"]
    out = ["all"]
    out += ["det missed"] if d["missed"] or d["low_score"] else []
    out += ["det merged"] if d["merged"] else []
    out += ["det spurious >= 0.5"] if any(s["score"] >= 0.5 for s in d["spurious"]) else []
    out += [f"VLM {k}" for k in ("omitted", "merged", "split", "hallucinated") if v[k]]
    if truth["equal_by_coincidence"]:
        out.append("equal by coincidence")
    elif truth["equal_count"]:
        out.append("equal, untouched")
    else:
        out.append("unequal counts")
    out.append(f"{truth['direction']} pages")
    return out


GROUPS = (
    "all", "det missed", "det merged", "det spurious >= 0.5", "VLM omitted", "VLM merged",
    "VLM split", "VLM hallucinated", "equal by coincidence", "equal, untouched", "unequal counts",
    "ltr pages", "rtl pages",
)  # fmt: skip


# ---- the run ---------------------------------------------------------------------------------


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path)) if path else ""


def _read_csv(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def dataspec_files(where: str) -> list[str]:
    if where.endswith(".txt"):
        with open(where, encoding="utf-8") as fh:
            return [line.strip() for line in fh if line.strip()]
    return sorted(str(p) for p in Path(where).rglob("*.json"))


@dataclass(slots=True)
class Results:
    corpus: str
    pages: int
    usable: int
    files: int
    unloadable: list[str]
    unmatched: int
    tallies: dict[str, dict[str, Tally]]  # method -> group -> tally
    skips: Counter[str]
    not_usable: Counter[str]
    pairing: Counter[str]  # emitted pages' source.pairing / reading_order_source
    csv_rows: int
    csv_columns: dict[str, list[str]]  # pairing columns present -> their values (usable pages)
    confidence_right: list[tuple[float, Tally]] = field(default_factory=list)


def measure_results(out: Path, dataspec_dir: str, csv_path: str, skips_path: str | None) -> Results:
    import dataspec

    truths = [json.loads(line) for line in (out / "truth.jsonl").open(encoding="utf-8")]
    by_image = {_norm(t["image_path"]): t for t in truths}
    by_canon = {t["canonical_id"].lower(): t for t in truths}
    files = dataspec_files(dataspec_dir)
    pages: dict[str, Emitted] = {}
    pairing: Counter[str] = Counter()
    unloadable, unmatched = [], 0
    for path in files:
        try:
            page = dataspec.load(path)
        except dataspec.DataSpecError as exc:
            unloadable.append(f"{path}: {exc}")
            continue
        truth = by_image.get(_norm(page.page_image_path))
        vlm = page.source.vlm_json_path if page.source is not None else None
        if truth is None and vlm:
            truth = by_canon.get(vlm.replace("\\", "/").rsplit("vlm/", 1)[-1][:-5].lower())
        if truth is None:
            unmatched += 1
            continue
        pages[truth["image_path"]] = from_page(page)
        extra = (page.source.model_extra or {}) if page.source is not None else {}
        pairing[f"source.pairing={extra.get('pairing', '-')}"] += 1
        pairing[f"reading_order_source={page.reading_order_source or '-'}"] += 1

    skips: Counter[str] = Counter()
    skip_of: dict[str, str] = {}
    if skips_path:
        for row in _read_csv(skips_path)[1]:
            for col in ("image_path", "resolved_image_path"):
                t = by_image.get(_norm(row.get(col, "")))
                if t is not None:
                    skip_of[t["image_path"]] = row.get("reason", "?")
                    break
    columns, rows = _read_csv(csv_path)
    csv_by: dict[str, dict[str, str]] = {}
    for row in rows:
        for col in ("resolved_image_path", "image_path"):
            t = by_image.get(_norm(row.get(col, "")))
            if t is not None:
                csv_by[t["image_path"]] = row
                break
    wanted = ("pairing_method", "pairing_confidence", "unpaired_detections", "unpaired_vlm_panels")
    csv_columns: dict[str, list[str]] = {c: [] for c in wanted if c in columns}

    dets = panel_detections(out)
    tallies = {m: {g: Tally() for g in GROUPS} for m in METHODS}
    not_usable: Counter[str] = Counter()
    by_conf: list[tuple[float, Tally]] = []
    usable = 0
    for t in truths:
        vlines = vlm_lines(t["vlm_path"])
        page_dets = dets.get(t["image_id"], [])
        if vlines is None or not page_dets:
            not_usable["VLM unreadable" if vlines is None else "no detection >= 0.5"] += 1
            continue
        usable += 1
        em = pages.get(t["image_path"])
        if em is None:
            skips[skip_of.get(t["image_path"], "(not emitted, not in the skip log)")] += 1
        row = csv_by.get(t["image_path"], {})
        for col, values in csv_columns.items():
            values.append(row.get(col, ""))
        layout_order = baseline("b", page_dets, vlines)
        scored = {
            "analyzer": evaluate(t, em),
            "a: equal-or-skip": evaluate(t, baseline("a", page_dets, vlines)),
            "b: seed zip": evaluate(t, layout_order),
            "c: layout order": evaluate(t, layout_order),
        }
        with contextlib.suppress(ValueError):
            by_conf.append((float(row.get("pairing_confidence", "")), scored["analyzer"]))
        for g in groups_of(t):
            for m, s in scored.items():
                tallies[m][g].add(s)
    return Results(
        str(out), len(truths), usable, len(files), unloadable, unmatched, tallies, skips,
        not_usable, pairing, len(rows), csv_columns, by_conf,
    )  # fmt: skip


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}% ({n}/{d})" if d else "n/a (0/0)"


def summarize(truths: list[dict[str, Json]]) -> str:
    """The realized rates of a corpus (from its truth lines)."""
    n = len(truths)
    c: Counter[str] = Counter()
    diff: Counter[int] = Counter()
    for t in truths:
        diff[max(-3, min(3, t["counts"]["det"] - t["counts"]["vlm"]))] += 1
        d, v = t["det"], t["vlm"]
        c["rtl"] += t["direction"] == "rtl"
        c["old"] += t["schema"] == "old"
        c["equal"] += t["equal_count"]
        c["equal_all"] += t["counts"]["det_all"] == t["counts"]["vlm"]
        c["coincidence"] += t["equal_by_coincidence"]
        c["untouched"] += t["equal_count"] and not t["equal_by_coincidence"]
        if t["equal_by_coincidence"]:
            spur = any(s["score"] >= 0.5 for s in d["spurious"])
            c["co_miss_spur"] += bool(d["missed"]) and spur
            c["co_omit_spur"] += bool(v["omitted"]) and spur
            c["co_both_merge"] += bool(d["merged"]) and bool(v["merged"])
        for key in ("missed", "merged", "low_score"):
            c[f"det_{key}"] += bool(d[key])
        c["det_spurious"] += bool(d["spurious"])
        c["det_spurious_050"] += any(s["score"] >= 0.5 for s in d["spurious"])
        c["low_page"] += d["low_page"]
        for key in ("omitted", "merged", "split", "hallucinated"):
            c[f"vlm_{key}"] += bool(v[key])
        c["null_box"] += v["null_boxes"]
        c["panels"] += len(t["panels"])
        c["textless"] += sum(not p["lines"] for p in t["panels"])
        c["lines"] += sum(len(p["lines"]) for p in t["panels"])
    rows = [
        f"detector count (score >= 0.5) == VLM count: {_pct(c['equal'], n)} "
        f"(all detections: {_pct(c['equal_all'], n)}; user: 23.5%)",
        "equal by coincidence (equal counts, count-changing defects): "
        f"{_pct(c['coincidence'], n)}; "
        f"equal and untouched: {_pct(c['untouched'], n)}; coincidences with a detector miss + "
        f"a spurious box >= 0.5: {c['co_miss_spur']}, a VLM omission + a spurious box: "
        f"{c['co_omit_spur']}, merges on both sides: {c['co_both_merge']}",
        f"right-to-left pages {_pct(c['rtl'], n)}; old-schema replies {_pct(c['old'], n)}; "
        f"panels {c['panels']} ({_pct(c['textless'], c['panels'])} textless), lines {c['lines']}",
        "pages with detector "
        + ", ".join(
            f"{k} {_pct(c['det_' + k], n)}" for k in ("missed", "merged", "spurious", "low_score")
        )
        + f", spurious >= 0.5 {_pct(c['det_spurious_050'], n)}"
        + f", all under 0.5 {_pct(c['low_page'], n)}",
        "pages with VLM "
        + ", ".join(
            f"{k} {_pct(c['vlm_' + k], n)}" for k in ("omitted", "merged", "split", "hallucinated")
        )
        + f", a null panel box {_pct(c['null_box'], n)}",
        "detector - VLM count (score >= 0.5; ends clipped at 3): "
        + ", ".join(f"{k:+d}: {diff[k]}" for k in sorted(diff)),
    ]
    return "\n".join(rows)


# ---- the report ---------------------------------------------------------------------------------


def pct(n: int, d: int) -> str:
    return f"{100 * n / d:5.1f}% ({n}/{d})" if d else "  n/a (0/0)"


def _quantiles(values: list[float]) -> str:
    v = sorted(values)
    q = {p: v[min(len(v) - 1, math.floor(p / 100 * len(v)))] for p in (0, 10, 25, 50, 75, 90, 100)}
    return ", ".join(f"p{p} {x:.3g}" for p, x in q.items())


def report(r: Results) -> str:
    out: list[str] = []
    say = out.append
    say(
        f"corpus {r.corpus}: {r.pages} pages, usable {r.usable} (not usable: "
        f"{dict(r.not_usable) or 'none'}); DataSpec files {r.files} (strict-load failures "
        f"{len(r.unloadable)}, not matched {r.unmatched}); CSV rows {r.csv_rows}"
    )
    out += [f"  unloadable: {m}" for m in r.unloadable[:5]]
    alls = {m: r.tallies[m]["all"] for m in METHODS}
    w = 26
    say("\n== Side by side (usable pages; (c) is the order of every usable page)")
    say(f"{'':<44}" + "".join(f"{m:>{w}}" for m in METHODS))

    def row(label: str, cell: Any, methods: Sequence[str] = METHODS) -> None:
        say(
            f"{label:<44}"
            + "".join(f"{cell(alls[m]) if m in methods else '-':>{w}}" for m in METHODS)
        )

    text = METHODS[:3]
    row("1 usable pages emitted", lambda t: pct(t.emitted, t.pages))
    row(
        "2 text-bearing panels w/ wrong-panel line",
        lambda t: pct(t.wrong_panels, t.text_panels),
        text,
    )
    row("   ... with a line on no true panel", lambda t: pct(t.foreign_panels, t.text_panels), text)
    row("3 true lines on their own panel", lambda t: pct(t.own, t.lines), text)
    row("   true lines only on a wrong panel", lambda t: pct(t.on_wrong_only, t.lines), text)
    row(
        "   text-bearing true panels paired right",
        lambda t: pct(t.panels_right, t.text_true_panels),
        text,
    )
    row("4 emitted panels text_known false", lambda t: pct(t.unknown, t.emitted_panels), text)
    row(
        "   ... of them over a true panel with text",
        lambda t: pct(t.unknown_over_text, t.unknown),
        text,
    )
    row(
        "   known-empty panels over text (false 'none')",
        lambda t: pct(t.false_empty, t.emitted_panels),
        text,
    )
    row("   true lines in unpaired_text", lambda t: pct(t.in_unpaired, t.lines), text)
    row("   nothing lost: own panel or unpaired_text", lambda t: pct(t.kept, t.lines), text)
    row("5 reading order right, emitted pages", lambda t: pct(t.order_right, t.order_pages))
    row("   ... rtl pages", lambda t: pct(t.rtl_right, t.rtl_pages))
    row(
        "   ... pages with <= 1 covering box (trivial)",
        lambda t: pct(t.order_trivial, t.order_pages),
    )
    say(
        "   lines on unemitted pages count as not on their panel; a panel covers a true panel "
        "when it holds >= 50% of its area."
    )

    say(
        "\n== By defect (pages with it; a page can be in several): "
        "emitted / wrong-panel / own-panel / order"
    )
    for m in METHODS[:3]:
        say(f"-- {m}")
        for g in GROUPS:
            t = r.tallies[m][g]
            say(
                f"   {g:<22} pages {t.pages:>5}  emitted {pct(t.emitted, t.pages):>20}  wrong "
                f"{pct(t.wrong_panels, t.text_panels):>20}  own {pct(t.own, t.lines):>22}  order "
                f"{pct(t.order_right, t.order_pages):>20}"
            )

    say("\n== Analyzer: pages not emitted, by reason (usable pages)")
    say("   " + (", ".join(f"{k} {v}" for k, v in r.skips.most_common()) or "none"))
    say("   emitted pages: " + ", ".join(f"{k} {v}" for k, v in sorted(r.pairing.items())))
    say("\n== CSV pairing columns")
    for col in (
        "pairing_method",
        "pairing_confidence",
        "unpaired_detections",
        "unpaired_vlm_panels",
    ):
        if col not in r.csv_columns:
            say(f"   {col}: ABSENT")
            continue
        values = r.csv_columns[col]
        nums = []
        for v in values:
            with contextlib.suppress(ValueError):
                nums.append(float(v))
        if col == "pairing_method" or not nums:
            say(f"   {col}: {dict(Counter(values).most_common(12))}")
        else:
            say(
                f"   {col}: {len(nums)} numeric of {len(values)}; {_quantiles(nums)}; "
                f"sum {sum(nums):g}"
            )
    if r.confidence_right:
        ranked = sorted(r.confidence_right, key=lambda x: x[0])
        say("   analyzer by pairing_confidence quartile (low to high): wrong-panel / own-panel")
        for q in range(4):
            part = ranked[q * len(ranked) // 4 : (q + 1) * len(ranked) // 4]
            acc = Tally()
            for _, t in part:
                acc.add(t)
            lo, hi = (part[0][0], part[-1][0]) if part else (0.0, 0.0)
            say(
                f"   q{q + 1} [{lo:.3g}, {hi:.3g}] pages {len(part)}: "
                f"{pct(acc.wrong_panels, acc.text_panels)} / {pct(acc.own, acc.lines)}"
            )
    return "\n".join(out)


def measure(out: Path, dataspec_dir: str, csv_path: str, skips_path: str | None) -> str:
    return report(measure_results(out, dataspec_dir, csv_path, skips_path))
