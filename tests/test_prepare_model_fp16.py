"""`scripts/prepare_model_fp16.py` (`make model`): a float32 checkpoint becomes the service's FP16 model folder."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoTokenizer

from core.jobs.context_window import ContextWindow
from core.settings import Settings
from scripts.make_demo_model import build_demo_model
from scripts.prepare_model_fp16 import CHECK_PROMPT, DEFAULT_TOLERANCE, INDEX_NAME, logits_of, main
from worker.model_loading import DeviceChoice, load_model

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "prepare_model_fp16.py"


def demo_checkpoint(folder: Path, dtype: str) -> Path:
    """The demo model built in `dtype` (it defaults to float16), laid out as one Hugging Face folder."""
    built = build_demo_model(folder / "built", dtype=dtype)
    source = folder / "checkpoint"
    source.mkdir()
    for part in ("fp16", "tokenizer"):
        for path in (built / part).iterdir():
            shutil.copy2(path, source / path.name)
    return source


@pytest.fixture(scope="module")
def float32_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_checkpoint(tmp_path_factory.mktemp("demo32"), "float32")


def tensors_in(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of every safetensors file in a folder."""
    found = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            found.update({name: handle.get_tensor(name) for name in handle.keys()})  # noqa: SIM118 (a safe_open handle is not iterable)
    return found


def test_float32_checkpoint_becomes_a_checked_fp16_model_the_worker_and_api_read(
    float32_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sharded FP16 weights with an index, the tokenizer, a passing logits check; the worker's loader loads it."""
    source_tensors = tensors_in(float32_checkpoint)
    assert {tensor.dtype for tensor in source_tensors.values()} == {torch.float32}
    out = tmp_path / "model"

    status = main([str(float32_checkpoint), "--out", str(out), "--max-shard-size", "200KB", "--device", "cpu"])

    printed = capsys.readouterr().out
    assert status == 0, printed
    relative_error = float(re.search(r"relative error (\S+) ", printed)[1])
    assert 0 < relative_error <= DEFAULT_TOLERANCE, printed
    assert sorted(path.name for path in out.iterdir()) == ["fp16", "tokenizer"], "staging folder left behind"

    weights = out / "fp16"
    index = json.loads((weights / INDEX_NAME).read_text(encoding="utf-8"))
    shards = sorted(path.name for path in weights.glob("*.safetensors"))
    assert len(shards) >= 2 and set(index["weight_map"].values()) == set(shards)
    written = tensors_in(weights)
    assert set(index["weight_map"]) == set(written) == set(source_tensors)
    for name, tensor in written.items():
        assert tensor.dtype == torch.float16, name
        assert torch.equal(tensor, source_tensors[name].half()), name
    assert index["metadata"]["total_size"] == sum(t.numel() * 2 for t in written.values())
    assert json.loads((weights / "config.json").read_text(encoding="utf-8"))["dtype"] == "float16"

    # The worker's own loader, in this process, as the GPU worker's DTYPE=auto would on a GPU.
    loaded = load_model(Settings(_env_file=None, model_dir=out, dtype="float16"), DeviceChoice("cpu", None, None))
    assert (loaded.paths.weights_dir, loaded.paths.tokenizer_dir) == (weights.resolve(), (out / "tokenizer").resolve())
    assert not loaded.paths.is_demo
    assert loaded.dtype_name == "float16"
    assert {param.dtype for param in loaded.model.parameters()} == {torch.float16}
    ids = loaded.tokenizer("Xin chào", return_tensors="pt").input_ids
    assert torch.isfinite(loaded.model(input_ids=ids).logits).all()

    # The API's context check finds the tokenizer and the context length in the same layout.
    counter = ContextWindow(out).counter()
    assert counter is not None and counter.context_tokens == 2048


def test_an_existing_model_is_kept_without_force_and_after_a_failed_check(
    float32_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run without --force refuses at once; with --force, a check above the tolerance changes nothing."""
    out = tmp_path / "model"
    (out / "fp16").mkdir(parents=True)
    (out / "fp16" / "config.json").write_text("{}", encoding="utf-8")
    (out / "tokenizer").mkdir()
    before = sorted(str(path.relative_to(out)) for path in out.rglob("*"))

    refused = subprocess.run(
        [sys.executable, str(SCRIPT), str(float32_checkpoint), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    assert "already holds a model" in refused.stderr and "--force" in refused.stderr

    strict = main([str(float32_checkpoint), "--out", str(out), "--force", "--device", "cpu", "--tolerance", "1e-9"])
    assert strict == 1
    assert "above the tolerance" in capsys.readouterr().err
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == before
    assert (out / "fp16" / "config.json").read_text(encoding="utf-8") == "{}"


def test_a_bfloat16_source_is_checked_against_its_weights_computed_in_float32(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference keeps bfloat16 weights and computes each layer in float32: the same logits as a float32 copy
    of the model, without holding one; the conversion of a bfloat16 checkpoint passes its check."""
    source = demo_checkpoint(tmp_path, "bfloat16")
    ids = AutoTokenizer.from_pretrained(source).encode(CHECK_PROMPT, return_tensors="pt")
    layered, kept = logits_of(source, ids, "cpu", torch.bfloat16, float32_compute=True)
    copied, widened = logits_of(source, ids, "cpu", torch.float32)
    plain, _ = logits_of(source, ids, "cpu", torch.bfloat16)
    assert kept == {torch.bfloat16} and widened == {torch.float32}
    assert torch.equal(layered, copied)
    assert not torch.equal(plain, copied), "bfloat16 arithmetic rounds differently: the reference must not use it"

    assert main([str(source), "--out", str(tmp_path / "model"), "--device", "cpu"]) == 0
    assert "(bfloat16 weights, computed in float32)" in capsys.readouterr().out
