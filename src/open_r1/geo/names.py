"""Place-name comparison: models and datasets spell the same place differently ("USA", "United States",
"us"; "Reykjavík", "Reykjavik"; "St. Petersburg", "Saint Petersburg"). Comparing normalised names keeps a
correct answer from losing credit to spelling, while whole-name equality (never substrings) keeps "a" from
matching "Canada".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import pycountry

__all__ = [
    "CONTINENTS",
    "continent_of",
    "country_code",
    "country_name",
    "normalise_name",
    "same_country",
    "same_place",
]

# Letters that carry no combining mark under NFKD and so survive accent stripping on their own.
_FOLD = str.maketrans({"ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "ł": "l", "Ł": "l",
                       "đ": "d", "Đ": "d", "ð": "d", "Ð": "d", "þ": "th", "Þ": "th", "ı": "i", "ß": "ss"})
_NON_WORD = re.compile(r"[\W_]+")
_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "mt": "mount", "ft": "fort", "pt": "port"}
# Words that name the kind of place rather than the place ("Kyoto Prefecture", "State of Bahia").
_GENERIC_WORDS = frozenset(
    "the of city town village municipality state province prefecture region county district department "
    "oblast governorate territory federal capital".split()
)
_GENERIC_KEEP = frozenset({"capital"})  # "Capital Region" is GeoNames' name for Reykjavík's region


@lru_cache(maxsize=65536)
def normalise_name(text: str) -> str:
    """Case-, accent- and punctuation-free form of a name: 'São-Paulo ' -> 'sao paulo'."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", text.translate(_FOLD))
    if not folded.isascii():
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return " ".join(_NON_WORD.sub(" ", folded.casefold()).split())


def _expand(name: str) -> str:
    """Spell out abbreviations in a multi-word name ('st lucia' -> 'saint lucia'); codes stay as they are."""
    words = name.split()
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words) if len(words) > 1 else name


@lru_cache(maxsize=65536)
def _place_key(text: str) -> str:
    """Normalised name without generic words, unless nothing else is left."""
    name = _expand(normalise_name(text))
    core = [word for word in name.split() if word not in _GENERIC_WORDS or word in _GENERIC_KEEP]
    # GeoNames' ASCII names spell umlauts the German way ("Baden-Wuerttemberg"); fold both spellings alike.
    return _UMLAUT_PAIRS.sub(_first_letter, " ".join(core) if core else name)


_UMLAUT_PAIRS = re.compile(r"(?<=[^aeiou\s])([aou])e")


def _first_letter(m: re.Match) -> str:
    return m.group(1)


def same_place(a: str | None, b: str | None) -> bool:
    """Whether two names denote the same place: equal after normalisation, never by substring."""
    if not a or not b:
        return False
    key_a, key_b = _place_key(a), _place_key(b)
    return bool(key_a) and key_a == key_b


# Names people write that ISO 3166 and pycountry's common names do not carry.
_COUNTRY_ALIASES = {
    "US": "usa|u s a|u s|america|united states of america",
    "GB": "uk|u k|great britain|britain|england|scotland|wales|northern ireland|united kingdom",
    "KR": "korea|republic of korea|s korea",
    "KP": "n korea|dprk",
    "RU": "russia",
    "CD": "dr congo|drc|democratic republic of congo|democratic republic of the congo|congo kinshasa",
    "CG": "republic of the congo|republic of congo|congo brazzaville",
    "CI": "ivory coast|cote divoire",
    "CV": "cape verde",
    "SZ": "swaziland",
    "MK": "macedonia",
    "MM": "burma",
    "NL": "holland",
    "VA": "vatican|vatican city",
    "PS": "palestine",
    "BN": "brunei",
    "FM": "micronesia",
    "TL": "east timor",
    "GM": "gambia",
    "BS": "bahamas",
    "AE": "uae|emirates",
    "HK": "hong kong sar",
    "MO": "macau|macau sar",
    "XK": "kosovo",
    "CZ": "czech republic",
    "TR": "turkey|turkiye",
    "SY": "syria",
    "LA": "laos",
    "VN": "vietnam",
    "FK": "falkland islands|falklands",
    "VG": "british virgin islands",
    "VI": "us virgin islands",
    "SJ": "svalbard",
}
# Codes outside ISO 3166-1 that GeoNames (and so reverse geocoding) uses.
_EXTRA_NAMES = {"XK": "Kosovo"}
# Names to write where ISO's has a comma ("Congo, The Democratic Republic of the"): an answer line is read up to
# its first comma, so the ISO name would come back as another country (Congo, CG).
_DISPLAY_NAMES = {"CD": "DR Congo", "VG": "British Virgin Islands", "VI": "US Virgin Islands"}


@lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    """Normalised country name or code -> ISO 3166-1 alpha-2, built once from pycountry."""
    index: dict[str, str] = {}
    derived: dict[str, set[str]] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        for attr in ("alpha_2", "alpha_3", "name", "common_name", "official_name"):
            value = getattr(country, attr, None)
            if value:
                index[normalise_name(value)] = code
        # "Bolivia, Plurinational State of" -> "bolivia"; "Cocos (Keeling) Islands" -> "cocos islands"
        for variant in (country.name.split(",")[0], re.sub(r"\(.*?\)", " ", country.name)):
            derived.setdefault(normalise_name(variant), set()).add(code)
    for key, codes in derived.items():
        if len(codes) == 1 and key not in index:  # "korea" names two countries: left to the alias table
            index[key] = next(iter(codes))
    for code, aliases in _COUNTRY_ALIASES.items():
        for alias in aliases.split("|"):
            index[normalise_name(alias)] = code
    for code, name in _EXTRA_NAMES.items():
        index[normalise_name(name)] = code
        index[code.casefold()] = code
    return index


@lru_cache(maxsize=65536)
def country_code(name: str | None) -> str | None:
    """ISO 3166-1 alpha-2 code for a country name, alias or ISO code; None if it names no country."""
    if not name or not isinstance(name, str):
        return None
    index = _country_index()
    key = normalise_name(name)
    for candidate in (key, _expand(key)):
        for form in (candidate, candidate[4:] if candidate.startswith("the ") else None):
            if form and form in index:
                return index[form]
    return None


def country_name(code: str) -> str | None:
    """Common English name of an alpha-2 code ('BO' -> 'Bolivia'), for rendering labels."""
    if code in _EXTRA_NAMES or code in _DISPLAY_NAMES:
        return _EXTRA_NAMES.get(code) or _DISPLAY_NAMES[code]
    country = pycountry.countries.get(alpha_2=code.upper()) if code else None
    if country is None:
        return None
    return getattr(country, "common_name", None) or country.name


def same_country(a: str | None, b: str | None) -> bool:
    """Whether two country names/codes denote one country. Unknown names only match themselves."""
    if not a or not b:
        return False
    code_a, code_b = country_code(a), country_code(b)
    if code_a is not None or code_b is not None:
        return code_a == code_b
    key_a = normalise_name(a)
    return bool(key_a) and key_a == normalise_name(b)


# Continent of each ISO 3166-1 alpha-2 code (plus GeoNames' XK), following GeoNames' countryInfo
# assignment (Russia in Europe; Turkey, Cyprus's neighbours in the Caucasus and Kazakhstan in Asia).
CONTINENTS: dict[str, str] = {
    code: continent
    for continent, codes in {
        "Africa": "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS LY MA MG "
        "ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT ZA ZM ZW",
        "Antarctica": "AQ BV GS HM TF",
        "Asia": "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM "
        "MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE",
        "Europe": "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI "
        "LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK",
        "North America": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ MS "
        "MX NI PA PM PR SV SX TC TT US VC VG VI",
        "Oceania": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
        "South America": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
    }.items()
    for code in codes.split()
}


def continent_of(country: str | None) -> str | None:
    """Continent of a country given by code or name ('PT' or 'Portugal' -> 'Europe'); None if unknown."""
    code = country_code(country) if country else None
    return CONTINENTS.get(code) if code else None
