"""Imported by a converter's spare process (``tool_host`` preload): our hooks in its gguf-py.

The spare has llama.cpp's gguf-py first on ``sys.path`` (a ``path:`` preload before this one), so
``gguf`` here is the module the converter will write with. Installed: the vectorised metadata
packer (``gguf_pack``: the vocabulary is most of a ``--vocab-only`` run's time once the imports are
done) and the vocabulary's early handover (``gguf_handover``).
"""

import gguf

from tuneforge.exporter import gguf_handover, gguf_pack

gguf_pack.install(gguf)
gguf_handover.install(gguf)
