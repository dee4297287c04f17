"""Writing fixtures in the manifest format that tests/common/manifest.h reads: one raw
little-endian file per array, and manifest.json listing the cases with their arrays."""
import json
import os

import numpy as np


class Manifest:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.cases = []
        os.makedirs(out_dir, exist_ok=True)

    def save(self, case, name, arr):
        arr = np.ascontiguousarray(arr)
        fname = f"{case['name']}.{name}.bin"
        arr.tofile(os.path.join(self.out_dir, fname))
        case.setdefault("arrays", {})[name] = {"file": fname, "dtype": str(arr.dtype), "shape": list(arr.shape)}

    def write(self):
        with open(os.path.join(self.out_dir, "manifest.json"), "w") as f:
            json.dump({"cases": self.cases}, f, indent=1)
