"""Rehearse every GPU recipe on a CPU at the real model widths: the same launchers and recipe files a user runs,
on shallow Qwen2.5-VL-3B and -7B models (`python -m open_r1.tiny_model --shapes`), changing only what needs CUDA
and what makes a step short. Per stage it prints wall time, peak resident memory per rank, prompt and completion
tokens per step and every change from the recipe, and appends the row to bench/results/rehearsal.jsonl.

    .venv/bin/python bench/rehearse.py                          # every stage: about 45 minutes on 2 cores, 24 GB
                                                                # of memory and 25 GB of disk
    .venv/bin/python bench/rehearse.py --stages sft-3b grpo-3b  # some stages (later ones reuse earlier outputs)
    .venv/bin/python bench/rehearse.py --table_only --markdown  # the recorded table
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from open_r1.data.rehearsal import write_rehearsal_set
from open_r1.modeling.checkpoints import checkpoint_problem
from open_r1.training.peak_memory import PeakMemory, run_measured

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "rehearsal.jsonl"
PY = sys.executable
GPU_ONLY = {  # recipe settings a CPU cannot run, and what the rehearsal does instead
    "use_vllm / vllm_mode colocate": "vLLM runs on CUDA only: --use_vllm false (transformers generation)",
    "bf16 (mixed precision)": "the CPU launchers pass --bf16 false; weights stay bf16 as the recipe's dtype says",
    "local_scripts/zero3.json, zero2.json": "overlap_comm needs CUDA streams: DS_CONFIG=local_scripts/zero3_cpu.json "
                                            "/ zero2_cpu.json (same stage, no overlap)",
    "--load_in_4bit / --load_in_8bit (QLoRA)": "bitsandbytes k-bit weights need CUDA: stops with its clear message",
    "attn_implementation flash_attention_2": "flash-attn is CUDA only: sdpa, the recipes' default",
    "use_liger_kernel": "Liger's Triton kernels need a GPU: off, the recipes' default",
}
# a step short enough for a CPU: one prompt a rank, 2 completions, 16 tokens; with the rows in order, rank 0 takes a
# 1-photo row and rank 1 a 4-view row at every step (two prompts a rank would not fit 24 GB beside each other)
SHORT_GRPO = ["--use_vllm", "false", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1",
              "--num_generations", "2", "--max_completion_length", "16", "--shuffle_dataset", "false"]
SHORT_SFT = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1"]
LF_SHORT = ("max_steps=2 save_steps=2 per_device_train_batch_size=1 gradient_accumulation_steps=1 bf16=false "
            "use_cpu=true preprocessing_num_workers=1 dataloader_num_workers=0 logging_steps=1")


@dataclass
class Rehearsal:
    out: Path
    phases: bool = False
    results: Path | None = None  # each row is appended as its stage ends, so a stopped rehearsal keeps its figures
    rows: list[dict] = field(default_factory=list)

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def model_3b(self) -> Path:
        return self.path("models", "qwen2.5-vl-3b-2l2v")

    @property
    def model_7b(self) -> Path:
        return self.path("models", "qwen2.5-vl-7b-2l2v")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "REPORT_TO": "none", "WANDB_MODE": "disabled", "NPROC_PER_NODE": "2",
            "MALLOC_MMAP_THRESHOLD_": "131072",  # large frees back to the kernel (docs/rehearsal.md)
            "DS_CONFIG": str(REPO / "local_scripts/zero3_cpu.json"),
            "DATA_PATHS": str(self.path("data", "train.jsonl")), "IMAGE_FOLDERS": str(self.path("data", "images")),
            **extra,
        }


def tokens_per_step(output_dir: Path, completions_per_step: int) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of the last logged GRPO step, from TRL's `num_tokens` and mean length."""
    metrics = output_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None, None
    steps = [json.loads(line) for line in metrics.read_text().splitlines() if '"num_tokens"' in line]
    if not steps:
        return None, None
    last, before = steps[-1], (steps[-2]["num_tokens"] if len(steps) > 1 else 0)
    completion = round(last.get("completions/mean_length", 0) * completions_per_step)
    return round(last["num_tokens"] - before - completion), completion


def overrides(log: Path, since: int) -> list[str]:
    text = log.read_text(errors="replace")[since:] if log.is_file() else ""
    return sorted(set(re.findall(r"\[geo-r\] (--?\S+ overrides [^\n]*?)\s+\(", text)))


def stage(r: Rehearsal, name: str, what: str, cmd: list[str], env: dict, changes: list[str], *,
          output_dir: Path | None = None, completions_per_step: int = 4, expect_rc: int = 0,
          on_poll: Callable[[PeakMemory], None] | None = None, check: Callable[[], str] | None = None,
          prune: tuple[Path, ...] | None = None) -> dict:
    """Run one stage and record its row. Afterwards the checkpoints under `prune` (default: `output_dir`) are
    deleted: at 3B widths each holds 7-10 GB of optimizer states, and every stage keeps its final model."""
    log = r.path("logs", f"{name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    since = log.stat().st_size if log.exists() else 0
    print(f"[rehearse] {name}: {what}", flush=True)
    if r.phases:  # bench/memory_phases/sitecustomize.py writes each rank's per-phase memory next to the log
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "bench" / "memory_phases"),
                                                                    os.environ.get("PYTHONPATH")])),
               "GEO_R_MEMORY_PHASES": str(log.with_suffix(".phases"))}
    rc, seconds, peak = run_measured(cmd, env=env, log=log, on_poll=on_poll)
    prompt, completion = tokens_per_step(output_dir, completions_per_step) if output_dir else (None, None)
    ok = rc == expect_rc
    verdict = check() if ok and check else ("" if ok else f"exit {rc}, expected {expect_rc}: see {log}")
    row = {
        "stage": name, "what": what, "command": " ".join(cmd[1:] if cmd[0] == "bash" else cmd[2:]),
        "wall_s": round(seconds), "ok": ok and not verdict.startswith("FAIL"),
        "peak_gb": {k: round(v / 1e9, 2) for k, v in peak.ranks().items()},
        "prompt_tokens_per_step": prompt, "completion_tokens_per_step": completion,
        "changes": changes + overrides(log, since), "result": verdict,
    }
    r.rows.append(row)
    record(r, row)
    for folder in prune if prune is not None else ((output_dir,) if output_dir else ()):
        for checkpoint in Path(folder).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    print(f"[rehearse] {name}: {row['command']}", flush=True)
    print(f"[rehearse] {name}: {'ok' if row['ok'] else 'FAILED'} in {row['wall_s']} s, peak RSS per rank "
          f"{row['peak_gb']} GB, tokens/step prompt {prompt} completion {completion}  {verdict}", flush=True)
    for change in row["changes"]:
        print(f"[rehearse]     changed: {change}", flush=True)
    return row


def record(r: Rehearsal, row: dict) -> None:
    if r.results is not None:
        r.results.parent.mkdir(parents=True, exist_ok=True)
        with open(r.results, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**row, "load": round(os.getloadavg()[0], 1), "date": time.strftime("%Y-%m-%d")})
                         + "\n")


def bash(script: str, *flags: str) -> list[str]:
    return ["bash", str(REPO / "run_scripts" / script), *flags]


def finished(output_dir: Path, steps: int) -> Callable[[], str]:
    """A check that the run saved its final model (a LoRA run: its adapter) at step `steps`."""
    def check() -> str:
        done = output_dir / "run_finished.json"
        weights = [name for name in ("model.safetensors", "adapter_model.safetensors") if (output_dir / name).is_file()]
        if not done.is_file() or not weights:
            return f"FAIL: no final model and run_finished.json in {output_dir}"
        step = json.loads(done.read_text())["global_step"]
        saved = "final adapter" if weights == ["adapter_model.safetensors"] else "final model"
        return f"{saved} at step {step}" if step == steps else f"FAIL: finished at step {step}, not {steps}"
    return check


# ---- the stages -------------------------------------------------------------------------------------------------

def build_models(r: Rehearsal) -> None:
    for shapes, out in (("3b", r.model_3b), ("7b", r.model_7b)):
        stage(r, f"build-{shapes}", f"{shapes.upper()}-width Qwen2.5-VL, 2 text layers, 2 vision blocks, real vocabulary",
              [PY, "-m", "open_r1.tiny_model", "--shapes", shapes, "--num_layers", "2", "--vision_depth", "2",
               "--out", str(out), "--overwrite"], {}, [])
    demo = REPO / "data" / "demo"
    write_rehearsal_set(r.path("data"), demo / "train.jsonl", demo / "images", single=2, views=2)
    write_rehearsal_set(r.path("data"), demo / "test.jsonl", demo / "images", single=8, views=0, name="eval")


def sft_3b(r: Rehearsal) -> None:
    out = r.path("sft-3b")
    shutil.rmtree(out, ignore_errors=True)
    stage(r, "sft-3b", "native SFT warm start, sft_3b.yaml, ZeRO-3, 2 processes, 2 steps",
          bash("run_sft.sh", *SHORT_SFT, "--max_steps", "2", "--save_steps", "2"),
          r.env(MODEL=str(r.model_3b), CONFIG="data_config/sft_3b.yaml", OUTPUT_DIR=str(out)),
          ["DS_CONFIG=zero3_cpu.json"], check=lambda: "" if (out / "model.safetensors").is_file() else "FAIL: no model",
          prune=(out,))


def grpo_3b(r: Rehearsal) -> None:
    """GRPO from the warm start: a checkpoint at step 2, rank 1 killed with SIGKILL after it, resumed to step 3."""
    out = r.path("grpo-3b")
    shutil.rmtree(out, ignore_errors=True)  # a finished run would be left alone
    start = r.path("sft-3b") if (r.path("sft-3b") / "model.safetensors").is_file() else r.model_3b
    env = r.env(MODEL=str(start), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out))
    cmd = bash("run_grpo_rec.sh", *SHORT_GRPO, "--max_steps", "3", "--save_steps", "2")
    killed: list[float] = []

    def kill_after_checkpoint(peak: PeakMemory) -> None:
        ckpt = out / "checkpoint-2"
        if killed or not ckpt.is_dir() or checkpoint_problem(ckpt) is not None:
            return
        if not killed and (pid := peak.pid_of("rank1")) is not None:
            time.sleep(3)  # the other rank's files are closed at the save's last barrier
            os.kill(pid, signal.SIGKILL)
            killed.append(time.monotonic())

    stage(r, "grpo-3b", "GRPO geo_r_3b.yaml, ZeRO-3, 2 processes, 1024x768 photos and 4-view rows mixed; "
          "checkpoint at step 2, then kill -9 of rank 1", cmd, env, ["DS_CONFIG=zero3_cpu.json"], output_dir=out,
          expect_rc=1, on_poll=kill_after_checkpoint, prune=(),
          check=lambda: "rank 1 killed after checkpoint-2" if killed else "FAIL: the kill never happened")
    stage(r, "resume-3b", "the same command again: resume from checkpoint-2 to step 3, final save", cmd, env,
          ["DS_CONFIG=zero3_cpu.json"], output_dir=out, check=finished(out, 3))


def eval_3b(r: Rehearsal) -> None:
    model = r.path("grpo-3b")
    stage(r, "reload-3b", "the saved folder reloads with AutoModelForImageTextToText",
          [PY, "-c", "import sys; from transformers import AutoModelForImageTextToText as A; "
           "m = A.from_pretrained(sys.argv[1]); print(type(m).__name__, sum(p.numel() for p in m.parameters()))",
           str(model)], {}, [])
    stage(r, "eval-3b", "open_r1.eval_geo on 8 held-out photos",
          [PY, "-m", "open_r1.eval_geo", "--model_name_or_path", str(model), "--data_file_paths",
           str(r.path("data", "eval.jsonl")), "--image_folders", str(r.path("data", "images")), "--output_dir",
           str(r.path("eval-3b")), "--overwrite", "--no_plots", "--max_new_tokens", "16", "--batch_size", "8"],
          {}, ["--max_new_tokens 16"],
          check=lambda: "" if (r.path("eval-3b") / "metrics.json").is_file() else "FAIL: no metrics.json")
    photo = next(r.path("data", "images").rglob("*test-0.jpg"))
    stage(r, "predict-3b", "open_r1.predict on one photo",
          [PY, "-m", "open_r1.predict", "--model_name_or_path", str(model), "--images", str(photo),
           "--max_new_tokens", "16"], {}, ["--max_new_tokens 16"])


def lora_3b(r: Rehearsal) -> None:
    out = r.path("lora-3b")
    shutil.rmtree(out, ignore_errors=True)  # a finished run would be left alone
    stage(r, "lora-3b", "run_grpo_rec_lora.sh (LoRA r=64 on every projection), ZeRO-2, 1 step",
          bash("run_grpo_rec_lora.sh", *SHORT_GRPO, "--max_steps", "1", "--save_steps", "1"),
          r.env(MODEL=str(r.model_3b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out),
                DS_CONFIG=str(REPO / "local_scripts/zero2_cpu.json")),
          ["DS_CONFIG=zero2_cpu.json"], output_dir=out, check=finished(out, 1))


def frozen_vision_3b(r: Rehearsal) -> None:
    out = r.path("frozen-vision-3b")
    shutil.rmtree(out, ignore_errors=True)
    stage(r, "frozen-vision-3b", "GRPO with --freeze_vision_modules true, ZeRO-3, 1 step",
          bash("run_grpo_rec.sh", *SHORT_GRPO, "--max_steps", "1", "--save_steps", "1", "--freeze_vision_modules", "true"),
          r.env(MODEL=str(r.model_3b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out)),
          ["DS_CONFIG=zero3_cpu.json"], output_dir=out, check=finished(out, 1))


def llamafactory_3b(r: Rehearsal) -> None:
    out = r.path("grpo-from-llamafactory")
    for folder in (out, r.path("llamafactory-sft")):
        shutil.rmtree(folder, ignore_errors=True)
    stage(r, "llamafactory-3b", "WARM_START=llamafactory: qwen2_5_vl_full_sft.yaml (template qwen2_vl) in .venv-sft, "
          "2 steps, ZeRO-3, 2 processes; then GRPO 1 step from its output",
          bash("run_grpo_rec.sh", *SHORT_GRPO, "--max_steps", "1", "--save_steps", "1"),
          r.env(MODEL=str(r.model_3b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out),
                WARM_START="llamafactory", WARM_START_DIR=str(r.path("llamafactory-sft")),
                SFT_CONFIG="local_scripts/llamafactory/qwen2_5_vl_full_sft.yaml", SFT_FLAGS=LF_SHORT),
          ["DS_CONFIG=zero3_cpu.json (also for LLaMA-Factory)", f"SFT_FLAGS={LF_SHORT}"], output_dir=out,
          check=finished(out, 1), prune=(out, r.path("llamafactory-sft")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes_3b(r: Rehearsal) -> None:
    """Two launchers with NNODES=2 on one machine, one process each, through a real rendezvous; each node has its
    own output folder, and only node 0 may write the final model."""
    port = str(free_port())
    outs = [r.path(f"two-nodes-3b-node{n}") for n in (0, 1)]
    for folder in outs:
        shutil.rmtree(folder, ignore_errors=True)

    def node_1_wrote_nothing() -> str:
        wrote = [p.name for p in outs[1].glob("*.safetensors")] + [p.name for p in outs[1].glob("run_finished.json")]
        return f"FAIL: node 1 wrote {wrote}" if wrote else "node 1 wrote no final model"

    def node(n: int) -> None:
        env = r.env(MODEL=str(r.model_3b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(outs[n]), NNODES="2",
                    NODE_RANK=str(n), MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NPROC_PER_NODE="1")
        stage(r, f"two-nodes-3b-node{n}", f"node {n} of 2 (NNODES=2, NODE_RANK={n}, one process), 1 step",
              bash("run_grpo_rec.sh", *SHORT_GRPO, "--max_steps", "1", "--save_steps", "1"), env,
              ["DS_CONFIG=zero3_cpu.json", "NPROC_PER_NODE=1", "MASTER_ADDR=127.0.0.1"], output_dir=outs[n],
              check=finished(outs[0], 1) if n == 0 else node_1_wrote_nothing)

    threads = [threading.Thread(target=node, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
        time.sleep(2)
    for t in threads:
        t.join()


def lora_7b(r: Rehearsal) -> None:
    out = r.path("lora-7b")
    shutil.rmtree(out, ignore_errors=True)
    stage(r, "lora-7b", "7B widths (untied embeddings, 3,584 wide): run_grpo_rec_lora.sh, frozen base, ZeRO-2, "
          "2 processes, 1 step",
          bash("run_grpo_rec_lora.sh", *SHORT_GRPO, "--max_steps", "1", "--save_steps", "1"),
          r.env(MODEL=str(r.model_7b), CONFIG="data_config/geo_r_3b.yaml", OUTPUT_DIR=str(out),
                DS_CONFIG=str(REPO / "local_scripts/zero2_cpu.json")),
          ["DS_CONFIG=zero2_cpu.json"], output_dir=out, check=finished(out, 1))


STAGES: dict[str, Callable[[Rehearsal], None]] = {
    "build": build_models, "sft-3b": sft_3b, "grpo-3b": grpo_3b, "eval-3b": eval_3b, "lora-3b": lora_3b,
    "frozen-vision-3b": frozen_vision_3b,
    "llamafactory-3b": llamafactory_3b, "two-nodes-3b": two_nodes_3b, "lora-7b": lora_7b,
}


def table(rows: list[dict], markdown: bool) -> str:
    head = ["stage", "wall", "peak RSS per rank (GB)", "prompt tok/step", "completion tok/step", "result"]
    lines = []
    for row in rows:
        peaks = " / ".join(f"{v:.1f}" for v in row["peak_gb"].values()) or "-"
        cells = [row["stage"], f"{row['wall_s']} s", peaks, str(row["prompt_tokens_per_step"] or "-"),
                 str(row["completion_tokens_per_step"] or "-"), ("" if row["ok"] else "FAILED ") + row["result"]]
        lines.append(cells)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(c) + " |" for c in lines])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) for cells in [head, *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "output" / "rehearsal")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table_only", action="store_true", help="print the recorded table and run nothing")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--phases", action="store_true",
                        help="also write each rank's memory per training phase to logs/<stage>.phases.rankN")
    args = parser.parse_args()
    if args.table_only:
        rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        latest = {row["stage"]: row for row in rows}
        order = ["build-3b", "build-7b", "sft-3b", "grpo-3b", "resume-3b", "reload-3b", "eval-3b", "predict-3b",
                 "lora-3b", "frozen-vision-3b", "llamafactory-3b", "two-nodes-3b-node0", "two-nodes-3b-node1", "lora-7b"]
        ranked = sorted(latest.values(), key=lambda row: order.index(row["stage"]) if row["stage"] in order else 99)
        print(table(ranked, args.markdown))
        return
    r = Rehearsal(args.out, args.phases, args.results)
    r.out.mkdir(parents=True, exist_ok=True)
    if "build" not in args.stages and not (r.model_3b / "config.json").is_file():
        args.stages.insert(0, "build")
    for name in args.stages:
        STAGES[name](r)
    print(table(r.rows, args.markdown))
    print("\nSettings a CPU cannot run, and what the rehearsal does instead:")
    for setting, instead in GPU_ONLY.items():
        print(f"  {setting}: {instead}")
    if not all(row["ok"] for row in r.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
