"""Vision: image+text chat data on the tiny LLaVA (tuneforge.tinyvlm), validated and trained for real."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import PeftModel
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from tuneforge import exitcodes
from tuneforge.api.finetunejob import FineTuneJobSpec
from tuneforge.trainer.errors import DatasetInvalid, InvalidSpec, ModelInvalid
from tuneforge.trainer.model import prepare_model
from tuneforge.trainer.vision import (
    FORMAT,
    SampleSize,
    check_fit,
    load_processor,
    load_vision_dataset,
    measure,
    normalize_record,
    vision_rows,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
]

Runner = Any
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (240, 220, 40)}


def png(rgb: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, format="PNG")
    return out.getvalue()


def record(colour: str, image: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": "What colour is this?"}],
            },
            {"role": "assistant", "content": f"It is {colour}."},
        ],
        "images": [image or f"images/{colour}.png"],
    }


@pytest.fixture
def pictures(tmp_path: Path) -> Path:
    """A dataset folder: four tiny PNGs and 24 chats asking for their colour."""
    root = tmp_path / "pictures"
    (root / "images").mkdir(parents=True)
    for name, rgb in COLOURS.items():
        (root / "images" / f"{name}.png").write_bytes(png(rgb))
    lines = [json.dumps(record(list(COLOURS)[i % 4])) for i in range(24)]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root


def vision_spec(**fields: Any) -> FineTuneJobSpec:
    return FineTuneJobSpec.model_validate(
        {
            "model": {"source": "s3://models/vlm"},
            "dataset": {"source": "s3://data/pictures/"},
            "output": {"uri": "s3://out/o"},
            "modality": "vision",
            **fields,
        }
    )


# --- records ---------------------------------------------------------------------------


def test_a_record_is_normalised_with_its_images_resolved(pictures: Path) -> None:
    got = normalize_record(record("red"), pictures)
    assert got["images"] == [str((pictures / "images" / "red.png").resolve())]
    assert got["messages"][0]["content"] == [
        {"type": "image"},
        {"type": "text", "text": "What colour is this?"},
    ]
    assert got["messages"][1]["content"] == [{"type": "text", "text": "It is red."}]

    # Without image parts, the images go before the first user text; a data URI is an image too.
    inline = "data:image/png;base64," + base64.b64encode(png((1, 2, 3))).decode()
    plain = {
        "messages": [{"role": "user", "content": "Colour?"}, {"role": "assistant", "content": "Black."}],
        "images": [inline],
    }
    got = normalize_record(plain, pictures)
    assert got["images"] == [inline]
    assert got["messages"][0]["content"] == [{"type": "image"}, {"type": "text", "text": "Colour?"}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": ["images/purple.png"]}, "images[0]: no file 'images/purple.png' in the dataset folder"),
        ({"images": ["../secret.png"]}, "must be a path relative to the dataset folder, without '..'"),
        ({"images": ["/etc/passwd"]}, "must be a path relative to the dataset folder"),
        (
            {"images": ["https://example.com/a.png"]},
            "images must be files in the dataset folder or data: URIs",
        ),
        ({"images": ["train.jsonl"]}, "images[0] 'train.jsonl' is not a readable image"),
        ({"images": ["data:image/png;base64,@@@"]}, "images[0]: invalid base64 data"),
        ({"images": []}, "the messages have 1 image part and 'images' has 0"),
        ({"images": "images/red.png"}, "field 'images' must be an array, got string"),
        (
            {
                "messages": [
                    {"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": [{"type": "image"}]},
                ]
            },
            "messages[1].content[0]: an assistant turn cannot hold an image",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "video"}]}]},
            'messages[0].content[0] must be {"type": "text", "text": ...} or {"type": "image"}',
        ),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "the conversation has no assistant message"),
    ],
)
def test_bad_records_say_what_is_wrong(pictures: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_record({**record("red"), **change}, pictures)
    assert message in str(caught.value)


def test_bad_records_are_reported_by_file_and_line(pictures: Path) -> None:
    lines = (pictures / "train.jsonl").read_text().splitlines()
    lines[4] = json.dumps(record("red", "images/missing.png"))
    lines[9] = "{not json"
    (pictures / "train.jsonl").write_text("\n".join(lines) + "\n")
    loaded = load_vision_dataset(pictures, "auto")
    assert loaded.format == FORMAT and len(loaded.records) == 22
    assert [str(p) for p in loaded.problems] == [
        "train.jsonl:5: images[0]: no file 'images/missing.png' in the dataset folder",
        "train.jsonl:10: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
    ]


def test_datasets_that_cannot_train_a_vlm_are_refused(pictures: Path, tmp_path: Path) -> None:
    with pytest.raises(
        InvalidSpec, match="spec.dataset.format alpaca cannot be used with spec.modality vision"
    ):
        load_vision_dataset(pictures, "alpaca")
    text_only = tmp_path / "text"
    text_only.mkdir()
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
    (text_only / "chat.jsonl").write_text(json.dumps(chat) + "\n")
    with pytest.raises(
        DatasetInvalid, match="the dataset has no images: spec.modality vision trains on image"
    ):
        load_vision_dataset(text_only, "chat")
    (pictures / "train.jsonl").write_text(json.dumps(record("red", "images/none.png")) + "\n")
    with pytest.raises(
        DatasetInvalid, match=r"no valid image\+text chat records \(1 invalid\): train.jsonl:1"
    ):
        load_vision_dataset(pictures, "auto")


def test_truncation_may_not_cut_image_tokens() -> None:
    assert check_fit([SampleSize(30, 17), SampleSize(50, 17), SampleSize(12, -1)], 40) == 1
    with pytest.raises(InvalidSpec, match="maxSeqLength 16 cuts the image tokens of 2 samples.*at least 18"):
        check_fit([SampleSize(30, 17), SampleSize(50, 10), SampleSize(40, 16)], 16)


# --- the tiny VLM ----------------------------------------------------------------------


def test_the_tiny_vlm_loads_and_renders_an_image_chat(tiny_vlm: Path, pictures: Path) -> None:
    processor = load_processor(tiny_vlm)
    loaded = load_vision_dataset(pictures, "chat")
    rows, evals, truncated, longest, dropped = vision_rows(
        loaded.records[:2], None, processor, 64, packing=False
    )
    assert evals is None and truncated == dropped == 0
    # 16 image tokens (4x4 patches of 8 pixels) plus the chat.
    assert 16 < longest < 64
    assert rows[0]["images"] == loaded.records[0]["images"]
    # Too long: truncated after the image tokens, or dropped when the spec says so.
    lengths = [measure(r, processor).tokens for r in loaded.records[:4]]
    short = min(lengths)
    assert vision_rows(loaded.records[:4], None, processor, short - 1, packing=False)[2:] == (
        4,
        max(lengths),
        0,
    )
    kept, _, truncated, _, dropped = vision_rows(
        loaded.records[:4], None, processor, short, packing=False, overlength="drop"
    )
    assert len(kept) == lengths.count(short) and truncated == 0 and dropped == 4 - len(kept)
    with pytest.raises(InvalidSpec, match="overlength drop leaves no training sample"):
        vision_rows(loaded.records[:4], None, processor, short - 1, packing=False, overlength="drop")
    with pytest.raises(InvalidSpec, match="packing is not supported with spec.modality vision"):
        vision_rows(rows, None, processor, 64, packing=True)


def test_modality_and_model_must_match(tiny_vlm: Path, tiny_model: Path) -> None:
    with pytest.raises(ModelInvalid, match="needs a vision-language model with an image processor"):
        load_processor(tiny_model)
    with pytest.raises(ModelInvalid, match="is it a vision-language model\\? set spec.modality to vision"):
        prepare_model(vision_spec(modality="text"), tiny_vlm, precision="fp32", attn_implementation=None)


def test_a_wrong_target_module_lists_the_vlm_modules(tiny_vlm: Path) -> None:
    spec = vision_spec(hyperparameters={"targetModules": ["query"]})
    with pytest.raises(InvalidSpec) as caught:
        prepare_model(spec, tiny_vlm, precision="fp32", attn_implementation=None)
    assert caught.value.message == (
        "spec.hyperparameters.targetModules: 'query' is not a linear module of this model; it has: "
        "down_proj, fc1, fc2, gate_proj, k_proj, linear_1, linear_2, lm_head, o_proj, out_proj, q_proj, "
        "up_proj, v_proj (or use all-linear)"
    )


@pytest.mark.slow
def test_vision_run_trains_a_lora_adapter_on_the_vlm(
    run_trainer: Runner, tiny_vlm: Path, pictures: Path
) -> None:
    run = run_trainer(
        pictures,
        model=tiny_vlm,
        modality="vision",
        dataset={"format": "chat"},
        hyperparameters={"maxSteps": 5, "loggingSteps": 1},
    )
    assert run.exit_code == exitcodes.OK, run.termination
    adapter = run.output / "adapter"
    assert run.termination["message"] == f"trained 5 steps on 24 samples; adapter at {adapter.as_uri()}"
    losses = run.losses
    assert min(losses[-2:]) < losses[0] - 0.5, losses
    status = json.loads(run.run_file("status.json").read_text())
    assert status["dataset"]["format"] == FORMAT and status["dataset"]["trainRecords"] == 24

    # The adapter comes with the processor; on the VLM it changes what the model says about a picture.
    assert {"adapter_model.safetensors", "processor_config.json", "chat_template.jinja"} <= {
        p.name for p in adapter.iterdir()
    }
    # all-linear: the vision tower (fc1, out_proj), the projector (linear_1) and the language model (q_proj).
    targets = set(json.loads((adapter / "adapter_config.json").read_text())["target_modules"])
    assert {"fc1", "out_proj", "linear_1", "q_proj"} <= targets
    processor = AutoProcessor.from_pretrained(adapter)
    tuned = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(tiny_vlm), adapter)
    image = Image.open(pictures / "images" / "blue.png")
    chat = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "What colour is this?"}],
        },
        {"role": "assistant", "content": "It is blue."},
    ]
    batch = processor.apply_chat_template(
        [chat], tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    # The loss on the answer, as trained (assistant tokens only).
    labels = batch["input_ids"].masked_fill(batch.pop("assistant_masks") == 0, -100)
    with torch.no_grad():
        with tuned.disable_adapter():
            before = tuned(**batch, labels=labels).loss
        after = tuned(**batch, labels=labels).loss
    assert after < before - 0.5, (before, after)
