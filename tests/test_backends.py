"""Scale-out backends (issue 7): local worker processes and a real Ray cluster give the in-process
ê for every candidate, retry a training whose worker dies, and resume a run like the in-process path.

Every run is ε = 1 with FLOPs (not wall-clock) latency, so all runs see exactly the same 14
eligible candidates of the tiny space, and the ê values can be compared one by one. A worker is
killed by handing the backend a :class:`crash_hooks.CrashOnce` surrogate: bort has no crash hook.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import socket
import sqlite3
from pathlib import Path

import pytest
from crash_hooks import CrashOnce

from bort.arch import Arch
from bort.cli import main
from bort.data.corpus import load_corpus
from bort.errors import BortError
from bort.extract import recipe
from bort.extract.backends import BackendConfig, LocalPool
from bort.extract.ray_backend import check_address
from bort.models.teacher import load_teacher
from bort.surrogates.error import ErrorSettings, ErrorSurrogate
from bort.training.hparams import Theta

ELIGIBLE = 14


def trials(out) -> dict[str, tuple]:
    """arch → (error, created, worker) of every stored training."""
    db = sqlite3.connect(out / "bort.sqlite")
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT arch, error, created, worker FROM trial")}
    finally:
        db.close()


def run(extract_args, teacher, out, *extra: str) -> dict:
    assert main(extract_args(teacher, out, "--epsilon", "1", "--latency", "flops", *extra)) == 0
    return json.loads((out / "result.json").read_text(encoding="utf-8"))


def assert_same_errors(out, reference) -> None:
    got, ref = trials(out), trials(reference)
    assert set(got) == set(ref) and len(got) == ELIGIBLE
    for arch in ref:
        assert got[arch][0] == pytest.approx(ref[arch][0], rel=1e-5, abs=1e-6), arch


def crash_once(monkeypatch, tmp_path, arch_key: str):
    """Arm the crash for this test's ``bort extract`` runs: the first worker process to start that ξ exits abruptly.

    The run's backend is opened on a :class:`CrashOnce` copy of the run's surrogate; returns the marker file.
    """
    marker = tmp_path / "crashed"
    real = recipe.open_backend

    def open_crashing(cfg: BackendConfig, surrogate: ErrorSurrogate, device: str):
        return real(cfg, CrashOnce.wrap(surrogate, arch_key, marker), device)

    monkeypatch.setattr(recipe, "open_backend", open_crashing)
    return marker


@pytest.fixture(scope="module")
def reference(tmp_path_factory, bert_teacher, extract_args):
    """The in-process run (the default, --workers 1) every backend is compared with."""
    out = tmp_path_factory.mktemp("backends") / "in_process"
    result = run(extract_args, bert_teacher, out)
    assert result["backend"]["kind"] == "local" and result["evaluated"] == ELIGIBLE
    assert {w.split("/")[0] for _, _, w in trials(out).values()} == {f"{socket.gethostname()}:{os.getpid()}"}
    return out


@pytest.mark.parametrize("cache_gb", [4.0, 0.0])
def test_prepared_surrogate_ships_without_corpus_and_trains_the_same(bert_teacher, corpus_file, cache_gb):
    """What workers receive: batches and teacher logits, not the corpus; the teacher only when its logits are not cached."""
    teacher = load_teacher(bert_teacher)
    corpus = load_corpus(corpus_file, teacher.tokenizer, seq_len=32)
    settings = ErrorSettings(steps=3, eval_sequences=8, eval_batch_size=4, thetas=(Theta(batch_size=4),), teacher_cache_gb=cache_gb)
    surrogate = ErrorSurrogate(teacher, corpus, settings)
    with pytest.raises(RuntimeError, match="prepare"):
        pickle.dumps(surrogate)
    copy = pickle.loads(pickle.dumps(surrogate.prepare()))
    assert copy._train_blocks is None and copy._tokenizer is None
    assert (copy.teacher_model is None) == (cache_gb > 0)
    arch, theta = Arch(1, 2, 32, 64), Theta(batch_size=4)
    assert copy(arch, theta) == surrogate(arch, theta)


def test_backend_errors_are_one_line(monkeypatch):
    with pytest.raises(BortError, match="--address and --gpus-per-trial are for --backend ray"):
        BackendConfig(kind="local", address="auto")
    with pytest.raises(BortError, match="--workers must be at least 1"):
        BackendConfig(workers=0)
    with pytest.raises(BortError, match="nothing answers at --address 127.0.0.1:1"):
        check_address("127.0.0.1:1")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(BortError, match=r"--backend ray needs Ray: run `pip install 'ray>=2.9'`"):
        BackendConfig(kind="ray")


def test_local_workers_match_in_process_and_retry_a_dead_worker(tmp_path, monkeypatch, reference, bert_teacher, extract_args):
    """Two worker processes, one of which dies on its first attempt at a candidate: same table as in-process."""
    marker = crash_once(monkeypatch, tmp_path, Arch(1, 2, 32, 64).key)  # an eligible candidate of the tiny space
    out = tmp_path / "local2"
    result = run(extract_args, bert_teacher, out, "--workers", "2")
    assert marker.exists(), "the crash hook never fired"
    assert result["backend"]["workers"] == 2 and result["evaluated"] == ELIGIBLE
    assert_same_errors(out, reference)
    assert f":{os.getpid()}/" not in "".join(w for _, _, w in trials(out).values())  # nothing trained in the driver
    assert result["best"] == json.loads((reference / "result.json").read_text(encoding="utf-8"))["best"]


def test_local_pool_gives_up_after_the_retries(tmp_path, bert_teacher, corpus_file):
    """With --retries 0 a local worker's first death is final: one line naming the candidate and the fix."""
    teacher = load_teacher(bert_teacher)
    theta, arch, marker = Theta(batch_size=4), Arch(1, 2, 32, 64), tmp_path / "crashed"
    settings = ErrorSettings(steps=3, eval_sequences=8, eval_batch_size=4, thetas=(theta,))
    surrogate = ErrorSurrogate(teacher, load_corpus(corpus_file, teacher.tokenizer, seq_len=32), settings)
    pool = LocalPool(CrashOnce.wrap(surrogate, arch.key, marker).prepare(), ["cpu"], BackendConfig(retries=0))
    try:
        with pytest.raises(BortError, match=r"^the training of ⟨1,2,32,64⟩ \(lr=0.001,batch_size=4,warmup=0.1\) was lost with its worker, "
                                            r"1 attempt\(s\); see the log above, or raise --retries$"):
            list(pool.map([(arch, theta)]))
    finally:
        pool.close()
    assert marker.exists(), "the crash hook never fired"


@pytest.fixture(scope="module")
def ray_cluster():
    """A real two-CPU Ray cluster on 127.0.0.1, started by the test (bort joins it, and leaves it running)."""
    # On Linux Ray turns 127.0.0.1 into the machine's reachable address; this switch (read when ray is
    # imported, and inherited by its processes) keeps every address on the loopback.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'ray>=2.9' (make test installs it)")
    # Ray's workers get tests/ on their path, so that they can unpickle a crash_hooks.CrashOnce surrogate.
    path = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="warning", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path}})
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
    yield ray
    ray.shutdown()
    del os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]


@pytest.mark.ray
def test_ray_matches_local(tmp_path, ray_cluster, reference, bert_teacher, extract_args):
    out = tmp_path / "ray"
    result = run(extract_args, bert_teacher, out, "--backend", "ray")
    assert result["backend"]["kind"] == "ray" and result["evaluated"] == ELIGIBLE
    assert_same_errors(out, reference)
    assert f":{os.getpid()}/" not in "".join(w for _, _, w in trials(out).values())  # trained by Ray's workers
    assert result["best"] == json.loads((reference / "result.json").read_text(encoding="utf-8"))["best"]
    assert ray_cluster.is_initialized()  # bort did not shut down a cluster it did not start


@pytest.mark.ray
def test_ray_retries_a_killed_worker_and_resumes(tmp_path, monkeypatch, ray_cluster, reference, bert_teacher, extract_args):
    """An in-process run stopped early (ε = 4) is resumed with Ray at ε = 1, while a worker dies mid-way."""
    out = tmp_path / "resumed"
    assert main(extract_args(bert_teacher, out, "--epsilon", "4", "--latency", "flops")) == 0
    before = trials(out)
    assert 0 < len(before) < ELIGIBLE
    marker = crash_once(monkeypatch, tmp_path, min(set(trials(reference)) - set(before)))  # one the resumed run trains
    run(extract_args, bert_teacher, out, "--backend", "ray", "--retries", "1")
    assert marker.exists(), "the crash hook never fired"
    after = trials(out)
    assert all(after[arch] == row for arch, row in before.items())  # finished results are kept, never retrained
    assert_same_errors(out, reference)


@pytest.mark.ray
def test_ray_gives_up_after_the_retries(tmp_path, monkeypatch, capsys, ray_cluster, bert_teacher, extract_args):
    """With --retries 0 the first death is final: one line naming the candidate and the fix; what finished stays stored."""
    crash_once(monkeypatch, tmp_path, Arch(1, 2, 32, 64).key)
    out = tmp_path / "no_retry"
    assert main(extract_args(bert_teacher, out, "--epsilon", "1", "--latency", "flops", "--backend", "ray", "--retries", "0", "--workers", "1")) == 2
    assert "bort: error: the training of ⟨1,2,32,64⟩ (lr=0.001,batch_size=4,warmup=0.1) was lost with its worker, 1 attempt(s)" in capsys.readouterr().err
    assert not out.exists() or "1,2,32,64" not in trials(out)  # a run that stored nothing leaves no folder
