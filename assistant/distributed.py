"""Reading, splitting and embedding a build's new or changed documents on a Ray cluster.

    >>> runner = RayRunner(functools.partial(make_embedder, cfg))  # doctest: +SKIP
    >>> report = build(seeds, index, embedder, settings, runner=runner)  # doctest: +SKIP
    >>> report.built_with  # doctest: +SKIP
    'ray'

Only the work between deciding and writing runs on Ray: the build (indexing.build) scans the
seeds, keeps unchanged documents, takes the lock and writes and swaps in the new version exactly
as a local build does. The files to read go, a few at a time, to a pool of Ray Data actors, one
per CPU of the cluster (at most one per file); each actor builds one embedder when it starts,
from the same factory as the build's own (make_embedder, sent as a function and its settings,
never as a loaded model), reads and splits its files with indexing.read_and_split and embeds
them with indexing.embed_passages, the functions of the local build. The results are put back
in the order of the files, so passages and vectors come out as a local build's.

Every node needs the package's dependencies installed and the seeds folder at the same path
(a shared filesystem); this package's own code is shipped to the workers by Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .embedding import Embedder
from .errors import AssistantError
from .indexing import (
    ChunkerSettings,
    Embedded,
    Progress,
    SplitFile,
    embed_passages,
    read_and_split,
)
from .ingest import SourceFile

log = logging.getLogger(__name__)

FILES_PER_BATCH = 8  # files an actor reads, splits and embeds per call
# A worker process that dies (killed, out of memory) is started again and its batch sent again,
# this many times; an exception in our code is not retried: it fails the build at once.
MAX_RETRIES = 3
PACKAGE_DIR = Path(__file__).resolve().parent
CONNECT_TIMEOUT_S = 5.0  # a cluster's head that does not answer in this time is not there


class RayError(AssistantError):
    """Ray is missing, the cluster cannot be reached, or the distributed work failed."""


def _ray():  # noqa: ANN202 - the ray module, imported here only
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayError("Ray is not installed: pip install '.[ray]'") from None
    return ray


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail at once when a cluster's head (HEAD:PORT, port 6379 if left out) does not answer:
    ray.init would retry it for minutes."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "6379"
    if not host or not port.isdigit():
        raise RayError(
            f"a Ray cluster's address is HEAD:PORT (like 10.0.0.5:6379), not {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayError(
            f"cannot reach Ray at {address} ({e.strerror or e}): check the address and that the "
            "cluster is up, or leave the address out to start a local instance"
        ) from None


@contextlib.contextmanager
def session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Be connected to Ray for the block; a session the caller already opened is used as is.

    None or "auto" starts a local instance with num_cpus CPUs (default: all of them) and stops
    it afterwards; a cluster's address (HEAD:6379) joins that cluster.
    """
    ray = _ray()
    if ray.is_initialized():
        yield
        return
    # Workers import this package's code as the driver has it, not an installed copy.
    runtime_env = {"py_modules": [str(PACKAGE_DIR)]}
    try:
        if address in (None, "auto"):
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count(),
                include_dashboard=False,
                runtime_env=runtime_env,
                logging_level=logging.WARNING,
            )
        else:
            check_reachable(address)
            ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayError(
            f"cannot start or join Ray at {address or 'a local instance'}: {e}. Check the "
            "address (HEAD:6379) and that the cluster runs the same Ray "
            "version, or leave the address out to start a local instance"
        ) from e
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False  # ours are printed
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        yield
    finally:
        ray.shutdown()


class RayRunner:
    """Reads, splits and embeds on a Ray cluster, one embedder per worker (indexing.Runner)."""

    name = "ray"

    def __init__(self, make_embedder: Callable[[], Embedder], address: str | None = None) -> None:
        _ray()  # refuse at once, before the build scans anything
        if address and address.startswith("ray://"):
            # Ray Data drives its work from the driver's own core worker, which a Ray Client
            # connection does not have ('Worker' object has no attribute 'core_worker').
            raise RayError(
                f"Ray Data cannot run through a Ray Client address ({address}): give the "
                "cluster's address HEAD:6379 from a machine that reaches it, or run this "
                "command on the cluster's head node with --ray HEAD:6379"
            )
        self.make_embedder = make_embedder
        self.address = address

    def run(
        self,
        files: list[SourceFile],
        embedder: Embedder,
        settings: ChunkerSettings,
        max_bytes: int,
        progress: Progress,
    ) -> Embedded:
        """The files' passages and vectors, as indexing.LocalRunner gives them."""
        ray = _ray()
        where = "a local instance" if self.address in (None, "auto") else self.address
        progress(0.02, f"starting Ray workers on {where}")
        with session(self.address):
            started = time.perf_counter()
            workers = max(1, min(len(files), int(ray.cluster_resources().get("CPU", 1))))
            progress(0.05, f"reading and embedding {len(files)} documents, {workers} Ray workers")
            rows = [
                {"i": i, "id": f.id, "path": str(f.path), "sha256": f.sha256, "size": f.size}
                for i, f in enumerate(files)
            ]
            with warnings.catch_warnings():
                # Ray 2.60 deprecates these two as free keywords but names no other way to
                # bound them, and Ray Data's default restarts a dying worker forever.
                warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
                dataset = ray.data.from_items(rows).map_batches(
                    _Worker,
                    fn_constructor_args=(self.make_embedder, settings, max_bytes),
                    batch_size=FILES_PER_BATCH,
                    compute=ray.data.ActorPoolStrategy(size=workers),
                    num_cpus=1,
                    max_restarts=MAX_RETRIES,
                    max_task_retries=MAX_RETRIES,
                )
            results: dict[int, tuple[SplitFile, np.ndarray, str]] = {}
            try:
                for row in dataset.iter_rows():
                    results[int(row["i"])] = pickle.loads(row["result"])
                    progress(
                        0.05 + 0.85 * len(results) / len(files),
                        f"{len(results)}/{len(files)} documents read and embedded on Ray",
                    )
            except ray.exceptions.RayError as e:
                log.info("the Ray build failed", exc_info=True)
                raise RayError(
                    f"the build on Ray failed, the index is unchanged: {_cause(e)}"
                ) from None
            seconds = time.perf_counter() - started
        done = [results[i] for i in range(len(files))]
        for _, _, worker_embedder in done:
            if worker_embedder != embedder.id:
                raise RayError(
                    f"Ray's workers embedded with {worker_embedder!r}, the build with "
                    f"{embedder.id!r}: give RayRunner the factory of the build's embedder"
                )
        parts = [vectors for _, vectors, _ in done if len(vectors)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
        return Embedded([split for split, _, _ in done], vectors, seconds)


class _Worker:
    """A Ray Data actor: one embedder, loaded when the actor starts, for every batch it gets."""

    def __init__(
        self, make_embedder: Callable[[], Embedder], settings: ChunkerSettings, max_bytes: int
    ) -> None:
        self.embedder = make_embedder()
        self.embedder.count_tokens("warm up")  # load the model now, once
        self.settings = settings
        self.max_bytes = max_bytes

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        files = [
            SourceFile(str(doc_id), Path(str(path)), str(sha256), int(size))
            for doc_id, path, sha256, size in zip(
                batch["id"], batch["path"], batch["sha256"], batch["size"]
            )
        ]
        done = [
            read_and_split(f, self.embedder.count_tokens, self.settings, self.max_bytes)
            for f in files
        ]
        vectors = embed_passages(self.embedder, [c for d in done for c in d.chunks])
        ends = np.cumsum([len(d.chunks) for d in done])
        per_file = np.split(vectors, ends[:-1]) if len(vectors) else [vectors] * len(done)
        # Pickled here: Arrow, Ray Data's block format, holds neither dataclasses nor ragged
        # arrays, and says so in a warning for every batch before it pickles them itself.
        results = [pickle.dumps((d, v, self.embedder.id)) for d, v in zip(done, per_file)]
        return {"i": batch["i"], "result": np.array(results, dtype=object)}


def _cause(e: BaseException) -> str:
    """The error a worker raised, as one line, from the traceback text Ray wraps it in (Ray
    sends the text only: the wrapper's `cause` is None)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # Ray colours the worker's name
    raised = text.split("The above exception was the direct cause")[0]
    found = re.findall(r"^(\w+(?:\.\w+)*(?:Error|Exception): .*)$", raised, re.MULTILINE)
    lines = [line for line in text.splitlines() if line.strip()]
    return found[-1] if found else f"{type(e).__name__}: {lines[0] if lines else ''}"
