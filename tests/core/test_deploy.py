"""Deployment: export (ONNX / TorchScript, parity-checked), embed, search, the search page,
and their bad input. A tiny untrained network stands in for a trained one: parity and the
evaluate-vs-exported equality do not depend on training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _chromium import needs_chromium, screenshot

from orchestration.cli import main
from reid_core.checkpoint import WEIGHTS_FORMAT
from reid_core.config import to_dict
from reid_core.deploy import (
    EmbeddingNet,
    OnnxEmbedder,
    TorchEmbedder,
    embed_images,
    export_model,
    list_images,
    load_embedding_net,
    load_features,
    save_features,
    search,
)
from reid_core.errors import DataError, ExportError
from reid_core.models import build_model
from reid_core.presets import preset_config

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# `train`'s tiny recipe, as tests/orch/test_train_cli.py's TINY (that folder is not on the path
# when only tests/core runs).
TINY_TRAIN = [
    arg
    for field in (
        "model.width_multiplier=0.25",
        "model.depth_multiplier=0.3",
        "data.p=4",
        "data.k=2",
        "data.num_workers=0",
        "schedule.epochs=2",
        "schedule.warmup_epochs=1",
        "schedule.milestones=[1]",
        "swag.cycles=2",
        "swag.cycle_epochs=1",
        "swag.samples=2",
        "swag.bn_batches=1",
        "eval.batch_size=64",
    )
    for arg in ("--set", field)
] + ["--device", "cpu"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: one intra-op thread. On a shared 2-core machine, 2 OpenMP threads made
    these runs 10-50x slower (threads waiting on each other), measured."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(path: Path, seed: int = 0, **over) -> Path:
    """A compact-1x weights file (tiny width, 80x32 input) with non-trivial BatchNorm statistics."""
    cfg = preset_config(
        "compact-1x",
        {
            "model.width_multiplier": 0.25,
            "model.depth_multiplier": 0.3,
            "model.input_height": 80,
            "model.input_width": 32,
            "model.num_classes": 8,
            **over,
        },
    )
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save({"kind": WEIGHTS_FORMAT, "config": to_dict(cfg), "model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def data(make_tiny_market):
    return make_tiny_market("deploy-data", seed=5)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return _weights(tmp_path_factory.mktemp("deploy-w") / "final.pt")


@pytest.fixture(scope="module")
def onnx_file(weights, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy-onnx") / "model.onnx"
    assert (
        main(
            [
                "export",
                "--weights",
                str(weights),
                "--format",
                "onnx",
                "--out",
                str(out),
                "--data",
                str(data),
                "--crops",
                "8",
            ]
        )
        == 0
    )
    return out


def test_onnx_export_dynamic_batch_gridsample_metadata(onnx_file, weights):
    m = onnx.load(str(onnx_file))
    opset = {o.domain: o.version for o in m.opset_import}[""]
    assert opset >= 16
    assert "GridSample" in {n.op_type for n in m.graph.node}  # the hard attention's crops
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert m.graph.input[0].name == "images" and dims[0].dim_param and not dims[0].dim_value
    assert [d.dim_value for d in dims[1:]] == [3, 80, 32]
    _, info = load_embedding_net(weights)
    runner = OnnxEmbedder(onnx_file)
    assert runner.info.fingerprint == info.fingerprint and runner.info.embedding_dim == 1024
    for n in (1, 3, 10):  # any batch size
        assert runner(np.zeros((n, 3, 80, 32), np.float32)).shape == (n, 1024)


def test_export_prints_parity_and_leaves_no_temp_file(weights, data, tmp_path, capsys):
    out = tmp_path / "m.ts"
    assert (
        main(
            [
                "export",
                "--weights",
                str(weights),
                "--format",
                "torchscript",
                "--out",
                str(out),
                "--images",
                str(data / "query"),
                "--crops",
                "4",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["max_abs_diff"] <= 1e-3 and {c["label"] for c in res["checks"]} == {"random", "crops"}
    assert {c["batch"] for c in res["checks"]} == {1, 7, 4}
    assert [p.name for p in tmp_path.iterdir()] == ["m.ts"]
    net, _ = load_embedding_net(weights)
    x = torch.randn(5, 3, 80, 32)
    ts = torch.jit.load(str(out))
    with torch.no_grad():
        assert torch.allclose(ts(x), net(x), atol=1e-5)


class _FrozenCounter(EmbeddingNet):
    """Python state that a trace freezes: the traced model diverges from eager after one call."""

    def __init__(self, model):
        super().__init__(model)
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        return super().forward(images) + float(self.calls)


def test_parity_failure_is_refused_and_nothing_written(weights, tmp_path):
    net, info = load_embedding_net(weights)
    out = tmp_path / "bad.ts"
    with pytest.raises(ExportError, match=r"refused: max \|torchscript - pytorch\|"):
        export_model(_FrozenCounter(net.model), info, "torchscript", out)
    assert list(tmp_path.iterdir()) == []


def test_bad_export_input(weights, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", "--weights", str(weights), "--format", "tensorrt", "--out", str(out)]) == 2
    assert "allowed: onnx, torchscript" in capsys.readouterr().err
    alien = tmp_path / "resnet.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, alien)
    assert main(["export", "--weights", str(alien), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "resnet.pt" in err and "not a compact-reid" in err
    assert main(["export", "--weights", str(weights), "--format", "onnx", "--out", str(out), "--opset", "13"]) == 2
    assert "GridSample" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime runs CUDA")
def test_onnx_on_a_device_this_runtime_cannot_run(onnx_file, tmp_path, capsys):
    out = tmp_path / "f.npz"
    assert (
        main(
            [
                "embed",
                "--onnx",
                str(onnx_file),
                "--device",
                "cuda",
                "--images",
                str(onnx_file.parent),
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "cannot run on cuda" in capsys.readouterr().err and not out.exists()


def test_reid_core_deploy_imports_without_onnx_and_names_the_package():
    code = (
        "import sys\n"
        "for m in ('onnx', 'onnxruntime', 'onnxscript', 'pyarrow'): sys.modules[m] = None\n"
        "import reid_core.deploy\n"
        "from reid_core.deploy.export import check_format\n"
        "try:\n    check_format('onnx')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.startswith("MissingDependencyError") and "pip install onnx" in out


@pytest.fixture()
def messy_folder(data, tmp_path):
    """Five good crops, a non-image named .jpg, a truncated JPEG and a text file."""
    d = tmp_path / "crops"
    d.mkdir()
    good = sorted((data / "query").glob("*.jpg"))[:5]
    for p in good:
        (d / p.name).write_bytes(p.read_bytes())
    (d / "0900_c1s1_000001_00.jpg").write_text("not an image")
    (d / "0901_c2s1_000001_00.jpg").write_bytes(good[0].read_bytes()[:800])
    (d / "notes.txt").write_text("hello")
    return d, [p.name for p in good]


def test_embed_skips_and_names_bad_files_npz_and_parquet(weights, messy_folder, tmp_path, capsys):
    folder, good = messy_folder
    for suffix in (".npz", ".parquet"):
        out = tmp_path / f"f{suffix}"
        assert (
            main(
                [
                    "embed",
                    "--weights",
                    str(weights),
                    "--images",
                    str(folder),
                    "--out",
                    str(out),
                    "--batch-size",
                    "3",
                    "--no-progress",
                ]
            )
            == 0
        )
        err = capsys.readouterr().err
        assert "skipped 3 file(s)" in err
        assert "0900_c1s1_000001_00.jpg" in err and "0901_c2s1_000001_00.jpg: image file is truncated" in err
        assert "notes.txt" in err
        fs = load_features(out)
        assert [Path(p).name for p in fs.paths] == good and fs.features.shape == (5, 1024)
        assert np.allclose(np.linalg.norm(fs.features, axis=1), np.sqrt(2), atol=1e-4)  # 2 unit halves
    a, b = load_features(tmp_path / "f.npz"), load_features(tmp_path / "f.parquet")
    assert np.array_equal(a.features, b.features) and a.info == b.info


def test_embed_nothing_readable_and_bad_suffix(weights, tmp_path, capsys):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "a.jpg").write_text("x")
    assert main(["embed", "--weights", str(weights), "--images", str(d), "--out", str(tmp_path / "f.npz")]) == 2
    assert "none of the 1 file(s)" in capsys.readouterr().err
    assert main(["embed", "--weights", str(weights), "--images", str(d), "--out", str(tmp_path / "f.csv")]) == 2
    assert "allowed: .npz, .parquet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]


def test_onnx_features_equal_pytorch_features(weights, onnx_file, data):
    paths = list_images(data / "query")[:20]
    net, info = load_embedding_net(weights)
    a, _ = embed_images(TorchEmbedder(net, info), paths, batch_size=8)
    b, _ = embed_images(OnnxEmbedder(onnx_file), paths, batch_size=5)
    assert a.paths == b.paths and a.info.fingerprint == b.info.fingerprint
    assert np.abs(a.features - b.features).max() < 1e-4


def test_exported_rank1_map_equal_compact_reid_evaluate(weights, onnx_file, data, tmp_path, capsys):
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(weights), "--data", str(data), "--device", "cpu", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    q, g = tmp_path / "q.npz", tmp_path / "g.parquet"
    assert main(["embed", "--onnx", str(onnx_file), "--images", str(data / "query"), "--out", str(q)]) == 0
    assert main(["embed", "--onnx", str(onnx_file), "--images", str(data / "bounding_box_test"), "--out", str(g)]) == 0
    capsys.readouterr()
    assert main(["search", "--features", str(g), "--query-features", str(q), "--evaluate", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["num_queries"] == ref["num_queries"] and got["num_valid_queries"] == ref["num_valid_queries"]
    for k in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert abs(got[k] - ref[k]) <= 1e-4, (k, got[k], ref[k])


def test_search_ranks_and_rejects_another_models_features(weights, data, tmp_path, capsys):
    g = tmp_path / "g.npz"
    assert (
        main(
            [
                "embed",
                "--weights",
                str(weights),
                "--images",
                str(data / "bounding_box_test"),
                "--out",
                str(g),
                "--no-progress",
            ]
        )
        == 0
    )
    q_img = sorted((data / "query").glob("*.jpg"))[:3]
    capsys.readouterr()
    assert (
        main(
            [
                "search",
                "--features",
                str(g),
                "--query",
                *map(str, q_img),
                "--weights",
                str(weights),
                "--top-k",
                "4",
                "--json",
                "--no-progress",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert [r["query"] for r in res] == list(map(str, q_img))
    gallery = load_features(g)
    for r in res:
        d = [m["distance"] for m in r["matches"]]
        assert len(d) == 4 and d == sorted(d)
        assert r["matches"][0]["path"] in gallery.paths
    # A gallery embedded by a model with another feature size: a clear error, no page written.
    other = _weights(tmp_path / "other.pt", seed=1, **{"model.global_dim": 256})
    g2 = tmp_path / "g2.npz"
    assert (
        main(["embed", "--weights", str(other), "--images", str(data / "query"), "--out", str(g2), "--no-progress"])
        == 0
    )
    page = tmp_path / "p.html"
    assert main(["search", "--features", str(g2), "--query-features", str(g), "--html", str(page)]) == 2
    err = capsys.readouterr().err
    assert "dimension mismatch" in err and "768-d" in err and "1024-d" in err and not page.exists()
    # Same size, other weights: the fingerprints differ.
    other2 = _weights(tmp_path / "other2.pt", seed=2)
    assert main(["search", "--features", str(g), "--query", str(q_img[0]), "--weights", str(other2)]) == 2
    assert "model mismatch" in capsys.readouterr().err
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, x=np.zeros(3))
    assert main(["search", "--features", str(bogus), "--query-features", str(g)]) == 2
    assert "bogus.npz: not a compact-reid features file" in capsys.readouterr().err


def test_search_function_stable_top_k(weights, data):
    net, info = load_embedding_net(weights)
    fs, _ = embed_images(TorchEmbedder(net, info), list_images(data / "query")[:6])
    res = search(fs, fs, top_k=3)
    assert [r.matches[0].path for r in res] == fs.paths  # every item is its own nearest neighbour
    assert all(r.matches[0].distance < 1e-3 and r.matches[0].same_id for r in res)
    with pytest.raises(DataError, match="top-k"):
        search(fs, fs, top_k=0)


@needs_chromium
def test_search_page_screenshot(weights, data, tmp_path):
    g = tmp_path / "g.npz"
    assert (
        main(
            [
                "embed",
                "--weights",
                str(weights),
                "--images",
                str(data / "bounding_box_test"),
                "--out",
                str(g),
                "--no-progress",
            ]
        )
        == 0
    )
    page = tmp_path / "search.html"
    q = sorted((data / "query").glob("*.jpg"))[:3]
    assert (
        main(
            [
                "search",
                "--features",
                str(g),
                "--query",
                *map(str, q),
                "--weights",
                str(weights),
                "--top-k",
                "6",
                "--html",
                str(page),
                "--no-progress",
            ]
        )
        == 0
    )
    text = page.read_text()
    assert text.count('class="card query"') == 3 and text.count("data:image/jpeg;base64,") == 3 + 3 * 6
    assert 'class="card ok"' in text or 'class="card bad"' in text
    png = screenshot(page, tmp_path / "search.png", "1200,900")
    assert len(png) > 20_000  # images rendered, not a blank page


def test_features_file_round_trip_keeps_names_and_info(weights, data, tmp_path):
    net, info = load_embedding_net(weights)
    fs, _ = embed_images(TorchEmbedder(net, info), list_images(str(data / "query" / "*.jpg"))[:4])
    p = save_features(fs, tmp_path / "x.npz")
    back = load_features(p)
    assert back.paths == fs.paths and back.info == fs.info and np.array_equal(back.features, fs.features)


@pytest.mark.slow
@pytest.mark.e2e
def test_train_export_embed_search_equals_evaluate_end_to_end(data, tmp_path, capsys):
    """`train` -> `export` (both formats) -> `embed` -> `search --evaluate` == `evaluate --json`."""
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--preset",
                "compact-1x",
                "--data",
                str(data),
                "--out",
                str(run),
                *TINY_TRAIN,
                "--set",
                "model.input_height=80",
                "--set",
                "model.input_width=32",
            ]
        )
        == 0
    )
    w = run / "weights" / "swa.pt"
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(w), "--data", str(data), "--device", "cpu", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    for fmt, flag in (("onnx", "--onnx"), ("torchscript", "--torchscript")):
        model = tmp_path / f"m.{fmt}"
        assert main(["export", "--weights", str(w), "--format", fmt, "--out", str(model), "--data", str(data)]) == 0
        q, g = tmp_path / f"q-{fmt}.npz", tmp_path / f"g-{fmt}.npz"
        for folder, out in (("query", q), ("bounding_box_test", g)):
            assert (
                main(["embed", flag, str(model), "--images", str(data / folder), "--out", str(out), "--no-progress"])
                == 0
            )
        capsys.readouterr()
        assert main(["search", "--features", str(g), "--query-features", str(q), "--evaluate", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        for k in ("rank1", "rank5", "rank10", "mAP", "mINP"):
            assert abs(got[k] - ref[k]) <= 1e-4, (fmt, k, got[k], ref[k])
