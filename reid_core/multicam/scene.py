"""A synthetic multi-camera scene in the spirit of the LAB sequence (paper, Section 5).

A 5 x 6 m room, 4 corner cameras, a pool of identities (default 12, at most 7 inside) who
enter, sit, occlude each other, leave and come back; a near-perfect within-room tracker
(one track per visit) with ground truth, and crops rendered lazily by the synthetic
person model. Deterministic for (config). What is simulated and how:
docs/ARCHITECTURE.md, "Module notes: reid_core/multicam/scene.py".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image

from ..data.synth import CameraStyle, PersonAppearance, Pose, camera_styles, render_person, sample_identity, sample_pose

__all__ = ["SceneConfig", "Visit", "Scene", "build_scene", "ROOM", "CAMERA_POSITIONS"]

ROOM = (5.0, 6.0)  # metres (x, y)
CAMERA_POSITIONS = ((0.0, 0.0), (5.0, 0.0), (5.0, 6.0), (0.0, 6.0))
CAMERA_HEIGHT = 2.6
DOOR = (2.5, 0.15)  # where people leave; they appear at ENTRY_POINT
ENTRY_POINT = (2.5, 0.35)
TABLE = (2.5, 3.8)
SEATS = (
    (1.75, 3.35),
    (1.75, 4.25),
    (3.25, 3.35),
    (3.25, 4.25),
    (2.5, 4.75),
    (0.6, 5.4),
    (4.4, 5.4),
    (0.6, 1.9),
    (4.4, 1.9),
)
BODY_RADIUS = 0.25  # metres: a person as a vertical cylinder (occlusion)
CAMERA_SEED_OFFSET = 1_000_003  # camera_styles(CAMERA_SEED_OFFSET + camera_seed, 4)
_NS = 0x5CE4E  # random-stream namespace of this module
_S_ID, _S_PLAN, _S_DET, _S_CROP = range(4)


@dataclass(frozen=True)
class SceneConfig:
    seed: int = 0
    minutes: float = 4.0
    fps: float = 15.0
    num_identities: int = 12
    max_inside: int = 7
    camera_seed: int = 0
    outside_seconds: tuple[float, float] = (15.0, 70.0)  # time outside between visits
    first_entry_seconds: float = 60.0  # first entries spread over [0, this]
    speed: tuple[float, float] = (0.9, 1.4)  # m/s
    sit_seconds: tuple[float, float] = (10.0, 45.0)
    p_sit: float = 0.45
    mean_activities: float = 1.5  # per visit: 1 + Poisson(mean)
    p_miss: float = 0.02
    ghost_rate: float = 0.1  # ghost tracks started per second
    ghost_seconds: tuple[float, float] = (0.2, 2.0)
    position_noise: float = 0.05  # metres
    query_delay: float = 1.0  # seconds after the entry before the query crops are taken
    query_frames: int = 1  # frames (0.5 s apart) giving query crops
    gallery_per_visit: int = 8
    box_height: tuple[int, int] = (48, 96)  # pixels, near..far clipped
    min_visible: float = 0.4  # a view covered over more than 1 - this is not used

    def __post_init__(self) -> None:
        def check(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(f"SceneConfig: {msg}")

        check(self.seed >= 0 and self.camera_seed >= 0, "seed and camera_seed must be >= 0")
        check(self.minutes > 0, f"minutes must be > 0, got {self.minutes}")
        check(1 <= self.fps <= 60, f"fps must be in [1, 60], got {self.fps}")
        check(self.num_identities >= 1, f"num_identities must be >= 1, got {self.num_identities}")
        check(self.max_inside >= 1, f"max_inside must be >= 1, got {self.max_inside}")
        check(0 <= self.p_miss < 1, f"p_miss must be in [0, 1), got {self.p_miss}")
        check(self.ghost_rate >= 0, f"ghost_rate must be >= 0, got {self.ghost_rate}")
        check(self.query_frames >= 1, f"query_frames must be >= 1, got {self.query_frames}")
        check(self.gallery_per_visit >= 0, f"gallery_per_visit must be >= 0, got {self.gallery_per_visit}")
        lo, hi = self.box_height
        check(24 <= lo <= hi, f"box_height must satisfy 24 <= min <= max, got {self.box_height}")
        check(0 < self.min_visible <= 1, f"min_visible must be in (0, 1], got {self.min_visible}")


@dataclass(frozen=True)
class Visit:
    """One stay in the room = one track of the within-room tracker."""

    index: int
    person: int
    start: int  # first frame inside
    end: int  # last frame inside (inclusive)
    query: tuple[tuple[int, int], ...]  # (frame, camera) of the query crops
    gallery: tuple[tuple[int, int], ...]  # (frame, camera) of crops collected inside

    @property
    def decision_frame(self) -> int:
        """When the ReID decision is taken: the last query frame (or the entry)."""
        return max((f for f, _ in self.query), default=self.start)


# ---------------------------------------------------------------------------------
# Motion


@dataclass
class _Agent:
    person: int
    rng: np.random.Generator
    state: str = "outside"  # outside | walk | linger | sit | leave
    timer: float = 0.0
    pos: np.ndarray = field(default_factory=lambda: np.zeros(2))
    heading: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    target: np.ndarray = field(default_factory=lambda: np.zeros(2))
    speed: float = 1.0
    plan: list = field(default_factory=list)
    seat: int = -1
    visit: int = -1
    walked: float = 0.0


def _random_point(rng: np.random.Generator) -> np.ndarray:
    while True:
        point = np.array([rng.uniform(0.5, ROOM[0] - 0.5), rng.uniform(1.0, ROOM[1] - 0.5)])
        if abs(point[0] - TABLE[0]) > 0.9 or abs(point[1] - TABLE[1]) > 0.7:  # not on the table
            return point


def _simulate(cfg: SceneConfig) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Rows (frame, person, visit, x, y, hx, hy, phase) and visits (index, person, start, end)."""
    dt = 1.0 / cfg.fps
    n_frames = int(round(cfg.minutes * 60 * cfg.fps))
    agents = [_Agent(p, np.random.default_rng([_NS, cfg.seed, _S_PLAN, p])) for p in range(cfg.num_identities)]
    for a in agents:
        a.timer = a.rng.uniform(0, cfg.first_entry_seconds)
    seats_taken: dict[int, int] = {}
    rows: list[tuple[float, ...]] = []
    visits: list[list[int]] = []  # [index, person, start, end]

    def next_activity(a: _Agent) -> None:
        if a.seat >= 0:
            seats_taken.pop(a.seat, None)
            a.seat = -1
        if not a.plan:
            a.state, a.target = "leave", np.array(DOOR)
            return
        kind = a.plan.pop(0)
        free = [s for s in range(len(SEATS)) if s not in seats_taken]
        if kind == "sit" and free:
            a.seat = int(free[int(a.rng.integers(len(free)))])
            seats_taken[a.seat] = a.person
            a.state, a.target = "walk", np.array(SEATS[a.seat])
            a.timer = a.rng.uniform(*cfg.sit_seconds)
        else:
            a.state, a.target = "walk", _random_point(a.rng)
            a.timer = a.rng.uniform(0.0, 4.0)  # lingering after arrival

    for frame in range(n_frames):
        inside = sum(a.state != "outside" for a in agents)
        for a in agents:  # entries, in identity order (deterministic)
            if a.state != "outside":
                continue
            a.timer -= dt
            if a.timer <= 0 and inside < cfg.max_inside:
                inside += 1
                a.pos = np.array(ENTRY_POINT)
                a.heading = np.array([0.0, 1.0])
                a.speed = a.rng.uniform(*cfg.speed)
                n_act = 1 + min(4, int(a.rng.poisson(cfg.mean_activities)))
                a.plan = ["sit" if a.rng.random() < cfg.p_sit else "walk" for _ in range(n_act)]
                a.visit = len(visits)
                visits.append([a.visit, a.person, frame, frame])
                next_activity(a)
        for a in agents:
            if a.state == "outside":
                continue
            if a.state in ("walk", "leave"):
                to_target = a.target - a.pos
                dist = float(np.hypot(*to_target))
                step = a.speed * dt
                if dist > 1e-9:
                    a.heading = to_target / dist
                if dist <= step:
                    a.pos = a.target.copy()
                    a.walked += dist
                    if a.state == "leave":
                        visits[a.visit][3] = frame
                        rows.append((frame, a.person, a.visit, *a.pos, *a.heading, 0.0))
                        a.state = "outside"
                        a.timer = a.rng.uniform(*cfg.outside_seconds)
                        continue
                    if a.seat >= 0:
                        a.state = "sit"
                        toward = np.array(TABLE) - a.pos
                        a.heading = toward / max(1e-9, float(np.hypot(*toward)))
                    else:
                        a.state = "linger"
                else:
                    a.pos = a.pos + to_target / dist * step
                    a.walked += step
            else:  # linger / sit
                a.timer -= dt
                if a.timer <= 0:
                    next_activity(a)
            phase = math.sin(2 * math.pi * a.walked / 1.4) if a.state in ("walk", "leave") else 0.0
            visits[a.visit][3] = frame
            rows.append((frame, a.person, a.visit, *a.pos, *a.heading, phase))
    arr = np.array(rows, dtype=np.float64).reshape(-1, 8)
    return arr, [tuple(v) for v in visits]  # type: ignore[misc]


# ---------------------------------------------------------------------------------
# Scene


class Scene:
    """Ground truth, tracker output and lazily rendered crops of one simulated sequence."""

    def __init__(self, cfg: SceneConfig) -> None:
        self.config = cfg
        self.num_frames = int(round(cfg.minutes * 60 * cfg.fps))
        self.cameras: list[CameraStyle] = camera_styles(CAMERA_SEED_OFFSET + cfg.camera_seed, len(CAMERA_POSITIONS))
        self.identities: list[PersonAppearance] = [
            sample_identity(np.random.default_rng([_NS, cfg.seed, _S_ID, p])) for p in range(cfg.num_identities)
        ]
        rows, visits = _simulate(cfg)
        self._rows = rows
        self.gt_frame = rows[:, 0].astype(np.int64)
        self.gt_person = rows[:, 1].astype(np.int64)
        self.gt_visit = rows[:, 2].astype(np.int64)
        self.gt_xy = rows[:, 3:5]
        self._heading = rows[:, 5:7]
        self._phase = rows[:, 7]
        # Row index of (visit, frame) and the rows of each frame.
        self._row_of = {(int(v), int(f)): i for i, (v, f) in enumerate(zip(self.gt_visit, self.gt_frame))}
        self._frame_start = np.searchsorted(self.gt_frame, np.arange(self.num_frames + 1))
        self._make_detections()
        self.visits: list[Visit] = [self._plan_visit(*v) for v in visits]
        self._cache: dict[tuple[int, int, int, bool], Image.Image] = {}
        self.renders = 0

    # Tracker output ------------------------------------------------------------------
    def _make_detections(self) -> None:
        cfg = self.config
        rng = np.random.default_rng([_NS, cfg.seed, _S_DET])
        n_rows = len(self.gt_frame)
        keep = rng.random(n_rows) >= cfg.p_miss
        noise = rng.normal(0.0, cfg.position_noise, (n_rows, 2))
        frames = [self.gt_frame[keep]]
        tracks = [self.gt_visit[keep]]
        xy = [self.gt_xy[keep] + noise[keep]]
        ghost = [np.zeros(int(keep.sum()), dtype=bool)]
        # Ghost tracks: a false detection that persists a little, with its own track id.
        n_ghosts = int(rng.poisson(cfg.ghost_rate * self.num_frames / cfg.fps))
        self.num_ghost_tracks = n_ghosts
        for g in range(n_ghosts):
            f0 = int(rng.integers(self.num_frames))
            length = max(1, int(round(rng.uniform(*cfg.ghost_seconds) * cfg.fps)))
            ghost_frames = np.arange(f0, min(self.num_frames, f0 + length))
            ghost_point = np.array([rng.uniform(0.2, ROOM[0] - 0.2), rng.uniform(0.2, ROOM[1] - 0.2)])
            frames.append(ghost_frames)
            tracks.append(np.full(len(ghost_frames), g, dtype=np.int64))
            xy.append(ghost_point + rng.normal(0.0, cfg.position_noise, (len(ghost_frames), 2)))
            ghost.append(np.ones(len(ghost_frames), dtype=bool))
        f_all = np.concatenate(frames)
        order = np.argsort(f_all, kind="stable")
        self.det_frame = f_all[order]
        self.det_track = np.concatenate(tracks)[order]
        self.det_xy = np.concatenate(xy)[order]
        self.det_ghost = np.concatenate(ghost)[order]
        self._det_start = np.searchsorted(self.det_frame, np.arange(self.num_frames + 1))

    def frames(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per frame: (frame, gt persons, gt xy [n, 2], det tracks, det ghost flags, det xy [m, 2]).

        det tracks are visit indices for real tracks and ghost indices where the flag is set."""
        for f in range(self.num_frames):
            gt_lo, gt_hi = self._frame_start[f], self._frame_start[f + 1]
            det_lo, det_hi = self._det_start[f], self._det_start[f + 1]
            yield (
                f,
                self.gt_person[gt_lo:gt_hi],
                self.gt_xy[gt_lo:gt_hi],
                self.det_track[det_lo:det_hi],
                self.det_ghost[det_lo:det_hi],
                self.det_xy[det_lo:det_hi],
            )

    # Views -----------------------------------------------------------------------------
    def _view(self, visit: int, frame: int, cam: int) -> dict:
        """Geometry of one person in one camera at one frame: box size, direction, visibility."""
        row = self._row_of[(visit, frame)]
        pos = self.gt_xy[row]
        cam_pos = np.array(CAMERA_POSITIONS[cam])
        d_h = float(np.hypot(*(pos - cam_pos)))
        lo, hi = self.config.box_height
        h = int(np.clip(round(240.0 / math.hypot(d_h, CAMERA_HEIGHT - 1.0)), lo, hi))
        h -= h % 2
        theta = math.atan2(pos[1] - cam_pos[1], pos[0] - cam_pos[0])
        alpha = math.atan2(BODY_RADIUS, max(d_h, 1e-6))
        # Columns of the box: the body spans the middle half (bearing theta +- alpha);
        # image right = clockwise = smaller bearing.
        w = h // 2
        cols = theta + 2 * alpha * (1 - 2 * (np.arange(w) + 0.5) / w)
        body = np.abs(cols - theta) < alpha
        cover = np.full(w, -1, dtype=np.int64)  # row index of the nearest occluder per column
        cover_d = np.full(w, np.inf)
        gt_lo, gt_hi = self._frame_start[frame], self._frame_start[frame + 1]
        for j in range(gt_lo, gt_hi):
            if j == row:
                continue
            dj = float(np.hypot(*(self.gt_xy[j] - cam_pos)))
            if dj >= d_h - 0.1:
                continue
            tj = math.atan2(self.gt_xy[j][1] - cam_pos[1], self.gt_xy[j][0] - cam_pos[0])
            aj = math.atan2(BODY_RADIUS, max(dj, 1e-6))
            hit = (np.abs(np.angle(np.exp(1j * (cols - tj)))) < aj) & (dj < cover_d)
            cover[hit] = j
            cover_d[hit] = dj
        # Too close under the camera: the body leaves the (roughly 90 degree) field of view.
        in_view = d_h > 0.8
        visible = float(np.mean(cover[body] < 0)) if in_view else 0.0
        heading = self._heading[row]
        to_cam = (cam_pos - pos) / max(d_h, 1e-9)
        cosang = float(heading @ to_cam)
        if cosang > 0.5:
            direction = "front"
        elif cosang < -0.5:
            direction = "back"
        else:
            right = np.array([-to_cam[1], to_cam[0]])  # camera's image-right, seen from above
            direction = "right" if float(heading @ right) > 0 else "left"
        return {
            "row": row,
            "h": h,
            "w": w,
            "cols": cols,
            "cover": cover,
            "visible": visible,
            "direction": direction,
            "theta": theta,
            "alpha": alpha,
        }

    def _plan_visit(self, index: int, person: int, start: int, end: int) -> Visit:
        cfg = self.config
        fps = cfg.fps
        ncam = len(CAMERA_POSITIONS)
        f0 = min(end, start + int(round(cfg.query_delay * fps)))
        query: list[tuple[int, int]] = []
        frame = f0
        last_search = min(end, f0 + int(round(3 * fps)))
        taken = 0
        while taken < cfg.query_frames and frame <= end:
            vis = [self._view(index, frame, k)["visible"] for k in range(ncam)]
            if max(vis) >= 0.6 or frame >= last_search:
                cams = [k for k in range(ncam) if vis[k] >= cfg.min_visible]
                if not cams and max(vis) > 0:  # fallback: the least covered view
                    cams = [int(np.argmax(vis))]
                query += [(frame, k) for k in cams]
                taken += 1
                frame += max(1, int(round(0.5 * fps)))
                last_search = min(end, frame + int(round(3 * fps)))
            else:
                frame += max(1, int(round(fps / 5)))
        gallery: list[tuple[int, int]] = []
        if cfg.gallery_per_visit:
            # From 1 s after the query (not the query crop again) to 1 s before the exit.
            g1 = max(f0, end - int(round(1.0 * fps)))
            g0 = min(g1, f0 + int(round(1.0 * fps)))
            picks = np.unique(np.linspace(g0, g1, cfg.gallery_per_visit).round().astype(np.int64))
            for k, fr in enumerate(picks):
                for dk in range(ncam):  # cameras in turn; the first one with a clear view
                    cam = (k + dk) % ncam
                    if self._view(index, int(fr), cam)["visible"] >= 0.6:
                        gallery.append((int(fr), cam))
                        break
        return Visit(index, person, start, end, tuple(query), tuple(gallery))

    # Crops -----------------------------------------------------------------------------
    def crop(self, visit: int, frame: int, cam: int, occlusion: bool = True) -> Image.Image:
        """The person of `visit` seen by camera `cam` at `frame` (cached; rendered once)."""
        key = (visit, frame, cam, occlusion)
        if key in self._cache:
            return self._cache[key]
        view = self._view(visit, frame, cam)
        person = int(self.gt_person[view["row"]])
        rng = np.random.default_rng([_NS, self.config.seed, _S_CROP, visit, frame, cam])
        camera = self.cameras[cam]
        base = sample_pose(rng, camera, view["direction"])
        phase = float(self._phase[view["row"]]) if self._phase[view["row"]] != 0 else base.phase
        pose = Pose(view["direction"], phase, base.scale, base.dx, base.dy)
        img = render_person(self.identities[person], camera, rng, size=(view["h"], view["w"]), pose=pose)
        self.renders += 1
        if occlusion and (view["cover"] >= 0).any():
            arr = np.array(img)
            for j in np.unique(view["cover"][view["cover"] >= 0]):
                other_visit, fr = int(self.gt_visit[j]), int(self.gt_frame[j])
                other_view = self._view(other_visit, fr, cam)
                oimg = np.array(
                    self.crop(other_visit, fr, cam, occlusion=False).resize((view["w"], view["h"]), Image.BILINEAR)
                )
                cols = np.nonzero(view["cover"] == j)[0]
                # Column of the occluder's box showing the same bearing.
                ox = (
                    (1 - (view["cols"][cols] - other_view["theta"]) / (2 * other_view["alpha"])) * view["w"] / 2
                ).astype(np.int64)
                ok = (ox >= 0) & (ox < view["w"])
                arr[:, cols[ok]] = oimg[:, ox[ok]]
            img = Image.fromarray(arr)
        self._cache[key] = img
        return img

    # Summary ---------------------------------------------------------------------------
    def summary(self) -> dict:
        per_frame = np.diff(self._frame_start)
        visits_per_person = np.bincount([v.person for v in self.visits], minlength=self.config.num_identities)
        return {
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()},
            "frames": self.num_frames,
            "seconds": self.num_frames / self.config.fps,
            "gt_boxes": int(len(self.gt_frame)),
            "detections": int(len(self.det_frame)),
            "ghost_tracks": int(self.num_ghost_tracks),
            "max_inside": int(per_frame.max(initial=0)),
            "mean_inside": float(per_frame.mean()) if len(per_frame) else 0.0,
            "visits": len(self.visits),
            "re_entries": int(sum(max(0, n - 1) for n in visits_per_person)),
            "identities_seen": int((visits_per_person > 0).sum()),
            "query_crops": int(sum(len(v.query) for v in self.visits)),
            "gallery_crops": int(sum(len(v.gallery) for v in self.visits)),
        }


def build_scene(config: SceneConfig | None = None, **overrides: object) -> Scene:
    """A scene from a config (or SceneConfig's defaults with `overrides`)."""
    if config is None:
        config = SceneConfig(**overrides)  # type: ignore[arg-type]
    elif overrides:
        config = SceneConfig(**{**asdict(config), **overrides})  # type: ignore[arg-type]
    return Scene(config)
