"""llama.cpp's vocabulary file reaches the tensor writer when the converter closes it, whole."""

from __future__ import annotations

import types
from pathlib import Path
from types import ModuleType

import pytest

from tuneforge.exporter import gguf_fast, tool_spares
from tuneforge.exporter.gguf_handover import complete, handover_name, install
from tuneforge.exporter.gguf_process import run_tool
from tuneforge.exporter.gguf_tools import llama_cpp_version, tools_dir


@pytest.fixture
def writer_class(gguf: ModuleType) -> type:
    """gguf-py's GGUFWriter with the hook (a subclass: the module's class is untouched)."""
    hooked = type("HookedWriter", (gguf.GGUFWriter,), {})
    install(types.SimpleNamespace(GGUFWriter=hooked))
    return hooked


def write_vocab_only(writer_class: type, path: Path) -> None:
    """What the converter's write_vocab does: header, key-values, close."""
    writer = writer_class(path, "llama")
    writer.add_string("general.name", "handed over")
    writer.add_array("tokenizer.ggml.tokens", ["<unk>", "<s>", "▁a"])
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.close()


def test_a_file_written_under_its_handover_name_is_in_place_once_closed(
    writer_class: type, gguf: ModuleType, tmp_path: Path
) -> None:
    final = tmp_path / "out.gguf.vocab"
    write_vocab_only(writer_class, handover_name(final))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf.vocab"]
    reader = gguf.GGUFReader(final)
    assert reader.fields["general.name"].contents() == "handed over"
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<unk>", "<s>", "▁a"]
    complete(final)  # the exporter's side, after the process's exit: nothing left to move
    assert final.is_file()


def test_other_files_are_left_where_the_converter_wrote_them(writer_class: type, tmp_path: Path) -> None:
    """A whole conversion's partial file is renamed by the exporter after its checks, not on close."""
    partial = tmp_path / ".model.gguf.123.partial"
    write_vocab_only(writer_class, partial)
    assert sorted(p.name for p in tmp_path.iterdir()) == [partial.name]


def test_without_the_hook_the_exporter_moves_the_file_after_the_converter_exits(
    gguf: ModuleType, tmp_path: Path
) -> None:
    final = tmp_path / "out.gguf.vocab"
    write_vocab_only(gguf.GGUFWriter, handover_name(final))  # a converter started cold: no hook
    assert not final.exists()
    complete(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf.vocab"]


def test_a_converter_that_wrote_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"wrote no out\.gguf\.vocab"):
        complete(tmp_path / "out.gguf.vocab")


def test_installing_twice_wraps_once(gguf: ModuleType) -> None:
    hooked = type("HookedTwice", (gguf.GGUFWriter,), {})
    namespace = types.SimpleNamespace(GGUFWriter=hooked)
    install(namespace)
    first = hooked.close
    install(namespace)
    assert hooked.close is first


def test_the_converters_spare_hands_the_vocabulary_over_itself(tiny_model: Path, tmp_path: Path) -> None:
    """The hook is in the spare's gguf-py (``gguf_converter_preload``): after llama.cpp's
    ``--vocab-only`` run there, the file is already at its final name, before ``complete``."""
    tools = tools_dir()
    final = tmp_path / "tiny.gguf.vocab"
    try:
        gguf_fast.prestart(tools)
        assert tool_spares.wait_ready()
        run = run_tool(
            [*gguf_fast.vocab_only_tool(tools), str(tiny_model), "--outtype", "f16", "--vocab-only"]
            + ["--outfile", str(handover_name(final))],
            step="--vocab-only",
            timeout=120,
            version=llama_cpp_version(),
        )
    finally:
        tool_spares.discard_all()
    assert run.started_ahead
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf.vocab"]
