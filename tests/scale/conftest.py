"""What the scale-out tests share: pipelines saved once per test module, a
local Ray cluster on 127.0.0.1 shut down by its fixture, a time limit."""
import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from .util import save_multi_head_pipeline, save_ner_pipeline, save_tagger_spancat_pipeline

RAY_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def tagger_spancat_pipeline(tiny_checkpoint, tmp_path_factory) -> Path:
    return save_tagger_spancat_pipeline(tiny_checkpoint, tmp_path_factory.mktemp("tag-span"))


@pytest.fixture(scope="module")
def ner_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_ner_pipeline(token_classification_checkpoint, tmp_path_factory.mktemp("ner"))


@pytest.fixture(scope="module")
def multi_head_pipeline(token_classification_checkpoint, tmp_path_factory) -> Path:
    return save_multi_head_pipeline(
        token_classification_checkpoint, tmp_path_factory.mktemp("multi")
    )


@pytest.fixture
def time_limit() -> Iterator[None]:
    """Fail (instead of hanging CI) if a test takes more than RAY_TIMEOUT_S."""
    def expire(signum, frame):
        raise TimeoutError(f"the test took more than {RAY_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(RAY_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster with 2 CPUs on 127.0.0.1 (no dashboard or usage
    stats), shut down after the module's tests."""
    # Read when Ray is imported (see init_ray).
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install spacy-xlmr[ray]")
    from spacy_xlmr.scale.apply import init_ray

    address = os.environ.pop("RAY_ADDRESS", None)
    assert init_ray(num_cpus=2)
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    yield
    ray.shutdown()
    if address is not None:
        os.environ["RAY_ADDRESS"] = address
