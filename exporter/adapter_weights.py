"""An adapter's tensors, read when the merge needs them (safetensors), or loaded whole (legacy .bin)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from io import BufferedReader
from pathlib import Path
from typing import Final, Protocol

import torch

from tuneforge.exporter.errors import AdapterInvalid
from tuneforge.exporter.safetensors_stream import SafetensorsFormatError, read_header, read_tensor

ADAPTER_SAFETENSORS: Final = "adapter_model.safetensors"
ADAPTER_BIN: Final = "adapter_model.bin"


class TensorSource(Protocol):
    """The adapter's tensors, read when needed."""

    def shapes(self) -> dict[str, tuple[int, ...]]: ...

    def get(self, name: str) -> torch.Tensor: ...


class _SafetensorsSource:
    def __init__(self, path: Path, handle: BufferedReader) -> None:
        try:
            self.header = read_header(path)
        except SafetensorsFormatError as err:
            raise AdapterInvalid(f"the adapter's weights are broken: {err}") from None
        self.handle = handle
        self._infos = self.header.by_name()

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: info.shape for name, info in self._infos.items()}

    def get(self, name: str) -> torch.Tensor:
        return read_tensor(self.handle, self.header, self._infos[name])


class _DictSource:
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: tuple(t.shape) for name, t in self.tensors.items()}

    def get(self, name: str) -> torch.Tensor:
        return self.tensors[name]


@contextmanager
def open_adapter_weights(adapter: Path) -> Iterator[TensorSource]:
    with ExitStack() as stack:
        path = adapter / ADAPTER_SAFETENSORS
        if path.is_file():
            yield _SafetensorsSource(path, stack.enter_context(path.open("rb")))
            return
        legacy = adapter / ADAPTER_BIN
        if legacy.is_file():
            try:
                tensors = torch.load(legacy, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any unpickling failure means the same to the user
                raise AdapterInvalid(f"cannot read {legacy}: {err}") from None
            yield _DictSource(dict(tensors))
            return
        raise AdapterInvalid(
            f"{adapter} has no {ADAPTER_SAFETENSORS} (or {ADAPTER_BIN}): it holds no adapter weights"
        )
