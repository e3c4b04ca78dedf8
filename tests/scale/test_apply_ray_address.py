"""`spacy-xlmr apply --engine ray --address HOST:PORT` joins a running Ray
cluster (a head node started with `ray start --head` on 127.0.0.1 in a session
of its own, stopped with it) instead of starting its own; an address with
nothing listening is an error naming it, at once. In a module of its own: the
other Ray tests run a cluster in the test process (`ray_cluster`)."""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from spacy_xlmr.scale.apply import apply

from .util import assert_rows_close, read_jsonl_dir, shipped_sentences, write_jsonl

# Before Ray is imported (see init_ray): loopback addresses, no usage stats.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
pytest.importorskip("ray", reason="needs the ray extra: pip install spacy-xlmr[ray]")
pytestmark = pytest.mark.usefixtures("time_limit")

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ray_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled")  # no token (~/.ray/auth_token) to pass around
    return env


def session(sid: int) -> List[int]:
    """Pids of the live processes of session ``sid`` (Ray's workers have
    process groups of their own, not sessions)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture
def ray_head(tmp_path) -> Iterator[str]:
    """A Ray head node (2 CPUs, 127.0.0.1, no dashboard) run by `ray start
    --head --block` in a new session; its address. Stopped by SIGINT to
    that command (not `ray stop`, which would also stop the other Ray
    clusters of this machine), which must leave no process of the session."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray")  # short: Ray's Unix socket paths
    command = [RAY, "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
               "--disable-usage-stats", "--temp-dir", temp_dir,
               "--dashboard-agent-listen-port", str(free_port())]
    log = (tmp_path / "ray-head.log").open("w")
    head = subprocess.Popen(command, env=ray_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (tmp_path / "ray-head.log").read_text():
            assert head.poll() is None, (tmp_path / "ray-head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head didn't start in 90 s"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGINT)  # --block: exits and stops what it started
        deadline = time.monotonic() + 60
        while session(head.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = session(head.pid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        head.wait(timeout=10)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left after SIGINT: {left}"


@pytest.mark.slow
def test_apply_joins_the_ray_cluster_at_address(ner_pipeline, ray_head, tmp_path):
    from ray._raylet import GcsClient

    texts = shipped_sentences(120)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    rows[5]["text"] = " "  # a bad row
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    options = ["--shard-size", "32", "--batch-size", "8", "--no-progress"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "spacy_xlmr", "apply", str(ner_pipeline), str(source),
         str(tmp_path / "ray"), "--engine", "ray", "--workers", "2", "--address", ray_head,
         *options],
        env=ray_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stdout, stderr = driver.communicate(timeout=200)
    finally:
        driver.kill()
        driver.wait()
    assert driver.returncode == 0, stderr[-3000:]
    assert "120 rows: 120 annotated now (1 with an error)" in stdout
    assert f"Connecting to existing Ray cluster at address: {ray_head}" in stderr
    assert "Started a local Ray instance" not in stderr
    # The cluster's one job: the apply process, which ran to the end.
    jobs = list(GcsClient(address=ray_head).get_all_job_info(timeout=10).values())
    assert [(job.driver_pid, job.is_dead) for job in jobs] == [(driver.pid, True)]
    assert "spacy_xlmr apply" in jobs[0].entrypoint
    local = apply(str(ner_pipeline), str(source), tmp_path / "local", shard_size=32,
                  batch_size=8)
    assert (local.rows, local.errors) == (120, 1)
    ray_rows, local_rows = read_jsonl_dir(tmp_path / "ray"), read_jsonl_dir(tmp_path / "local")
    assert [r["id"] for r in ray_rows] == [r["id"] for r in rows]
    assert_rows_close(ray_rows, local_rows)
    assert sum(len(r["ents"] or []) for r in ray_rows) > 60


def test_apply_with_nothing_at_address_fails_at_once(ner_pipeline, tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listening
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "Hello."}])
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "spacy_xlmr", "apply", str(ner_pipeline), str(source),
         str(tmp_path / "out"), "--engine", "ray", "--address", address, "--no-progress"],
        env=ray_env(), capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"Error: No Ray cluster at {address}" in run.stderr
    assert "ray start --head" in run.stderr
    assert time.monotonic() - started < 60
