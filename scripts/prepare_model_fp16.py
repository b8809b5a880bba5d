"""Prepare the service's model folder from a local original checkpoint: FP16 safetensors and the tokenizer.

    llmq-prepare-model /path/to/Llama-3.2-3B-Instruct-Frog --out model    # or: python -m scripts.prepare_model_fp16
    make model SRC=/path/to/Llama-3.2-3B-Instruct-Frog        # the same, into ./model

The source is a Hugging Face model folder on this machine (config.json, safetensors weights in float32, bfloat16 or
float16, the tokenizer files); nothing is downloaded. It writes `<out>/fp16/` (config.json with dtype float16, the
weights in shards of at most --max-shard-size with model.safetensors.index.json) and `<out>/tokenizer/`: the layout
the GPU worker (worker/model_loading.py) and the API's context check (core/jobs/context_window.py) read.

Then it checks the result before putting it in place: the worker's loader finds it, it loads as float16, and its
logits on a fixed prompt are close to those of the source computed in float32 (the relative error is printed; above
--tolerance the script fails and leaves <out> as it was). An existing model in <out> is replaced only with --force.

Memory: tensors are read one at a time from the source's memory-mapped files and written a shard at a time, so
converting takes about twice --max-shard-size; the check loads one model at a time (the FP16 result, then the
source in its own dtype, each layer cast up to float32 only while it runs), never both. `--device auto` runs it on
a GPU only if one has room for the source, else on the CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.jobs.context_window import model_files
from worker.model_loading import DEMO_MODEL_MARKER, locate_model

WEIGHTS_DIR = "fp16"
TOKENIZER_DIR = "tokenizer"
INDEX_NAME = "model.safetensors.index.json"
SINGLE_FILE_NAME = "model.safetensors"
# The dtypes converted to float16; integer buffers (and anything else) are copied as they are.
FLOATING = {"F64", "F32", "BF16", "F16"}
TORCH_NAMES = {"F64": "float64", "F32": "float32", "BF16": "bfloat16", "F16": "float16"}
BYTES_PER_ELEMENT = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
# A short, fixed mixed-language prompt: the same tokens every run, so relative errors are comparable.
CHECK_PROMPT = "Hà Nội là thủ đô của Việt Nam. The quick brown fox jumps over the lazy dog, 1234567890."
DEFAULT_TOLERANCE = 0.02
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS.update({"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40})


class PrepareError(Exception):
    """Why the model could not be prepared; printed as one line, exit status 1."""


def parse_size(text: str) -> int:
    """Bytes from `2GB`, `500MB`, `1.5GiB` or a plain number of bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2GB, 500MB, 1GiB)")
    size = int(float(match[1]) * _UNITS[(match[2] or "B").upper()])
    if size < 1:
        raise argparse.ArgumentTypeError("the shard size must be at least one byte")
    return size


# ---------------------------------------------------------------------------------------------------------
# The source checkpoint


@dataclass(frozen=True)
class SourceTensor:
    name: str
    file: Path
    dtype: str  # safetensors' name: F32, BF16, ...
    shape: tuple[int, ...]

    @property
    def converted(self) -> bool:
        return self.dtype in FLOATING

    @property
    def output_bytes(self) -> int:
        """Its size once written: two bytes an element if converted, else its own size."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count * (2 if self.converted else BYTES_PER_ELEMENT.get(self.dtype, 8))


def source_weight_files(src: Path) -> list[Path]:
    """The checkpoint's safetensors files, as transformers finds them: those its index names, or model.safetensors."""
    index = src / INDEX_NAME
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        missing = [name for name in names if not (src / name).is_file()]
        if missing:
            raise PrepareError(f"{index} names files that are not there: {', '.join(missing)}")
        return [src / name for name in names]
    if (src / SINGLE_FILE_NAME).is_file():
        return [src / SINGLE_FILE_NAME]
    if any(src.glob("*.safetensors")):
        raise PrepareError(f"{src} has safetensors files but neither {SINGLE_FILE_NAME} nor {INDEX_NAME}")
    if any(src.glob("*.bin")) or any(src.glob("*.pth")):
        raise PrepareError(
            f"{src} has only PyTorch pickle weights (.bin/.pth); this script reads safetensors checkpoints only"
        )
    raise PrepareError(f"no safetensors weights in {src}")


def read_source(src: Path) -> list[SourceTensor]:
    """Every tensor of the checkpoint with its dtype and shape, read from the file headers (no weights loaded)."""
    from safetensors import safe_open

    tensors: dict[str, SourceTensor] = {}
    for path in source_weight_files(src):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                if name in tensors:
                    raise PrepareError(f"tensor {name} is in both {tensors[name].file.name} and {path.name}")
                view = handle.get_slice(name)
                tensors[name] = SourceTensor(name, path, view.get_dtype(), tuple(view.get_shape()))
    if not tensors:
        raise PrepareError(f"the weight files of {src} hold no tensors")
    return list(tensors.values())


def check_source(src: Path) -> dict[str, Any]:
    """The source's config.json, after refusing what this script can't convert faithfully."""
    config_file = src / "config.json"
    if not config_file.is_file():
        raise PrepareError(f"{src} is not a Hugging Face model folder (no config.json)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("quantization_config"):
        raise PrepareError(f"{src} is a quantized checkpoint; start from the original float32/bfloat16 weights")
    return config


# ---------------------------------------------------------------------------------------------------------
# Writing


def plan_shards(tensors: list[SourceTensor], max_shard_bytes: int) -> list[list[SourceTensor]]:
    """Tensors in checkpoint order, cut into shards of at most max_shard_bytes (a larger tensor gets its own)."""
    shards: list[list[SourceTensor]] = []
    current: list[SourceTensor] = []
    current_bytes = 0
    for tensor in tensors:
        if current and current_bytes + tensor.output_bytes > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(tensor)
        current_bytes += tensor.output_bytes
    if current:
        shards.append(current)
    return shards


def shard_file_name(number: int, count: int) -> str:
    """Hugging Face's shard names, which its loader and index expect."""
    return SINGLE_FILE_NAME if count == 1 else f"model-{number:05d}-of-{count:05d}.safetensors"


def write_weights(tensors: list[SourceTensor], out_dir: Path, max_shard_bytes: int) -> list[Path]:
    """Write the tensors as float16 safetensors shards (+ index when there are several); returns the shard paths."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm import tqdm

    shards = plan_shards(tensors, max_shard_bytes)
    total = sum(tensor.output_bytes for tensor in tensors)
    weight_map: dict[str, str] = {}
    written: list[Path] = []
    with tqdm(total=total, unit="B", unit_scale=True, desc="float16", dynamic_ncols=True) as bar:
        for number, shard in enumerate(shards, start=1):
            name = shard_file_name(number, len(shards))
            converted: dict[str, torch.Tensor] = {}
            # The source files are memory-mapped: opened per shard, so the pages read are let go with it.
            with ExitStack() as stack:
                handles = {
                    path: stack.enter_context(safe_open(str(path), framework="pt"))
                    for path in dict.fromkeys(tensor.file for tensor in shard)
                }
                for tensor in shard:
                    value = handles[tensor.file].get_tensor(tensor.name)
                    if tensor.converted:
                        half = value.to(torch.float16)
                        # float16 tops out at 65504: a finite weight beyond it would silently become inf.
                        if bool(torch.isfinite(value).all()) and not bool(torch.isfinite(half).all()):
                            raise PrepareError(
                                f"tensor {tensor.name} has values beyond float16's range (|x| > 65504): "
                                "this checkpoint can't be served in FP16"
                            )
                        value = half
                    converted[tensor.name] = value.contiguous()
                    weight_map[tensor.name] = name
                    bar.update(tensor.output_bytes)
            path = out_dir / name
            save_file(converted, str(path), metadata={"format": "pt"})
            written.append(path)
            del converted
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return written


def write_config(src: Path, out_dir: Path) -> None:
    """config.json saying float16 (what `dtype="auto"` loads as), and the generation defaults unchanged."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(src, local_files_only=True)
    config.dtype = torch.float16
    config.save_pretrained(out_dir)
    generation_config = src / "generation_config.json"
    if generation_config.is_file():
        shutil.copyfile(generation_config, out_dir / generation_config.name)


def write_tokenizer(tokenizer_src: Path, out_dir: Path) -> None:
    """The tokenizer as transformers saves it: tokenizer.json (which the API counts prompts with) and its config."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_src, local_files_only=True)
    tokenizer.save_pretrained(out_dir)


def make_readable(folder: Path) -> None:
    """safetensors creates its files 0600; the service may run as another user (the container's uid)."""
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


# ---------------------------------------------------------------------------------------------------------
# Checking


@dataclass(frozen=True)
class CheckResult:
    relative_error: float
    max_abs_error: float
    top1_agreement: float
    positions: int
    source_dtype: str


def choose_check_device(setting: str, reference_bytes: int) -> str:
    """`auto`: a GPU if torch sees one with room for the reference (and some to spare), else the CPU."""
    import torch

    if setting == "auto":
        # The source plus its largest module in float32 (a 3B model's embedding: a quarter of the model's size).
        if torch.cuda.is_available() and torch.cuda.mem_get_info()[0] > reference_bytes * 1.5:
            return "cuda"
        return "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise PrepareError(f"--device {setting}, but torch sees no CUDA device (use --device cpu)")
    return setting


def compute_in_float32(model: Any) -> None:
    """Run every layer in float32 while the weights stay in their own dtype: each module holding weights is cast up
    just before it runs and back right after (both exact from bfloat16 or float16), so a float32 reference costs
    the model's own size plus one module in float32, not a float32 copy of the whole model."""
    import torch

    def upcast(value: Any) -> Any:
        return value.float() if torch.is_tensor(value) and value.is_floating_point() else value

    def before(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        module.float()
        return tuple(upcast(arg) for arg in args), {key: upcast(value) for key, value in kwargs.items()}

    def after(module: Any, _args: tuple, _output: Any) -> None:  # None: the output stays as computed
        module.to(stored[module])

    stored: dict[Any, Any] = {}
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if own and own[0].dtype != torch.float32:
            stored[module] = own[0].dtype
            module.register_forward_pre_hook(before, with_kwargs=True)
            module.register_forward_hook(after)


def logits_of(weights_dir: Path, input_ids: Any, device: str, dtype: Any, *, float32_compute: bool = False) -> Any:
    """Load one model in `dtype` ("auto": as its config says), run the prompt and return its logits (float32, on
    the CPU) with the dtypes its parameters had; the model is freed before this returns."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(weights_dir, dtype=dtype, device_map=device, local_files_only=True)
    except (OSError, ValueError) as error:  # files transformers can't read as a causal LM
        raise PrepareError(f"transformers can't load {weights_dir}: {error}") from error
    try:
        model.eval()
        dtypes = {param.dtype for param in model.parameters() if param.is_floating_point()}
        if float32_compute:
            compute_in_float32(model)
        # no_grad, not inference_mode: compute_in_float32 swaps parameters' data, which inference tensors can't be.
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device)).logits.float().cpu()
        return logits, dtypes
    finally:
        del model
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()


def source_torch_dtype(source_dtypes: list[str]) -> Any:
    """The most precise floating dtype among the source's tensors: the reference loads in it, losing nothing."""
    import torch

    for name, dtype in (("F64", torch.float32), ("F32", torch.float32), ("BF16", torch.bfloat16)):
        if name in source_dtypes:
            return dtype
    return torch.float16


def check_conversion(
    src: Path, staged: Path, device: str, source_dtypes: list[str], prompt: str = CHECK_PROMPT
) -> CheckResult:
    """The staged folder is found by the worker's loader, loads as float16, and its logits follow the source's.

    The reference is the source's own weights computed in float32: a bfloat16 computation would add its own
    rounding, about as large as what is measured.
    """
    import torch
    from transformers import AutoTokenizer

    paths = locate_model(staged)
    if paths.weights_dir != staged / WEIGHTS_DIR or paths.tokenizer_dir != staged / TOKENIZER_DIR:
        raise PrepareError(f"the worker would not read the written layout (it found {paths})")
    tokenizer = AutoTokenizer.from_pretrained(paths.tokenizer_dir, local_files_only=True)
    input_ids = tokenizer(prompt, return_tensors="pt").input_ids
    converted, dtypes = logits_of(paths.weights_dir, input_ids, device, "auto")
    if dtypes != {torch.float16}:
        raise PrepareError(f"the written model loads as {sorted(map(str, dtypes))}, not float16")
    if not bool(torch.isfinite(converted).all()):
        raise PrepareError("the FP16 model's logits are not finite (activations overflow float16)")
    reference, _ = logits_of(src, input_ids, device, source_torch_dtype(source_dtypes), float32_compute=True)
    difference = converted - reference
    relative = float(difference.norm() / reference.norm().clamp_min(1e-12))
    agreement = float((converted.argmax(-1) == reference.argmax(-1)).float().mean())
    names = "/".join(TORCH_NAMES.get(name, name) for name in source_dtypes)
    return CheckResult(relative, float(difference.abs().max()), agreement, input_ids.shape[-1], names)


# ---------------------------------------------------------------------------------------------------------
# The command


def existing_model(out: Path) -> list[str]:
    """What of a model already sits in `out`."""
    return [name for name in (WEIGHTS_DIR, TOKENIZER_DIR, DEMO_MODEL_MARKER) if (out / name).exists()]


def is_inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def prepare(args: argparse.Namespace) -> CheckResult:
    """Convert into a staging folder inside `out`, check it, then put it in place."""
    src: Path = args.src
    out: Path = args.out
    check_source(src)
    tensors = read_source(src)
    # The check's reference holds the source in its own dtype (as large as the source's files, at most).
    args.device = choose_check_device(args.device, sum(path.stat().st_size for path in source_weight_files(src)))
    out.mkdir(parents=True, exist_ok=True)
    staged = (out / f".prepare-fp16-{os.getpid()}").resolve()
    shutil.rmtree(staged, ignore_errors=True)
    try:
        (staged / WEIGHTS_DIR).mkdir(parents=True)
        converted = sum(tensor.converted for tensor in tensors)
        dtypes = sorted({tensor.dtype for tensor in tensors})
        print(f"{src}: {len(tensors)} tensors ({', '.join(dtypes)}), {converted} converted to float16", flush=True)
        shards = write_weights(tensors, staged / WEIGHTS_DIR, args.max_shard_size)
        write_config(src, staged / WEIGHTS_DIR)
        write_tokenizer(src, staged / TOKENIZER_DIR)
        make_readable(staged)
        size = sum(path.stat().st_size for path in shards)
        print(f"wrote {len(shards)} shard(s), {size / 1e6:,.1f} MB; checking on {args.device} ...", flush=True)
        if model_files(staged) is None:
            print(
                "warning: the tokenizer has no tokenizer.json: the API can't count prompt tokens at submit "
                "(the worker still refuses prompts that don't fit)",
                file=sys.stderr,
            )
        result = check_conversion(src, staged, args.device, dtypes)
        print(
            f"check: float16 logits vs the source's ({result.source_dtype} weights, computed in float32) "
            f"on a fixed {result.positions}-token prompt: relative error {result.relative_error:.3e} "
            f"(tolerance {args.tolerance:g}), max abs {result.max_abs_error:.3e}, "
            f"same next token at {result.top1_agreement:.0%} of positions",
            flush=True,
        )
        if not result.relative_error <= args.tolerance:
            raise PrepareError(
                f"the FP16 logits differ from the source's by {result.relative_error:.3e} (relative), above "
                f"the tolerance {args.tolerance:g}; {out} was left as it was"
            )
        for name in existing_model(out):  # only reached with --force, or with nothing there
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink()
        (staged / WEIGHTS_DIR).rename(out / WEIGHTS_DIR)
        (staged / TOKENIZER_DIR).rename(out / TOKENIZER_DIR)
        return result
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write <out>/fp16 (FP16 safetensors shards) and <out>/tokenizer from a local checkpoint, "
        "then check the result against the source."
    )
    parser.add_argument(
        "src", type=Path, help="the original Hugging Face model folder (config.json, safetensors, tokenizer)"
    )
    parser.add_argument("--out", type=Path, default=Path("model"), help="the model folder to write (default: model)")
    parser.add_argument(
        "--max-shard-size", type=parse_size, default=parse_size("2GB"), help="largest shard (default: 2GB)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest relative error of the logits accepted (default: {DEFAULT_TOLERANCE})",
    )
    parser.add_argument("--device", default="auto", help="where the check runs: auto (a GPU if any), cpu, cuda")
    parser.add_argument("--force", action="store_true", help="replace a model already in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src} is not a folder", file=sys.stderr)
        return 1
    if any(is_inside(args.src, args.out / name) for name in (WEIGHTS_DIR, TOKENIZER_DIR)):
        print(f"error: the source {args.src} is inside {args.out}, which would be replaced", file=sys.stderr)
        return 1
    found = existing_model(args.out)
    if found and not args.force:
        print(
            f"error: {args.out} already holds a model ({', '.join(found)}); pass --force to replace it",
            file=sys.stderr,
        )
        return 1
    try:
        prepare(args)
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"ready: {args.out / WEIGHTS_DIR} and {args.out / TOKENIZER_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
