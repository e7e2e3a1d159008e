"""Watching the seeds folder: new, changed and removed files are indexed in the background.

    >>> watcher = SeedsWatcher(assistant)  # doctest: +SKIP
    >>> watcher.start()  # doctest: +SKIP
    >>> watcher.status  # doctest: +SKIP
    'Index updated at 14:02:11: 1 added, 0 changed, 0 removed; 7 passages.'

A burst of changes makes one rebuild: watchfiles yields the changes once the folder has been
quiet for cfg.watch_delay_s, and changes made during a rebuild make one more. The rebuild is the
Assistant's incremental one, so questions keep using the old index until the new one is swapped
in; when another build holds the index's lock (the window's Rebuild button), it waits its turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import explain
from .indexing import BuildBusyError, BuildReport
from .ingest import ignored, printable
from .render import plural

if TYPE_CHECKING:
    from .rag import Assistant

log = logging.getLogger(__name__)

BUSY_RETRY_S = 2.0  # another build holds the lock: try again after this long
MISSING_RETRY_S = 5.0  # the seeds folder is missing or cannot be watched: look again after this
MAX_GROUP_S = 30.0  # changes that never pause are still indexed at least this often
NAMES_SHOWN = 3


class SeedsWatcher:
    """Rebuilds the Assistant's index when files in its seeds folder change; `status` says how."""

    def __init__(self, assistant: Assistant, delay_s: float | None = None) -> None:
        self.assistant = assistant
        self.seeds = Path(assistant.cfg.seeds_dir)
        self.delay_s = assistant.cfg.watch_delay_s if delay_s is None else delay_s
        self.status = f"Watching {printable(str(self.seeds))} for new, changed and removed files."
        self.last_report: BuildReport | None = None
        self.rebuilds = 0  # rebuilds run (including ones that found nothing to do)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Check the folder once (it may have changed while the app was stopped), then watch."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="seeds-watcher", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop watching; a rebuild under way finishes first (up to timeout_s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        import watchfiles

        self.rebuild([])
        while not self._stop.is_set():
            try:
                for changes in watchfiles.watch(
                    self.seeds,
                    watch_filter=self._wanted,
                    step=max(1, round(self.delay_s * 1000)),
                    debounce=round(max(self.delay_s, MAX_GROUP_S) * 1000),
                    stop_event=self._stop,
                    raise_interrupt=False,
                    ignore_permission_denied=True,
                ):
                    self.rebuild(sorted(path for _, path in changes))
            except Exception as e:  # noqa: BLE001 - keep watching; say why it paused
                if isinstance(e, OSError) and not self.seeds.is_dir():
                    self.status = f"Not watching: {printable(str(self.seeds))} does not exist."
                else:
                    log.warning("watching %s failed: %s", self.seeds, e)
                    self.status = f"Not watching {printable(str(self.seeds))}: {e}"
                self._stop.wait(MISSING_RETRY_S)

    def _wanted(self, change: object, path: str) -> bool:
        """Whether a change can matter to the index: the build's own rule for what it passes
        over (hidden folders, hidden and temporary files)."""
        parts = _relative(path, self.seeds).parts
        if not parts or any(p.startswith(".") for p in parts[:-1]):
            return False
        return not ignored(parts[-1], top_level=len(parts) == 1)

    def rebuild(self, paths: Iterable[str]) -> BuildReport | None:
        """Run the incremental build for these changed paths; waits while another build runs."""
        names = [printable(_relative(p, self.seeds).as_posix()) for p in paths]
        shown = ", ".join(names[:NAMES_SHOWN]) + (", …" if len(names) > NAMES_SHOWN else "")
        what = f"{plural(len(names), 'change')} ({shown})" if names else ""
        self.status = f"Updating the index: {what}…" if what else "Checking the documents folder…"
        while True:
            try:
                report = self.assistant.rebuild()
            except BuildBusyError:
                self.status = "Another index build is running; updating after it…"
                if self._stop.wait(BUSY_RETRY_S):
                    return None
                continue
            except Exception as e:  # noqa: BLE001 - shown in words; a bug's traceback to the log
                self.status = f"⚠ Index update failed at {_now()}: {explain(e, 'index update')}"
                return None
            break
        self.rebuilds += 1
        self.last_report = report
        self.status = describe(report)
        log.info("seeds changed (%s): %s", shown or "start", report.summary())
        return report


def describe(report: BuildReport) -> str:
    """One line on what a rebuild found, for the window."""
    if not report.changed_anything:
        line = (
            f"Index up to date at {_now()}: {plural(report.unchanged, 'document')}, "
            "nothing changed."
        )
    else:
        line = (
            f"Index updated at {_now()}: {len(report.added)} added, {len(report.changed)} "
            f"changed, {len(report.removed)} removed; {plural(report.passages, 'passage')}."
        )
    skipped = [f"{printable(name)} ({reason})" for name, reason in report.skipped]
    if skipped:
        line += f" Skipped {len(skipped)}: " + "; ".join(skipped[:NAMES_SHOWN])
        line += "; …" if len(skipped) > NAMES_SHOWN else "."
    return line


def _relative(path: str, seeds: Path) -> Path:
    """path below the seeds folder (watchfiles reports absolute, resolved paths)."""
    for base in (seeds.resolve(), seeds.absolute()):
        try:
            return Path(path).relative_to(base)
        except ValueError:
            continue
    return Path(Path(path).name)


def _now() -> str:
    return time.strftime("%H:%M:%S")
