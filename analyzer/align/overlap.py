"""The `overlap` method of `analyzer.align`, for pages whose VLM panels carry boxes: an
optimal one-to-one assignment on IoU (`assign`, Hungarian), then detector and VLM merges, and
the reading direction the VLM's order of the pairs gives."""

from __future__ import annotations

import math
from collections.abc import Sequence

from dataspec.normalize import PanelRecord
from dataspec.order import reading_orders

from .geometry import _centre_in, _inside, iou
from .types import (
    CONTAIN,
    CREDIBLE_SCORE,
    MIN_IOU,
    ORDER_EVIDENCE,
    Alignment,
    Box,
    Missed,
    Part,
    Placement,
)


def assign(weights: Sequence[Sequence[float]]) -> list[tuple[int, int]]:
    """Rows and columns paired one to one maximising the total weight (Hungarian, O(n³)).

    Every row (or column, whichever are fewer) is paired; callers drop weak pairs.
    """
    n_rows = len(weights)
    n_cols = len(weights[0]) if n_rows else 0
    if not n_rows or not n_cols:
        return []
    flip = n_rows > n_cols
    cost = (
        [[-weights[r][c] for r in range(n_rows)] for c in range(n_cols)]
        if flip
        else [[-w for w in row] for row in weights]
    )
    n, m = len(cost), len(cost[0])  # n <= m
    inf = math.inf
    u = [0.0] * (n + 1)
    v = [0.0] * (m + 1)
    owner = [0] * (m + 1)  # owner[col] = row (1-based), 0 = free
    way = [0] * (m + 1)
    for row in range(1, n + 1):
        owner[0] = row
        col0 = 0
        minv = [inf] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[col0] = True
            r0 = owner[col0]
            delta, col1 = inf, 0
            for col in range(1, m + 1):
                if not used[col]:
                    cur = cost[r0 - 1][col - 1] - u[r0] - v[col]
                    if cur < minv[col]:
                        minv[col], way[col] = cur, col0
                    if minv[col] < delta:
                        delta, col1 = minv[col], col
            for col in range(m + 1):
                if used[col]:
                    u[owner[col]] += delta
                    v[col] -= delta
                else:
                    minv[col] -= delta
            col0 = col1
            if owner[col0] == 0:
                break
        while col0:
            col1 = way[col0]
            owner[col0] = owner[col1]
            col0 = col1
    pairs = [(owner[c] - 1, c - 1) for c in range(1, m + 1) if owner[c]]
    return sorted((c, r) if flip else (r, c) for r, c in pairs)


def _pair_confidence(value: float, runner_up: float) -> float:
    """IoU 0.4 and more with no close rival is sure (0.3: half); a rival up to half the
    pair's IoU costs nothing, one as good as the pair halves it."""
    if value <= 0:
        return 0.0
    base = min(1.0, max(0.0, (value - 0.2) / 0.2))
    close = min(1.0, max(0.0, (runner_up / value - 0.5) / 0.5))
    return base * (1.0 - 0.5 * close)


def _overlap(
    dets: Sequence[Box],
    scores: Sequence[float],
    vlm: Sequence[PanelRecord],
    det_text: Sequence[int],
    rtl_prior: float,
    orphans: Sequence[Box] = (),
) -> Alignment:
    """The `overlap` alignment; `orphans`: the detector's lettered boxes in no detection."""
    boxed = [j for j, r in enumerate(vlm) if r.box is not None]
    vboxes = {j: vlm[j].box for j in boxed}
    table = [[iou(d, vboxes[j]) for j in boxed] for d in dets]  # type: ignore[arg-type]
    parts: dict[int, list[Part]] = {}
    conf: dict[int, float] = {}
    kind: dict[int, str] = {}
    partner: dict[int, int] = {}  # vlm -> det
    value_of: dict[int, float] = {}  # det -> IoU with its assigned VLM box
    for i, col in assign(table):
        value = table[i][col]
        if value < MIN_IOU:
            continue
        j = boxed[col]
        parts[i] = [Part(j)]
        value_of[i] = value
        conf[i] = 1.0  # the rivals are weighed once the merges are known
        kind[i] = "pair"
        partner[j] = i
    # detector merge: a free VLM box mostly inside a paired detection
    for j in boxed:
        if j in partner:
            continue
        vb = vboxes[j]
        best = max(parts, key=lambda i: _inside(vb, dets[i]), default=None)  # type: ignore[arg-type]
        if best is None or _inside(vb, dets[best]) < CONTAIN:  # type: ignore[arg-type]
            continue
        own = parts[best][0].vlm
        if _inside(vboxes[own], dets[best]) < CONTAIN:  # type: ignore[arg-type]
            continue
        parts[best].append(Part(j))
        conf[best] = min(conf[best], _contain_confidence(_inside(vb, dets[best])))  # type: ignore[arg-type]
        kind[best] = "detector_merge"
        partner[j] = best
    # VLM merge: a free detection mostly inside a paired VLM box
    tied: dict[int, int] = {}  # the free detection -> the paired one sharing its VLM box
    for i, d in enumerate(dets):
        if i in parts:
            continue
        host = max(partner, key=lambda j: _inside(d, vboxes[j]), default=None)  # type: ignore[arg-type]
        if host is None or _inside(d, vboxes[host]) < CONTAIN:  # type: ignore[arg-type]
            continue
        j = host
        k = partner[j]
        if kind.get(k) != "pair":
            continue
        _split_merge(i, k, j, dets, vlm[j], scores, det_text, parts, conf, kind)
        tied[i] = k
    _weigh_rivals(table, boxed, parts, value_of, conf, tied)
    for ps in parts.values():
        ps.sort(key=lambda p: p.vlm)
    rank = tuple(
        float(parts[i][0].vlm) if parts.get(i) else _merged_rank(i, dets, vboxes)
        for i in range(len(dets))
    )
    placements = tuple(
        Placement(i, tuple(parts[i]), round(conf[i], 4), kind[i]) for i in sorted(parts)
    )
    evidence = _direction_evidence(dets, rank)
    rtl = evidence + math.log(rtl_prior / (1 - rtl_prior)) > 0
    missed = _missed(dets, vboxes, partner, orphans)
    return Alignment("overlap", placements, "rtl" if rtl else "ltr", rank, evidence, missed)


def _missed(
    dets: Sequence[Box],
    vboxes: dict[int, Box | None],
    partner: dict[int, int],
    orphans: Sequence[Box],
) -> tuple[Missed, ...]:
    """VLM boxes paired with no detection that hold lettering the detector boxed outside
    every detection: panels the detector missed. Confidence: the share of the VLM box no
    detection covers (a box mostly under detections is more likely a misplaced one)."""
    out = []
    for j, vb in vboxes.items():
        if j in partner or vb is None:
            continue
        inside = tuple(b for b in orphans if _centre_in(b, vb))
        if inside:
            covered = max((_inside(vb, d) for d in dets), default=0.0)
            out.append(Missed(j, inside, round(1.0 - covered, 4)))
    return tuple(out)


def _weigh_rivals(
    table: Sequence[Sequence[float]],
    boxed: Sequence[int],
    parts: dict[int, list[Part]],
    value_of: dict[int, float],
    conf: dict[int, float],
    tied: dict[int, int],
) -> None:
    """Each assigned pair's confidence against its best rival: a VLM box or detection it
    could have had instead. Boxes of the same merge (the halves of a VLM split, the two
    detections in one VLM box) are one placement, never each other's rivals."""
    col_of = {j: c for c, j in enumerate(boxed)}
    mine = {i: {p.vlm for p in ps} for i, ps in parts.items()}
    for i, value in value_of.items():
        if i not in parts:
            continue
        own = mine[i]
        sharing = {k for k, vs in mine.items() if vs & own}
        rival = max(
            [table[i][c] for j, c in col_of.items() if j not in own]
            + [
                table[k][col_of[j]]
                for j in own
                if j in col_of
                for k in range(len(table))
                if k not in sharing
            ],
            default=0.0,
        )
        conf[i] = min(conf[i], _pair_confidence(value, rival))
    for i, k in tied.items():
        if i in conf and k in conf:
            conf[i] = min(conf[i], conf[k])


def _merged_rank(i: int, dets: Sequence[Box], vboxes: dict[int, Box | None]) -> float:
    """The VLM position of the box a detection without text lies in (a VLM merge), or inf."""
    inside = [j for j, b in vboxes.items() if b is not None and _inside(dets[i], b) >= CONTAIN]
    return float(min(inside)) if inside else math.inf


def _contain_confidence(share: float) -> float:
    return min(1.0, max(0.0, (share - 0.4) / 0.4))


def _split_merge(
    i: int,
    k: int,
    j: int,
    dets: Sequence[Box],
    record: PanelRecord,
    scores: Sequence[float],
    det_text: Sequence[int],
    parts: dict[int, list[Part]],
    conf: dict[int, float],
    kind: dict[int, str],
) -> None:
    """Detections `i` (free) and `k` (paired) both lie in VLM box `j`: route its lines."""
    items = record.text_items or ()
    lines = len(record.text.lines())
    share = _contain_confidence(_inside(dets[i], record.box))  # type: ignore[arg-type]
    # a second panel, not a stray box: scored high and not lying inside another detection
    credible = scores[i] >= CREDIBLE_SCORE and not any(
        _inside(dets[i], d) >= 0.5 for n, d in enumerate(dets) if n != i
    )
    if items and all(t.box is not None for t in items):
        mine = tuple(n for n, t in enumerate(items) if _centre_in(t.box, dets[i]))  # type: ignore[arg-type]
        rest = tuple(n for n in range(len(items)) if n not in mine)
        parts[k] = [Part(j, rest)] if rest else []
        if not credible:  # maybe a piece of one panel: its lines are placed nowhere
            return
        parts[i] = [Part(j, mine)] if mine else []
    elif not credible:
        return
    elif lines == 0 or det_text[i] == 0:
        parts[i] = []
    elif det_text[k] == 0:
        parts[i], parts[k] = [Part(j)], []
    else:  # both hold lettering and nothing says which line is whose: both unknown
        del parts[k], conf[k], kind[k]
        return
    conf[i] = min(conf[k], share)
    conf[k] = min(conf[k], share)
    kind[i] = kind[k] = "vlm_merge"


def _direction_evidence(dets: Sequence[Box], rank: Sequence[float]) -> float:
    """Log odds right-to-left from the VLM's order of the paired detections: the pairs it
    puts the left-to-right way round minus those it puts the other way (Kendall distance),
    each worth `ORDER_EVIDENCE`; positive when the VLM reads right to left."""
    paired = [i for i in range(len(dets)) if rank[i] != math.inf]
    if len(paired) < 2:
        return 0.0
    boxes = [dets[i] for i in paired]
    by_vlm = sorted(range(len(paired)), key=lambda n: rank[paired[n]])
    ltr, rtl = (_discord(by_vlm, order) for order in reading_orders(boxes))
    return float(ltr - rtl) * ORDER_EVIDENCE


def _discord(a: Sequence[int], b: Sequence[int]) -> int:
    """Pairs of items the two orders put the other way round (Kendall distance)."""
    pos = {x: n for n, x in enumerate(b)}
    seq = [pos[x] for x in a]
    return sum(1 for x in range(len(seq)) for y in range(x + 1, len(seq)) if seq[x] > seq[y])
