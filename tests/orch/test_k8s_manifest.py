"""`compact-reid k8s manifest`: a sweep as a KubeRay RayJob, validated offline.

No Kubernetes cluster runs here. What is checked: the RayJob against the project's schema of
the fields it renders (orchestration/k8s/schemas/rayjob.schema.json, written from KubeRay's API
reference), the pod templates and the ConfigMap against Kubernetes' own schema
(kubernetes-validate, strict: an unknown field fails), credentials only as secretKeyRef, the
refusals, and deploy/Dockerfile's versions against pyproject.toml's pins.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement

from orchestration.cli import main
from orchestration.k8s import ManifestError, ManifestOptions, render_manifest
from orchestration.k8s import image as k8s_image
from orchestration.k8s.credentials import CREDENTIALS, NAMES, secret_template
from orchestration.k8s.names import MAX_JOB_NAME, job_name_from
from orchestration.k8s.schema import rayjob_errors
from orchestration.storage.uri import SECRET_VARIABLES

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "sweeps" / "smoke.yaml")
KUBERNETES_VERSION = "1.30"
STORAGE = "s3://reid-sweeps/paper"
TRACKING = "http://mlflow.reid.svc:5000"
BASE_ARGS = ["--image", "registry.example.com/compact-reid:0.1.0", "--storage", STORAGE, "--tracking-uri", TRACKING]
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYID0000001",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-0f9e8d7c6b5a",
    "AWS_SESSION_TOKEN": "fake-session-token-1234",
    "MLFLOW_TRACKING_PASSWORD": "fake-mlflow-password-5678",
    "MLFLOW_TRACKING_TOKEN": "fake-mlflow-token-9012",
}


def _options(**changes: Any) -> ManifestOptions:
    values: dict[str, Any] = dict(
        image="registry.example.com/compact-reid:0.1.0", storage=STORAGE, tracking_uri=TRACKING
    )
    values.update(changes)
    return ManifestOptions(**values)


def _groups(rayjob: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def _as_pod(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "ray-pod", **template["metadata"]},
        "spec": template["spec"],
    }


def _validate_kubernetes(manifest: Any) -> None:
    """The ConfigMap and every pod template (as a Pod) against Kubernetes' schema, strict."""
    kubernetes_validate.validate(manifest.configmap, KUBERNETES_VERSION, strict=True)
    for group in _groups(manifest.rayjob):
        kubernetes_validate.validate(_as_pod(group["template"]), KUBERNETES_VERSION, strict=True)


def _strings(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every string in a document, keys included, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), str(key)
            yield from _strings(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*path, index))
    elif isinstance(node, str):
        yield path, node


def _render_cli(capsys: pytest.CaptureFixture[str], *args: str, spec: str = SMOKE) -> tuple[int, str, str]:
    code = main(["k8s", "manifest", spec, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# Rendering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("gpus, workers", [(0, 1), (1, 1), (2, 3)])
def test_renders_a_valid_rayjob_for_0_1_2_gpus(gpus: int, workers: int) -> None:
    manifest = render_manifest(SMOKE, _options(gpus_per_worker=gpus, workers=workers))
    rayjob = manifest.rayjob
    assert rayjob_errors(rayjob) == []
    _validate_kubernetes(manifest)

    spec = rayjob["spec"]
    assert (rayjob["apiVersion"], rayjob["kind"], rayjob["metadata"]["name"]) == ("ray.io/v1", "RayJob", "smoke")
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 300
    assert "runtimeEnvYAML" not in spec
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == k8s_image.RAY_VERSION
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # trials never land on the head
    head_resources = head["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in head_resources["limits"]

    (group,) = cluster["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == workers
    worker = group["template"]["spec"]
    resources = worker["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]  # scheduled only where all of it fits
    if gpus:
        assert resources["limits"]["nvidia.com/gpu"] == str(gpus)
        assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    else:
        assert "nvidia.com/gpu" not in resources["limits"] and "tolerations" not in worker


def test_the_entrypoint_runs_the_mounted_spec_against_storage_and_tracking() -> None:
    manifest = render_manifest(SMOKE, _options(namespace="reid"))
    words = shlex.split(manifest.rayjob["spec"]["entrypoint"])
    (key,) = manifest.configmap["data"]
    spec_file = f"{k8s_image.SPEC_DIR}/{key}"
    assert words == [
        *("compact-reid", "sweep", "run", spec_file),
        *("--storage", STORAGE, "--tracking-uri", TRACKING),
        *("--runs-dir", k8s_image.RUNS_DIR),  # the driver's local defaults: a cache in the pod
    ]
    assert key == "smoke.yaml"
    assert manifest.configmap["data"][key] == Path(SMOKE).read_text()  # the spec as written, comments included
    head = manifest.rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    (volume,) = [v for v in head["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == manifest.configmap["metadata"]["name"] == "smoke-spec"
    (mount,) = [m for m in head["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == k8s_image.SPEC_DIR and mount["readOnly"] is True
    assert {manifest.configmap["metadata"]["namespace"], manifest.rayjob["metadata"]["namespace"]} == {"reid"}


def test_resume_runs_sweep_resume_under_its_own_name() -> None:
    manifest = render_manifest(SMOKE, _options(tracking_uri=None, resume=True))
    words = shlex.split(manifest.rayjob["spec"]["entrypoint"])
    assert words[:6] == ["compact-reid", "sweep", "resume", "smoke", "--storage", STORAGE]
    assert "--tracking-uri" not in words  # the sweep's saved one
    assert manifest.rayjob["metadata"]["name"] == "smoke-resume"


def test_cli_prints_yaml_that_reads_back_as_the_manifest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "rayjob.yaml"
    code, _, err = _render_cli(capsys, *BASE_ARGS, "--gpus-per-worker", "1", "--out", str(out))
    assert code == 0, err
    text = out.read_text()
    documents = list(yaml.safe_load_all(text))
    expected = render_manifest(SMOKE, _options(gpus_per_worker=1))
    assert documents == expected.documents
    assert not re.search(r"[&*]id\d", text)  # no YAML anchors: every pod's env is written out
    assert text.startswith("# Sweep 'smoke' as a KubeRay RayJob") and "kubectl apply -f " + str(out) in text

    code, printed, _ = _render_cli(capsys, *BASE_ARGS, "--gpus-per-worker", "1")
    assert code == 0 and printed == text.replace(str(out), "rayjob.yaml")


def test_job_names_are_valid_kuberay_names() -> None:
    assert job_name_from("Table3_Ablation") == "table3-ablation"
    assert job_name_from("3rd try") == "sweep-3rd-try"
    long = job_name_from("x" * 80, "-resume")
    assert len(long) == MAX_JOB_NAME and long.endswith("-resume")


# Credentials -----------------------------------------------------------------------------------


def test_credentials_reach_every_container_only_as_secret_refs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    code, text, err = _render_cli(capsys, *BASE_ARGS, "--secret", "reid-creds")
    assert code == 0, err
    for value in FAKE_SECRETS.values():
        assert value not in text and value not in err

    documents = list(yaml.safe_load_all(text))
    rayjob = documents[1]
    for group in _groups(rayjob):
        (container,) = group["template"]["spec"]["containers"]
        references = {entry["name"]: entry for entry in container["env"] if entry["name"] in NAMES}
        assert set(references) == NAMES
        for name, entry in references.items():
            assert set(entry) == {"name", "valueFrom"}  # never a `value`
            assert entry["valueFrom"]["secretKeyRef"]["name"] == "reid-creds"
            assert entry["valueFrom"]["secretKeyRef"]["key"] == name
    # A credential's name appears nowhere else: not in the entrypoint, not in a runtime environment.
    for document in documents:
        for path, string in _strings(document):
            if any(name in string for name in NAMES):
                assert "env" in path and path[-1] in ("name", "key"), (path, string)
    assert "runtimeEnvYAML" not in rayjob["spec"]


def test_s3_keys_are_required_and_the_rest_optional() -> None:
    def optional(manifest: Any) -> dict[str, bool]:
        env = _groups(manifest.rayjob)[1]["template"]["spec"]["containers"][0]["env"]
        return {entry["name"]: entry["valueFrom"]["secretKeyRef"]["optional"] for entry in env}

    on_s3 = optional(render_manifest(SMOKE, _options()))
    assert not on_s3["AWS_ACCESS_KEY_ID"] and not on_s3["AWS_SECRET_ACCESS_KEY"]
    assert all(on_s3[name] for name in NAMES - {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
    assert all(optional(render_manifest(SMOKE, _options(storage="gs://reid-sweeps/paper"))).values())


def test_every_secret_variable_of_the_storage_clients_comes_from_the_secret() -> None:
    assert set(SECRET_VARIABLES) <= NAMES


def test_secret_template_has_placeholders_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAKE_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert main(["k8s", "secret", "--secret", "reid-creds", "--namespace", "reid"]) == 0
    text = capsys.readouterr().out
    assert not any(value in text for value in FAKE_SECRETS.values())
    assert "kubectl create secret generic reid-creds --namespace reid --from-env-file=" in text
    # An env file for kubectl: comments, and KEY=VALUE for the keys to fill in (the S3 keys).
    assignments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert [line.split("=", 1)[0] for line in assignments] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert all(line.split("=", 1)[1].startswith("<") for line in assignments)
    assert all(f"# {credential.name}=" in text for credential in CREDENTIALS if not credential.for_s3)
    assert secret_template("x", None).count("kubectl") == 1


def test_the_package_lists_every_module() -> None:
    import ast

    package = REPO / "orchestration" / "k8s"
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert [p.stem for p in package.glob("*.py") if p.stem != "__init__" and f"`{p.stem}`" not in doc] == []


# The project's RayJob schema -------------------------------------------------------------------


def test_the_schema_refuses_what_the_project_never_renders() -> None:
    rayjob = render_manifest(SMOKE, _options()).rayjob

    def errors_after(change: Any) -> list[str]:
        changed = copy.deepcopy(rayjob)
        change(changed)
        return rayjob_errors(changed)

    leaky = errors_after(lambda job: job["spec"].update(runtimeEnvYAML="env_vars:\n  AWS_SECRET_ACCESS_KEY: x\n"))
    assert leaky and "runtimeEnvYAML" in leaky[0]
    assert errors_after(lambda job: job["spec"].update(shutdownAfterJobFinishes=False))
    assert errors_after(lambda job: job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].update(x=0))
    assert errors_after(lambda job: job["metadata"].update(name="x" * (MAX_JOB_NAME + 1)))
    assert errors_after(lambda job: job["spec"]["rayClusterSpec"].update(workerGroupSpecs=[]))
    assert errors_after(lambda job: job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].pop("maxReplicas"))
    assert errors_after(lambda job: job["spec"].update(submissionMode="Batch"))


def test_kubernetes_validation_catches_a_wrong_pod_field() -> None:
    template = render_manifest(SMOKE, _options()).rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    pod = _as_pod(copy.deepcopy(template))
    pod["spec"]["containers"][0]["volumeMount"] = pod["spec"]["containers"][0].pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


# Refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, named",
    [
        (["--storage", "/srv/sweeps"], "--storage"),
        (["--storage", "s3://AKIAX:hunter2secret@bucket/p"], "--storage"),
        (["--tracking-uri", "sqlite:///runs/mlflow.db"], "--tracking-uri"),
        (["--tracking-uri", "http://user:hunter2secret@mlflow:5000"], "--tracking-uri"),
        (["--tracking-uri", "http://127.0.0.1:5000"], "--tracking-uri"),
        (["--memory-per-worker", "16 gigs"], "--memory-per-worker"),
        (["--workers", "0"], "--workers"),
        (["--secret", "Bad_Name"], "--secret"),
        (["--job-name", "9lives"], "--job-name"),
        (["--resume"], "--tracking-uri"),
    ],
)
def test_refuses_what_pods_cannot_use(
    args: list[str], named: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "rayjob.yaml"
    code, text, err = _render_cli(capsys, *BASE_ARGS, *args, "--out", str(out))
    assert code == 2 and text == "" and not out.exists()
    assert named in err and "hunter2secret" not in err, err


def _spec_with_dataset(tmp_path: Path, dataset: str, extra: str = "") -> str:
    smoke = Path(SMOKE).read_text()
    text = re.sub(r"(?m)^dataset:\n  synthetic: .*$", f"dataset:\n  {dataset}", smoke) + extra
    assert text != smoke or not dataset
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def test_refuses_a_local_dataset_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = _spec_with_dataset(tmp_path, "path: /data/Market-1501")
    code, _, err = _render_cli(capsys, *BASE_ARGS, spec=spec)
    assert code == 2 and "dataset.path" in err and "object storage" in err, err


def test_a_dataset_variable_goes_to_the_driver_as_a_plain_value(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec_with_dataset(tmp_path, "path: ${MARKET1501_ROOT}")
    monkeypatch.setenv("MARKET1501_ROOT", "/local/market")
    code, _, err = _render_cli(capsys, *BASE_ARGS, spec=spec)
    assert code == 2 and "dataset.path" in err, err

    monkeypatch.setenv("MARKET1501_ROOT", "s3://reid-data/Market-1501-v15.09.15.zip")
    manifest = render_manifest(spec, _options())
    head, worker = (group["template"]["spec"]["containers"][0]["env"] for group in _groups(manifest.rayjob))
    assert {"name": "MARKET1501_ROOT", "value": "s3://reid-data/Market-1501-v15.09.15.zip"} in head
    assert all(entry["name"] != "MARKET1501_ROOT" for entry in worker)
    assert "${MARKET1501_ROOT}" in manifest.configmap["data"]["spec.yaml"]  # the spec as written
    _validate_kubernetes(manifest)


def test_refuses_an_invalid_spec(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(Path(SMOKE).read_text() + "max_concurent: 3\n")
    code, text, err = _render_cli(capsys, *BASE_ARGS, spec=str(spec))
    assert code == 2 and text == "" and "max_concurent" in err, err


def _with_resources(tmp_path: Path, cpu: int, gpu: int) -> str:
    path = tmp_path / "resources.yaml"
    text = Path(SMOKE).read_text().replace("resources: {cpu: 1, gpu: 0}", f"resources: {{cpu: {cpu}, gpu: {gpu}}}")
    path.write_text(text)
    return str(path)


def test_refuses_a_trial_no_worker_can_hold(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="resources.gpu.*--gpus-per-worker"):
        render_manifest(_with_resources(tmp_path, 1, 1), _options(gpus_per_worker=0))
    with pytest.raises(ManifestError, match="resources.cpu.*--cpus-per-worker"):
        render_manifest(_with_resources(tmp_path, 8, 0), _options(cpus_per_worker=4))
    assert render_manifest(_with_resources(tmp_path, 4, 1), _options(cpus_per_worker=4, gpus_per_worker=1)).rayjob


# The container image ----------------------------------------------------------------------------


def _pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _dockerfile_args() -> dict[str, str]:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    return dict(re.findall(r"(?m)^ARG ([A-Z_]+)=(\S+)$", text))


def test_dockerfile_pins_are_pyprojects() -> None:
    project = _pyproject()["project"]
    requirements = {Requirement(line).name: Requirement(line) for line in project["dependencies"]}
    args = _dockerfile_args()
    for package, arg in (("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")):
        (pin,) = requirements[package].specifier
        assert pin.operator == "==" and args[arg] == pin.version, (package, args.get(arg), str(pin))
    assert args["RAY_VERSION"] == k8s_image.RAY_VERSION  # the RayJob's rayVersion is the image's Ray
    assert requirements["ray"].specifier.contains(args["RAY_VERSION"])
    (python,) = re.findall(r"(?m)^FROM python:(\d+\.\d+)-", (REPO / "deploy" / "Dockerfile").read_text())
    assert Requirement(f"python{project['requires-python']}").specifier.contains(f"{python}.0")


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    text = (REPO / "deploy" / "Dockerfile").read_text()
    packages = [name.rstrip("*") for name in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]]
    ignore = (REPO / ".dockerignore").read_text().split()
    for package in packages:
        assert f"COPY {package} ./{package}" in text and f"!{package}" in ignore, package
    assert "COPY sweeps ./sweeps" in text and "!sweeps" in ignore
    assert '"ray[default,tune]==${RAY_VERSION}"' in text  # the dashboard: KubeRay submits the job through it
    assert re.search(r"install [^\n]*\bwget\b", text)  # KubeRay's probes run wget
    (user,) = re.findall(r"(?m)^USER (\S+)$", text)
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0  # numeric: runAsNonRoot can check it
