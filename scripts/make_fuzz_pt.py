"""Writes tests/fixtures/fuzz/tiny-agent.pt: a PyTorch zip checkpoint (the layout torch.save
writes, pickle protocol 2 with persistent storages) holding two small `denoiser.*` tensors, as
a seed for the pickle fuzz target. Needs no PyTorch: the pickle names torch's rebuild function
and storage class without importing them (that is all torch.load reads)."""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


def _rebuild_tensor_v2(*args):  # named, never called
    raise NotImplementedError


_rebuild_tensor_v2.__module__ = "torch._utils"
utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class FloatStorage:
    pass


FloatStorage.__module__ = "torch"
torch.FloatStorage = FloatStorage


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride = []
        acc = 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (_rebuild_tensor_v2, (self.storage, 0, tuple(self.shape), tuple(stride), False,
                                     collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


tensors = collections.OrderedDict()
data = {}
for i, (name, shape) in enumerate([("denoiser.inner_model.conv_in.weight", (2, 3, 1, 1)),
                                   ("denoiser.inner_model.conv_in.bias", (2,))]):
    n = 1
    for d in shape:
        n *= d
    tensors[name] = Tensor(Storage(str(i), n), shape)
    data[str(i)] = struct.pack(f"<{n}f", *[0.25 * (k + 1) for k in range(n)])

buf = io.BytesIO()
Pickler(buf, protocol=2).dump(tensors)
out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/fuzz/tiny-agent.pt"
with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", buf.getvalue())
    for key, raw in data.items():
        z.writestr(f"archive/data/{key}", raw)
    z.writestr("archive/version", "3\n")
print(out)
