"""A tiny ONNX model written byte by byte (protobuf wire format), so tests need neither the `onnx` package nor
an exporter: Conv(3->1, 1x1) then Sigmoid, input ``input`` [1,3,S,S], output ``output`` [1,1,S,S]."""

from __future__ import annotations

import numpy as np


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):  # wire type 0: varint
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _tensor(name: str, array: np.ndarray) -> bytes:  # TensorProto: dims=1, data_type=2 (1 = FLOAT), name=8, raw_data=9
    dims = b"".join(_field(1, d) for d in array.shape)
    return dims + _field(2, 1) + _field(8, name) + _field(9, array.astype("<f4").tobytes())


def _value_info(name: str, shape: tuple[int, ...]) -> bytes:  # ValueInfoProto{name, TypeProto{Tensor{elem_type, shape}}}
    dims = b"".join(_field(1, _field(1, d)) for d in shape)
    return _field(1, name) + _field(2, _field(1, _field(1, 1) + _field(2, dims)))


def _node(op: str, inputs: list[str], outputs: list[str]) -> bytes:  # NodeProto: input=1, output=2, name=3, op_type=4
    return b"".join(_field(1, i) for i in inputs) + b"".join(_field(2, o) for o in outputs) + _field(3, op) + _field(4, op)


def conv_sigmoid_model(weights: np.ndarray, bias: float, size: int) -> bytes:
    """ModelProto bytes: sigmoid(sum_c weights[c] * input[c] + bias), per pixel, at a fixed size x size input."""
    graph = (_field(1, _node("Conv", ["input", "w", "b"], ["logit"])) + _field(1, _node("Sigmoid", ["logit"], ["output"]))
             + _field(2, "tiny") + _field(5, _tensor("w", np.asarray(weights, np.float32).reshape(1, 3, 1, 1)))
             + _field(5, _tensor("b", np.array([bias], np.float32)))
             + _field(11, _value_info("input", (1, 3, size, size))) + _field(12, _value_info("output", (1, 1, size, size))))
    opset = _field(1, "") + _field(2, 13)
    return _field(1, 7) + _field(2, "unflat-tests") + _field(7, graph) + _field(8, opset)
