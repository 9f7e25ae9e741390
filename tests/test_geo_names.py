"""Place-name comparison: aliases and spellings match, substrings and near-misses do not."""

import pycountry
import pytest

from open_r1.geo import continent_of, country_code, country_name, normalise_name, same_country, same_place


@pytest.mark.parametrize("name", ["USA", "United States", "US", "United States of America", "us", "U.S.A.",
                                  "the United States", "USA "])
def test_united_states_aliases(name):
    assert country_code(name) == "US"
    assert same_country(name, "United States")


@pytest.mark.parametrize(
    "a, b",
    [("UK", "GB"), ("England", "United Kingdom"), ("Türkiye", "Turkey"), ("Viet Nam", "Vietnam"),
     ("Côte d'Ivoire", "Ivory Coast"), ("South Korea", "KR"), ("Bolivia", "BOL"), ("Czechia", "Czech Republic"),
     ("The Netherlands", "NL"), ("St. Lucia", "Saint Lucia"), ("Russia", "Russian Federation"), ("DRC", "CD")],
)
def test_same_country_across_names_and_codes(a, b):
    assert same_country(a, b)


@pytest.mark.parametrize("a, b", [("a", "Canada"), ("Canada", "a"), ("Niger", "Nigeria"), ("Korea", "North Korea"),
                                  ("Congo", "DRC"), ("", ""), (None, "US"), ("Guinea", "Guinea-Bissau")])
def test_different_countries(a, b):
    assert not same_country(a, b)


def test_unknown_country_names_match_only_themselves():
    assert country_code("Atlantis") is None
    assert same_country("Atlantis", "atlantis")
    assert not same_country("Atlantis", "Portugal")


@pytest.mark.parametrize(
    "a, b",
    [("Reykjavík", "Reykjavik"), ("Tromsø", "Tromso"), ("São Paulo", "Sao Paulo"), ("St. Petersburg",
     "Saint Petersburg"), ("Baden-Württemberg", "Baden-Wuerttemberg"), ("Kyoto Prefecture", "Kyoto"),
     ("New York City", "new york"), ("ÎLE-DE-FRANCE", "Ile-de-France")],
)
def test_same_place_spellings(a, b):
    assert same_place(a, b)


@pytest.mark.parametrize("a, b", [("a", "Canada"), ("York", "New York"), ("Paris", "Parisot"), ("", ""),
                                  (None, "Lisbon"), ("Lisbon", "Lisboa")])
def test_no_partial_credit_for_places(a, b):
    assert not same_place(a, b)


def test_normalise_name():
    assert normalise_name("  São-Paulo!! ") == "sao paulo"
    assert normalise_name("ZÜRICH") == "zurich"


def test_every_iso_country_has_a_continent():
    missing = [c.alpha_2 for c in pycountry.countries if continent_of(c.alpha_2) is None]
    assert missing == []


@pytest.mark.parametrize(
    "country, continent",
    [("PT", "Europe"), ("Japan", "Asia"), ("BR", "South America"), ("US", "North America"), ("Fiji", "Oceania"),
     ("Kenya", "Africa"), ("AQ", "Antarctica"), ("Kosovo", "Europe"), ("Atlantis", None), (None, None)],
)
def test_continent_of(country, continent):
    assert continent_of(country) == continent


def test_every_country_name_survives_the_answer_format():
    """The name written into a target or a reward's truth comes back, through an answer line, as the same code."""
    import pycountry

    from open_r1.answer import parse_answer, render_answer, wrap

    for country in pycountry.countries:
        name = country_name(country.alpha_2)
        parsed = parse_answer(wrap("x", render_answer(1.0, 2.0, name, "Region", "City")))
        assert country_code(parsed.country) == country.alpha_2, (country.alpha_2, name, parsed.country)


def test_country_name_prefers_common_names():
    assert country_name("BO") == "Bolivia"
    assert country_name("PT") == "Portugal"
    assert country_name("ZZ") is None
