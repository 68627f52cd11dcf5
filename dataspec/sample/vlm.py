"""The VLM's reply for a page, in the old schema or the production one, with its defects.

The VLM lists panels in the true reading order, but not always the true panels: it merges
two consecutive panels (``MERGE_PAGE`` of pages), splits one in two (``SPLIT_PAGE``), often
leaves out a panel with no lettering (``OMIT_TEXTLESS`` of such panels) and rarely makes one
up (``HALLUCINATE_PAGE``). Both schemas are the user's (docs: user-data.md):

- old: ``overall_summary``, ``panels[{panel_number, caption, description, speakers[{character,
  dialogue, speech_type}], key_elements, actions}]``, ``summary{characters, setting, plot,
  dialogue}``; no boxes.
- production: ``panels[{panel_number, box_2d, description, text_content[{label, speaker, text,
  box_2d}], characters[{name, box_2d}], faces[{character, box_2d}]}]`` with ``box_2d`` as
  ``[ymin, xmin, ymax, xmax]`` on 0-1000, plus the worker's ``canonical_id``, ``model``,
  ``usage`` and ``processed_at``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from . import content
from .layout import union
from .truth import Box, DrawnPanel, Line, Names, PageSpec, VlmDefects

OMIT_TEXTLESS = 0.6
"""Share of panels without lettering that the VLM leaves out."""
MERGE_PAGE = 0.2
"""Share of pages on which the VLM describes two consecutive panels as one."""
SPLIT_PAGE = 0.1
"""Share of pages on which the VLM describes one panel as two."""
HALLUCINATE_PAGE = 0.03
"""Share of pages with a panel the VLM made up."""
MILD_OFF_PAGE = 0.08
"""``disagreement=False``: pages whose VLM count is off by one (a merge or a split)."""

MODEL = "gemini-2.5-flash"
LABELS = {"dialogue": "dialogue", "thought": "thought", "narration": "caption", "sfx": "sfx"}
"""Production ``text_content`` labels by line kind (sfx is one beyond the three asked)."""


@dataclass
class _Unit:
    """One reply panel: the true panels it shows (none: made up), or one half of a panel."""

    panels: list[int]
    half: int | None = None
    lines: list[Line] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    figures: list[tuple[str, Box]] = field(default_factory=list)
    faces: list[tuple[str, Box]] = field(default_factory=list)
    box: Box | None = None


def _half_box(box: Box, half: int, rtl: bool) -> Box:
    """The first (0) or second (1) half of a panel in reading order."""
    x, y, w, h = box
    if w >= h:
        a, b = w // 2, w - w // 2
        first_left = not rtl
        left = (x, y, a, h)
        right = (x + a, y, b, h)
        return (left if first_left else right) if half == 0 else (right if first_left else left)
    a = h // 2
    return (x, y, w, a) if half == 0 else (x, y + a, w, h - a)


def _inside(part: Box | None, box: Box) -> bool:
    """The centre of ``part`` lies in ``box`` (no part: yes)."""
    if part is None:
        return True
    cx, cy = part[0] + part[2] / 2, part[1] + part[3] / 2
    return box[0] <= cx < box[0] + box[2] and box[1] <= cy < box[1] + box[3]


def _fill(unit: _Unit, panels: list[DrawnPanel], rtl: bool) -> _Unit:
    """Gather what the unit's panels (or half) show."""
    for i in unit.panels:
        p = panels[i]
        box = p.box if unit.half is None else _half_box(p.box, unit.half, rtl)
        unit.box = union(unit.box, box)
        unit.lines += [ln for ln in p.lines if _inside(ln.box, box)]
        unit.figures += [f for f in p.figures if _inside(f[1], box)]
        unit.faces += [f for f in p.faces if _inside(f[1], box)]
    unit.names = list(dict.fromkeys(name for name, _ in unit.figures))
    unit.actions = [a for i in unit.panels for a in panels[i].actions if a.split()[0] in unit.names]
    return unit


def _units(
    rng: random.Random, spec: PageSpec, panels: list[DrawnPanel], d: VlmDefects
) -> list[_Unit]:
    """The reply's panels as units, defects applied, in true reading order."""
    units = [_Unit([i]) for i in range(len(panels))]
    if spec.disagreement:
        keep = [
            u for u in units if not (panels[u.panels[0]].textless and rng.random() < OMIT_TEXTLESS)
        ]
        units = keep or units[:1]
        d.omitted = sorted(set(range(len(panels))) - {u.panels[0] for u in units})
        merge = len(units) >= 2 and rng.random() < MERGE_PAGE
        split = rng.random() < SPLIT_PAGE
        made_up = rng.random() < HALLUCINATE_PAGE
    else:
        off = rng.random() < MILD_OFF_PAGE
        merge = off and len(units) >= 2 and rng.random() < 0.5
        split, made_up = off and not merge, False
    if merge:
        k = rng.randrange(len(units) - 1)
        a, b = units[k], units[k + 1]
        d.merged.append(a.panels + b.panels)
        units[k : k + 2] = [_Unit(a.panels + b.panels)]
    singles = [k for k, u in enumerate(units) if len(u.panels) == 1]
    if split and singles:
        k = rng.choice(singles)
        i = units[k].panels[0]
        d.split.append(i)
        units[k : k + 1] = [_Unit([i], 0), _Unit([i], 1)]
    if made_up:
        k = rng.randint(0, len(units))
        units.insert(k, _Unit([]))
        d.hallucinated.append(k)
    d.panels = [list(u.panels) for u in units]
    return [_fill(u, panels, spec.rtl) for u in units]


def _caption(rng: random.Random, u: _Unit, place: tuple[str, str]) -> str:
    shot = rng.choice(content.SHOTS)
    if u.half == 1:
        return "Close-up continuing the previous moment."
    if not u.panels:
        return f"{shot} of {place[1]}, a passer-by in the distance."
    where = f"{place[0]} {place[1]}"
    return (
        f"{shot} of {content.who(u.names)} {where}." if u.names else f"{shot} of {place[1]}, empty."
    )


def _description(caption: str, u: _Unit, place: tuple[str, str]) -> str:
    desc = [caption, f"The background shows {place[1]} in muted colours."]
    desc += [a + "." for a in u.actions]
    if any(ln.kind in ("dialogue", "thought") for ln in u.lines):
        desc.append("Speech balloons carry the conversation.")
    if any(ln.kind == "narration" for ln in u.lines):
        desc.append("A caption box narrates.")
    return " ".join(desc)


def box_2d(rng: random.Random, box: Box, size: tuple[int, int], frac: float = 0.01) -> list[int]:
    """``box`` as the production VLM gives it: ``[ymin, xmin, ymax, xmax]`` on 0-1000,
    each edge off by up to ``frac`` of the page."""
    w, h = size
    x, y, bw, bh = box

    def at(v: float, extent: int) -> int:
        return max(0, min(1000, round(1000 * v / extent + rng.uniform(-frac, frac) * 1000)))

    return [at(y, h), at(x, w), at(y + bh, h), at(x + bw, w)]


def _old_panel(
    rng: random.Random, u: _Unit, place: tuple[str, str], caption_label: str
) -> dict[str, Any]:
    caption = _caption(rng, u, place)
    elements = [*u.names, place[1].split(" ", 1)[1]]
    if any(ln.kind == "sfx" for ln in u.lines):
        elements.append("sound effect")
    kinds = {"narration": caption_label}
    return {
        "caption": caption,
        "description": _description(caption, u, place),
        "key_elements": elements,
        "actions": list(u.actions),
        "speakers": [
            {
                "character": ln.speaker,
                "dialogue": ln.text,
                "speech_type": kinds.get(ln.kind, ln.kind),
            }
            for ln in u.lines
        ],
    }


def _production_panel(
    rng: random.Random, u: _Unit, place: tuple[str, str], size: tuple[int, int]
) -> dict[str, Any]:
    w, h = size
    box = u.box
    if box is None:  # made up: somewhere on the page
        bw, bh = rng.randint(w // 5, w // 2), rng.randint(h // 6, h // 3)
        box = (rng.randint(0, w - bw), rng.randint(0, h - bh), bw, bh)
    return {
        "box_2d": box_2d(rng, box, size, 0.012),
        "description": _description(_caption(rng, u, place), u, place),
        "text_content": [
            {
                "label": LABELS[ln.kind],
                "speaker": ln.speaker if ln.kind in ("dialogue", "thought") else None,
                "text": ln.text,
                "box_2d": box_2d(rng, ln.box, size, 0.004) if ln.box else None,
            }
            for ln in u.lines
        ],
        "characters": [{"name": n, "box_2d": box_2d(rng, b, size, 0.01)} for n, b in u.figures],
        "faces": [{"character": n, "box_2d": box_2d(rng, b, size, 0.006)} for n, b in u.faces],
    }


def _worker_fields(rng: random.Random, spec: PageSpec, n_panels: int) -> dict[str, Any]:
    """What the production worker adds besides ``canonical_id``: model, token usage, time."""
    prompt = 1290 + rng.randint(0, 40)
    completion = 120 + 95 * n_panels + rng.randint(0, 60)
    minute = spec.seed % (60 * 24 * 28)
    return {
        "model": MODEL,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
        "processed_at": (
            f"2026-02-{1 + minute // 1440:02d}T{minute % 1440 // 60:02d}:{minute % 60:02d}:00Z"
        ),
    }


def vlm_reply(
    spec: PageSpec,
    names: Names,
    panels: list[DrawnPanel],
    place: tuple[str, str],
    size: tuple[int, int],
) -> tuple[dict[str, Any], VlmDefects]:
    """The VLM JSON for one page (in the series' schema) and the defects it carries."""
    rng = random.Random(f"vlm:{spec.seed}")
    defects = VlmDefects()
    units = _units(rng, spec, panels, defects)
    cast = list(dict.fromkeys(n for p in panels for n in p.names))
    who = content.who(cast) if cast else "The cast"
    plot, mood = rng.choice(content.PLOTS), rng.choice(content.MOODS)
    summary = f"{who} {plot} {place[0]} {place[1]} in a {mood} scene."
    if spec.schema == "old":
        label = "caption" if rng.random() < 0.3 else "narration"
        reply: dict[str, Any] = {
            "overall_summary": summary,
            "panels": [_old_panel(rng, u, place, label) for u in units],
            "summary": {
                "characters": sorted(cast),
                "setting": place[1],
                "plot": plot,
                "dialogue": [ln.text for u in units for ln in u.lines if ln.kind != "sfx"],
            },
        }
    else:
        reply = {
            "overall_summary": summary,
            "panels": [_production_panel(rng, u, place, size) for u in units],
            "canonical_id": names.canonical_id,
            **_worker_fields(rng, spec, len(units)),
        }
    for k, p in enumerate(reply["panels"], 1):
        p["panel_number"] = k
    return reply, defects
