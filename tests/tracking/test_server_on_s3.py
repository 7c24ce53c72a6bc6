"""The tracking server keeps its artifacts on S3 and proxies them: clients need no S3
credentials; what trials log lands in the bucket, and reuse across sweeps reads it back."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e]

mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402
from test_tracking import exercise_store  # noqa: E402

from mlflow_server.server import start_server  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402
from orchestration.mlflow_log.reuse import copy_run, find_reusable  # noqa: E402
from orchestration.storage.store import Store  # noqa: E402


def test_server_proxies_artifacts_to_s3_and_reuse_reads_them_back(s3, s3_env, tmp_path, monkeypatch):
    artifacts = f"{s3_env}/mlflow"
    with start_server(
        port=0,
        backend_store_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifacts_destination=artifacts,
        runs_dir=tmp_path,
    ) as server:
        # the server has the credentials; a client does not need any
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
            monkeypatch.delenv(name)
        exercise_store(server.url, sweep="s3-protocol")
        client = MlflowClient(server.url)
        experiment = client.create_experiment("s3-reuse")
        source = client.create_run(experiment, tags={names.IDENTITY: "same-training"}).info.run_id
        for name in (names.HISTORY_ARTIFACT, names.SUMMARY_ARTIFACT, f"{names.WEIGHTS_DIR}/final.pt"):
            client.log_text(source, "{}", name)
        client.log_metric(source, "loss", 0.5, step=1)
        client.set_terminated(source, "FINISHED")
        assert find_reusable(server.url, {"same-training"}) == {"same-training": source}
        target = client.create_run(experiment).info.run_id
        copy_run(client, source, target)
        assert {a.path for a in client.list_artifacts(target)} >= {names.HISTORY_ARTIFACT, names.WEIGHTS_DIR}
    for name, value in s3.env().items():  # the bucket, seen directly
        monkeypatch.setenv(name, value)
    stored = Store(artifacts).listing()
    assert any(path.endswith(f"{source}/artifacts/{names.SUMMARY_ARTIFACT}") for path in stored), sorted(stored)[:10]
    assert any(path.endswith(f"{target}/artifacts/{names.WEIGHTS_DIR}/final.pt") for path in stored)
