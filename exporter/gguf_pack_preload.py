"""Imported by a converter's spare process (``tool_host`` preload): the fast packer in its gguf-py.

The spare has llama.cpp's gguf-py first on ``sys.path`` (a ``path:`` preload before this one), so
``gguf`` here is the module the converter will write with.
"""

import gguf

from tuneforge.exporter.gguf_pack import install

install(gguf)
