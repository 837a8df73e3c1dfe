"""Tests of the model registry (stratumlite.lineage.registry)."""

from __future__ import annotations

import hashlib
import multiprocessing
from pathlib import Path

import pytest

from stratumlite.config import Config
from stratumlite.errors import LineageError, StratumliteError
from stratumlite.lineage import (
    ArtifactIntegrityError,
    LineageStore,
    ModelRegistry,
)


@pytest.fixture
def cfg(tmp_path):
    return Config(state_dir=tmp_path / "state")


@pytest.fixture
def registry(cfg):
    store = LineageStore(cfg.lineage_db)
    yield ModelRegistry(store, cfg.artifacts_dir)
    store.close()


def _touch(path):
    """What unpickling an ``Evil`` object calls."""
    Path(path).write_text("unpickled!")
    return "evil"


class Evil:
    """Unpickling this writes a marker file (stands in for arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_register_and_load_versions(registry, cfg):
    assert (
        registry.register(
            {"w": [1, 2]},
            "churn",
            lineage_key="k1",
            metrics={"auc": 0.81},
            tags={"team": "a"},
        )
        == 1
    )
    assert registry.register({"w": [3, 4]}, "churn", lineage_key="k2") == 2
    assert registry.register("other", "fraud", lineage_key="k3") == 1
    assert registry.load("churn") == {"w": [3, 4]}  # latest
    assert registry.load("churn", version=1) == {"w": [1, 2]}
    entry = registry.resolve("churn", version=1)
    assert entry["lineage_key"] == "k1"
    assert entry["metrics"] == {"auc": 0.81} and entry["tags"] == {"team": "a"}
    assert entry["version"] == 1 and entry["name"] == "churn"
    # content-addressed: artifacts/ab/abcdef....pkl named by the sha256 of the bytes
    path = entry["path"]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert path == cfg.artifacts_dir / entry["sha256"][:2] / f"{entry['sha256']}.pkl"
    assert [v["version"] for v in registry.versions("churn")] == [1, 2]
    models = registry.list_models()
    assert [(m["name"], m["latest_version"], m["n_versions"]) for m in models] == [
        ("churn", 2, 2),
        ("fraud", 1, 1),
    ]
    # no temporary files left behind
    assert not [p for p in cfg.artifacts_dir.rglob("*") if p.name.endswith(".tmp")]


def test_identical_objects_share_one_file(registry, cfg):
    registry.register([1, 2, 3], "a", lineage_key="k")
    registry.register([1, 2, 3], "b", lineage_key="k")
    assert registry.resolve("a")["sha256"] == registry.resolve("b")["sha256"]
    assert len(list(cfg.artifacts_dir.rglob("*.pkl"))) == 1


def test_cloudpickle_handles_lambdas(registry):
    registry.register({"f": lambda x: x * 2}, "fn", lineage_key="k")
    assert registry.load("fn")["f"](21) == 42


def test_run_id_is_checked_and_recorded(registry):
    run_id = registry.store.start_run("fit")
    registry.register(1, "m", lineage_key="k", run_id=run_id)
    assert registry.resolve("m")["run_id"] == run_id
    with pytest.raises(LineageError, match="unknown run 'ghost'"):
        registry.register(1, "m", lineage_key="k", run_id="ghost")
    assert [v["version"] for v in registry.versions("m")] == [1]


def test_tampered_artifact_is_refused_before_unpickling(registry, tmp_path):
    marker = tmp_path / "marker"
    registry.register(Evil(marker), "evil", lineage_key="k")
    path = registry.resolve("evil")["path"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # flip one bit
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError) as info:
        registry.load("evil")
    msg = str(info.value)
    assert "model 'evil' version 1" in msg and str(path) in msg
    assert "refusing to unpickle" in msg
    assert info.value.name == "evil" and info.value.version == 1
    assert info.value.path == path
    assert isinstance(info.value, StratumliteError)
    assert not marker.exists(), "nothing may be unpickled from a tampered artifact"

    # control: the same gadget, intact, does run on load (so the check above matters)
    marker2 = tmp_path / "marker2"
    registry.register(Evil(marker2), "evil-intact", lineage_key="k")
    assert registry.load("evil-intact") == "evil"
    assert marker2.exists()


def test_truncated_and_missing_artifacts_are_refused(registry):
    registry.register(list(range(1000)), "m", lineage_key="k")
    path = registry.resolve("m")["path"]
    full = path.read_bytes()
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ArtifactIntegrityError, match="truncated"):
        registry.load("m")
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registry.load("m")
    # registering the same object again repairs the file
    registry.register(list(range(1000)), "m", lineage_key="k")
    assert registry.load("m", version=1) == list(range(1000))


def test_aliases_move(registry):
    registry.register("v1", "m", lineage_key="k1", alias="prod")
    registry.register("v2", "m", lineage_key="k2", alias="staging")
    registry.register("v3", "m", lineage_key="k3")
    assert registry.load("m", alias="prod") == "v1"
    assert registry.set_alias("m", "prod", 2) == 1  # moved: returns the old target
    assert registry.load("m", alias="prod") == "v2"
    assert registry.resolve("m", alias="prod")["aliases"] == ["prod", "staging"]
    assert registry.set_alias("m", "canary", 3) is None
    assert registry.list_models()[0]["aliases"] == {
        "canary": 3,
        "prod": 2,
        "staging": 2,
    }
    # registering with an alias moves it too
    registry.register("v4", "m", lineage_key="k4", alias="prod")
    assert registry.resolve("m", alias="prod")["version"] == 4
    assert registry.delete_alias("m", "canary") == 3
    with pytest.raises(
        LineageError,
        match=r"model 'm' has no alias 'canary' \(aliases: prod, staging\)",
    ):
        registry.load("m", alias="canary")
    with pytest.raises(LineageError, match="has no alias"):
        registry.delete_alias("m", "canary")
    with pytest.raises(
        LineageError, match=r"has no version 9 \(versions: 1, 2, 3, 4\)"
    ):
        registry.set_alias("m", "prod", 9)
    with pytest.raises(ValueError, match="number"):
        registry.set_alias("m", "2", 2)
    with pytest.raises(ValueError, match="not both"):
        registry.resolve("m", version=1, alias="prod")


def test_lookup_errors(registry):
    with pytest.raises(LineageError, match=r"unknown model 'x' \(models: none\)"):
        registry.resolve("x")
    registry.register(1, "m", lineage_key="k")
    registry.register(2, "m", lineage_key="k")
    with pytest.raises(LineageError, match="unknown model 'x'"):
        registry.load("x")
    with pytest.raises(
        LineageError, match=r"model 'm' has no version 3 \(versions: 1, 2\)"
    ):
        registry.load("m", version=3)
    with pytest.raises(LineageError, match="unknown model 'x'"):
        registry.versions("x")
    with pytest.raises(LookupError):  # LineageError is a LookupError
        registry.resolve("m", alias="nope")
    with pytest.raises(ValueError, match="model name"):
        registry.register(1, "", lineage_key="k")


def _register_many(state_dir, n, start, queue):
    cfg = Config(state_dir=state_dir)
    store = LineageStore(cfg.lineage_db)
    registry = ModelRegistry(store, cfg.artifacts_dir)
    start.wait(60)
    versions = [
        registry.register({"i": i, "state": state_dir}, "shared", lineage_key=f"k{i}")
        for i in range(n)
    ]
    store.close()
    queue.put(versions)


def test_concurrent_registration_gives_distinct_versions(cfg):
    LineageStore(cfg.lineage_db).close()
    ctx = multiprocessing.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_register_many, args=(str(cfg.state_dir), 25, start, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    start.set()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    a, b = results
    assert a == sorted(a) and b == sorted(b)  # each process sees increasing versions
    assert sorted(a + b) == list(range(1, 51))  # distinct, no gap
    store = LineageStore(cfg.lineage_db)
    registry = ModelRegistry(store, cfg.artifacts_dir)
    assert [v["version"] for v in registry.versions("shared")] == list(range(1, 51))
    assert registry.load("shared", version=50)["i"] in range(25)
    store.close()
