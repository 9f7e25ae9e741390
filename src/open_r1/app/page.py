"""The page: an "Ask" tab (upload, answer, guesses on the map, tool turns) and a "Run" tab (an evaluation's
metrics, filters, map, table, one record). Each handler is also a named API endpoint (gradio_client), takes
plain values and answers with a message instead of raising, so bad input reads as a line on the page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

from open_r1.app.ask import Answer, Asker
from open_r1.app.map import GUESS_COLOUR, MAP_CSS, MAP_SCRIPT, Pin, error_legend, svg_map
from open_r1.app.runs import MAP_LIMIT, TABLE_COLUMNS, Run, headline, open_run, record_text
from open_r1.data.images import load_image
from open_r1.data.rows import DataError
from open_r1.errors import InputError

logger = logging.getLogger(__name__)

THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "monospace"])  # no web fonts: the page loads offline
COUNTRY_COLUMNS = ["true country", "photos", "median error km", "parse failures %"]
ALL = "(all countries)"
PHOTO_PIXELS = 1_000_000


def _guarded(handler: Callable[..., tuple], width: int) -> Callable[..., tuple]:
    """`handler` whose InputError (or any failure) becomes the first output, a message, the rest left as they are."""
    def run(*args: Any) -> tuple:
        try:
            return handler(*args)
        except InputError as err:
            message = f"**Error:** {err}"
        except Exception as err:  # the page reports it; the log keeps the trace
            logger.exception("app handler %s", handler.__name__)
            message = f"**Error:** something went wrong ({type(err).__name__}: {err}); the server log has details."
        return (message, *(gr.update() for _ in range(width - 1)))
    run.__name__ = handler.__name__
    return run


# --- ask ------------------------------------------------------------------------------------------------------

def answer_markdown(answer: Answer) -> str:
    prediction = answer.prediction
    if prediction["lat"] is None:
        lines = ["### No coordinates could be read from the answer", "", "The model's full answer:", "", "```",
                 prediction["completion"], "```"]
        return "\n".join(lines)
    names = prediction.get("names") or {}
    place = prediction["place"]
    lines = [
        f"### {prediction['lat']:.4f}, {prediction['lon']:.4f}", "",
        "| | the model wrote | the geocoder finds there |", "| --- | --- | --- |",
        f"| country | {names.get('country') or ''} | {place['country_name']} ({place['country']}) |",
        f"| region | {names.get('region') or ''} | {place['region'] or ''} |",
        f"| city | {names.get('city') or ''} | {place['city']} |", "", prediction["summary"],
    ]
    if len(answer.guesses) > 1 or answer.tool_calls is None:
        lines += ["", f"**{len(answer.guesses)} guess(es)**, most supported first:", "",
                  "| # | coordinates | place | support |", "| --- | --- | --- | --- |"]
        lines += [f"| {rank} | {g['lat']:.3f}, {g['lon']:.3f} | "
                  f"{(g['place'] or {}).get('city', '')}, {(g['place'] or {}).get('country', '')} | "
                  f"{g['support']:.2f} ({100 * g['share']:.0f} %) |" for rank, g in enumerate(answer.guesses, 1)]
    return "\n".join(lines)


def guesses_map(answer: Answer | None) -> str:
    guesses = answer.guesses if answer else []
    pins = [Pin(g["lat"], g["lon"], f"guess-{rank}", "guess",
                f"guess {rank}: {g['lat']:.3f}, {g['lon']:.3f}; support {g['support']:.2f} ({100 * g['share']:.0f} %)",
                radius=1.2 + 3.0 * g["share"]) for rank, g in enumerate(guesses, 1)]
    caption = (f"{len(pins)} guess(es); a marker's size is its support (the GeoGuessr kernel summed over the "
               "samples)" if pins else "No guess to show: the answer held no coordinates.")
    return svg_map(pins, legend=[(GUESS_COLOUR, "guess")], caption=caption)


def make_ask(asker: Asker | None) -> Callable[..., tuple]:
    def ask(files: Sequence[Any] | None) -> tuple:
        """Upload(s) in; (message, answer, map, reasoning, crops, turns) out."""
        if asker is None:
            raise InputError("This app was started without a model: give --model_name_or_path.")
        paths = [str(getattr(f, "path", None) or getattr(f, "name", None) or f) for f in (files or [])]
        answer = asker.ask(paths)
        crops = [(image, text[:120]) for text, images in answer.turns for image in images]
        turns = "\n".join(f"{i}. {html.escape(text, quote=False)}" for i, (text, _) in enumerate(answer.turns, 1))
        if answer.tool_calls is not None:
            turns = f"**Episode: {answer.tool_calls} tool call(s)**\n\n{turns or '(no turn text)'}"
        message = f"Answered for {len(paths)} photo(s)."
        return (message, answer_markdown(answer), guesses_map(answer), answer.prediction["reasoning"] or "(none)",
                crops, turns)
    return ask


# --- run ------------------------------------------------------------------------------------------------------

def run_map(run: Run, chosen) -> str:
    shown = run.map_sample(chosen)
    pins, arcs = [], []
    for i in shown:
        key, km = run.ids[i], float(run.error_km[i])
        truth = f"{key}: truth {run.true_place[i]}"
        if run.parsed[i]:
            arcs.append((run.true_lat[i], run.true_lon[i], run.pred_lat[i], run.pred_lon[i], km))
            pins.append(Pin(run.true_lat[i], run.true_lon[i], key, "truth", f"{truth}; error {km:.0f} km", 1.2))
            pins.append(Pin(run.pred_lat[i], run.pred_lon[i], key, "guess",
                            f"{key}: guess {run.pred_place[i]}; error {km:.0f} km", 1.2))
        else:
            pins.append(Pin(run.true_lat[i], run.true_lon[i], key, "failed", f"{truth}; no parseable answer", 1.5))
    caption = (f"{len(shown):,} of {len(chosen):,} matching predictions"
               + (f" (a fixed random sample of {MAP_LIMIT:,}; the table lists them all)" if len(shown) < len(chosen)
                  else "") + ". Click a marker for its photo and reasoning; wheel to zoom, drag to pan.")
    return svg_map(pins, arcs, legend=error_legend(), caption=caption)


def browse(folder: str, country: str | None, min_km: float | None, failures_only: bool, page: float | None) -> tuple:
    """(message, headline, country choices, map, by-country table, table page, page, page line) of a run."""
    run = open_run(folder)
    code = "" if country in (None, "", ALL) else str(country)
    chosen = run.select(code or None, float(min_km or 0.0), bool(failures_only))
    rows, page, pages = run.table_page(chosen, int(page or 1))
    choices = [ALL, *(c for c, _ in run.countries())]
    message = f"{len(run):,} predictions in {run.folder}; {len(chosen):,} match the filters."
    return (message, headline(run), gr.update(choices=choices, value=code or ALL), run_map(run, chosen),
            run.by_country(chosen), rows, page, f"page {page} of {pages}")


def show(folder: str, record_id: str) -> tuple:
    """(message, photos, text) of one record; photos are decoded here (at most a megapixel), so a run's images
    show wherever they live."""
    run = open_run(folder)
    record = run.record(run.index_of(str(record_id).strip()))
    photos, missing = [], []
    for path in record.get("images") or []:
        try:
            photos.append(load_image(str(path), max_pixels=PHOTO_PIXELS, where=str(record["id"])))
        except DataError:
            missing.append(str(path))
    message = f"Record {record['id']}." + (f" Photo(s) not readable at {', '.join(missing)} (a run keeps the paths "
                                            "it was evaluated with)." if missing else "")
    return message, photos, record_text(record)


# --- the page -------------------------------------------------------------------------------------------------

def build_page(asker: Asker | None = None, run_folder: str | None = None) -> gr.Blocks:
    """The app: the ask tab when there is a model (or a load error to show), the run tab always."""
    with gr.Blocks(title="geo-r", analytics_enabled=False) as page:
        gr.Markdown("# geo-r: where was this photo taken?")
        if asker is not None:
            with gr.Tab("Ask the model", id="ask-tab"):
                if asker.error:
                    gr.Markdown(f"**Error:** {asker.error}", elem_id="model-error")
                with gr.Row():
                    with gr.Column(scale=1):
                        files = gr.File(label="A photo, or up to four views of one place", file_count="multiple",
                                        type="filepath", elem_id="upload")
                        ask_button = gr.Button("Where was this taken?", variant="primary", elem_id="ask-button")
                        ask_message = gr.Markdown(elem_id="ask-message")
                        answer = gr.Markdown(elem_id="answer")
                    with gr.Column(scale=2):
                        guess_html = gr.HTML(guesses_map(None), js_on_load=MAP_SCRIPT, css_template=MAP_CSS,
                                             elem_id="ask-map")
                reasoning = gr.Textbox(label="Reasoning", lines=6, interactive=False, elem_id="reasoning")
                crops = gr.Gallery(label="Zoom crops the model asked for", columns=4, height=220,
                                   visible=asker.toolset is not None, elem_id="crops")
                turns = gr.Markdown(elem_id="turns")
            ask_button.click(_guarded(make_ask(asker), 6), [files],
                             [ask_message, answer, guess_html, reasoning, crops, turns], api_name="ask")
        with gr.Tab("Browse an evaluation", id="run-tab"):
            with gr.Row():
                folder = gr.Textbox(label="Evaluation folder (holds predictions.jsonl and metrics.json)",
                                    value=run_folder or "", scale=4, elem_id="run-folder")
                open_button = gr.Button("Open", variant="primary", scale=1, elem_id="open-button")
            run_message = gr.Markdown(elem_id="run-message")
            with gr.Row():
                with gr.Column(scale=1):
                    metrics = gr.Markdown(elem_id="headline")
                    country = gr.Dropdown(label="True country", choices=[ALL], value=ALL, allow_custom_value=True,
                                          elem_id="country")
                    min_km = gr.Number(label="Error above (km)", value=0, minimum=0, elem_id="min-km")
                    failures = gr.Checkbox(label="Parse failures only", elem_id="failures")
                with gr.Column(scale=3):
                    map_html = gr.HTML(js_on_load=MAP_SCRIPT, css_template=MAP_CSS, elem_id="run-map")
            with gr.Row():
                with gr.Column(scale=3):
                    table = gr.Dataframe(headers=TABLE_COLUMNS, interactive=False, label="Predictions, largest error "
                                         "first (click a row)", elem_id="table")
                    with gr.Row():
                        previous = gr.Button("Previous page", size="sm")
                        page_number = gr.Number(value=1, precision=0, label="Page", minimum=1, elem_id="page")
                        following = gr.Button("Next page", size="sm")
                    page_line = gr.Markdown(elem_id="page-line")
                with gr.Column(scale=2):
                    countries = gr.Dataframe(headers=COUNTRY_COLUMNS, interactive=False,
                                             label="By true country (matching predictions)", elem_id="by-country")
            with gr.Row():
                record_id = gr.Textbox(label="Record id", scale=4, elem_id="record-id")
                show_button = gr.Button("Show", scale=1, elem_id="show-button")
            record_message = gr.Markdown(elem_id="record-message")
            with gr.Row():
                photos = gr.Gallery(label="Photo", columns=2, height=320, elem_id="photos")
                record = gr.Markdown(elem_id="record")

        browse_in = [folder, country, min_km, failures, page_number]
        browse_out = [run_message, metrics, country, map_html, countries, table, page_number, page_line]
        guarded_browse = _guarded(browse, len(browse_out))
        open_button.click(guarded_browse, browse_in, browse_out, api_name="browse")
        for trigger in (country.input, min_km.submit, failures.input, page_number.submit):
            trigger(guarded_browse, browse_in, browse_out, api_name=False)
        for button, step in ((previous, -1), (following, 1)):
            button.click(lambda *a, step=step: guarded_browse(*a[:-1], (a[-1] or 1) + step), browse_in, browse_out,
                         api_name=False)
        record_out = [record_message, photos, record]
        guarded_show = _guarded(show, len(record_out))
        show_button.click(guarded_show, [folder, record_id], record_out, api_name="show")
        record_id.submit(guarded_show, [folder, record_id], record_out, api_name=False)

        def picked(folder_value: str, evt: gr.EventData) -> tuple:
            key = str(getattr(evt, "id", "") or "")
            return (key, *guarded_show(folder_value, key))

        def row_picked(folder_value: str, evt: gr.SelectData) -> tuple:
            key = str((evt.row_value or [""])[0])
            return (key, *guarded_show(folder_value, key))

        map_html.select(picked, [folder], [record_id, *record_out], api_name=False)
        table.select(row_picked, [folder], [record_id, *record_out], api_name=False)
        if run_folder:
            page.load(guarded_browse, browse_in, browse_out, api_name=False)
    return page
