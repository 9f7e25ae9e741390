"""No flag is accepted and then ignored: every field of every entry's argument dataclasses is read somewhere on
that entry's code path, or refused when set.

The entries and dataclasses are read from the source (each `TrlParser((A, B, ...))`), so new ones are checked
without touching this file. A field counts as read by attribute or `getattr` in the entry's transitive geo-r
imports (not `configs.py`: validating is not using), as a registered reward's keyword, or by a TRL helper those
modules call; TRL's configs count as read by TRL, except the fields it applies only when it loads the model.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
from trl import TrlParser

from test_import_rules import import_graph, reach

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "open_r1"
ENTRIES = ("open_r1.grpo_jsonl", "open_r1.sft", "open_r1.eval_geo", "open_r1.predict", "open_r1.data.to_llamafactory",
           "open_r1.difficulty", "open_r1.tools.export")
# TRL helpers geo-r calls with a TRL dataclass; the fields they read count as read when geo-r calls them
TRL_HELPERS = ("get_peft_config", "get_quantization_config")
# fields of TRL's trainer configs that TRL reads only when it loads the model from a name, which geo-r never asks
TRAINER_MODEL_LOADING_FIELDS = ("model_init_kwargs", "trust_remote_code")
# just enough for each entry's parser to accept the command line
REQUIRED = {
    "open_r1.eval_geo": ["--model_name_or_path", "m"],
    "open_r1.predict": ["--model_name_or_path", "m", "--images", "a.jpg"],
    "open_r1.data.to_llamafactory": ["--out", "o"],
    "open_r1.difficulty": ["--model_name_or_path", "m", "--out", "o.jsonl"],
    "open_r1.tools.export": ["--out", "o", "--tools", "zoom"],
}


def module_path(module: str) -> Path:
    path = SRC / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def parser_dataclasses(entry: str) -> list[type]:
    """The dataclasses of the entry's `TrlParser((...))` call, resolved in the entry module."""
    tree = ast.parse(module_path(entry).read_text(encoding="utf-8"))
    module = importlib.import_module(entry)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TrlParser" and node.args:
            return [getattr(module, elt.id) for elt in node.args[0].elts]
    raise AssertionError(f"{entry}: no TrlParser((...)) call found")


def reads(source: str) -> set[str]:
    """Names the code reads: `x.name` (loaded), `getattr(x, "name")`, and `options["name"]` /
    `options.get("name")` (arguments handed on as `vars(args)`)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            names.add(node.attr)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            key = node.args[1] if getattr(func, "id", None) in ("getattr", "hasattr") and len(node.args) > 1 else (
                node.args[0] if isinstance(func, ast.Attribute) and func.attr == "get" else None)
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
        elif (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load)
              and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            names.add(node.slice.value)
    return names


def code_path(entry: str) -> tuple[set[str], set[str]]:
    """(the modules an entry runs, except configs.py; the names they read, TRL helpers and rewards included)."""
    graph, _ = import_graph(SRC, PACKAGE)
    modules = ({entry} | reach(graph, entry)) - {f"{PACKAGE}.configs"}
    sources = [module_path(m).read_text(encoding="utf-8") for m in sorted(modules)]
    names = set().union(*(reads(s) for s in sources))
    import trl

    for helper in TRL_HELPERS:
        if any(helper in s for s in sources):
            names |= reads(inspect.getsource(getattr(trl, helper)))
    if f"{PACKAGE}.rewards.registry" in modules:
        from open_r1.rewards import REWARDS
        from open_r1.rewards.registry import reward_options

        for func in REWARDS.values():
            names |= set(reward_options(func))
    return modules, names


def is_refused(entry: str, field: dataclasses.Field) -> bool:
    """Setting the field (a bool flag) to its other value makes the entry's parser fail."""
    if field.type not in (bool, "bool"):
        return False
    argv = [*REQUIRED.get(entry, []), f"--{field.name}", str(not field.default).lower()]
    try:
        TrlParser(parser_dataclasses(entry)).parse_args_and_config(args=argv)
    except (ValueError, SystemExit):
        return True
    return False


def unread_fields(entry: str) -> list[str]:
    _, names = code_path(entry)
    problems = []
    for cls in parser_dataclasses(entry):
        fields = dataclasses.fields(cls)
        if cls.__module__.split(".")[0] in ("trl", "transformers") and cls.__name__ != "ModelConfig":
            fields = [f for f in fields if f.name in TRAINER_MODEL_LOADING_FIELDS]
        for field in fields:
            if field.name not in names and not is_refused(entry, field):
                problems.append(f"{cls.__name__}.{field.name}")
    return problems


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_argument_of_every_entry_is_read_or_refused(entry):
    assert parser_dataclasses(entry), entry
    assert unread_fields(entry) == [], f"{entry} accepts these flags and never reads them"


def test_the_entries_listed_are_all_the_entries():
    """Every module with a TrlParser call is checked above."""
    found = {
        ".".join(p.relative_to(SRC).with_suffix("").parts)
        for p in (SRC / PACKAGE).rglob("*.py")
        if "TrlParser((" in p.read_text(encoding="utf-8")
    }
    assert found == set(ENTRIES)


def test_the_check_finds_an_unread_flag(monkeypatch):
    """The check itself: a field nobody reads is reported; one that is refused is not."""
    from open_r1 import configs

    @dataclasses.dataclass
    class Export(configs.ExportArguments):
        never_read_anywhere: int = 3
        refused_flag: bool = False

        def __post_init__(self):
            if self.refused_flag:
                raise ValueError("refused")

    monkeypatch.setattr(configs, "ExportArguments", Export)
    import open_r1.data.to_llamafactory as entry

    monkeypatch.setattr(entry, "ExportArguments", Export)
    assert unread_fields("open_r1.data.to_llamafactory") == ["Export.never_read_anywhere"]


@pytest.mark.parametrize("entry, flag", [
    ("open_r1.grpo_jsonl", ["--num_guesses", "4"]),
    ("open_r1.eval_geo", ["--streaming", "true"]),
    ("open_r1.sft", ["--streaming", "true"]),
    ("open_r1.sft", ["--shared_prefill", "false"]),
    ("open_r1.difficulty", ["--val_split_ratio", "0.1"]),
    ("open_r1.difficulty", ["--streaming", "true"]),
    ("open_r1.predict", ["--streaming", "true"]),
    ("open_r1.data.to_llamafactory", ["--tools", "zoom"]),
    ("open_r1.predict", ["--data_file_paths", "a.jsonl"]),
])
def test_flags_an_entry_does_not_run_with_are_not_its_flags(entry, flag):
    """GRPO alone streams; difficulty scores every row; the LLaMA-Factory export without tools takes no --tools
    (open_r1.tools.export does): each entry's parser refuses what it would refuse at run time."""
    with pytest.raises(ValueError, match="not used by the HfArgumentParser"):
        cpu = ["--use_cpu", "true", "--bf16", "false"] if entry in ("open_r1.sft", "open_r1.grpo_jsonl") else []
        TrlParser(parser_dataclasses(entry)).parse_args_and_config(args=[*REQUIRED.get(entry, []), *cpu, *flag])
    assert not any(f.name == flag[0][2:] for cls in parser_dataclasses(entry) for f in dataclasses.fields(cls))


@pytest.mark.parametrize("entry", ENTRIES)
def test_no_flag_is_declared_twice_across_an_entrys_dataclasses(entry):
    """geo-r's dataclasses and TRL's of one entry (GRPOConfig, SFTConfig, ModelConfig) name each flag once: a
    second declaration would be a second default for the same flag."""
    names = [f.name for cls in parser_dataclasses(entry) for f in dataclasses.fields(cls) if f.init]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    if entry in ("open_r1.grpo_jsonl", "open_r1.sft"):
        assert names.count("freeze_vision_modules") == 1


def test_no_field_is_declared_twice():
    """Each argument is declared in one dataclass of configs.py (per-entry defaults come from `with_defaults`)."""
    tree = ast.parse(module_path(f"{PACKAGE}.configs").read_text(encoding="utf-8"))
    declared: dict[str, list[str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and "ClassVar" not in ast.unparse(node.annotation):
                declared.setdefault(node.target.id, []).append(cls.name)
    assert {name: classes for name, classes in declared.items() if len(classes) > 1} == {}
    assert "data_file_paths" in declared and "streaming" in declared


def test_an_entry_default_is_the_declared_field_with_another_default():
    from open_r1.configs import DataArguments, DifficultyArguments, EvalArguments, PredictArguments

    fields = {cls: {f.name: f for f in dataclasses.fields(cls)} for cls in (DataArguments, EvalArguments)}
    assert fields[EvalArguments]["data_file_paths"].default == "data/demo/test.jsonl"
    assert fields[DataArguments]["data_file_paths"].default == "data/demo/train.jsonl"
    assert fields[EvalArguments]["data_file_paths"].metadata == fields[DataArguments]["data_file_paths"].metadata
    assert (EvalArguments(), PredictArguments(images=["a.jpg"])) and EvalArguments().max_pixels is None
    difficulty = DifficultyArguments(out="o.jsonl")
    assert (difficulty.output_dir, difficulty.num_guesses, difficulty.plots) == ("output/difficulty", 4, False)
    assert EvalArguments().plots and DataArguments().max_pixels == 401408
