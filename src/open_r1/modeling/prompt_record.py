"""The prompt a model was trained with, kept beside its weights (`geo_r_prompt.json`): evaluation, predict and the
app ask a trained model the way it learnt to be asked unless told otherwise. A model trained on the bare question
answers noise under the default instruction."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PROMPT_FILE = "geo_r_prompt.json"


def write_prompt_record(output_dir: str | Path, question_template: str | None) -> Path:
    """Records the run's user-turn template (None: geo-r's default) in its output folder."""
    path = Path(output_dir) / PROMPT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"question_template": question_template}) + "\n", encoding="utf-8")
    return path


def trained_question_template(given: str | None, model_path: str | None) -> str | None:
    """The template to ask with: the one given, else the one recorded in the model's folder (or, for a
    `checkpoint-N`, its run's folder), else None, geo-r's default.

    Args:
        given: `--question_template` as passed; a value given always wins.
        model_path: the model's folder or hub id (a hub id has no record).
    """
    if given is not None or not model_path:
        return given
    folder = Path(model_path)
    candidates = [folder / PROMPT_FILE]
    if folder.name.startswith("checkpoint-"):  # only a checkpoint reads its run's record, not any parent folder's
        candidates.append(folder.parent / PROMPT_FILE)
    for candidate in candidates:
        if candidate.is_file():
            template = json.loads(candidate.read_text(encoding="utf-8")).get("question_template")
            logger.info("asking with the template the model was trained with (%s): %r", candidate, template)
            return template
    return None
