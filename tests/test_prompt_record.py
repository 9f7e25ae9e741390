"""A trained model's folder records the prompt it learnt (`geo_r_prompt.json`), and evaluation, predict and the app
ask with it unless told otherwise: a model trained on the bare question answers noise under the default template."""

from __future__ import annotations

import json

import pytest

from open_r1.evaluation.generation import TransformersGenerator
from open_r1.modeling.prompt_record import PROMPT_FILE, trained_question_template, write_prompt_record
from test_eval_geo import run_eval


def test_the_recorded_template_is_found_beside_a_model_or_its_checkpoint_and_a_given_one_wins(tmp_path):
    run = tmp_path / "run"
    write_prompt_record(run, "{question}")
    (run / "checkpoint-20").mkdir()
    assert trained_question_template(None, str(run)) == "{question}"
    assert trained_question_template(None, str(run / "checkpoint-20")) == "{question}"
    assert trained_question_template("Where? {question}", str(run)) == "Where? {question}"
    assert trained_question_template(None, "Qwen/Qwen2.5-VL-3B-Instruct") is None  # a hub id: no record
    (run / "sft").mkdir()
    assert trained_question_template(None, str(run / "sft")) is None  # another run in the folder: not its record
    write_prompt_record(run, None)  # trained with geo-r's default template
    assert json.loads((run / PROMPT_FILE).read_text()) == {"question_template": None}
    assert trained_question_template(None, str(run)) is None


@pytest.fixture()
def prompts(monkeypatch):
    """The user turns sent to the transformers generator."""
    sent: list[str] = []
    original = TransformersGenerator.__call__

    def recording(self, conversations):
        for conversation in conversations:
            sent.extend(part["text"] for part in conversation[-1]["content"] if part.get("type") == "text")
        return original(self, conversations)

    monkeypatch.setattr(TransformersGenerator, "__call__", recording)
    return sent


def test_evaluation_asks_a_model_with_its_recorded_template(tmp_path, tiny_model_dir, demo_data, prompts):
    model = tmp_path / "model"
    model.mkdir()
    for item in tiny_model_dir.iterdir():
        (model / item.name).symlink_to(item)
    write_prompt_record(model, "Which city? {question}")
    run_eval(model, tmp_path / "eval", demo_data)
    assert prompts and all(text.startswith("Which city? ") for text in prompts), prompts[:2]
    settings = json.loads((tmp_path / "eval" / "eval_settings.json").read_text())
    assert settings["question_template"] == "Which city? {question}"

    prompts.clear()
    run_eval(model, tmp_path / "eval-given", demo_data, "--question_template", "{question}")
    assert prompts and not any(text.startswith("Which city?") for text in prompts)

