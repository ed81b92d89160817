"""ONNX graph files read without the onnx package: the few ModelProto fields ``load_bundle`` checks.

Why it exists: loading a bundle must stay light (``realtime`` starts on it), and ``import onnx`` takes
about 0.9 s, mostly ml_dtypes. So this module reads the graph files in protobuf's wire format itself, with
the field numbers of onnx/onnx.proto: each graph's inputs and outputs (name, element type, dims), every
external-data ``location`` any tensor names, and the op types. export/bundle.py turns what it finds into
the bundle checks; tests/export/test_bundle_integrity.py holds it equal to the onnx package on real and
hand-made graphs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from diffusion.errors import StylehostError

EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
FLOAT = 1  # TensorProto.DataType.FLOAT


class _Unreadable(Exception):
    """The bytes are not a protobuf message (truncated, or not an ONNX file at all)."""


@dataclass
class GraphInfo:
    """What ``read_graph`` found: the graph's inputs (initializers left out) and outputs as
    (name, element type, dims: int for a fixed size, None for a named or unknown one; None: no shape),
    every external-data ``location`` of any tensor (initializers, sparse initializers, node attributes,
    subgraphs, functions, training graphs), the names of external tensors with no location, op types."""

    inputs: list[tuple[str, int | None, list[int | None] | None]] = field(default_factory=list)
    outputs: list[tuple[str, int | None, list[int | None] | None]] = field(default_factory=list)
    external: set[str] = field(default_factory=set)
    unlocated: list[str] = field(default_factory=list)
    op_types: set[str] = field(default_factory=set)


def read_graph(path: Path) -> GraphInfo:
    """Scan an ONNX file without the onnx package; StylehostError if it is not a readable ONNX model."""
    info = GraphInfo()
    initializers: set[str] = set()
    try:
        for number, value in _messages(memoryview(Path(path).read_bytes())):
            if number == 7:  # ModelProto.graph (a repeated occurrence merges into the first, as protobuf does)
                _walk_graph(value, info, initializers)
            elif number == 25:  # ModelProto.functions: FunctionProto.node (7), .attribute_proto (11)
                for n, v in _messages(value):
                    if n == 7:
                        _walk_node(v, info)
                    elif n == 11:
                        _walk_attribute(v, info)
            elif number == 20:  # ModelProto.training_info: .initialization (1), .algorithm (2) graphs
                for n, v in _messages(value):
                    if n in (1, 2):
                        _walk_graph(v, info, None)
    except (_Unreadable, UnicodeDecodeError, OSError) as exc:  # audit: bundle-unreadable-graph
        raise StylehostError(f"{path} is not a readable ONNX model ({exc}); re-export the bundle") from exc
    info.inputs = [io for io in info.inputs if io[0] not in initializers]  # IR < 4 lists initializers as inputs
    return info


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Unreadable("truncated")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Unreadable("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of one message: an int for varint and fixed-width fields, the
    bytes (a view, no copy: raw_data holds the weights) for length-delimited ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _Unreadable("a field runs past the end of its message")
            value, pos = buf[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise _Unreadable("truncated")
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        else:
            raise _Unreadable(f"wire type {wire} (groups are not used by ONNX)")
        if number == 0:
            raise _Unreadable("field number 0")
        yield number, wire, value


def _messages(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
    """The length-delimited fields (sub-messages, strings) of a message. A known field with another wire
    type is an unknown field to protobuf, so ONNX Runtime ignores it as well."""
    for number, _wire, value in _fields(buf):
        if isinstance(value, memoryview):  # wire type 2
            yield number, value


def _text(buf: memoryview) -> str:
    return bytes(buf).decode("utf-8")


def _walk_graph(buf: memoryview, info: GraphInfo, initializers: set[str] | None) -> None:
    """GraphProto; ``initializers`` is None for subgraphs (their inputs are not the model's)."""
    for number, value in _messages(buf):
        if number == 1:  # node
            _walk_node(value, info)
        elif number == 5:  # initializer
            name = _walk_tensor(value, info)
            if initializers is not None:
                initializers.add(name)
        elif number == 15:  # sparse_initializer: SparseTensorProto.values (1), .indices (2)
            for n, v in _messages(value):
                if n in (1, 2):
                    name = _walk_tensor(v, info)
                    if n == 1 and initializers is not None:
                        initializers.add(name)
        elif number in (11, 12) and initializers is not None:  # input, output
            (info.inputs if number == 11 else info.outputs).append(_value_info(value))


def _walk_node(buf: memoryview, info: GraphInfo) -> None:
    for number, value in _messages(buf):
        if number == 4:  # op_type
            info.op_types.add(_text(value))
        elif number == 5:  # attribute
            _walk_attribute(value, info)


def _walk_attribute(buf: memoryview, info: GraphInfo) -> None:
    """AttributeProto: tensors t (5) / tensors (10), graphs g (6) / graphs (11), sparse (22, 23)."""
    for number, value in _messages(buf):
        if number in (5, 10):
            _walk_tensor(value, info)
        elif number in (6, 11):
            _walk_graph(value, info, None)
        elif number in (22, 23):
            for n, v in _messages(value):
                if n in (1, 2):
                    _walk_tensor(v, info)


def _walk_tensor(buf: memoryview, info: GraphInfo) -> str:
    """TensorProto: note where an external tensor's bytes live; returns its name."""
    name, external, entries = "", False, []
    for number, wire, value in _fields(buf):
        if number == 8 and isinstance(value, memoryview):  # name
            name = _text(value)
        elif number == 14 and wire == 0:  # data_location
            external = value == EXTERNAL
        elif number == 13 and isinstance(value, memoryview):  # external_data: StringStringEntryProto
            entry = {n: _text(v) for n, v in _messages(value)}  # key (1), value (2); the last one wins
            entries.append((entry.get(1, ""), entry.get(2, "")))
    locations = [v for k, v in entries if k == "location"]
    info.external.update(locations)  # even with data_location DEFAULT: a reader that trusts them is not refused
    if external and not locations:
        info.unlocated.append(name)
    return name


def _value_info(buf: memoryview) -> tuple[str, int | None, list[int | None] | None]:
    """ValueInfoProto -> (name, elem_type, dims) of a tensor type (TypeProto.tensor_type)."""
    name, elem, dims = "", None, None
    for number, value in _messages(buf):
        if number == 1:
            name = _text(value)
        elif number == 2:  # type
            for n, tensor in _messages(value):
                if n != 1:  # not a tensor (sequence, map, ...): no element type
                    continue
                for f, wire, v in _fields(tensor):
                    if f == 1 and isinstance(v, int) and wire == 0:
                        elem = v
                    elif f == 2 and isinstance(v, memoryview):  # shape: TensorShapeProto.dim (1)
                        dims = dims or []
                        dims += [_dim(d) for n2, d in _messages(v) if n2 == 1]
    return name, elem, dims


def _dim(buf: memoryview) -> int | None:
    """Dimension: dim_value (1) -> int; dim_param (2) or nothing -> None (named or unknown)."""
    size: int | None = None
    for number, wire, value in _fields(buf):
        if number == 1 and isinstance(value, int) and wire == 0:
            size = value - (1 << 64) if value >= 1 << 63 else value  # int64 in two's complement
        elif number == 2:
            size = None
    return size
