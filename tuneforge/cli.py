"""The ``tuneforge`` command: one entry point, a subcommand per job step.

Subcommands import their module lazily so that ``tuneforge fetch`` in an init
container never pays for importing torch.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one-line help). Each module has ``main(argv) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("tuneforge.localrun", "run a FineTuneJob manifest locally, step by step as in a cluster"),
    "fetch": ("tuneforge.storage.fetch", "copy a model or dataset from a URI to a local folder"),
    "train": ("tuneforge.trainer.main", "train as the Job's trainer container does"),
    "launch": ("tuneforge.trainer.launch", "run `train` once per GPU under torchrun (several GPUs or nodes)"),
    "export": ("tuneforge.exporter.main", "build a ModelExport's artifact and publish it, as its Job does"),
    "tiny-model": ("tuneforge.tinymodel", "build the offline tiny model used by the demo and tests"),
    "tiny-vlm": ("tuneforge.tinyvlm", "build the offline tiny vision-language model used by tests"),
    "crds": ("tuneforge.api.crdgen", "write the CRD YAML generated from the API models"),
    "llama-cpp": ("tuneforge.exporter.gguf_tools", "install or show llama.cpp's GGUF converters"),
}


def usage() -> str:
    lines = ["usage: tuneforge COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'tuneforge COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] == "--version":
        from tuneforge import __version__

        print(__version__)
        return 0
    if args[0] not in COMMANDS:
        print(f"tuneforge: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
