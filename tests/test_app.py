"""The app without a browser: uploads checked into page messages, a model that does not load, a run of 100k
predictions read, filtered, sampled and paged, and the API endpoints (gradio_client) on a demo run and a model
whose answers are scripted (sampled guesses with their support, a tool episode with its crop)."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from open_r1.app import ask as ask_module
from open_r1.app.ask import Asker, UploadError, check_uploads
from open_r1.app.page import ALL, _guarded, build_page, make_ask, run_map
from open_r1.app.runs import MAP_LIMIT, PAGE_SIZE, RunError, open_run, read_run
from open_r1.configs import ModelArguments
from open_r1.errors import InputError
from open_r1.evaluation.episodes import Episode, ToolEpisodeGenerator
from open_r1.evaluation.harness import METRICS, PREDICTIONS

gradio_client = pytest.importorskip("gradio_client", reason="the app extra: bash setup.sh --app (or --dev)")


def markers(html: str, kind: str = "") -> list[str]:
    return re.findall(rf'<circle class="marker {kind}[^"]*" data-id="([^"]*)"', html)


def test_the_run_files_are_the_ones_evaluation_writes():
    from open_r1.app import runs

    assert (runs.PREDICTIONS, runs.METRICS) == (PREDICTIONS, METRICS)


def test_bad_uploads_are_refused_with_what_to_do(tmp_path, monkeypatch):
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    with pytest.raises(UploadError, match="notes.txt is not an image"):
        check_uploads([text])
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)  # 100 megapixels, a 12 MB bitmap in memory
    with pytest.raises(UploadError, match=r"huge.png is 100.0 megapixels \(10000x10000\).*resize it"):
        check_uploads([huge])
    heic = tmp_path / "phone.jpg"  # a HEIC by its content, whatever its name
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    monkeypatch.setattr(ask_module, "heif_available", lambda: False)
    with pytest.raises(UploadError, match="HEIC/HEIF photo and pillow-heif is not installed.*pip install pillow-heif"):
        check_uploads([heic])
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48)).save(photo)
    with pytest.raises(UploadError, match="5 files: upload one photo or up to 4 views"):
        check_uploads([photo] * 5)
    with pytest.raises(UploadError, match="Upload a photo first"):
        check_uploads([])
    assert check_uploads([photo, photo]) == [str(photo)] * 2


def test_a_model_folder_that_does_not_load_is_a_message(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    asker = Asker(ModelArguments(model_name_or_path=str(tmp_path))).load()
    assert asker.generator is None and str(tmp_path) in asker.error and "could not be loaded" in asker.error
    photo = tmp_path / "photo.png"
    Image.new("RGB", (32, 32)).save(photo)
    with pytest.raises(InputError, match="could not be loaded"):
        asker.ask([photo])
    message, *unchanged = _guarded(make_ask(asker), 6)([str(photo)])  # as the page calls it
    assert message.startswith(f"**Error:** The model {tmp_path} could not be loaded") and len(unchanged) == 5


def write_large_run(folder, n: int) -> None:
    folder.mkdir()
    countries = ["FR", "JP", "BR", "US"]
    with open(folder / PREDICTIONS, "w") as handle:
        for i in range(n):
            parsed = i % 10 != 0
            lat, lon = (i % 170) - 85.0, (i * 7 % 360) - 180.0
            handle.write(json.dumps({
                "id": f"r{i}", "images": [f"img/{i}.jpg"], "completion": f"answer {i}", "parsed": parsed,
                "pred_lat": lat + 1.0 if parsed else None, "pred_lon": lon if parsed else None,
                "true_lat": lat, "true_lon": lon, "true_place": {"country": countries[i % 4], "city": f"c{i}"},
                "pred_place": {"country": countries[(i + 1) % 4]} if parsed else None,
                "error_km": float(i % 5000) if parsed else 20015.1}) + "\n")
    (folder / METRICS).write_text(json.dumps({"num_images": n, "median_km": 2500.0}))


def test_a_run_of_100k_predictions_is_filtered_sampled_and_paged(tmp_path):
    folder = tmp_path / "big"
    write_large_run(folder, 100_000)
    run = read_run(folder)
    assert len(run) == 100_000 and run.countries()[0] == ("BR", 25_000)
    everything = run.select()
    assert len(everything) == 100_000 and run.error_km[everything[0]] == max(run.error_km)
    japan = run.select("JP", min_km=4000)
    assert len(japan) and all(run.true_country[i] == "JP" and run.error_km[i] >= 4000 for i in japan)
    failures = run.select(failures_only=True)
    assert len(failures) == 10_000 and not run.parsed[failures].any()

    sample = run.map_sample(everything)
    assert len(sample) == MAP_LIMIT and set(sample) <= set(everything)
    assert (run.map_sample(everything) == sample).all()  # the same sample on every redraw
    html = run_map(run, everything)
    assert len(markers(html, "truth")) + len(markers(html, "failed")) == MAP_LIMIT
    assert f"{MAP_LIMIT:,} of 100,000 matching predictions (a fixed random sample" in html

    rows, page, pages = run.table_page(everything, 7)
    assert (page, pages, len(rows)) == (7, 100_000 // PAGE_SIZE, PAGE_SIZE)
    assert run.table_page(everything, 10**9)[1] == pages  # clamped to the last page
    record = run.record(run.index_of(rows[0][0]))
    assert record["id"] == rows[0][0] and record["completion"] == f"answer {record['id'][1:]}"


def test_runs_that_cannot_be_opened_say_why(tmp_path):
    with pytest.raises(RunError, match="no such folder"):
        read_run(tmp_path / "missing")
    with pytest.raises(RunError, match="holds no predictions.jsonl: is it an evaluation's --output_dir"):
        read_run(tmp_path)
    (tmp_path / PREDICTIONS).write_text('{"id": "a"}\n')
    with pytest.raises(RunError, match=r"predictions.jsonl:1: not a prediction record"):
        read_run(tmp_path)


class ScriptedGuesses:
    """A model whose k sampled answers are fixed: two at Paris (the first with its reasoning), one in Tokyo."""

    def __call__(self, conversations):
        answers = ["<think>Haussmann facades.</think><answer>Country: France\nCity: Paris\nLatitude: 48.85\n"
                   "Longitude: 2.35</answer>",
                   "<answer>Latitude: 48.85\nLongitude: 2.35</answer>",
                   "<answer>Latitude: 35.68\nLongitude: 139.69</answer>"]
        return [answers for _ in conversations]


class ScriptedEpisode(ToolEpisodeGenerator):
    """An episode with one zoom call and its crop, then the answer (no model behind it)."""

    def __init__(self):
        self.rows, self.episodes = [], []

    def __call__(self, conversations):
        crop = Image.new("RGB", (40, 30), (200, 10, 10))
        self.episodes = [Episode(messages=[
            {"role": "assistant", "content": "Let me read the sign.",
             "tool_calls": [{"function": {"name": "zoom", "arguments": {"bbox_2d": [0, 0, 10, 10]}}}]},
            {"role": "tool", "name": "zoom", "content": [{"type": "image", "image": crop}]},
            {"role": "assistant", "content": "<answer>Latitude: 41.9\nLongitude: 12.5</answer>"},
        ], done=True)]
        return [[self.episodes[0].text]]


@pytest.fixture(scope="module")
def api(demo_eval_run):
    """The page served on a free local port, its scripted model behind the ask tab; (client, run folder)."""
    asker = Asker(ModelArguments(model_name_or_path="scripted"), num_guesses=3)
    asker.generator = ScriptedGuesses()
    page = build_page(asker, str(demo_eval_run))
    page.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield gradio_client.Client(page.local_url, verbose=False), demo_eval_run, asker
    finally:
        page.close()


def test_api_ask_shows_the_ranked_guesses_with_their_support(api, demo_data):
    client, _, _ = api
    photo = demo_data[2] / "lisbon" / "lisbon-test-0.jpg"
    message, answer, html, reasoning, crops, turns = client.predict([gradio_client.handle_file(str(photo))],
                                                                    api_name="/ask")
    assert message == "Answered for 1 photo(s)." and reasoning == "Haussmann facades."
    assert "48.8500, 2.3500" in answer and "| country | France | France (FR) |" in answer
    assert markers(html, "guess") == ["guess-1", "guess-2", "guess-3"]
    supports = [float(s) for s in re.findall(r"\| (\d\.\d\d) \(\d+ %\) \|", answer)]
    assert len(supports) == 3 and supports[0] == supports[1] > 1.9 and supports[2] == pytest.approx(1.0, abs=1e-3)
    assert "Tokyo" in answer.split("\n")[-1] and crops == [] and turns == ""


def test_api_ask_refuses_a_non_image_with_a_message(api, tmp_path):
    client, _, _ = api
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    message, *_ = client.predict([gradio_client.handle_file(str(notes))], api_name="/ask")
    assert message.startswith("**Error:** notes.txt is not an image")


def test_api_ask_with_tools_shows_each_turn_and_its_crop(api, demo_data):
    client, _, asker = api
    asker.generator = ScriptedEpisode()
    try:
        photo = demo_data[2] / "lisbon" / "lisbon-test-0.jpg"
        _, answer, html, _, crops, turns = client.predict([gradio_client.handle_file(str(photo))], api_name="/ask")
    finally:
        asker.generator = ScriptedGuesses()
    assert "41.9000, 12.5000" in answer and markers(html, "guess") == ["guess-1"]
    assert turns.startswith("**Episode: 1 tool call(s)**") and 'model calls zoom({"bbox_2d": [0, 0, 10, 10]})' in turns
    assert "[zoom] -&gt; image 40x30" in turns
    assert len(crops) == 1 and Image.open(crops[0]["image"]).size == (40, 30)


def test_api_browse_filters_a_run_and_show_opens_a_record(api):
    client, run, _ = api
    message, headline, _, html, by_country, table, page, line = client.predict(
        str(run), ALL, 0, False, 1, api_name="/browse")
    records = [json.loads(line) for line in (run / PREDICTIONS).read_text().splitlines()]
    parsed = sum(r["parsed"] for r in records)
    assert message.startswith(f"{len(records)} predictions in") and "| median error |" in headline
    assert len(markers(html, "truth")) == parsed and len(markers(html, "guess")) == parsed
    assert len(markers(html, "failed")) == len(records) - parsed and line == "page 1 of 1"
    assert [row[0] for row in table["data"]][0] == max(records, key=lambda r: r["error_km"])["id"]

    _, _, _, failed_html, _, failed_table, _, _ = client.predict(str(run), ALL, 0, True, 1, api_name="/browse")
    assert {row[0] for row in failed_table["data"]} == {r["id"] for r in records if not r["parsed"]}
    assert markers(failed_html, "guess") == []
    code = max((r for r in records if r["parsed"]), key=lambda r: r["error_km"])["true_place"]["country"]
    _, _, _, _, countries, chosen, _, _ = client.predict(str(run), code, 100, False, 1, api_name="/browse")
    assert {row[0] for row in chosen["data"]} == {r["id"] for r in records
                                                  if r["true_place"]["country"] == code and r["error_km"] >= 100}
    assert [row[0] for row in countries["data"]] == [code]

    first = records[0]
    message, photos, text = client.predict(str(run), first["id"], api_name="/show")
    assert message == f"Record {first['id']}." and len(photos) == 1
    assert f"### {first['id']}: error {first['error_km']:.1f} km" in text and "3 guesses" in text


def test_api_bad_run_folders_and_ids_are_messages(api, tmp_path):
    client, run, _ = api
    message, *_ = client.predict(str(tmp_path), ALL, 0, False, 1, api_name="/browse")
    assert message.startswith(f"**Error:** {tmp_path} holds no predictions.jsonl")
    message, *_ = client.predict(str(run), "nope", api_name="/show")
    assert message.startswith("**Error:** no record with id 'nope'")
    assert open_run(run) is open_run(run)  # read once, reused by the page's filters and clicks


def test_the_command_line_needs_a_model_or_a_run(capsys):
    from open_r1.app.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args([])
    assert "give --model_name_or_path (ask a model), --run (browse an evaluation), or both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--model_name_or_path", "m", "--tools", "zoom", "--num_guesses", "3"])
    assert "1 with --tools" in capsys.readouterr().err
    assert parse_args(["--model_name_or_path", "m"]).num_guesses == 5
    assert parse_args(["--model_name_or_path", "m", "--tools", "zoom", "lookup"]).num_guesses == 1
    assert parse_args(["--run", "output/eval"]).model_name_or_path is None
