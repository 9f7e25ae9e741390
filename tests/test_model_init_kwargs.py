"""What reaches `from_pretrained`: QLoRA's bitsandbytes config from `--load_in_4bit` / `--load_in_8bit` (built by
TRL's `get_quantization_config`), the run's `--model_init_kwargs`, and a loud stop where k-bit loading cannot work.

On a CPU nothing is quantized for real: `from_pretrained` is replaced by a recorder, and the CUDA check is faked
where a test says so.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForImageTextToText, BitsAndBytesConfig
from trl import GRPOConfig, ModelConfig, TrlParser

from open_r1.configs import GRPOScriptArguments
from open_r1.modeling import loading


@pytest.fixture
def recorded(monkeypatch):
    """from_pretrained's keyword arguments, recorded instead of loading."""
    calls: list[dict] = []

    def fake_from_pretrained(path, **kwargs):
        calls.append(kwargs)
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", fake_from_pretrained)
    return calls


@pytest.fixture
def fake_gpu(monkeypatch):
    """A machine where CUDA is visible and bitsandbytes is installed, as far as the loader can tell."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "bitsandbytes" else find_spec(name, *a))


def parse(*flags: str):
    return TrlParser((GRPOScriptArguments, GRPOConfig, ModelConfig)).parse_args_and_config(
        args=["--output_dir", "out", "--use_cpu", "true", "--bf16", "false", *flags]
    )


def test_load_in_4bit_reaches_from_pretrained_as_a_bitsandbytes_config(tiny_model_dir, recorded, fake_gpu):
    _, training_args, model_args = parse("--model_name_or_path", str(tiny_model_dir), "--use_peft", "true",
                                         "--load_in_4bit", "true", "--dtype", "bfloat16",
                                         "--use_bnb_nested_quant", "true")
    loading.load_model(model_args, training_args)
    (kwargs,) = recorded
    quant = kwargs["quantization_config"]
    assert isinstance(quant, BitsAndBytesConfig) and quant.load_in_4bit and not quant.load_in_8bit
    assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert quant.bnb_4bit_compute_dtype == torch.bfloat16
    assert kwargs["dtype"] == torch.bfloat16
    assert kwargs["device_map"] == {"": 0}  # the whole k-bit model on this process's GPU


def test_load_in_8bit_reaches_from_pretrained(tiny_model_dir, recorded, fake_gpu):
    loading.load_model(ModelConfig(model_name_or_path=str(tiny_model_dir), load_in_8bit=True))
    assert recorded[0]["quantization_config"].load_in_8bit


def test_model_init_kwargs_reach_from_pretrained(tiny_model_dir, recorded):
    _, training_args, model_args = parse("--model_name_or_path", str(tiny_model_dir),
                                         "--model_init_kwargs", '{"attn_implementation": "eager", "low_cpu_mem_usage": true}')
    loading.load_model(model_args, training_args)
    (kwargs,) = recorded
    assert kwargs["attn_implementation"] == "eager" and kwargs["low_cpu_mem_usage"] is True
    assert "quantization_config" not in kwargs


def test_quantization_set_twice_is_refused(tiny_model_dir, recorded):
    model_args = ModelConfig(model_name_or_path=str(tiny_model_dir), load_in_4bit=True)
    with pytest.raises(ValueError, match="quantization set twice"):
        loading.model_init_kwargs(model_args, extra={"quantization_config": {"load_in_8bit": True}})


def test_k_bit_loading_on_a_cpu_says_it_needs_a_cuda_gpu(tiny_model_dir, recorded, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
        loading.load_model(ModelConfig(model_name_or_path=str(tiny_model_dir), load_in_4bit=True, use_peft=True))
    assert recorded == []  # refused before anything was loaded


def test_k_bit_without_bitsandbytes_says_how_to_install_it(tiny_model_dir, recorded, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "bitsandbytes" else find_spec(name, *a))
    with pytest.raises(ImportError, match="setup.sh --gpu"):
        loading.load_model(ModelConfig(model_name_or_path=str(tiny_model_dir), load_in_4bit=True))


def test_training_a_k_bit_model_needs_lora(tiny_model_dir):
    script_args, training_args, model_args = parse("--model_name_or_path", str(tiny_model_dir), "--load_in_4bit", "true")
    with pytest.raises(ValueError, match="--use_peft true"):
        loading.load_model_and_processor(model_args, training_args, script_args)
