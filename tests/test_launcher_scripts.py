"""The launchers' shell logic, run for real with stand-ins for what they start (torchrun, llamafactory-cli, srun,
scontrol), so no training runs: which settings resolve_run picks, what reaches the programs (arguments with spaces
intact), the recipe keys a flag overrides, one export per multi-node run, the log kept across restarts, and the
Slurm script's submission from anywhere and its requeue on USR1. tests/test_launcher.py and
tests/test_llamafactory_train.py run the same launchers end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO

# a stand-in program: appends {"argv": [...], "env": {...}} to $RECORD (one JSON object a line)
RECORDER = """#!{python}
import json, os, signal, sys
keep = ("NODE_RANK", "NNODES", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE", "RUN_NAME", "PYTHONWARNINGS",
        "SLURM_NODEID", "REPO_HOME", "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")
with open(os.environ["RECORD"], "a") as handle:
    handle.write(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": sys.argv[1:],
                             "env": {{k: os.environ[k] for k in keep if k in os.environ}},
                             "usr1_ignored": signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN}}) + "\\n")
print("[fake]", os.path.basename(sys.argv[0]), "ran")
{extra}
"""


def tool(folder: Path, name: str, extra: str = "") -> Path:
    path = folder / name
    path.write_text(RECORDER.format(python=sys.executable, extra=extra))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def records(path: Path, prog: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [r for r in rows if prog is None or r["prog"] == prog]


@pytest.fixture
def fakes(tmp_path):
    """A PYTHON whose folder holds a stand-in torchrun (common.sh puts that folder first on PATH), and a fake
    LLaMA-Factory environment (llamafactory-cli, torchrun, python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / "python"
    python.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    tool(bin_dir, "torchrun")
    sft_bin = tmp_path / "venv-sft" / "bin"
    sft_bin.mkdir(parents=True)
    # a LoRA run leaves an adapter in output_dir (FAKE_ADAPTER=1)
    adapter = """
out = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("output_dir=")), None)
if out and os.environ.get("FAKE_ADAPTER"):
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "adapter_config.json"), "w").write("{}")
"""
    tool(sft_bin, "llamafactory-cli", adapter)
    tool(sft_bin, "torchrun", adapter)
    (sft_bin / "python").write_text('#!/usr/bin/env bash\necho /fake/site-packages/llamafactory\n')
    (sft_bin / "python").chmod(0o755)
    record = tmp_path / "record.jsonl"
    env = dict(os.environ, PYTHON=str(python), SFT_VENV=str(tmp_path / "venv-sft"), RECORD=str(record),
               CUDA_VISIBLE_DEVICES="")
    for name in ("MODEL", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE", "RUN_NAME",
                 "CONFIG", "DATA_PATHS", "IMAGE_FOLDERS", "DS_CONFIG", "REPORT_TO", "FINETUNING", "PYTHONWARNINGS",
                 "MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(name, None)
    return env, record


def run(script: str, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", f"run_scripts/{script}", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    if check:
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


def test_grpo_launcher_reports_overridden_recipe_keys_and_appends_its_log(tmp_path, fakes):
    env, record = fakes
    out = tmp_path / "run out"
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(out))
    result = run("run_grpo_rec.sh", env, "--learning_rate", "1e-3", "--question_template", "Where? {question}")
    log = result.stdout
    assert "no GPU: training" in log
    recipe_lr = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())["learning_rate"]
    assert f"[geo-r] --learning_rate overrides learning_rate: {recipe_lr} -> 1e-3" in log
    assert f"[geo-r] --output_dir overrides output_dir: output/demo-grpo -> {out}" in log
    assert "overrides model_name_or_path" not in log  # the same folder, spelt absolute
    (call,) = records(record, "torchrun")
    argv = call["argv"]
    assert argv[argv.index("--config") + 1] == str(REPO / "data_config" / "demo.yaml")
    assert argv[argv.index("--question_template") + 1] == "Where? {question}"
    assert argv[argv.index("--output_dir") + 1] == str(out)
    filters = [f.split(":") for f in call["env"]["PYTHONWARNINGS"].split(",")]
    assert all(f[0] == "ignore" and f[1] for f in filters), filters  # named messages only, no blanket filter
    run("run_grpo_rec.sh", env, "--max_steps", "7")
    train_log = (out / "train.log").read_text()
    assert train_log.count("rendezvous 127.0.0.1") == 2, train_log  # the second launch appended to the first's
    assert "--learning_rate overrides learning_rate" in train_log and "--max_steps overrides max_steps" in train_log


def test_cpu_ranks_share_two_allocator_arenas_and_a_users_allocator_settings_win(tmp_path, fakes):
    """glibc's per-thread arenas kept a 3B-width rank's freed tensors resident: CPU runs use two. A fixed mmap
    threshold frees more but made the tiny model's SFT steps 1.6 times slower, so it is the user's (and the
    real-width rehearsal's) to set, and passes through."""
    env, record = fakes
    env.update(MODEL="m", OUTPUT_DIR=str(tmp_path / "out"))
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    run("run_grpo_rec.sh", env)
    recorded = records(record, "torchrun")[-1]["env"]
    assert recorded["MALLOC_ARENA_MAX"] == "2" and "MALLOC_MMAP_THRESHOLD_" not in recorded
    env.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_ARENA_MAX="4")
    run("run_grpo_rec.sh", env)
    recorded = records(record, "torchrun")[-1]["env"]
    assert (recorded["MALLOC_ARENA_MAX"], recorded["MALLOC_MMAP_THRESHOLD_"]) == ("4", "131072")


def test_multi_node_needs_the_first_node_address_and_uses_a_fixed_port(tmp_path, fakes):
    env, record = fakes
    env.update(MODEL="m", OUTPUT_DIR=str(tmp_path / "out"), NNODES="2", NODE_RANK="1")
    result = run("run_grpo_rec.sh", env, check=False)
    assert result.returncode != 0 and "set MASTER_ADDR" in result.stderr
    env["MASTER_ADDR"] = "10.0.0.1"
    run("run_grpo_rec.sh", env)
    argv = records(record, "torchrun")[-1]["argv"]
    assert {"--nnodes=2", "--node_rank=1", "--master_addr=10.0.0.1", "--master_port=29500"} <= set(argv)


def test_llamafactory_launcher_with_a_model_on_a_cpu_runs_the_cpu_recipe(tmp_path, fakes):
    env, record = fakes
    out = tmp_path / "sft out"
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(out))
    result = run("run_sft_llamafactory.sh", env, "learning_rate=1e-3", "max_steps=2")
    assert "no GPU: training" in result.stdout
    assert "[geo-r] learning_rate= overrides learning_rate: 0.002 -> 1e-3" in result.stdout
    (call,) = records(record, "llamafactory-cli")
    assert call["argv"][:2] == ["train", str(REPO / "local_scripts" / "llamafactory" / "tiny_cpu_sft.yaml")]
    assert f"output_dir={out}" in call["argv"] and "finetuning_type=full" in call["argv"]
    assert (out / "data" / "geo_r_sft.jsonl").is_file() and (out / "data" / "dataset_info.json").is_file()
    assert not records(record, "torchrun")  # one CPU process: no torchrun
    run("run_sft_llamafactory.sh", env, "max_steps=2")
    assert (out / "train.log").read_text().count("[fake] llamafactory-cli ran") == 2  # appended, not overwritten


@pytest.mark.parametrize("node_rank", ["0", "1"])
def test_llamafactory_multi_node_exports_and_merges_on_node_zero_only(tmp_path, fakes, node_rank):
    env, record = fakes
    out = tmp_path / "lf out"
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(out), NNODES="2",
               NODE_RANK=node_rank, MASTER_ADDR="10.0.0.1", FINETUNING="lora", FAKE_ADAPTER="1")
    result = run("run_sft_llamafactory.sh", env, "run_name=a b")
    (call,) = records(record, "torchrun")
    argv = call["argv"]
    assert {"--nnodes=2", f"--node_rank={node_rank}", "--master_addr=10.0.0.1", "--master_port=29500"} <= set(argv)
    assert argv[5:7] == ["/fake/site-packages/llamafactory/launcher.py",
                         str(REPO / "local_scripts" / "llamafactory" / "tiny_cpu_sft.yaml")]
    assert "run_name=a b" in argv and f"output_dir={out}" in argv  # intact, spaces and all
    exported = (out / "data" / "geo_r_sft.jsonl").is_file()
    merges = [c for c in records(record, "llamafactory-cli") if c["argv"][0] == "export"]
    if node_rank == "0":
        assert exported and len(merges) == 1 and "--trust_remote_code" not in merges[0]["argv"]
    else:
        assert not exported and merges == [], result.stdout
        assert "node 0 exports the data" in result.stdout and "node 0 merges the LoRA adapter" in result.stdout


# --- Slurm -------------------------------------------------------------------------------------------------------

FAKE_SRUN = """#!/usr/bin/env bash
# srun --opt ... CMD ARGS: CMD once per node, as Slurm's tasks, with SLURM_NODEID set
while [[ "$1" == --* ]]; do shift; done
[[ -n "${SRUN_WAIT_FOR:-}" ]] && { touch "$SRUN_WAIT_FOR.started"; while [[ ! -f "$SRUN_WAIT_FOR" ]]; do sleep 0.1; done; exit 0; }
for ((i = 0; i < SLURM_NNODES; i++)); do SLURM_NODEID=$i "$@" || exit $?; done
"""

FAKE_SCONTROL = """#!/usr/bin/env bash
case "$1 $2" in
  "show hostnames") printf 'gpu-node-7\\ngpu-node-8\\n' ;;
  "show job") echo "JobId=$SLURM_JOB_ID JobName=geo-r-grpo"; echo "   Command=$SUBMITTED_AS"
              for i in $(seq 200); do echo "   WorkDir=$SLURM_SUBMIT_DIR"; done ;;  # long, as the real one
  "requeue "*) echo "requeue $2" >> "$SCONTROL_LOG"; [[ -n "${SRUN_WAIT_FOR:-}" ]] && touch "$SRUN_WAIT_FOR" ;;
esac
"""

# scancel --signal=USR1 JOB: the training processes save and stop (srun returns), unless RANKS_IGNORE_USR1 is set
FAKE_SCANCEL = """#!/usr/bin/env bash
echo "scancel $*" >> "$SCONTROL_LOG"
[[ -z "${RANKS_IGNORE_USR1:-}" ]] && touch "$SRUN_WAIT_FOR"
exit 0
"""


@pytest.fixture
def slurm(tmp_path):
    """A copy of the repository's launch scripts (run_grpo_rec.sh replaced by a recorder), the sbatch script
    copied to a spool folder as Slurm does, fake srun/scontrol, and a submission folder elsewhere."""
    repo = tmp_path / "geo r"  # a space in the path, too
    (repo / "run_scripts").mkdir(parents=True)
    shutil.copy(REPO / "run_scripts" / "slurm_grpo.sbatch", repo / "run_scripts" / "slurm_grpo.sbatch")
    recorder = tool(tmp_path, "record_grpo.py")
    (repo / "run_scripts" / "run_grpo_rec.sh").write_text(f'exec "{recorder}" "$@"\n')  # run with bash, as srun does
    spool = tmp_path / "spool"
    spool.mkdir()
    shutil.copy(REPO / "run_scripts" / "slurm_grpo.sbatch", spool / "slurm_script")
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name, text in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    submit = tmp_path / "somewhere else"
    submit.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in ("REPO_HOME", "RUN_NAME",
                                                                                            "NPROC_PER_NODE")}
    env.update(PATH=f"{bin_dir}:{env['PATH']}", SLURM_JOB_ID="4242", SLURM_NNODES="2", SLURM_JOB_NODELIST="gpu-node-[7-8]",
               SLURM_SUBMIT_DIR=str(submit), SUBMITTED_AS=str(repo / "run_scripts" / "slurm_grpo.sbatch"),
               RECORD=str(tmp_path / "record.jsonl"), SCONTROL_LOG=str(tmp_path / "scontrol.log"))
    return repo, spool / "slurm_script", submit, env


def test_sbatch_asks_for_a_warning_signal_and_requeue_and_logs_where_it_can():
    text = (REPO / "run_scripts" / "slurm_grpo.sbatch").read_text()
    directives = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(\S+))?", text, re.MULTILINE))
    assert re.fullmatch(r"B:USR1@\d+", directives["signal"])
    assert "requeue" in directives and directives["open-mode"] == "append"
    assert "/" not in directives["output"]  # Slurm opens it before the script runs: no folder that may not exist
    assert "$*" not in text


def test_sbatch_from_another_folder_passes_every_flag_intact_to_each_node(slurm):
    repo, script, submit, env = slurm
    flags = ["--question_template", "Where was it? {question}", "--max_steps", "3", "--run_name", ""]
    result = subprocess.run(["bash", str(script), *flags], cwd=submit, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = records(Path(env["RECORD"]))
    assert [c["env"]["NODE_RANK"] for c in calls] == ["0", "1"]
    for call in calls:
        assert call["argv"] == flags
        assert call["env"]["MASTER_ADDR"] == "gpu-node-7" and call["env"]["NNODES"] == "2"
        assert call["env"]["RUN_NAME"] == "geo-r-grpo-4242" and call["env"]["REPO_HOME"] == str(repo)


def usr1_during_training(slurm, **env_overrides) -> tuple[str, list[str]]:
    """Run the job, send USR1 (Slurm's warning) while srun runs; (its output, scontrol/scancel calls)."""
    repo, script, submit, env = slurm
    gate = Path(env["RECORD"]).with_name("srun-gate")
    env.update(SRUN_WAIT_FOR=str(gate), **env_overrides)
    job = subprocess.Popen(["bash", str(script)], cwd=submit, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not gate.with_name("srun-gate.started").exists() and job.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert job.poll() is None, job.communicate()[0]
    job.send_signal(signal.SIGUSR1)
    output, _ = job.communicate(timeout=60)
    return output, Path(env["SCONTROL_LOG"]).read_text().splitlines()


def test_sbatch_on_usr1_lets_the_ranks_save_then_requeues(slurm):
    output, calls = usr1_during_training(slurm)
    assert calls == ["scancel --signal=USR1 4242", "requeue 4242"], output
    assert "training stopped" in output


def test_sbatch_requeues_anyway_when_the_ranks_do_not_stop(slurm):
    output, calls = usr1_during_training(slurm, RANKS_IGNORE_USR1="1", SAVE_GRACE="1")
    assert calls[:2] == ["scancel --signal=USR1 4242", "requeue 4242"], output
    assert "still training 1 s after USR1" in output


def test_sbatch_launchers_ignore_usr1_so_only_the_training_processes_act_on_it(slurm):
    repo, script, submit, env = slurm
    result = subprocess.run(["bash", str(script)], cwd=submit, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = records(Path(env["RECORD"]))
    assert len(calls) == 2 and all(c["usr1_ignored"] for c in calls)


SAVES_FINAL_MODEL = """
argv = sys.argv[1:]
out = argv[argv.index("--output_dir") + 1]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model.safetensors"), "w").write("weights")
"""


def test_a_grpo_run_that_saved_no_final_model_is_reported_as_stopped_and_not_evaluated(tmp_path, fakes):
    env, _ = fakes
    env.update(MODEL="m", OUTPUT_DIR=str(tmp_path / "out"), EVAL="1", EVAL_DATA="val.jsonl", EVAL_IMAGES="imgs")
    result = run("run_grpo_rec.sh", env)  # the stand-in torchrun saves nothing, as a preempted run does
    assert "GRPO stopped before its last step" in result.stdout and "the same command resumes it" in result.stdout
    assert "evaluating" not in result.stdout and "GRPO done" not in result.stdout


def test_evaluation_of_a_real_model_says_which_split_to_set(tmp_path, fakes):
    env, _ = fakes
    tool(Path(env["PYTHON"]).parent, "torchrun", SAVES_FINAL_MODEL)
    env.update(MODEL="m", OUTPUT_DIR=str(tmp_path / "out"), EVAL="1")
    result = run("run_grpo_rec.sh", env, check=False)
    assert "GRPO done" in result.stdout
    assert result.returncode == 2 and "EVAL=1: set EVAL_DATA and EVAL_IMAGES" in result.stderr


def test_a_warm_start_path_must_be_a_checkpoint_and_grpo_starts_from_it(tmp_path, fakes):
    env, record = fakes
    tool(Path(env["PYTHON"]).parent, "torchrun", SAVES_FINAL_MODEL)
    env.update(MODEL="m", OUTPUT_DIR=str(tmp_path / "out"), WARM_START=str(tmp_path / "nothing"))
    result = run("run_grpo_rec.sh", env, check=False)
    assert result.returncode == 2 and "SFT checkpoint folder (with config.json)" in result.stderr
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "config.json").write_text("{}")
    env["WARM_START"] = str(sft)
    result = run("run_grpo_rec.sh", env)
    assert f"GRPO starts from the warm start {sft}" in result.stdout
    argv = records(record, "torchrun")[-1]["argv"]
    assert argv[argv.index("--model_name_or_path") + 1] == str(sft)


@pytest.mark.parametrize(
    ("settings", "sft_data", "grpo_data"),
    [
        ({}, "data/demo/train.jsonl", "data/demo/grpo.jsonl"),  # the demo: GRPO on photos SFT never saw
        ({"DATA_PATHS": "mine.jsonl"}, "mine.jsonl", "mine.jsonl"),  # one's own data feeds both
        ({"DATA_PATHS": "rl.jsonl", "SFT_DATA_PATHS": "sft.jsonl"}, "sft.jsonl", "rl.jsonl"),
    ],
)
def test_the_warm_start_and_grpo_each_train_on_their_own_data(tmp_path, fakes, settings, sft_data, grpo_data):
    env, record = fakes
    tool(Path(env["PYTHON"]).parent, "torchrun", SAVES_FINAL_MODEL)
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(tmp_path / "grpo"),
               WARM_START="native", WARM_START_DIR=str(tmp_path / "sft"), EVAL="0", **settings)
    run("run_grpo_rec.sh", env)
    sft, grpo = records(record, "torchrun")
    assert "src/open_r1/sft.py" in sft["argv"] and "src/open_r1/grpo_jsonl.py" in grpo["argv"]
    for call, data in ((sft, sft_data), (grpo, grpo_data)):
        argv = call["argv"]
        assert argv[argv.index("--data_file_paths") + 1] in (data, str(REPO / data))


TALKS_THEN_SAVES = SAVES_FINAL_MODEL + """
import time
print("trainer noise that stays in the log", flush=True)
print("[geo-r] step 5/10  loss 1.2345  0.1 s/step  ETA 1s", flush=True)
time.sleep(float(os.environ.get("FAKE_QUIET", "0")))
"""


def test_the_warm_start_shows_its_progress_lines_and_keeps_the_rest_in_its_log(tmp_path, fakes):
    env, _ = fakes
    tool(Path(env["PYTHON"]).parent, "torchrun", TALKS_THEN_SAVES)
    env.update(MODEL=str(REPO / ".cache" / "tiny-qwen2.5-vl"), OUTPUT_DIR=str(tmp_path / "grpo"),
               WARM_START="native", WARM_START_DIR=str(tmp_path / "sft"), EVAL="0", FAKE_QUIET="1.5",
               GEO_R_QUIET_SECONDS="1")
    result = run("run_grpo_rec.sh", env)
    warm = result.stdout.split("warm start: native SFT")[1].split("GRPO starts from the warm start")[0]
    assert "[geo-r] step 5/10  loss 1.2345" in warm and "trainer noise" not in warm
    assert re.search(r"\[geo-r\] (warm start|sft): still working, \ds so far \(last: step 5/10 .*\)", warm)  # quiet
    assert "next: MODEL=" not in warm  # run_sft.sh's hint is for a warm start run on its own
    assert "trainer noise" in (tmp_path / "sft.log").read_text()
