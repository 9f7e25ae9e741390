"""Every recipe in the repo is parsed the way its program parses it, so a misspelt key or a bad value in a GPU recipe
fails here, on a CPU, instead of on the cluster: data_config/*.yaml with `TrlParser` and the entry's dataclasses,
local_scripts/llamafactory/*.yaml with LLaMA-Factory's own parser in .venv-sft (the `llamafactory` mark), and
local_scripts/*.json with DeepSpeed's config classes after transformers fills the "auto" values. GPU recipes'
`bf16: true` is parsed as on a GPU machine; each kind also has a test that a misspelt key fails.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import yaml
from trl import GRPOConfig, ModelConfig, SFTConfig, TrlParser

from conftest import REPO
from open_r1.configs import GRPOScriptArguments, SFTScriptArguments

RECIPE_DIRS = ("data_config", "local_scripts")
SFT_VENV_PYTHON = REPO / ".venv-sft" / "bin" / "python"


def recipes(suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for d in RECIPE_DIRS for p in (REPO / d).rglob("*") if p.suffix in suffixes)


def kind(path: Path) -> str:
    relative = path.relative_to(REPO)
    if relative.parts[0] == "data_config":
        return "sft" if path.name.startswith("sft") else "grpo"
    if relative.parts[:2] == ("local_scripts", "llamafactory"):
        return "llamafactory"
    if relative.parts[0] == "local_scripts" and path.suffix == ".json":
        return "deepspeed"
    return "unknown"


def test_every_recipe_file_has_a_check():
    files = recipes((".yaml", ".yml", ".json"))
    assert files and {p.relative_to(REPO).as_posix(): kind(p) for p in files if kind(p) == "unknown"} == {}


# --- geo-r's own recipes ---------------------------------------------------------------------------------------


def parse_recipe(path: Path, recipe_kind: str):
    types = (GRPOScriptArguments, GRPOConfig, ModelConfig) if recipe_kind == "grpo" else (
        SFTScriptArguments, SFTConfig, ModelConfig)
    with mock.patch("transformers.training_args.is_torch_bf16_gpu_available", lambda: True):
        return TrlParser(types).parse_args_and_config(args=["--config", str(path)])


@pytest.mark.parametrize("path", [p for p in recipes((".yaml", ".yml")) if kind(p) in ("grpo", "sft")],
                         ids=lambda p: p.name)
def test_geo_r_recipe_parses(path):
    script_args, training_args, model_args = parse_recipe(path, kind(path))
    assert model_args.model_name_or_path  # every recipe names the model it was written for
    written = yaml.safe_load(path.read_text())
    parsed = {**vars(script_args), **vars(model_args), **training_args.to_dict()}
    assert set(written) <= set(parsed)


@pytest.mark.parametrize("recipe_kind", ["grpo", "sft"])
def test_a_misspelt_key_in_a_geo_r_recipe_fails(tmp_path, recipe_kind):
    source = REPO / "data_config" / ("demo.yaml" if recipe_kind == "grpo" else "sft_demo.yaml")
    config = yaml.safe_load(source.read_text())
    config["lerning_rate"] = config.pop("learning_rate")
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(config))
    parse_recipe(source, recipe_kind)  # the original parses
    with pytest.raises(ValueError, match="lerning_rate"):
        parse_recipe(typo, recipe_kind)


# --- LLaMA-Factory -----------------------------------------------------------------------------------------------

# Runs in .venv-sft: parse each YAML with LLaMA-Factory's HfArgumentParser over its train dataclasses (unknown keys
# refused); print {path: error} for those that fail.
LLAMAFACTORY_PARSE = """
import json, sys
from unittest import mock
import yaml
from llamafactory.hparams import parser as lf

failures = {}
for path in sys.argv[1:]:
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
        with mock.patch("transformers.training_args.is_torch_bf16_gpu_available", lambda: True):
            lf.HfArgumentParser(lf._TRAIN_ARGS).parse_dict(config, allow_extra_keys=False)
    except BaseException as err:
        failures[path] = f"{type(err).__name__}: {err}"
print("RESULT " + json.dumps(failures))
"""


def llamafactory_parse(paths: list[Path]) -> dict[str, str]:
    if not SFT_VENV_PYTHON.is_file():
        pytest.fail(f"{SFT_VENV_PYTHON} is missing: install LLaMA-Factory's environment with `bash setup.sh --sft`, "
                    "or deselect with -m 'not llamafactory'", pytrace=False)
    result = subprocess.run([str(SFT_VENV_PYTHON), "-c", LLAMAFACTORY_PARSE, *map(str, paths)], cwd=REPO,
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, (result.stdout + result.stderr)[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.llamafactory
def test_llamafactory_recipes_parse_and_a_misspelt_key_fails(tmp_path):
    """One run of .venv-sft's Python for all of them (importing LLaMA-Factory takes a while)."""
    files = [p for p in recipes((".yaml", ".yml")) if kind(p) == "llamafactory"]
    assert files
    config = yaml.safe_load((REPO / "local_scripts/llamafactory/tiny_cpu_sft.yaml").read_text())
    config["cutof_len"] = config.pop("cutoff_len")
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(config))
    failures = llamafactory_parse([*files, typo])
    assert list(failures) == [str(typo)], failures
    assert "cutof_len" in failures[str(typo)]


def test_llamafactory_recipes_need_no_remote_code_and_fit_four_views():
    for path in [p for p in recipes((".yaml", ".yml")) if kind(p) == "llamafactory"]:
        config = yaml.safe_load(path.read_text())
        assert "trust_remote_code" not in config, path.name
        assert 1800 <= config.get("ddp_timeout", 1800) <= 7200, path.name
        per_image = config["image_max_pixels"] // (28 * 28)  # 14x14 patches, merged 2x2 into one token
        # four views, the system turn and prompt (95 tokens with the Qwen2 tokenizer), a 512-token target
        assert config["cutoff_len"] >= 4 * (per_image + 2) + 95 + 512, path.name


# --- DeepSpeed ---------------------------------------------------------------------------------------------------


def deepspeed_keys() -> set[str]:
    """Every key name DeepSpeed defines: the string values of the upper-case constants of its config modules."""
    import deepspeed

    keys = set()
    for path in Path(deepspeed.__file__).parent.rglob("*.py"):
        if "constants" not in path.name and path.name != "config.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                    and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets)):
                keys.add(node.value.value)
    return keys


def check_deepspeed(config: dict) -> None:
    """Raise on a key DeepSpeed does not know or a value it refuses, as the Trainer would hand it the config."""
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers import TrainingArguments
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    unknown = sorted(set(config) - deepspeed_keys())
    if unknown:
        raise ValueError(f"keys DeepSpeed does not know (it would ignore them): {unknown}")
    filled = HfTrainerDeepSpeedConfig(json.loads(json.dumps(config)))
    filled.trainer_config_process(TrainingArguments(output_dir="unused", use_cpu=True, report_to=[]))
    model = SimpleNamespace(config=SimpleNamespace(hidden_size=2048, to_dict=dict))  # sizes the "auto" buckets
    filled.trainer_config_finalize(TrainingArguments(output_dir="unused", use_cpu=True, report_to=[]), model, 100)
    DeepSpeedConfig(filled.config)


@pytest.mark.parametrize("path", [p for p in recipes((".json",)) if kind(p) == "deepspeed"], ids=lambda p: p.name)
def test_deepspeed_config_is_valid(path):
    check_deepspeed(json.loads(path.read_text()))


@pytest.mark.parametrize(("section", "typo"), [(None, "zero_optimisation"), ("zero_optimization", "overlap_com")])
def test_a_misspelt_key_in_a_deepspeed_config_fails(section, typo):
    config = json.loads((REPO / "local_scripts" / "zero3.json").read_text())
    target = config if section is None else config[section]
    correct = "zero_optimization" if section is None else "overlap_comm"
    target[typo] = target.pop(correct)
    with pytest.raises(Exception, match=typo):
        check_deepspeed(config)
