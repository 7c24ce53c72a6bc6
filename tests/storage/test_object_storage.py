"""Object storage against a real S3 endpoint over HTTP (moto's server, authentication on):
every client through AWS_ENDPOINT_URL, the preflight's refusals, no credential anywhere, and
datasets staged once per node, verified, fetched again when damaged."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import re
import time
import zipfile
from pathlib import Path

import pytest

from orchestration.storage import StorageError, StorageURI, redact
from orchestration.storage.check import check_storage
from orchestration.storage.staging import cache_root, file_sha256, stage
from orchestration.storage.store import Store


def _tiny_market(root: Path) -> Path:
    from reid_core.data.synth import generate

    generate(root, num_ids=8, num_cameras=2, images_per_id=4, seed=1, workers=1)
    return root


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as packed:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                packed.write(path, str(Path("Market-1501-v15.09.15") / path.relative_to(folder)))
    return archive


# Every client -------------------------------------------------------------------------------


def test_aws_endpoint_url_reaches_every_client(s3, s3_env, tmp_path):
    """With only the standard variables set: this project's filesystem (which pyarrow's
    S3FileSystem() constructor would not point at the endpoint), pyarrow's from_uri (Ray's
    default), boto3 and MLflow's S3 artifact repository all reach the same store."""
    import boto3
    import pyarrow.fs as pafs
    from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

    store = Store(s3_env)
    store.write_bytes("hello.txt", b"from pyarrow")
    filesystem, path = pafs.FileSystem.from_uri(f"{s3_env}/hello.txt")
    with filesystem.open_input_stream(path) as stream:
        assert stream.read() == b"from pyarrow"
    bucket, prefix = s3_env[len("s3://") :].split("/", 1)
    client = boto3.client("s3")  # no endpoint given: AWS_ENDPOINT_URL
    assert client.get_object(Bucket=bucket, Key=f"{prefix}/hello.txt")["Body"].read() == b"from pyarrow"
    (tmp_path / "model.txt").write_text("from mlflow")
    S3ArtifactRepository(f"{s3_env}/mlflow").log_artifact(str(tmp_path / "model.txt"))
    assert store.read_bytes("mlflow/model.txt") == b"from mlflow"
    assert StorageURI.parse(f"{s3_env}?endpoint_override=127.0.0.1:{s3.port}&scheme=http").filesystem() is not None


# Credentials ---------------------------------------------------------------------------------


def test_credentials_never_appear(s3, s3_env, monkeypatch):
    secret = s3.admin.secret_key
    # generated secrets hold '/' and '+' at random: both shapes always tried
    for shape in (secret, "ab/cd+ef" + secret, "ab+cd" + secret):
        for uri in (f"s3://AKIA:{shape}@bucket/p", f"s3://bucket/p?secret_key={shape}&access_key=AKIA"):
            with pytest.raises(StorageError) as refused:
                StorageURI.parse(uri)
            shown = str(refused.value)
            assert "refused" in shown and not any(part in shown for part in re.split(r"[/+]", shape) if len(part) >= 6)
    # the filesystem Ray pickles (to every node, into tuner.pkl) holds no credential
    pickled = pickle.dumps(StorageURI.parse(s3_env).filesystem())
    assert secret.encode() not in pickled and s3.admin.access_key.encode() not in pickled
    assert secret not in redact(f"error with {secret} and key {s3.admin.access_key}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + secret)
    with pytest.raises(StorageError) as wrong:
        check_storage(s3_env)
    assert "wrong-" + secret not in str(wrong.value) and s3.admin.access_key not in str(wrong.value)


# The preflight ---------------------------------------------------------------------------------


def _refusal(uri: str) -> str:
    began = time.monotonic()
    with pytest.raises(StorageError) as refused:
        check_storage(uri, log=lambda _m: None)
    assert time.monotonic() - began < 60, "a preflight must fail fast"
    return str(refused.value)


def test_preflight_names_the_uri_the_operation_and_what_is_wrong(s3, s3_env, monkeypatch):
    assert check_storage(s3_env, log=lambda _m: None).bucket == s3.bucket
    assert "no bucket" in _refusal("s3:///just-a-prefix")
    missing = _refusal(f"s3://no-such-bucket-{os.getpid()}/p")
    assert f"s3://no-such-bucket-{os.getpid()}/p" in missing and "does not exist" in missing
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = _refusal(s3_env)
    assert s3_env in wrong and "listing failed" in wrong and "credentials are refused" in wrong
    for name, value in s3.env(s3.reader).items():
        monkeypatch.setenv(name, value)
    read_only = _refusal(s3_env)
    assert "writing a probe object failed" in read_only and "permission denied" in read_only
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    unreachable = _refusal(s3_env)
    assert "unreachable" in unreachable and s3_env in unreachable


def _closed_port() -> int:
    from s3_server import free_port

    return free_port()


def test_a_sweep_with_unusable_storage_creates_nothing(s3, s3_env, tmp_path, monkeypatch):
    """Refused before the tracking store, Ray or any folder is touched."""
    import ray
    from sweep_yaml import tiny_sweep_yaml

    from orchestration.sweep.runner import SweepOptions, run_sweep

    spec = tmp_path / "refused.yaml"
    spec.write_text(tiny_sweep_yaml("refused", "storage preflight"))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    runs = tmp_path / "runs"
    with pytest.raises(StorageError, match="credentials are refused"):
        run_sweep(spec, SweepOptions(runs_dir=runs, storage=s3_env))
    assert not runs.exists() and not ray.is_initialized()


# Staging ---------------------------------------------------------------------------------------


def _stage_in_process(source: str, sha256: str | None, queue) -> None:
    staged = stage(source, sha256, log=lambda _m: None)
    queue.put((str(staged.root), staged.downloaded))


def test_a_dataset_archive_is_staged_once_per_node_and_verified(s3_env, tmp_path):
    archive = _zip(_tiny_market(tmp_path / "market"), tmp_path / "market.zip")
    store = Store(s3_env)
    store.upload(archive, "data/Market-1501-v15.09.15.zip")
    source = f"{s3_env}/data/Market-1501-v15.09.15.zip"
    expected = file_sha256(archive)
    # two trials on one node at once: one downloads, the other waits for it
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_stage_in_process, args=(source, expected, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert len({root for root, _ in results}) == 1 and sorted(d for _, d in results) == [False, True]
    root = Path(results[0][0])
    assert (root / "Market-1501-v15.09.15" / "bounding_box_train").is_dir()
    assert stage(source, expected).downloaded is False  # verified, not fetched again
    # a corrupted and then a partial copy are noticed and fetched again
    image = next((root / "Market-1501-v15.09.15" / "query").iterdir())
    image.write_bytes(b"X" + image.read_bytes()[1:])
    assert stage(source, expected).downloaded is True
    image = next((root / "Market-1501-v15.09.15" / "bounding_box_test").iterdir())
    image.write_bytes(image.read_bytes()[:10])
    assert stage(source, expected).downloaded is True
    assert [p.name for p in cache_root().iterdir() if p.name.endswith((".staging", ".archive"))] == []


def test_a_checksum_that_does_not_match_is_refused_showing_both(s3_env, tmp_path):
    archive = _zip(_tiny_market(tmp_path / "market"), tmp_path / "market.zip")
    Store(s3_env).upload(archive, "data/market.zip")
    wrong = "0" * 64
    with pytest.raises(StorageError) as refused:
        stage(f"{s3_env}/data/market.zip", wrong)
    message = str(refused.value)
    assert wrong in message and file_sha256(archive) in message and "mismatch" in message
    assert not any(cache_root().glob("*/manifest.json"))  # nothing staged


def test_a_dataset_under_a_prefix_is_staged_file_by_file(s3_env, tmp_path):
    market = _tiny_market(tmp_path / "market")
    store = Store(s3_env)
    for path in sorted(market.rglob("*")):
        if path.is_file():
            store.upload(path, f"prefix-data/{path.relative_to(market)}")
    staged = stage(f"{s3_env}/prefix-data")
    assert staged.downloaded and sorted(p.name for p in staged.root.iterdir() if p.is_dir()) == [
        "bounding_box_test",
        "bounding_box_train",
        "query",
    ]
    manifest = json.loads((staged.root / "manifest.json").read_text())
    assert len(manifest["files"]) == sum(1 for p in market.rglob("*") if p.is_file())
