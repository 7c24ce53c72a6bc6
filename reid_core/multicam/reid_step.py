"""The re-identification step of a tracker: who is the person who just ENTERED the room?

The entering person's crops are compared with the stored embeddings of every identity NOT
inside ("mean of min" Euclidean distance on L2-normalised embeddings); above a threshold
calibrated on a SEPARATE sequence the person gets a new identity. The gallery keeps at
most `max_images_per_id` per identity ("recent" by default, or "diverse"). The choices
and why: docs/ARCHITECTURE.md, "Module notes: reid_core/multicam/reid_step.py".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping, Sequence

import numpy as np

__all__ = [
    "Assignment",
    "IdentityGallery",
    "assign",
    "ReIDStep",
    "Entry",
    "Exit",
    "SequenceResult",
    "run_sequence",
    "entry_correctness",
    "Calibration",
    "calibrate_threshold",
    "DEFAULT_THRESHOLDS",
]

Policy = Literal["recent", "diverse"]

# Distances between unit vectors lie in [0, 2]: a grid of 0.01 covers every useful threshold.
DEFAULT_THRESHOLDS = np.round(np.arange(0.0, 2.0 + 1e-9, 0.01), 4)


def _as_embeddings(x: object, what: str, allow_empty: bool = False) -> np.ndarray:
    """[n, D] float32, rows L2-normalised; a clear ValueError for anything else."""
    array = np.asarray(x, dtype=np.float32)
    if array.ndim == 1 and array.size > 0:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"{what}: expected an [n, D] array of embeddings, got shape {array.shape}")
    if array.shape[1] == 0:
        raise ValueError(f"{what}: embeddings of dimension 0 (shape {array.shape})")
    if array.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{what}: no embedding (shape {array.shape}); an entry needs at least one crop")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: non-finite values in the embeddings")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    if (norms <= 0).any():
        raise ValueError(f"{what}: an all-zero embedding cannot be normalised")
    return array / norms


def _pairwise(q: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Euclidean distances between unit rows: sqrt(2 - 2 q.g), clipped at 0."""
    return np.sqrt(np.clip(2.0 - 2.0 * (q @ g.T), 0.0, None))


@dataclass(frozen=True)
class Assignment:
    """Decision for one entering person.

    identity: the re-used identity, or None = open a new one. distance: the best
    (smallest) query-to-identity distance, inf with an empty gallery. candidates:
    (identity, distance) for every gallery identity, closest first.
    """

    identity: int | None
    distance: float
    candidates: tuple[tuple[int, float], ...] = ()
    reason: str = ""  # "match" | "above_threshold" | "empty_gallery" | "no_query"

    @property
    def is_new(self) -> bool:
        return self.identity is None


class IdentityGallery:
    """Embeddings of the identities that are not tracked right now, bounded per identity."""

    def __init__(self, max_images_per_id: int = 10, policy: Policy = "recent") -> None:
        if max_images_per_id < 1:
            raise ValueError(f"max_images_per_id must be >= 1, got {max_images_per_id}")
        if policy not in ("recent", "diverse"):
            raise ValueError(f"policy must be 'recent' or 'diverse', got {policy!r}")
        self.max_images_per_id = int(max_images_per_id)
        self.policy = policy
        self._store: dict[int, np.ndarray] = {}
        self._dim: int | None = None

    # Container protocol ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, identity: object) -> bool:
        return identity in self._store

    def identities(self) -> list[int]:
        return list(self._store)

    def embeddings(self, identity: int) -> np.ndarray:
        return self._store[identity]

    @property
    def dim(self) -> int | None:
        return self._dim

    # Updates -----------------------------------------------------------------------------
    def add(self, identity: int, embeddings: object) -> None:
        """Store embeddings of `identity` (appended to what it has, oldest first), bounded.

        An empty [0, D] array stores the identity with what it already had (possibly
        nothing: such an identity is never matched but is listed).
        """
        new = _as_embeddings(embeddings, f"gallery.add({identity})", allow_empty=True)
        if self._dim is None:
            self._dim = new.shape[1]
        elif new.shape[1] != self._dim:
            raise ValueError(
                f"gallery.add({identity}): embeddings of dimension {new.shape[1]}, "
                f"the gallery holds dimension {self._dim}"
            )
        old = self._store.get(identity)
        allv = new if old is None else np.concatenate([old, new])
        self._store[identity] = self._bound(allv)

    update = add  # an identity seen again while still in the gallery gets more images

    def remove(self, identity: int) -> np.ndarray | None:
        """Take `identity` out (it entered the room); returns what it held, None if absent."""
        return self._store.pop(identity, None)

    def _bound(self, e: np.ndarray) -> np.ndarray:
        cap = self.max_images_per_id
        if len(e) <= cap:
            return e
        if self.policy == "recent":
            return e[-cap:]
        # Diverse: the newest image, then greedily the one farthest from those kept.
        keep = [len(e) - 1]
        dmin = _pairwise(e, e[keep])[:, 0]
        while len(keep) < cap:
            dmin[keep] = -1.0
            j = int(np.argmax(dmin))  # ties: the oldest index; deterministic
            keep.append(j)
            dmin = np.minimum(dmin, _pairwise(e, e[j : j + 1])[:, 0])
        return e[sorted(keep)]  # keep chronological order


def assign(query_embeddings: object, gallery: IdentityGallery, threshold: float) -> Assignment:
    """Re-use the closest gallery identity when its distance is <= threshold, else new.

    query_embeddings: [n, D] embeddings of ONE entering person (n >= 1 crops). Distance
    of the query set to an identity: mean over query crops of the min over the
    identity's stored embeddings. Empty gallery -> new identity (distance inf).
    """
    query = _as_embeddings(query_embeddings, "query")
    if gallery.dim is not None and query.shape[1] != gallery.dim:
        raise ValueError(f"query: embeddings of dimension {query.shape[1]}, the gallery holds dimension {gallery.dim}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    cands: list[tuple[int, float]] = []
    for ident in gallery.identities():
        stored = gallery.embeddings(ident)
        if len(stored) == 0:
            continue
        cands.append((ident, float(_pairwise(query, stored).min(axis=1).mean())))
    if not cands:
        return Assignment(None, float("inf"), (), "empty_gallery")
    cands.sort(key=lambda c: (c[1], c[0]))
    best_id, best = cands[0]
    if best <= threshold:
        return Assignment(best_id, best, tuple(cands), "match")
    return Assignment(None, best, tuple(cands), "above_threshold")


# ---------------------------------------------------------------------------------
# The step inside a tracker


class ReIDStep:
    """Global identities for tracks: `enter` when a track starts, `exit` when it ends.

    A track (the within-room tracker's id of one stay) takes a gallery identity or a new
    one at `enter`; the identity leaves the gallery while the track is inside, and
    comes back at `exit` with the embeddings it had plus the ones collected inside.
    New identities are numbered 0, 1, 2, ... in order of creation.
    """

    def __init__(self, threshold: float, max_images_per_id: int = 10, policy: Policy = "recent") -> None:
        self.threshold = float(threshold)
        self.gallery = IdentityGallery(max_images_per_id, policy)
        self._active: dict[int, tuple[int, list[np.ndarray]]] = {}  # track -> (identity, embeddings)
        self._next_id = 0

    def _new_identity(self) -> int:
        ident = self._next_id
        self._next_id += 1
        return ident

    def enter(self, track: int, query_embeddings: object) -> tuple[int, Assignment]:
        """Identity of a track that just entered. Never raises for an empty query: no
        usable crop (person never visible, zero-size crops filtered out) -> new identity
        (reason "no_query"); non-finite rows are dropped first."""
        if track in self._active:
            raise ValueError(f"track {track} entered twice without an exit")
        query = np.asarray(query_embeddings, dtype=np.float32)
        if query.ndim == 2 and len(query):
            query = query[np.isfinite(query).all(axis=1) & (np.abs(query).sum(axis=1) > 0)]
        if query.ndim != 2 or len(query) == 0:
            assignment = Assignment(None, float("inf"), (), "no_query")
            kept: list[np.ndarray] = []
        else:
            assignment = assign(query, self.gallery, self.threshold)
            kept = [query]
        ident = self._new_identity() if assignment.identity is None else assignment.identity
        stored = self.gallery.remove(ident) if assignment.identity is not None else None
        self._active[track] = (ident, ([stored] if stored is not None else []) + kept)
        return ident, assignment

    def observe(self, track: int, embeddings: object) -> None:
        """More embeddings of an active track (collected while it is inside)."""
        added = np.asarray(embeddings, dtype=np.float32)
        if added.ndim == 2 and len(added):
            added = added[np.isfinite(added).all(axis=1) & (np.abs(added).sum(axis=1) > 0)]
            if len(added):
                self._active[track][1].append(added)

    def exit(self, track: int, embeddings: object | None = None) -> int:
        """The track left: its identity returns to the gallery. Returns the identity."""
        if embeddings is not None:
            self.observe(track, embeddings)
        ident, parts = self._active.pop(track)
        dim = self.gallery.dim or next((p.shape[1] for p in parts if p.ndim == 2), None)
        if parts:
            self.gallery.add(ident, np.concatenate(parts))
        elif dim is not None:
            self.gallery.add(ident, np.zeros((0, dim), np.float32))
        return ident

    def active(self) -> dict[int, int]:
        """track -> identity for the tracks inside now."""
        return {t: v[0] for t, v in self._active.items()}


# ---------------------------------------------------------------------------------
# A whole sequence of entries and exits (evaluation, calibration)


@dataclass(frozen=True)
class Entry:
    """Track `track` enters with query embeddings; `person` = ground truth (optional)."""

    track: int
    embeddings: np.ndarray
    person: int | None = None


@dataclass(frozen=True)
class Exit:
    """Track `track` leaves; `embeddings` = what was collected while it was inside."""

    track: int
    embeddings: np.ndarray


def entry_correctness(events: Iterable[Entry | Exit], identities: Mapping[int, int]) -> list[bool]:
    """Was each entry (with a known person) given the right identity? One rule for every
    variant (no ReID, a model, the oracle).

    At an entry, the right answer is the gallery identity (exited, not back inside) whose
    most recent stay was this person's, or "new" when no gallery identity is (first
    visit, or its identity was taken by someone else). A decision re-uses identity i when
    i is in the gallery, opens a new one when i was never used; anything else (i is
    inside on another track) is wrong. Each decision is judged against what the gallery
    held at that moment, so an early mistake is counted once, not at every later visit.
    """
    last_person: dict[int, int | None] = {}  # identity -> person of its latest stay
    active: dict[int, int] = {}  # track -> identity
    in_gallery: set[int] = set()
    out: list[bool] = []
    for ev in events:
        if isinstance(ev, Entry):
            ident = identities[ev.track]
            if ev.person is not None:
                right = {i for i in in_gallery if last_person.get(i) == ev.person}
                if ident in in_gallery:
                    ok = ident in right
                elif ident not in last_person:
                    ok = not right
                else:
                    ok = False
                out.append(ok)
            in_gallery.discard(ident)
            active[ev.track] = ident
            last_person[ident] = ev.person
        elif isinstance(ev, Exit):
            ident = active.pop(ev.track)
            in_gallery.add(ident)
        else:
            raise TypeError(f"expected Entry or Exit events, got {type(ev).__name__}")
    return out


@dataclass
class SequenceResult:
    identities: dict[int, int]  # track -> global identity
    assignments: list[tuple[int, Assignment]]  # (track, decision) in entry order
    correct: list[bool] = field(default_factory=list)  # per entry with a known person

    @property
    def accuracy(self) -> float | None:
        return float(np.mean(self.correct)) if self.correct else None


def run_sequence(
    events: Iterable[Entry | Exit], threshold: float, max_images_per_id: int = 10, policy: Policy = "recent"
) -> SequenceResult:
    """Replay entries and exits (in time order) through a `ReIDStep`; entries with a
    known person are scored by `entry_correctness`."""
    events = list(events)
    step = ReIDStep(threshold, max_images_per_id, policy)
    res = SequenceResult({}, [])
    for ev in events:
        if isinstance(ev, Entry):
            ident, assignment = step.enter(ev.track, ev.embeddings)
            res.identities[ev.track] = ident
            res.assignments.append((ev.track, assignment))
        elif isinstance(ev, Exit):
            step.exit(ev.track, ev.embeddings)
        else:
            raise TypeError(f"run_sequence: expected Entry or Exit events, got {type(ev).__name__}")
    res.correct = entry_correctness(events, res.identities)
    return res


@dataclass(frozen=True)
class Calibration:
    threshold: float
    accuracy: float
    thresholds: tuple[float, ...]
    accuracies: tuple[float, ...]


def calibrate_threshold(
    events: Sequence[Entry | Exit],
    thresholds: Sequence[float] | None = None,
    max_images_per_id: int = 10,
    policy: Policy = "recent",
) -> Calibration:
    """The threshold maximising entry accuracy on a CALIBRATION sequence (its own seed).

    Every candidate replays the whole sequence (decisions change the gallery, so the
    accuracy is not a function of independent distances). Ties: the middle of the widest
    run of consecutive best thresholds, the choice least sensitive to a shift of the
    distance scale between the calibration and the scored sequence.
    """
    events = list(events)
    if not any(isinstance(e, Entry) and e.person is not None for e in events):
        raise ValueError("calibrate_threshold: the calibration sequence has no entry with a known person")
    ts = np.asarray(DEFAULT_THRESHOLDS if thresholds is None else thresholds, dtype=np.float64)
    if ts.ndim != 1 or len(ts) == 0 or not np.isfinite(ts).all():
        raise ValueError("calibrate_threshold: thresholds must be a non-empty list of finite numbers")
    ts = np.unique(ts)
    accs = np.array([run_sequence(events, float(t), max_images_per_id, policy).accuracy for t in ts])
    best = accs.max()
    is_best = np.isclose(accs, best)
    # Widest run of consecutive best thresholds.
    runs: list[tuple[int, int]] = []
    start = None
    for i, b in enumerate(is_best):
        if b and start is None:
            start = i
        if not b and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(ts) - 1))
    run_first, run_last = max(runs, key=lambda r: (r[1] - r[0], -r[0]))
    thr = float(ts[(run_first + run_last) // 2])
    return Calibration(thr, float(best), tuple(float(t) for t in ts), tuple(float(a) for a in accs))
