"""A small reader and writer for the safetensors format, without the safetensors package.

Layout: an 8-byte little-endian header length n, n bytes of JSON (per tensor: dtype, shape, data_offsets
[begin, end) relative to the data section; an optional "__metadata__" of string -> string), then the raw
little-endian tensor data. Supported dtypes: F32, F16, BF16 (widened to float32 on read) and I32, I64.
"""

import json
import struct

import numpy as np
import torch

_NUMPY_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "BF16": np.dtype("<u2"),
}

_TORCH_TO_NAME = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int32: "I32",
    torch.int64: "I64",
}


def _decode(name, raw, shape):
    if name not in _NUMPY_DTYPES:
        raise ValueError(f"unsupported safetensors dtype {name!r}")
    array = np.frombuffer(raw, dtype=_NUMPY_DTYPES[name])
    if name == "BF16":
        # bfloat16 is the upper half of a float32: widen by shifting the 16 bits into the high half.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    elif name == "F16":
        array = array.astype(np.float32)
    else:
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(array.reshape(shape).copy())


def read(path):
    """Returns (tensors: dict name -> torch.Tensor, metadata: dict). BF16 and F16 come back as float32."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (header_length,) = struct.unpack("<Q", blob[:8])
    if 8 + header_length > len(blob):
        raise ValueError(f"{path}: header length {header_length} exceeds the file size {len(blob)}")
    header = json.loads(blob[8:8 + header_length].decode("utf-8"))
    data = memoryview(blob)[8 + header_length:]
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        shape = list(entry["shape"])
        itemsize = 2 if entry["dtype"] == "BF16" else _NUMPY_DTYPES.get(entry["dtype"], np.dtype("u1")).itemsize
        expected = itemsize * int(np.prod(shape, dtype=np.int64))
        if end - begin != expected or end > len(data):
            raise ValueError(f"{path}: tensor {name!r} has {end - begin} bytes, expected {expected}")
        tensors[name] = _decode(entry["dtype"], bytes(data[begin:end]), shape)
    return tensors, metadata


def _encode(tensor):
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype not in _TORCH_TO_NAME:
        raise ValueError(f"unsupported tensor dtype {tensor.dtype}")
    name = _TORCH_TO_NAME[tensor.dtype]
    if name == "BF16":
        # Round to nearest even happened in torch's conversion; reinterpret the 16 bits.
        raw = tensor.view(torch.int16).numpy().astype("<i2").tobytes()
    else:
        raw = tensor.numpy().astype(_NUMPY_DTYPES[name]).tobytes()
    return name, raw


def write(path, tensors, metadata=None):
    """Writes tensors (name -> torch.Tensor) in name order, with optional string metadata."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        dtype, raw = _encode(tensors[name])
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # align the data section to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
