"""llama.cpp's ``--vocab-only`` output handed over as soon as its file is closed, not when its process ends.

The fast path's tensor writer waits for the converter's vocabulary before it
writes a byte (``gguf_fast``: the data's offset follows a header of the
converter's length). Without this, the file reached it only once the
converter's process had run torch's exit handlers, the spare had announced
its status and the exporter had read it and renamed the file: 13-24 ms
between the converter closing the file and the writer seeing it, measured in
a noisy hour, on the critical path of a 0.7 s conversion.

The converter writes to ``handover_name(final)``. In the converter's spare,
``install`` wraps gguf-py's ``GGUFWriter.close`` so that a file it wrote
under such a name is renamed to ``final`` right after it is closed (whole:
gguf-py has flushed and closed it). Where the converter ran without the hook
(no spare was waiting), ``complete`` renames it once the process has exited
successfully. A file under any other name (a whole conversion's partial
file, renamed by the exporter after its checks) is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

SUFFIX: Final = ".handover"
_MARK: Final = "_tuneforge_handover"


def handover_name(final: Path) -> Path:
    """Where the converter writes a file that is to appear at ``final`` once it is whole."""
    return final.with_name(final.name + SUFFIX)


def install(gguf: Any) -> None:
    """Wraps ``gguf.GGUFWriter.close`` (once): files written under a handover name are then moved in place."""
    writer = gguf.GGUFWriter
    original = writer.close
    if getattr(original, _MARK, False):
        return

    def close(self: Any) -> None:
        names = [getattr(handle, "name", None) for handle in (self.fout or ())]
        original(self)
        for name in names:
            if isinstance(name, str) and name.endswith(SUFFIX):
                os.replace(name, name.removesuffix(SUFFIX))

    setattr(close, _MARK, True)
    writer.close = close


def complete(final: Path) -> None:
    """``final`` in place after the converter's success: moved from its handover name where the
    converter's process did not move it itself. FileNotFoundError when it wrote neither."""
    handed = handover_name(final)
    if handed.exists():
        os.replace(handed, final)
    elif not final.exists():
        raise FileNotFoundError(f"llama.cpp's converter reported success but wrote no {final.name}")
