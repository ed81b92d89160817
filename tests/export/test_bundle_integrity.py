"""Issue 19 (hardening): every file a graph can read is listed and hashed, and every array the runtime
builds from the manifest has the shape the graphs declare; both are refused at load, in one line.

Without these, a graph saved with ONNX external data read its weights from a file no hash covered
(tampered weights loaded silently), and a style_table one column wide of the graph made every model
call fail (render exited 0 with the dry input; live played dry forever).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from diffusion.errors import StylehostError
from export import bundle as B
from export.graphfile import read_graph
from realtime.backends.ort import OrtBackend
from stylehost.cli import main
from tests.export.tiny import copy_bundle, edit_manifest, rehash

ROOT = Path(__file__).resolve().parents[2]


def to_external(path: Path, graph_file: str, location: str = "w.bin", attributes: bool = False) -> None:
    """Re-save a graph with every tensor in one external-data file (attribute tensors too if asked) and
    rewrite the graph's hash, so only the loader's graph check stands in the way."""
    model = onnx.load(path / graph_file)
    onnx.save_model(model, path / graph_file, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0, convert_attribute=attributes)
    rehash(path, graph_file)


def relocate(path: Path, graph_file: str, location: str) -> None:
    """Point every external tensor of a graph at ``location`` (the bytes stay where they are)."""
    model = onnx.load(path / graph_file, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    (path / graph_file).write_bytes(model.SerializeToString())
    rehash(path, graph_file)


def denoiser_feeds(bundle: B.Bundle) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    m, t = bundle.spectrogram.n_mels, bundle.window
    return (rng.standard_normal((1, 1, m, t), dtype=np.float32), np.array([2.0], np.float32),
            rng.standard_normal((1, 1, m, t), dtype=np.float32), bundle.style_table[:1].copy())


# ---- item 5: external data -------------------------------------------------------------------------------


@pytest.mark.parametrize("attributes", [False, True], ids=["initializers", "and-constants"])
def test_unlisted_external_data_is_refused_before_any_stream(bundle: B.Bundle, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture, attributes: bool) -> None:
    """Guards the graph scan: the denoiser's weights moved to w.bin (not in the manifest) and replaced by
    1e30; the .onnx's own hash matches. Before the check it loaded and rendered near-silence, exit 0."""
    path = copy_bundle(bundle, tmp_path)
    to_external(path, "denoiser.onnx", attributes=attributes)
    size = (path / "w.bin").stat().st_size
    (path / "w.bin").write_bytes(np.full(size // 4, 1e30, np.float32).tobytes())
    message = ("the denoiser graph (denoiser.onnx) reads external data from 'w.bin', which manifest.json "
               "does not list with a sha256")
    with pytest.raises(StylehostError, match=re.escape(message)):
        B.load_bundle(path)
    code = main(["render", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "--style", "violin",
                 "--model", str(path), "--backend", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out.wav").exists()


def test_listed_external_data_is_hashed_like_the_graphs(bundle: B.Bundle, tmp_path: Path) -> None:
    """Listed with its sha256, w.bin loads and runs exactly as the single-file graph; tampered, it is
    refused by the same hash check as every graph."""
    path = copy_bundle(bundle, tmp_path)
    to_external(path, "denoiser.onnx")
    rehash(path, "w.bin")
    listed = B.load_bundle(path)
    feeds = denoiser_feeds(bundle)
    np.testing.assert_array_equal(OrtBackend(listed).run("denoiser", *feeds),
                                  OrtBackend(bundle).run("denoiser", *feeds))
    data = bytearray((path / "w.bin").read_bytes())
    data[: 4 * 64] = np.full(64, 1e30, np.float32).tobytes()
    (path / "w.bin").write_bytes(bytes(data))
    with pytest.raises(StylehostError, match="w.bin does not match its sha256") as info:
        B.load_bundle(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("where", ["parent", "absolute", "subfolder", "ort-memory-address"])
def test_external_data_outside_the_folder_is_refused(bundle: B.Bundle, tmp_path: Path, where: str) -> None:
    """Guards the folder rule for graphs: ONNX Runtime resolves a location against the graph's folder, so
    '..', an absolute path, a subfolder, or ORT's in-memory tag (which reads at a raw address) is refused
    before any session opens, even though the bytes there match what the graph expects."""
    path = copy_bundle(bundle, tmp_path)
    to_external(path, "denoiser.onnx")
    location = {"parent": "../w.bin", "absolute": str(tmp_path / "w.bin"), "subfolder": "weights/w.bin",
                "ort-memory-address": "*/_ORT_MEM_ADDR_/*"}[where]
    target = {"parent": tmp_path / "w.bin", "absolute": tmp_path / "w.bin", "subfolder": path / "weights" / "w.bin",
              "ort-memory-address": path / "w.bin"}[where]
    target.parent.mkdir(exist_ok=True)
    (path / "w.bin").replace(target)
    relocate(path, "denoiser.onnx", location)
    message = f"reads external data from {location!r}, not a plain file name in the bundle folder"
    with pytest.raises(StylehostError, match=re.escape(message)):
        B.load_bundle(path)


def test_an_epcontext_node_is_refused(bundle: B.Bundle, tmp_path: Path) -> None:
    """A precompiled-engine node names its engine by path (ep_cache_context): another file a graph could
    make a provider read, so it is refused (stylehost never exports one)."""
    path = copy_bundle(bundle, tmp_path)
    model = onnx.load(path / "resynth.onnx")
    model.graph.node.append(helper.make_node("EPContext", [], ["engine_out"], domain="com.microsoft",
                                             embed_mode=0, ep_cache_context="../../engine.bin"))
    onnx.save_model(model, path / "resynth.onnx")
    rehash(path, "resynth.onnx")
    with pytest.raises(StylehostError, match="resynth graph .* EPContext"):
        B.load_bundle(path)


def _external_tensor(location: str) -> TensorProto:
    tensor = helper.make_tensor("w", TensorProto.FLOAT, [1], [0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def _model_with_external_tensor(where: str, location: str) -> onnx.ModelProto:
    """A one-node model with one external tensor in a place ONNX lets tensors live."""
    tensor = _external_tensor(location)
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Identity", ["x"], ["y"])]
    inits, sparse, functions, training = [], [], [], []
    if where == "initializer":
        inits.append(tensor)
    elif where == "sparse-initializer":
        indices = helper.make_tensor("i", TensorProto.INT64, [1], [0])
        sparse.append(helper.make_sparse_tensor(tensor, indices, [4]))
    elif where == "constant":
        nodes.append(helper.make_node("Constant", [], ["c"], value=tensor))
    elif where == "tensor-list-attribute":
        nodes.append(helper.make_node("Custom", [], ["c"], domain="x.y", tensors=[tensor]))
    elif where == "subgraph":
        branch = helper.make_graph([helper.make_node("Identity", ["w"], ["b"])], "branch", [],
                                   [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1])], [tensor])
        nodes.append(helper.make_node("If", ["cond"], ["c"], then_branch=branch, else_branch=branch))
    elif where == "function":
        functions.append(helper.make_function("x.y", "F", [], ["c"], [helper.make_node("Constant", [], ["c"],
                                                                                       value=tensor)], []))
    elif where == "training-graph":
        init_graph = helper.make_graph([], "init", [], [], [tensor])
        training.append(onnx.TrainingInfoProto(initialization=init_graph))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
                              [out], inits, sparse_initializer=sparse)
    model = helper.make_model(graph, functions=functions)
    model.training_info.extend(training)
    return model


@pytest.mark.parametrize("where", ["initializer", "sparse-initializer", "constant", "tensor-list-attribute",
                                   "subgraph", "function", "training-graph"])
def test_the_graph_scan_finds_external_data_wherever_a_tensor_can_live(tmp_path: Path, where: str) -> None:
    """read_graph (the loader's own protobuf reader, so loading never imports onnx) sees an external
    tensor in each place the ONNX schema allows one, and reads the graph's inputs as onnx does."""
    file = tmp_path / "g.onnx"
    file.write_bytes(_model_with_external_tensor(where, "../secret.bin").SerializeToString())
    info = read_graph(file)
    assert info.external == {"../secret.bin"} and not info.unlocated
    assert info.inputs == [("x", TensorProto.FLOAT, [None, 3])] and info.outputs == [("y", TensorProto.FLOAT, [1])]


def _onnx_io(values) -> list[tuple[str, int, list[int | None]]]:
    return [(v.name, v.type.tensor_type.elem_type,
             [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim])
            for v in values]


def test_the_graph_scan_agrees_with_onnx_on_real_graphs(bundle: B.Bundle) -> None:
    folders = [bundle.path] + [p for p in (ROOT / "models" / n for n in ("default", "teacher", "student"))
                               if (p / B.MANIFEST).is_file()]
    for folder in folders:
        for graph in B.GRAPHS:
            file = folder / f"{graph}.onnx"
            model = onnx.load(file, load_external_data=False)
            info = read_graph(file)
            inits = {t.name for t in model.graph.initializer}
            assert info.inputs == _onnx_io(v for v in model.graph.input if v.name not in inits), file
            assert info.outputs == _onnx_io(model.graph.output) and not info.external, file
            assert info.op_types == {n.op_type for n in model.graph.node}, file


def test_a_graph_that_is_not_onnx_is_refused(bundle: B.Bundle, tmp_path: Path) -> None:
    path = copy_bundle(bundle, tmp_path)
    (path / "resynth.onnx").write_bytes(b"\xff" * 64)
    rehash(path, "resynth.onnx")
    with pytest.raises(StylehostError, match="resynth.onnx is not a readable ONNX model"):
        B.load_bundle(path)


# ---- item 6: manifest arrays against the graphs' shapes --------------------------------------------------


def _widen(m: dict, by: int) -> None:
    m["style_table"] = [row + [0.1] * by if by > 0 else row[:by] for row in m["style_table"]]


def _fixed_resynth_frames(path: Path) -> None:
    """A resynth graph whose frame axis is fixed at 3 while the runtime sends emit (4) frames."""
    model = onnx.load(path / "resynth.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 3
    onnx.save_model(model, path / "resynth.onnx")
    rehash(path, "resynth.onnx")


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: edit_manifest(p, lambda m: _widen(m, 1)),
         r"denoiser graph \(denoiser.onnx\) input 'style_vec' has shape \(batch, 16\), but style_table of "
         r"shape \(8, 17\) in manifest.json makes it \(batch, 17\)"),
        (lambda p: edit_manifest(p, lambda m: _widen(m, -1)),
         r"'style_vec' has shape \(batch, 16\), but style_table of shape \(8, 15\)"),
        (lambda p: edit_manifest(p, lambda m: (_widen(m, 1), m["graphs"]["denoiser"]["inputs"][3].update(
            shape=["batch", 17]))), r"'style_vec' has shape \(batch, 16\), but style_table of shape \(8, 17\)"),
        (lambda p: edit_manifest(p, lambda m: m.update(window=33)),
         r"input 'x' has shape \(batch, 1, 64, 32\), but spectrogram.n_mels 64 x window 33"),
        (lambda p: edit_manifest(p, lambda m: m["spectrogram"].update(n_mels=80)),
         r"input 'x' has shape \(batch, 1, 64, 32\), but spectrogram.n_mels 80 x window 32"),
        (lambda p: edit_manifest(p, lambda m: m["spectrogram"].update(n_fft=480)),
         r"frontend graph \(frontend.onnx\) input 'audio' has shape \(batch, 3360\), but window 32 frames at "
         r"n_fft 480, hop 96 \(3456 samples\)"),
        (_fixed_resynth_frames,
         r"resynth graph \(resynth.onnx\) input 'frames' has shape \(batch, 3, 384\), but defaults.emit 4"),
        (lambda p: edit_manifest(p, lambda m: m["graphs"]["denoiser"]["inputs"][0].update(
            shape=["batch", 1, 64, 31])), r"graphs.denoiser.inputs gives 'x' shape \(batch, 1, 64, 31\), but "
                                          r"denoiser.onnx declares \(batch, 1, 64, 32\)"),
        (lambda p: edit_manifest(p, lambda m: m["graphs"]["frontend"]["outputs"][0].update(shape=["batch", 64])),
         r"graphs.frontend.outputs gives 'logmel' shape \(batch, 64\)"),
        (lambda p: edit_manifest(p, lambda m: m["graphs"]["denoiser"]["inputs"][3].update(name="style")),
         r"graphs.denoiser.inputs names \['x', 'sigma', 'source', 'style'\], but denoiser.onnx has"),
        (lambda p: edit_manifest(p, lambda m: m["graphs"]["resynth"]["inputs"].pop()),
         r"graphs.resynth.inputs names \['frames'\], but resynth.onnx has \['frames', 'pred_logmel'\]"),
        (lambda p: edit_manifest(p, lambda m: m["graphs"]["resynth"]["inputs"][0].update(shape="batch")),
         r"graphs.resynth.inputs must be a list of"),
    ],
    ids=["style-table-wider", "style-table-narrower", "style-table-and-manifest-io-wider", "window", "n-mels",
         "n-fft", "fixed-resynth-frames", "manifest-io-shape", "manifest-output-rank", "manifest-io-name",
         "manifest-io-missing", "manifest-io-malformed"],
)
def test_manifest_arrays_that_do_not_fit_the_graphs_are_refused(bundle: B.Bundle, tmp_path: Path, damage,
                                                                message: str) -> None:
    """Guards the shape check: each manifest array (or size the runtime builds an array from) must have
    the shape the graph file declares, and the manifest's own graph specs must agree with the file."""
    path = copy_bundle(bundle, tmp_path)
    damage(path)
    with pytest.raises(StylehostError, match=message) as info:
        B.load_bundle(path)
    assert "\n" not in str(info.value)


def test_a_style_table_that_fits_loads(bundle: B.Bundle) -> None:
    """The check passes what the exporter writes (shipped bundles: tests/realtime/test_shipped_model.py)."""
    loaded = B.load_bundle(bundle.path)
    width = loaded.manifest["graphs"]["denoiser"]["inputs"][3]["shape"][1]
    assert loaded.style_table.shape == (len(loaded.styles), width)
