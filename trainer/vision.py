"""Vision: image+text chat datasets on a vision-language model, trained through trl's VLM path.

A record (one JSONL line) is a chat whose user turns may hold images:

    {"messages": [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]},
        {"role": "assistant", "content": "Red."}],
     "images": ["images/red.png"]}

``content`` is a string or a list of parts (``{"type": "text", "text": ...}``
or ``{"type": "image"}``); ``images`` fills the image parts in order, each a
path relative to the dataset folder or a ``data:image/...;base64,...`` URI.
Without image parts, the images go before the text of the first user turn.
Every image is opened and checked before any model is loaded; bad records
are reported as ``file:line``.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tuneforge.trainer.dataset import MAX_BAD_FRACTION, LoadedDataset
from tuneforge.trainer.errors import DatasetInvalid, InvalidSpec, ModelInvalid, UnsupportedHardware
from tuneforge.trainer.records import Problem, RawRecord, find_data_files, read_records

log = logging.getLogger(__name__)

FORMAT = "vision-chat"
# spec.dataset.format values a vision dataset may be declared as.
ACCEPTED_FORMATS = ("auto", "chat", FORMAT)
ROLES = ("system", "user", "assistant")
DATA_URI_PREFIX = "data:image/"
SHOWN_PROBLEMS = 5
LOGGED_PROBLEMS = 50

Message = dict[str, Any]


def require_pillow() -> None:
    if importlib.util.find_spec("PIL") is None:
        raise UnsupportedHardware(
            "spec.modality vision needs the Pillow package, which this trainer image does not have; "
            "use an image built with the trainer extra"
        )


def load_processor(model_dir: Path) -> Any:
    """The model's processor (image processor + tokenizer + chat template), with a pad token."""
    from transformers import AutoProcessor, ProcessorMixin

    try:
        processor = AutoProcessor.from_pretrained(model_dir)  # type: ignore[no-untyped-call]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelInvalid(f"cannot load a processor from the model folder {model_dir}: {err}") from err
    if not isinstance(processor, ProcessorMixin) or getattr(processor, "image_processor", None) is None:
        raise ModelInvalid(
            f"spec.modality vision needs a vision-language model with an image processor, and the model "
            f"in {model_dir} has only a {type(processor).__name__}; use a VLM (LLaVA, Idefics3/SmolVLM, "
            "Qwen2-VL, ...) or spec.modality text"
        )
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        log.info("the tokenizer has no pad token; padding with the eos token %r", tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    return processor


# --- records ---------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def _parts(content: Any, label: str, role: str) -> list[dict[str, str]]:
    """``content`` as a list of text/image parts; ValueError names what is wrong."""
    if isinstance(content, str):
        if not content.strip():
            raise ValueError(f"{label}.content is empty")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise ValueError(
            f"{label}.content must be a string or a non-empty array of parts, got {_type_name(content)}"
        )
    parts = []
    for index, part in enumerate(content):
        where = f"{label}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ValueError(f"{where}.text must be a string, got {_type_name(text)}")
            parts.append({"type": "text", "text": text})
        elif kind == "image":
            if role == "assistant":
                raise ValueError(
                    f"{where}: an assistant turn cannot hold an image (only user and system turns)"
                )
            if set(part) - {"type"}:
                raise ValueError(
                    f'{where}: an image part is {{"type": "image"}}; the image goes in \'images\''
                )
            parts.append({"type": "image"})
        else:
            raise ValueError(f'{where} must be {{"type": "text", "text": ...}} or {{"type": "image"}}')
    if not any(p["type"] == "text" and p["text"].strip() for p in parts) and role == "assistant":
        raise ValueError(f"{label}.content has no text")
    return parts


def parse_messages(value: Any) -> list[Message]:
    """Validated messages with list-of-parts content (pure; ValueError says what is wrong)."""
    if not isinstance(value, list):
        raise ValueError(f"field 'messages' must be an array, got {_type_name(value)}")
    if not value:
        raise ValueError("field 'messages' is empty")
    out = []
    for index, message in enumerate(value):
        label = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{label} must be an object with role and content, got {_type_name(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{label}.role {role!r} is not one of {', '.join(ROLES)}")
        if role == "system" and index != 0:
            raise ValueError(f"{label}: a system message may only come first")
        out.append({"role": role, "content": _parts(message.get("content"), label, role)})
    if not any(m["role"] == "assistant" for m in out):
        raise ValueError("the conversation has no assistant message to learn from")
    return out


def place_images(messages: list[Message], count: int) -> list[Message]:
    """Check the image parts match ``count`` images; with none, put them before the first user text."""
    parts = sum(1 for m in messages for p in m["content"] if p["type"] == "image")
    if parts == count:
        return messages
    if parts:
        raise ValueError(
            f"the messages have {parts} image part{'s' if parts != 1 else ''} and 'images' has {count}; "
            'each {"type": "image"} part takes the next image'
        )
    first_user = next((i for i, m in enumerate(messages) if m["role"] == "user"), None)
    if first_user is None:
        raise ValueError("'images' is set but the conversation has no user turn to show them in")
    placed = [dict(m) for m in messages]
    placed[first_user]["content"] = [{"type": "image"}] * count + placed[first_user]["content"]
    return placed


def check_image(data: bytes, label: str) -> None:
    """ValueError unless ``data`` is an image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{label} is not a readable image: {err}") from err


def resolve_image(ref: Any, label: str, root: Path) -> str:
    """What the processor loads for one ``images`` entry: an absolute path inside ``root``, or a data URI."""
    if not isinstance(ref, str) or not ref:
        raise ValueError(f"{label} must be a path or a data:image/...;base64 URI, got {_type_name(ref)}")
    if ref.startswith(DATA_URI_PREFIX):
        header, _, payload = ref.partition(",")
        if not header.endswith(";base64") or not payload:
            raise ValueError(f"{label}: a data URI must look like data:image/png;base64,<data>")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"{label}: invalid base64 data ({err})") from err
        check_image(data, label)
        return ref
    if "://" in ref:
        raise ValueError(
            f"{label} {ref!r}: images must be files in the dataset folder or data: URIs; "
            "put remote images into the dataset before training"
        )
    relative = PurePosixPath(ref)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{label} {ref!r} must be a path relative to the dataset folder, without '..'")
    path = root / relative
    if not path.is_file():
        raise ValueError(f"{label}: no file {ref!r} in the dataset folder")
    check_image(path.read_bytes(), f"{label} {ref!r}")
    return str(path.resolve())


def normalize_record(value: Any, root: Path) -> dict[str, Any]:
    """{messages, images} from one record, every image checked; ValueError says what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object with 'messages' and 'images', got {_type_name(value)}")
    if "messages" not in value:
        raise ValueError("missing field 'messages'")
    messages = parse_messages(value["messages"])
    refs = value.get("images", [])
    if refs is None:
        refs = []
    if not isinstance(refs, list):
        raise ValueError(f"field 'images' must be an array, got {_type_name(refs)}")
    images = [resolve_image(ref, f"images[{i}]", root) for i, ref in enumerate(refs)]
    return {"messages": place_images(messages, len(images)), "images": images}


def _file_order(problem: Problem) -> tuple[str, int]:
    name, _, line = problem.where.rpartition(":")
    return (name, int(line)) if line.isdigit() else (problem.where, 0)


def _first(problems: list[Problem]) -> str:
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = len(problems) - SHOWN_PROBLEMS
    return shown + (f"; and {more} more" if more > 0 else "")


def load_vision_dataset(root: Path, fmt: str, *, what: str = "dataset") -> LoadedDataset:
    """Every image+text chat record under ``root`` (a folder of .jsonl/.json files and their images)."""
    if fmt not in ACCEPTED_FORMATS:
        raise InvalidSpec(
            f"spec.dataset.format {fmt} cannot be used with spec.modality vision: vision data is chat "
            "records with images (format chat or auto)"
        )
    if not root.exists():
        raise DatasetInvalid(f"the {what} folder {root} does not exist")
    files = find_data_files(root)
    if not files:
        raise DatasetInvalid(f"the {what} folder {root} holds no .jsonl or .json files")
    base = root if root.is_dir() else root.parent
    raw: list[RawRecord] = []
    problems: list[Problem] = []
    for path in files:
        file_records, file_problems = read_records(path, str(path.relative_to(base)))
        raw += file_records
        problems += file_problems
    records = []
    for record in raw:
        try:
            records.append(normalize_record(record.value, base))
        except ValueError as err:
            problems.append(Problem(record.where, str(err)))
    return _checked(records, problems, what)


def _checked(records: list[dict[str, Any]], problems: list[Problem], what: str) -> LoadedDataset:
    problems = sorted(problems, key=_file_order)
    total = len(records) + len(problems)
    if not records:
        detail = f": {_first(problems)}" if problems else ""
        raise DatasetInvalid(
            f"the {what} has no valid image+text chat records ({len(problems)} invalid){detail}"
        )
    if len(problems) > MAX_BAD_FRACTION * total:
        raise DatasetInvalid(
            f"{len(problems)} of {total} records of the {what} are invalid, more than "
            f"{MAX_BAD_FRACTION:.0%}; {_first(problems)}"
        )
    if not any(r["images"] for r in records):
        raise DatasetInvalid(
            f"the {what} has no images: spec.modality vision trains on image+text chats; "
            "use spec.modality text for text-only data"
        )
    for problem in problems[:LOGGED_PROBLEMS]:
        log.warning("skipping invalid record %s", problem)
    if len(problems) > LOGGED_PROBLEMS:
        log.warning("... and %d more invalid records", len(problems) - LOGGED_PROBLEMS)
    return LoadedDataset(FORMAT, records, problems)


# --- rows for trl ----------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    """Tokens of one rendered sample, and where its last image token sits (-1: no image)."""

    tokens: int
    last_image_token: int


def filled(messages: list[Message], images: list[str]) -> list[Message]:
    """Messages with each image part carrying its image, as the processor renders them."""
    pending = iter(images)
    out = []
    for message in messages:
        content = [
            {"type": "image", "image": next(pending)} if part["type"] == "image" else part
            for part in message["content"]
        ]
        out.append({**message, "content": content})
    return out


def measure(row: dict[str, Any], processor: Any) -> SampleSize:
    encoded = processor.apply_chat_template(
        [filled(row["messages"], row["images"])], tokenize=True, return_dict=True
    )
    ids = list(encoded["input_ids"][0])
    image_token = getattr(processor, "image_token_id", None)
    positions = [i for i, t in enumerate(ids) if t == image_token]
    return SampleSize(len(ids), positions[-1] if positions else -1)


def check_fit(sizes: list[SampleSize], max_length: int) -> int:
    """Samples longer than ``max_length`` (truncated); refuses truncation that would cut image tokens."""
    cut = [s for s in sizes if s.last_image_token >= max_length]
    if cut:
        needed = max(s.last_image_token + 1 for s in cut)
        raise InvalidSpec(
            f"spec.hyperparameters.maxSeqLength {max_length} cuts the image tokens of {len(cut)} "
            f"sample{'s' if len(cut) != 1 else ''} (images need up to {needed} tokens before the text "
            f"that follows them); raise maxSeqLength to at least {needed}, or use smaller images"
        )
    return sum(1 for s in sizes if s.tokens > max_length)


def vision_rows(
    train: list[dict[str, Any]],
    evals: list[dict[str, Any]] | None,
    processor: Any,
    max_length: int,
    *,
    packing: bool,
    overlength: str = "truncate",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None, int, int, int]:
    """(train rows, eval rows, truncated, longest, dropped) in the shape trl's VLM path takes.

    Samples longer than ``max_length`` are truncated (never through their image
    tokens) or, with ``overlength`` "drop", left out; either way counted.
    """
    if packing:
        raise InvalidSpec(
            "spec.hyperparameters.packing is not supported with spec.modality vision "
            "(image tokens cannot be packed across samples); set packing to false"
        )
    if not getattr(processor, "chat_template", None):
        raise InvalidSpec("image+text chat data needs a model whose processor has a chat template")
    train_sizes = [measure(row, processor) for row in train]
    eval_sizes = [measure(row, processor) for row in evals or []]
    sizes = train_sizes + eval_sizes
    longest = max((s.tokens for s in sizes), default=0)
    over = sum(1 for s in sizes if s.tokens > max_length)
    if overlength == "drop":
        train = [r for r, s in zip(train, train_sizes, strict=True) if s.tokens <= max_length]
        evals = [r for r, s in zip(evals or [], eval_sizes, strict=True) if s.tokens <= max_length] or None
        if not train:
            raise InvalidSpec(
                f"spec.dataset.overlength drop leaves no training sample: all are longer than "
                f"spec.hyperparameters.maxSeqLength {max_length} (the longest has {longest} tokens)"
            )
        truncated, dropped = 0, over
    else:
        truncated, dropped = check_fit(sizes, max_length), 0
    if over:
        log.warning(
            "%d of %d samples are longer than maxSeqLength=%d tokens (longest %d) and will be %s",
            over,
            len(sizes),
            max_length,
            longest,
            "dropped" if dropped else "truncated",
        )
    rows = [{"messages": r["messages"], "images": r["images"]} for r in train]
    eval_rows = [{"messages": r["messages"], "images": r["images"]} for r in evals] if evals else None
    return rows, eval_rows, truncated, longest, dropped
