"""`compact-reid k8s`: a sweep as a KubeRay RayJob (`manifest`) and the template of the Secret
its pods read credentials from (`secret`). Neither talks to a cluster: they print YAML for
kubectl. Imports neither Ray nor MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from orchestration.k8s.image import RAY_VERSION

    parser = sub.add_parser(
        "k8s",
        help="Kubernetes: a sweep as a KubeRay RayJob, and its credentials' Secret",
        description="Render what `kubectl apply` needs to run a sweep on Kubernetes with KubeRay "
        "(docs/CLUSTER.md, 'Kubernetes'). Nothing here talks to a cluster.",
    )
    commands = parser.add_subparsers(dest="k8s_command", required=True, metavar="SUBCOMMAND")

    manifest = commands.add_parser(
        "manifest",
        help="a ConfigMap with the spec and a RayJob that runs the sweep, then deletes its cluster",
        description="Validate the spec, then print a ConfigMap holding it and a KubeRay RayJob (ray.io/v1) "
        "whose entrypoint runs `compact-reid sweep run` on the head of a RayCluster of one head "
        "and --workers workers, deleted when the sweep ends. Storage and tracking URIs must be "
        "reachable from every pod (object storage, an MLflow server); credentials come from the "
        "Secret --secret through secretKeyRef, never from this command or its output.",
    )
    manifest.add_argument("spec", help="sweep YAML (its dataset: synthetic or in object storage)")
    manifest.add_argument("--image", required=True, help="the container image (built from deploy/Dockerfile)")
    manifest.add_argument(
        "--storage", required=True, metavar="URI", help="object storage every pod reaches: s3://BUCKET/PREFIX or gs://"
    )
    manifest.add_argument(
        "--tracking-uri",
        default=None,
        metavar="URI",
        help="the MLflow server every pod reaches, http(s)://HOST:PORT (not with --resume)",
    )
    manifest.add_argument(
        "--namespace", default=None, metavar="NS", help="the namespace (default: kubectl's current one)"
    )
    manifest.add_argument("--workers", type=int, default=1, metavar="N", help="worker pods (default 1)")
    manifest.add_argument(
        "--gpus-per-worker", type=int, default=1, metavar="N", help="nvidia.com/gpu per worker (default 1; 0: CPU)"
    )
    manifest.add_argument("--cpus-per-worker", type=int, default=4, metavar="N", help="CPUs per worker (default 4)")
    manifest.add_argument(
        "--memory-per-worker", default="16Gi", metavar="QUANTITY", help="memory per worker (default 16Gi)"
    )
    manifest.add_argument(
        "--head-cpus", type=int, default=2, metavar="N", help="CPUs of the head, which runs the driver (default 2)"
    )
    manifest.add_argument("--head-memory", default="8Gi", metavar="QUANTITY", help="memory of the head (default 8Gi)")
    manifest.add_argument(
        "--secret",
        default="compact-reid-credentials",
        metavar="NAME",
        help="the Secret with the AWS_* / MLFLOW_TRACKING_* keys (default compact-reid-credentials; "
        "`compact-reid k8s secret` prints its template)",
    )
    manifest.add_argument(
        "--ray-version",
        default=RAY_VERSION,
        metavar="X.Y.Z",
        help=f"the image's Ray version (default {RAY_VERSION}, the Dockerfile's)",
    )
    manifest.add_argument(
        "--ttl-seconds",
        type=int,
        default=300,
        metavar="S",
        help="seconds the cluster stays after the sweep ends (default 300)",
    )
    manifest.add_argument(
        "--deadline-seconds", type=int, default=None, metavar="S", help="stop the sweep after this long"
    )
    manifest.add_argument(
        "--job-name", default=None, metavar="NAME", help="the RayJob's name (default: the sweep's name)"
    )
    manifest.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep from its saved state (`sweep resume`) instead of starting it; the RayJob is "
        "named NAME-resume",
    )
    manifest.add_argument("--out", default=None, metavar="FILE", help="write it to this file (default: print it)")
    manifest.set_defaults(func=run_manifest)

    secret = commands.add_parser(
        "secret",
        help="the template of the Secret the pods read credentials from (placeholders only)",
        description="Print an env file for `kubectl create secret generic NAME --from-env-file=FILE`: the "
        "AWS_* and MLFLOW_TRACKING_* keys with placeholders, never values (nothing is read from "
        "this machine's environment). Fill it in with an editor.",
    )
    secret.add_argument("--secret", default="compact-reid-credentials", metavar="NAME", help="the Secret's name")
    secret.add_argument("--namespace", default=None, metavar="NS", help="its namespace, in the printed kubectl command")
    secret.add_argument("--out", default=None, metavar="FILE", help="write it to this file (default: print it)")
    secret.set_defaults(func=run_secret)


def run_manifest(args: argparse.Namespace) -> int:
    from orchestration.k8s import ManifestOptions, render_manifest
    from orchestration.k8s.yaml_text import header_lines, manifest_yaml

    options = ManifestOptions(
        image=args.image,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        namespace=args.namespace,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        memory_per_worker=args.memory_per_worker,
        head_cpus=args.head_cpus,
        head_memory=args.head_memory,
        secret=args.secret,
        ray_version=args.ray_version,
        ttl_seconds=args.ttl_seconds,
        deadline_seconds=args.deadline_seconds,
        job_name=args.job_name,
        resume=args.resume,
    )
    manifest = render_manifest(args.spec, options)
    job = manifest.rayjob["metadata"]["name"]
    file_name = args.out or "rayjob.yaml"
    header = header_lines(job, manifest.sweep, options.secret, options.namespace, options.image, file_name)
    _write(manifest_yaml(manifest.documents, header), args.out)
    return 0


def run_secret(args: argparse.Namespace) -> int:
    from orchestration.k8s.credentials import secret_template
    from orchestration.k8s.names import check_label

    check_label("--secret", args.secret)
    if args.namespace is not None:
        check_label("--namespace", args.namespace)
    _write(secret_template(args.secret, args.namespace, args.out or "credentials.env"), args.out)
    return 0


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    tmp = Path(out).with_name(Path(out).name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out}", file=sys.stderr)
