"""Quiet LiteRT (TFLite) start-up: its console line becomes a log record.

The first interpreter of a process prints ``INFO: Created TensorFlow Lite XNNPACK delegate for
CPU.`` on stderr from C++ (TFLite's minimal logger, which no environment variable reaches:
``TF_CPP_MIN_LOG_LEVEL`` does not). Create and allocate interpreters inside
:func:`native_stderr_to_log`: what native code writes to file descriptor 2 meanwhile is
caught, its ``INFO:`` lines become DEBUG records of the ``harerun.litert`` logger
(``harerun -v`` shows them) and anything else is written back to stderr.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger("harerun.litert")
_lock = threading.RLock()  # one thread at a time: interleaved dup2 calls would lose stderr


@contextlib.contextmanager
def native_stderr_to_log() -> Iterator[None]:
    with _lock, tempfile.TemporaryFile() as caught:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no fd 2 (a daemon) or a closed sys.stderr: nothing to quiet
            yield
            return
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            for line in caught.read().decode(errors="replace").splitlines(keepends=True):
                if line.startswith("INFO: "):
                    log.debug("%s", line[6:].rstrip())
                else:
                    os.write(2, line.encode())
