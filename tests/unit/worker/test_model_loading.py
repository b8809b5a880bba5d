"""Finding the model on disk, choosing device and dtype, loading it once."""

from __future__ import annotations

import pytest
import torch

from worker.model_loading import (
    DEMO_MODEL_MARKER,
    ModelNotFound,
    choose_device,
    choose_dtype,
    gpu_name,
    locate_model,
)


def test_both_layouts_are_found_and_an_empty_folder_is_refused(tmp_path, demo_model_dir):
    paths = locate_model(demo_model_dir)
    assert (paths.weights_dir / "config.json").is_file() and paths.is_demo == (
        demo_model_dir / DEMO_MODEL_MARKER
    ).is_file()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    assert locate_model(plain).weights_dir == locate_model(plain).tokenizer_dir == plain.resolve()
    fp16 = tmp_path / "layout"
    (fp16 / "fp16").mkdir(parents=True)
    (fp16 / "fp16" / "config.json").write_text("{}")
    (fp16 / "tokenizer").mkdir()
    assert locate_model(fp16).tokenizer_dir == (fp16 / "tokenizer").resolve()
    with pytest.raises(ModelNotFound):
        locate_model(tmp_path / "empty")


def test_the_cpu_is_chosen_with_float32_and_no_gpu_name():
    device = choose_device("cpu")
    assert device.torch_device == "cpu" and device.cuda_index is None
    assert choose_dtype("auto", device) == torch.float32 and choose_dtype("bfloat16", device) == torch.bfloat16
    assert gpu_name(device) == "none"


def test_the_loaded_model_is_in_eval_mode_with_a_pad_token(loaded_model):
    assert not loaded_model.model.training and loaded_model.tokenizer.pad_token_id is not None
    assert loaded_model.dtype_name == "float32" and loaded_model.load_seconds >= 0
