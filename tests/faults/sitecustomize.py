"""Faults for tests/test_distributed.py, injected into the Ray workers of a run.

Only a process started with this folder on PYTHONPATH and SCNRESTORE_TEST_FAULTS
set (a folder for markers) loads it; the package and its command line never
read these variables. A Ray worker inherits both from the driver through its
raylet. The hook wraps ``scnrestore.imageio.read_image`` as that module loads:

- SCNRESTORE_TEST_POISON=NAME: reading a file named NAME appends the worker's
  pid to MARKERS/poison.log and ends the worker process at once (as a decoder
  crash or the kernel's OOM killer would), every time.
- SCNRESTORE_TEST_HOLD=NAME: the first read of NAME writes the worker's pid to
  MARKERS/holding and blocks until the process is killed; later reads (a
  retry, in a fresh worker) go on as usual.
- SCNRESTORE_TEST_DIE_AFTER_WRITE=NAME: the first time NAME's output has
  been written, the worker process ends before it can say so (through
  ``scnrestore.batch.run.write_output``); its retry finds the output there.
- SCNRESTORE_TEST_FSIZE=BYTES: a worker limits the files it writes to BYTES
  (RLIMIT_FSIZE, SIGXFSZ ignored) as it reads its first picture: a larger
  output cannot be written, as on a full disk.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import resource
import signal
import sys
import time
from pathlib import Path

MARKERS = os.environ.get("SCNRESTORE_TEST_FAULTS")


def _faulty(read_image):  # the wrapped scnrestore.imageio.read_image
    poison = os.environ.get("SCNRESTORE_TEST_POISON")
    hold = os.environ.get("SCNRESTORE_TEST_HOLD")
    fsize = os.environ.get("SCNRESTORE_TEST_FSIZE")
    markers = Path(MARKERS)

    def read(path, *args, **kwargs):
        name = Path(path).name
        if fsize:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(fsize), int(fsize)))
        if poison and name == poison:
            with open(markers / "poison.log", "a") as f:
                f.write(f"{os.getpid()}\n")
            os._exit(1)
        if hold and name == hold and not (markers / "held").exists():
            (markers / "held").write_text("")
            tmp = markers / "holding.part"
            tmp.write_text(str(os.getpid()))
            tmp.rename(markers / "holding")
            while True:
                time.sleep(1)
        return read_image(path, *args, **kwargs)

    return read


def _dies_after(write_output):  # the wrapped scnrestore.batch.run.write_output
    name = os.environ.get("SCNRESTORE_TEST_DIE_AFTER_WRITE")
    marker = Path(MARKERS) / "died-after-write"

    def write(job, *args, **kwargs):
        done = write_output(job, *args, **kwargs)
        if name and Path(job.src).name == name and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)
        return done

    return write


_PATCHES = {
    "scnrestore.imageio": ("read_image", _faulty),
    "scnrestore.batch.run": ("write_output", _dies_after),
}


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        attr, wrap = _PATCHES[name]

        def exec_and_patch(module):
            exec_module(module)
            setattr(module, attr, wrap(getattr(module, attr)))

        spec.loader.exec_module = exec_and_patch
        return spec


if MARKERS:
    sys.meta_path.insert(0, _Finder())
