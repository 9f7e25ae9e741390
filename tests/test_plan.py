"""The memory planner: DeepSpeed's own figures for the model states, every shipped recipe planned, a recipe that
does not fit gets a remedy that works, and bad input names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from open_r1 import plan as planner

REPO = Path(__file__).resolve().parent.parent
GRPO_3B = str(REPO / "data_config/geo_r_3b.yaml")
SHIPPED = sorted(
    [*(REPO / "data_config").glob("*.yaml"), *(REPO / "data_config/grpo_variants").glob("*.yaml"),
     *(REPO / "local_scripts/llamafactory").glob("*.yaml")]
)


def test_parameter_counts_are_the_released_models():
    counts = {size: planner.model_counts(planner.MODEL_CONFIGS / f"qwen2_5_vl_{size}.json") for size in ("3b", "7b")}
    assert counts["3b"].total_params == 3_754_622_976  # tied embeddings counted once
    assert counts["7b"].total_params == 8_292_166_656
    assert counts["3b"].largest_layer_params == 151_936 * 2048  # the embedding
    assert counts["3b"].vision_params == counts["7b"].vision_params - (3584 - 2048) * (5120 + 1)  # merger output


@pytest.mark.parametrize("size, tied", [("3b", True), ("7b", False)])
def test_the_benches_shape_and_token_parameter_model_is_the_plans(size, tied):
    """bench/step_cost.py's FLOPs and bench/grpo_throughput.py's N read the plan's one model of a config: the
    shapes it counts are the config's, and N is what an instantiated model's language layers and head hold."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    import grpo_throughput
    import step_cost

    counts = planner.model_counts(planner.MODEL_CONFIGS / f"qwen2_5_vl_{size}.json", num_layers=2)
    assert step_cost.Shapes is planner.Shapes and isinstance(counts, planner.Shapes)
    assert planner.Shapes.of(size).v_out == counts.hidden and counts.tied is tied
    config = planner.load_model_config(planner.MODEL_CONFIGS / f"qwen2_5_vl_{size}.json", num_layers=2)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    every_token = sum(p.numel() for name, p in model.named_parameters()
                      if ".visual." not in f".{name}" and "embed_tokens" not in name)
    if tied:  # the head is the embedding, and its matmul is paid per token
        every_token += model.get_input_embeddings().weight.numel()
    assert counts.language_params == every_token == grpo_throughput.language_params(model)


@pytest.mark.parametrize("deepspeed", ["zero3.json", "zero3_offload.json", "zero2.json"])
@pytest.mark.parametrize("nproc,nnodes", [(1, 1), (8, 1), (8, 2)])
@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-7B-Instruct"])
def test_model_states_equal_deepspeeds_estimator(deepspeed, nproc, nnodes, model):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    s = planner.load_settings(GRPO_3B, ["--model_name_or_path", model, "--deepspeed", f"local_scripts/{deepspeed}"],
                              nproc=nproc, nnodes=nnodes)
    m = planner.model_counts(s.model_config)
    states = planner.model_state_bytes(s, m)
    if deepspeed.startswith("zero3"):
        offload = deepspeed == "zero3_offload.json"
        _, want, _ = estimate_zero3_model_states_mem_needs(m.total_params, m.largest_layer_params, nproc, nnodes,
                                                           cpu_offload=offload, cpu_offload_params=offload)
    else:
        _, want = estimate_zero2_model_states_mem_needs(m.total_params, nproc, nnodes, cpu_offload=False)
    assert states.deepspeed_estimate == want
    assert states.total == pytest.approx(want, rel=1e-9)
    p = planner.plan(s, remedy=False)
    assert sum(p.row(r) for r in ("parameters", "gradients", "optimizer", "gathered layer")) * planner.GIB \
        == pytest.approx(want, rel=1e-9)


def test_frozen_vision_and_lora_shrink_the_trained_states():
    full = planner.load_settings(GRPO_3B)
    frozen = planner.load_settings(GRPO_3B, ["--freeze_vision_modules", "true"])
    lora = planner.load_settings(GRPO_3B, ["--use_peft", "true", "--lora_r", "64", "--lora_target_modules",
                                           "q_proj", "v_proj", "--deepspeed", "local_scripts/zero2.json"])
    m = planner.model_counts(full.model_config)
    assert planner.trainable_params(frozen, m) == m.total_params - m.vision_params
    # q_proj 2048 -> 2048 and v_proj 2048 -> 256 in each of the 36 decoder layers (the vision tower's attention is qkv)
    assert planner.trainable_params(lora, m) == 36 * 64 * ((2048 + 2048) + (2048 + 256))
    states = [planner.model_state_bytes(s, m) for s in (full, frozen, lora)]
    assert states[0].grads > states[1].grads > states[2].grads
    assert states[1].deepspeed_estimate is None  # DeepSpeed's estimator assumes every parameter trained


def test_lora_count_matches_peft_on_a_real_model():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    from open_r1.tiny_model import tiny_config

    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(tiny_config())
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules=targets))
    trained = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert planner.lora_params(planner.model_counts(Path("tiny")), targets, 8)[0] == trained


def test_prompt_tokens_from_max_pixels_and_views():
    s = planner.load_settings(GRPO_3B)
    m = planner.model_counts(s.model_config)
    assert planner.image_tokens(s, m) == (494, 494 * 4)  # 1024x768 -> 532x728 at max_pixels 401408
    assert planner.prompt_tokens(s, m) == 494 + 2 + 85
    assert planner.prompt_tokens(planner.load_settings(GRPO_3B, views=4), m) == 4 * 496 + 85
    smaller = planner.load_settings(GRPO_3B, ["--max_pixels", "100352"])
    assert planner.image_tokens(smaller, m)[0] < 494 // 3


@pytest.mark.parametrize("template", [None, "{question}"])
def test_prompt_text_constants_are_the_real_tokenizers_count(template):
    assert planner.PROMPT_TEXT_TOKENS[template] == planner._count_text_tokens(template)


def test_checkpointing_flash_attention_and_views_move_the_activations_as_they_should():
    def kept(flags, views=1):
        s = planner.load_settings(GRPO_3B, flags, views=views)
        return planner.activation_bytes(s, planner.model_counts(s.model_config)).kept

    base = kept([])
    assert kept(["--gradient_checkpointing", "false"]) > 10 * base
    assert kept(["--attn_implementation", "flash_attention_2"]) < base  # k, v not repeated, no padding mask
    assert kept([], views=4) > 2.5 * base
    # the language model's share halves with the micro-batch; the vision tower encodes the one distinct prompt's photo
    frozen = ["--freeze_vision_modules", "true"]
    assert kept([*frozen, "--per_device_train_batch_size", "4"]) == pytest.approx(kept(frozen) / 2, rel=0.01)
    assert kept(["--per_device_train_batch_size", "4"]) > kept(frozen) / 2


def test_fused_head_scores_completions_only():
    s = planner.load_settings(GRPO_3B)
    m = planner.model_counts(s.model_config)
    four_views = planner.load_settings(GRPO_3B, views=4)
    assert planner.head_bytes(s, m) == planner.head_bytes(four_views, m)  # the prompt is never projected
    assert planner.head_bytes(s, m, fused=False) > 3 * planner.head_bytes(s, m)
    sft = planner.load_settings(str(REPO / "data_config/sft_3b.yaml"))
    assert planner.head_bytes(planner.load_settings(str(REPO / "data_config/sft_3b.yaml"), views=4), m) > \
        3 * planner.head_bytes(sft, m)


@pytest.mark.parametrize("recipe", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize("nproc", [1, 8])
def test_every_shipped_recipe_is_planned(recipe, nproc):
    p = planner.plan(planner.load_settings(str(recipe), nproc=nproc, gpu_gib=80.0))
    assert p.total_gib > 1.0
    assert p.verdict in ("fits", "tight", "does not fit")
    assert (p.remedy is None) == (p.verdict == "fits")
    assert "verdict:" in planner.format_plan(p)


def test_the_3b_recipe_fits_8_h100s_and_not_one_24_gb_card():
    assert planner.plan(planner.load_settings(GRPO_3B, nproc=8, gpu_gib=79.1)).verdict == "fits"
    assert planner.plan(planner.load_settings(GRPO_3B, nproc=1, gpu_gib=22.0)).verdict == "does not fit"


def _remedy_flags(remedy: str) -> list[str]:
    flags = remedy.split(": ", 1)[1].split(" -> ")[0]
    return flags.split()


def test_a_recipe_edited_to_not_fit_gets_a_remedy_that_works(tmp_path):
    recipe = tmp_path / "too_big.yaml"
    text = (REPO / "data_config/geo_r_3b.yaml").read_text()
    recipe.write_text(text.replace("gradient_checkpointing: true", "gradient_checkpointing: false"))
    p = planner.plan(planner.load_settings(str(recipe), nproc=8, gpu_gib=39.4))
    assert p.verdict == "does not fit"
    assert p.remedy.startswith("vLLM") or p.remedy.startswith("gradient checkpointing")
    fixed = planner.plan(planner.load_settings(str(recipe), _remedy_flags(p.remedy), nproc=8, gpu_gib=39.4))
    assert fixed.verdict == "fits"
    assert fixed.total_gib < p.total_gib


def test_a_vllm_share_too_small_for_the_weights_does_not_fit():
    s = planner.load_settings(GRPO_3B, ["--vllm_gpu_memory_utilization", "0.1"], nproc=8, gpu_gib=39.4)
    p = planner.plan(s)
    assert p.verdict == "does not fit"  # 3.9 GiB cannot hold 7 GiB of weights, though the total is small
    fixed = planner.plan(planner.load_settings(GRPO_3B, _remedy_flags(p.remedy), nproc=8, gpu_gib=39.4))
    assert fixed.verdict == "fits"


def test_unknown_recipe_key_names_the_file_and_key(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text((REPO / "data_config/geo_r_3b.yaml").read_text() + "per_device_batch: 4\n")
    with pytest.raises(ValueError, match=r"typo\.yaml.*per_device_batch"):
        planner.load_settings(str(recipe))
    with pytest.raises(ValueError, match=r"flags.*max_pixel\b"):
        planner.load_settings(GRPO_3B, ["--max_pixel", "3"])


def test_missing_model_config_names_the_field(tmp_path):
    recipe = tmp_path / "other.yaml"
    recipe.write_text("model_name_or_path: someone/SomeModel\nper_device_train_batch_size: 1\n")
    with pytest.raises(ValueError, match=r"other\.yaml.*model_name_or_path 'someone/SomeModel'.*--model_config"):
        planner.load_settings(str(recipe))
    with pytest.raises(ValueError, match="no such recipe"):
        planner.load_settings(str(tmp_path / "absent.yaml"))


def test_command_line_prints_the_plan(capsys):
    assert planner.main(["--config", GRPO_3B, "--nproc", "8", "--gpu_gib", "80", "--views", "4"]) == 0
    out = capsys.readouterr().out
    for row in ("parameters", "gradients", "optimizer", "activations", "generation", "total", "headroom"):
        assert row in out
    assert "prompt 2069 tokens" in out and "verdict: fits" in out
    assert planner.main(["--config", GRPO_3B, "--no_such_key", "1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_dry_run_reaches_the_no_gpu_exit():
    """bench/gpu_check.sh on a machine without a GPU: the plan, one GRPO step of a 2-layer 3B-width model on the
    CPU through the same code as on a GPU, then the no-GPU exit (about a minute on 2 cores)."""
    import subprocess

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bench/gpu_check.sh would run the real check")
    out = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh")], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "verdict: fits" in out.stdout
    step = next(line for line in out.stdout.splitlines() if "s/step = generation" in line)
    assert "2 layers" in step and "planned" in step
    assert "no GPU: nothing appended" in out.stdout
