"""Ask the model where an uploaded photo (or up to four views of one place) was taken, as `predict` does: same
prompt, same loading, k sampled guesses ranked by their support, and with tools the episode turn by turn.

Uploads are checked before the model sees them (an image Pillow reads, HEIC only with pillow-heif, at most
`MAX_MEGAPIXELS`), and a model that does not load is kept as a message: the page reports both, never a trace.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from open_r1.answer.format import DEFAULT_GEO_QUESTION
from open_r1.configs import ModelArguments, SamplingArguments
from open_r1.data.images import HEIF_SUFFIXES, heif_available
from open_r1.errors import InputError
from open_r1.evaluation.describe import describe
from open_r1.evaluation.episodes import ToolEpisodeGenerator, episode_turns
from open_r1.evaluation.generation import Generator, geo_messages, with_images
from open_r1.evaluation.harness import build_generator, sampling_from
from open_r1.evaluation.metrics import guess_support
from open_r1.tools import ToolSet

logger = logging.getLogger(__name__)

MAX_VIEWS = 4
MAX_MEGAPIXELS = 50.0
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


class UploadError(InputError):
    """An upload the model is not asked about, and why."""


def _is_heif(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return path.suffix.lower() in HEIF_SUFFIXES or (head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS)


def check_uploads(paths: Sequence[str | Path], names: Sequence[str] | None = None) -> list[str]:
    """The uploaded files as image paths, or UploadError saying which file is wrong and what to do."""
    paths = [Path(p) for p in paths if p]
    names = list(names) if names else [p.name for p in paths]
    if not paths:
        raise UploadError("Upload a photo first (or up to four views of one place).")
    if len(paths) > MAX_VIEWS:
        raise UploadError(f"{len(paths)} files: upload one photo or up to {MAX_VIEWS} views of one place.")
    for path, name in zip(paths, names):
        if _is_heif(path) and not heif_available():
            raise UploadError(f"{name} is a HEIC/HEIF photo and pillow-heif is not installed here: "
                              "pip install pillow-heif (or bash setup.sh --dev), or upload it as JPEG.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
        except Image.DecompressionBombError:
            raise UploadError(f"{name} is far too large to decode safely; upload a photo under "
                              f"{MAX_MEGAPIXELS:.0f} megapixels.") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise UploadError(f"{name} is not an image this app can read (JPEG, PNG, WebP, BMP, GIF, TIFF"
                              f"{', HEIC' if heif_available() else ''}).") from None
        megapixels = width * height / 1e6
        if megapixels > MAX_MEGAPIXELS:
            raise UploadError(f"{name} is {megapixels:.1f} megapixels ({width}x{height}); the app takes photos up "
                              f"to {MAX_MEGAPIXELS:.0f} megapixels: resize it first (the model sees well under "
                              "1 megapixel anyway).")
    return [str(p) for p in paths]


@dataclass
class Answer:
    """What the page shows for one question."""

    prediction: dict[str, Any]
    guesses: list[dict[str, Any]] = field(default_factory=list)  # ranked, each with lat, lon, support, place
    turns: list[tuple[str, list[Image.Image]]] = field(default_factory=list)
    tool_calls: int | None = None


@dataclass
class Asker:
    """The model behind the ask view, loaded once; `error` holds why it did not load (the page shows it)."""

    model_args: ModelArguments
    num_guesses: int = 1
    max_new_tokens: int = 1024
    temperature: float | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    question: str = DEFAULT_GEO_QUESTION
    question_template: str | None = None
    toolset: ToolSet | None = None
    max_tool_rounds: int = 3
    generator: Generator | None = None
    error: str | None = None

    def load(self) -> Asker:
        sampling = sampling_from(SamplingArguments(max_new_tokens=self.max_new_tokens, temperature=self.temperature),
                                 self.num_guesses)
        try:
            self.generator = build_generator(self.model_args, sampling, min_pixels=self.min_pixels,
                                             max_pixels=self.max_pixels, max_images=MAX_VIEWS,
                                             work_dir=Path(".cache/app"), toolset=self.toolset,
                                             max_tool_rounds=self.max_tool_rounds)
        except InputError as err:
            self.error = f"The model {self.model_args.model_name_or_path} could not be loaded: {err}"
        except Exception as err:  # a broken folder fails in many libraries' ways; the page says which
            logger.exception("loading %s", self.model_args.model_name_or_path)
            self.error = (f"The model {self.model_args.model_name_or_path} could not be loaded "
                          f"({type(err).__name__}: {err})")
        return self

    def ask(self, paths: Sequence[str | Path], names: Sequence[str] | None = None) -> Answer:
        """The model's answer for one place; UploadError for a bad upload, InputError when there is no model."""
        images = check_uploads(paths, names)
        if self.generator is None:
            raise InputError(self.error or "No model was given: start the app with --model_name_or_path.")
        conversation = with_images(geo_messages(self.question, self.question_template), images, self.max_pixels,
                                   where="upload")
        if isinstance(self.generator, ToolEpisodeGenerator):
            self.generator.with_rows([{"image_paths": images}])
        completions = self.generator([conversation])[0]
        described = [describe(text, images) for text in completions]
        support = guess_support([d["lat"] for d in described], [d["lon"] for d in described])
        order = sorted((i for i, s in enumerate(support) if s is not None), key=lambda i: (-support[i], i))
        guesses = [{"lat": described[i]["lat"], "lon": described[i]["lon"], "support": support[i],
                    "share": support[i] / sum(support[j] for j in order), "place": described[i]["place"]}
                   for i in order]
        answer = Answer(prediction=described[order[0]] if order else described[0], guesses=guesses)
        if isinstance(self.generator, ToolEpisodeGenerator):
            episode = self.generator.episodes[0]
            answer.turns, answer.tool_calls = episode_turns(episode), episode.calls
        return answer
