"""Repository paths, versions and machine, subprocess environments, git."""
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
CONFIG_DIR = BENCH_DIR / "configs"
OUTPUT_DIR = BENCH_DIR / "output"
TEXT_DIR = REPO / "data" / "text"
# The shared copy of UNER, SIB-200 and SQuAD-es next to the repository.
SHARED_DATA_DIR = REPO.parent / "shared" / "data"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def versions() -> Dict[str, str]:
    from importlib.metadata import version

    result = {"python": platform.python_version()}
    for name in ("torch", "spacy", "spacy-transformers", "transformers", "thinc", "spacy-xlmr"):
        try:
            result[name] = version(name)
        except Exception:  # pragma: no cover
            result[name] = "?"
    return result


def machine() -> Dict[str, str]:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch

    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "platform": platform.platform(),
    }


def thread_env(
    threads: int, *, tokenizers_parallelism: bool = True, xlmr_src: Optional[Path] = None
) -> Dict[str, str]:
    """The environment for a subprocess: ``threads`` intra-op threads;
    optionally no tokenizers parallelism, and ``xlmr_src`` first on
    PYTHONPATH (see ``export_library``)."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    if not tokenizers_parallelism:
        env["TOKENIZERS_PARALLELISM"] = "false"
    if xlmr_src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(xlmr_src.resolve()), *filter(None, [env.get("PYTHONPATH")])]
        )
    return env


def run_logged(cmd: List[str], log_path: Path, threads: int) -> float:
    """Run ``cmd`` from the repo root with output to ``log_path``; return the
    wall time. Raises with the log's tail if it fails."""
    print("$ " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    with log_path.open("w", encoding="utf8") as log:
        proc = subprocess.run(
            cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=thread_env(threads)
        )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf8")[-4000:]
        raise RuntimeError(f"Command failed ({proc.returncode}), log {log_path}:\n{tail}")
    return wall


def git(*cmd: str) -> str:
    """``git cmd`` in the repository; its stdout, stripped ("?" without git)."""
    try:
        return subprocess.run(
            ["git", *cmd], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


def export_library(
    rev: str, out: Path, paths: Tuple[str, ...] = ("spacy_xlmr", "pyproject.toml")
) -> Path:
    """Export ``paths`` (spacy_xlmr, and e.g. configs) at git revision ``rev``
    to ``out/spacy_xlmr-<sha>``, with a ``.dist-info`` holding that
    revision's entry points (spaCy finds factories through them; the first
    distribution on the path wins), so the workers measure that commit
    whatever the working tree or the editable install hold."""
    import io
    import tarfile
    import tomllib

    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    dest = out / f"spacy_xlmr-{sha[:12]}"
    if (dest / "REVISION").exists() and all((dest / path).exists() for path in paths):
        return dest
    archive = subprocess.run(["git", "archive", sha, *paths], cwd=REPO,
                             capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    project = tomllib.loads((dest / "pyproject.toml").read_text(encoding="utf8"))["project"]
    dist = dest / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf8",
    )
    groups = dict(project.get("entry-points", {}))
    if project.get("scripts"):
        groups["console_scripts"] = project["scripts"]
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in eps.items()) + "\n"
        for group, eps in groups.items()
    ), encoding="utf8")
    (dest / "REVISION").write_text(sha + "\n", encoding="utf8")
    return dest


def git_state(xlmr_src: Optional[Path]) -> Dict[str, object]:
    """The repository's commit, whether spacy_xlmr/ or configs/ had
    uncommitted changes at the start, and which spacy_xlmr the training
    processes import (train_speed.py's record)."""
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "spacy_xlmr_modified": git(
            "status", "--porcelain", "--", "spacy_xlmr", "configs"
        ).splitlines(),
        "spacy_xlmr_source": (
            f"{xlmr_src} (commit {(xlmr_src / 'REVISION').read_text().strip()})"
            if xlmr_src else "installed (editable: the working tree, read by each run at its start)"
        ),
    }


def library_state(xlmr_src: Optional[Path]) -> Dict:
    """Which spacy_xlmr the workers import, and the repository's commit
    (speed.py's record)."""
    revision = xlmr_src / "REVISION" if xlmr_src else None
    return {
        "source": str(xlmr_src.resolve()) if xlmr_src else "installed (editable: the working tree)",
        "source_revision": revision.read_text().strip() if revision and revision.exists() else None,
        "repo_head": git("rev-parse", "HEAD"),
        "working_tree_changes_in_spacy_xlmr": (
            git("status", "--porcelain", "spacy_xlmr").splitlines()
        ),
    }
