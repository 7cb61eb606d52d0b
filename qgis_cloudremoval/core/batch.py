"""Many scenes in one run: which are left to do, how each ended, and the summary.

A scene is complete when every file it writes exists under its final name:
the engine writes under a hidden partial name and renames only when a file
is whole (:mod:`.output_files`), so a final name never holds half a result.
A rerun therefore skips complete scenes and redoes the others, replacing
whatever partial file an interrupted run left. Scenes run one after another
(:func:`run_in_turn`) or on a Dask cluster (:mod:`.cluster`); both hand each
scene to :func:`run_scene` and yield an :class:`Outcome` per scene.
"""

import csv
import io
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Protocol, Tuple

from .command_line import unexpected_message
from .gdal_io import files_behind
from .inputs import input_files
from .output_files import atomic_output
from .progress import Cancelled, CoreError, Reporter, first_line
from .request import RemovalRequest
from .writer import discard_partial

DONE, SKIPPED, FAILED, CANCELLED = "done", "skipped", "failed", "cancelled"
SUMMARY_COLUMNS = ("scene", "status", "reason", "seconds", "s2", "s1", "output")
EXISTS_REASON = "its output exists (an earlier run completed it); --overwrite redoes it"
INTERRUPTED_REASON = "the batch was interrupted before it finished; run the batch again to do it"


@dataclass(frozen=True)
class Scene:
    """One scene of a batch. ``request`` is None when the scene cannot run; ``problem`` then says why."""

    label: str  # how the log and the summary name it: "row 3 (T32TQM.tif)", a product name
    s2: str
    s1: str  # "" without Sentinel-1
    output: str
    request: Optional[RemovalRequest] = None
    problem: Optional[str] = None

    @property
    def outputs(self) -> List[str]:
        """The files the scene writes."""
        if self.request is None:
            return [self.output]
        return [path for path in (self.request.output_path, self.request.mask_path) if path]


@dataclass(frozen=True)
class Outcome:
    """How one scene ended: ``status`` is one of DONE, SKIPPED, FAILED, CANCELLED."""

    label: str
    status: str
    reason: str = ""  # why it was skipped, failed or cancelled; for DONE what was written
    seconds: float = 0.0
    warnings: Tuple[str, ...] = ()


class Progress(Protocol):
    """What a batch tells its display (the CLI's tqdm bars); every method may be called from any thread."""

    def started(self, label: str) -> None:
        """Scene ``label`` has started."""

    def fraction(self, label: str, done: float) -> None:
        """Scene ``label`` is ``done`` (0..1) of the way through."""

    def finished(self, outcome: Outcome) -> None:
        """A scene has ended with ``outcome``."""


Runner = Callable[[List[Scene], Progress], Iterator[Outcome]]


def is_complete(scene: Scene) -> bool:
    """Whether every output of ``scene`` exists under its final name."""
    return all(os.path.isfile(path) for path in scene.outputs)


def _conflicts(scenes: Iterable[Scene]) -> Dict[str, str]:
    """Scenes that would write another scene's output or input, with why (the first writer keeps its file)."""
    inputs: Dict[str, str] = {}
    for scene in scenes:
        for path in input_files(scene.request) if scene.request else (scene.s2, scene.s1):
            for real in files_behind(path) if path else ():
                inputs.setdefault(real, scene.label)
    writers: Dict[str, str] = {}
    problems = {}
    for scene in scenes:
        for path in scene.outputs:
            real = os.path.realpath(path)
            if real in writers and scene.label not in problems:
                problems[scene.label] = f"it writes {path}, which {writers[real]} writes too; give each scene its own"
            elif real in inputs and inputs[real] != scene.label and scene.label not in problems:
                problems[scene.label] = f"it writes {path}, which is an input of {inputs[real]}; choose another output"
            writers.setdefault(real, scene.label)
    return problems


def plan(scenes: List[Scene], overwrite: bool = False) -> Tuple[List[Scene], List[Outcome]]:
    """Split ``scenes`` into those to run and the outcomes of the others (skipped as complete, or failed)."""
    conflicts = _conflicts(scenes)
    pending, settled = [], []
    for scene in scenes:
        problem = scene.problem or conflicts.get(scene.label)
        if problem:
            settled.append(Outcome(scene.label, FAILED, problem))
        elif not overwrite and is_complete(scene):
            settled.append(Outcome(scene.label, SKIPPED, EXISTS_REASON))
        else:
            pending.append(scene)
    return pending, settled


def run_scene(request: RemovalRequest, label: str, reporter: Reporter) -> Outcome:
    """Run one scene; every way it can end becomes an :class:`Outcome` (Ctrl+C still interrupts)."""
    from . import engine
    started = time.perf_counter()
    warnings: List[str] = []
    collecting = Reporter(reporter.progress, reporter.info, warnings.append, reporter.is_cancelled)

    def ended(status: str, reason: str) -> Outcome:
        return Outcome(label, status, reason, round(time.perf_counter() - started, 1), tuple(warnings))

    try:
        problems = engine.check_request(request)
        if problems:
            raise CoreError(problems[0])
        result = engine.remove_clouds(request, collecting)
    except Cancelled:
        return ended(CANCELLED, INTERRUPTED_REASON)
    except MemoryError:
        return ended(FAILED, "out of memory; use a smaller TILE_SIZE or fewer scenes at once per machine")
    except (CoreError, OSError) as exc:
        return ended(FAILED, first_line(exc))
    except Exception as exc:  # a bug: the scene fails alone and the log keeps the traceback
        return ended(FAILED, unexpected_message(exc))
    written = result.output_path + (f" and {result.mask_path}" if result.mask_path else "")
    return ended(DONE, f"wrote {written} ({result.provider}, the network on {result.network_tiles} of "
                       f"{result.tiles} tiles)")


def run_in_turn(scenes: List[Scene], progress: Progress) -> Iterator[Outcome]:
    """The runner of one process: each scene in turn, in this process."""
    for scene in scenes:
        progress.started(scene.label)
        yield run_scene(scene_request(scene), scene.label, Reporter(progress=_fraction_of(progress, scene.label)))


def _fraction_of(progress: Progress, label: str) -> Callable[[float], None]:
    """The progress callback of scene ``label``: reports its fraction done to ``progress``."""
    return lambda done: progress.fraction(label, done)


def scene_request(scene: Scene) -> RemovalRequest:
    """The request of a scene that runs (:func:`plan` settles the scenes that have none, with their problem)."""
    if scene.request is None:
        raise ValueError(f"Scene {scene.label} has no request to run: {scene.problem}")
    return scene.request


def execute(scenes: List[Scene], runner: Runner, progress: Progress, summary_path: str,
            overwrite: bool = False) -> List[Outcome]:
    """Run what is left of ``scenes`` with ``runner`` and write the summary; outcomes in the order of ``scenes``.

    The summary is written however the batch ends, an interruption
    included (the scenes not reached are CANCELLED), and the partial files
    of every scene that did not finish are removed.
    """
    pending, settled = plan(scenes, overwrite)
    outcomes = {outcome.label: outcome for outcome in settled}
    for outcome in settled:
        progress.finished(outcome)
    try:
        for outcome in runner(pending, progress):
            outcomes[outcome.label] = outcome
            progress.finished(outcome)
    finally:
        for scene in pending:
            if outcomes.get(scene.label, Outcome("", CANCELLED)).status != DONE:
                for path in scene.outputs:
                    discard_partial(path)  # a worker that died or was stopped may have left one
        ordered = [outcomes.get(scene.label) or Outcome(scene.label, CANCELLED, INTERRUPTED_REASON)
                   for scene in scenes]
        write_summary(ordered, scenes, summary_path)
    return ordered


def write_summary(outcomes: List[Outcome], scenes: List[Scene], path: str) -> None:
    """The outcomes as CSV (:data:`SUMMARY_COLUMNS`), one row per scene, written whole or not at all."""
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(SUMMARY_COLUMNS)
    for outcome, scene in zip(outcomes, scenes):
        table.writerow([outcome.label, outcome.status, outcome.reason, f"{outcome.seconds:.1f}", scene.s2,
                        scene.s1, scene.output])
    with atomic_output(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as stream:
        stream.write(text.getvalue())


def summary_lines(outcomes: List[Outcome]) -> List[str]:
    """The closing lines a person reads: the counts, then each scene that did not succeed and why."""
    counts = {status: sum(outcome.status == status for outcome in outcomes)
              for status in (DONE, SKIPPED, FAILED, CANCELLED)}
    head = f"{len(outcomes)} scene{'s' if len(outcomes) != 1 else ''}: " + ", ".join(
        f"{count} {status}" for status, count in counts.items() if count or status in (DONE, FAILED))
    return [head] + [f"  {outcome.status} {outcome.label}: {outcome.reason}" for outcome in outcomes
                     if outcome.status in (FAILED, CANCELLED)]
