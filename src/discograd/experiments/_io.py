"""Atomic result files for experiment runs: a run is never left with a half-written file."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

import torch

__all__ = ["atomic_write_text", "save_checkpoint", "load_checkpoint", "write_json", "write_jsonl", "read_json", "environment_info",
           "pyplot", "save_figure", "open_run_folder"]


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[Any]], None], *, binary: bool) -> Path:
    """Call ``write`` on a temporary file in ``path``'s folder, flush it to disk, then ``os.replace`` it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files: results are for others to read too
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    return _atomic_write(path, lambda f: f.write(text), binary=False)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save(state)`` atomically: a checkpoint is never half written (load it with
    ``torch.load(path, weights_only=True)``: keep ``state`` to tensors and plain containers)."""
    return _atomic_write(path, lambda f: torch.save(state, f), binary=True)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``, with a ``ValueError`` naming the file when it is truncated,
    empty or not a checkpoint (instead of torch's traceback, which for foreign files even suggests unsafe
    loading)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"the checkpoint {path} is corrupt or not a discograd checkpoint ({type(exc).__name__}); "
                         f"delete it to restart this run from the beginning (its run folder is rewritten as it "
                         f"trains)") from None
    if not isinstance(state, dict):
        raise ValueError(f"the checkpoint {path} holds a {type(state).__name__}, not a checkpoint dictionary; "
                         f"delete it to restart this run from the beginning")
    return state


def check_resume_threads(state: dict[str, Any], out: str | os.PathLike) -> None:
    """Refuse to resume a run whose checkpoint was written under another torch thread count (torch's CPU
    kernels are not bit-identical across thread counts, so the resumed run would differ from an
    uninterrupted one). Checkpoints without ``"num_threads"`` (older ones) are accepted."""
    saved = state.get("num_threads")
    if saved is not None and int(saved) != torch.get_num_threads():
        raise ValueError(f"the run in {out} was trained with {saved} torch thread(s); resuming it with "
                         f"{torch.get_num_threads()} would change its result (torch's CPU kernels are not "
                         f"bit-identical across thread counts): resume with --num-threads {saved}")


def write_jsonl(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """One JSON object per line, written atomically."""
    return atomic_write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; a ``ValueError`` names the file when it is not valid JSON."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}): it was damaged outside discograd (discograd "
                             f"writes it atomically); delete it, or the whole run folder, to recompute it") from None


def environment_info() -> dict[str, Any]:
    """torch version, device count and the git SHA of the working tree (when there is one)."""
    sha = None
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "num_threads": torch.get_num_threads(),
        "git_sha": sha,
    }


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or an ImportError naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plotting needs matplotlib: pip install 'discograd[plots]'") from exc
    return plt


def save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure atomically (temporary file in the same folder, then ``os.replace``) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def open_run_folder(out: Path, config_dict: dict[str, Any], *, finished_ok: bool = True) -> dict[str, Any] | None:
    """Prepare a run folder for ``config_dict``: create it, refuse one that holds a different config
    (``ValueError`` naming the differing fields), and write ``config.json``. Returns the saved
    ``final.json`` when the run already finished (and ``finished_ok``), else ``None`` (start or resume)."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists():
        saved = read_json(out / "config.json")
        if saved != config_dict:
            differ = sorted(k for k in set(saved) | set(config_dict) if saved.get(k) != config_dict.get(k))
            raise ValueError(f"the run folder {out} holds a run with a different config (differs in: "
                             f"{', '.join(differ)}); use another --out or delete that folder to start over")
        if finished_ok and (out / "final.json").exists():
            return read_json(out / "final.json")
    write_json(out / "config.json", config_dict)
    return None
