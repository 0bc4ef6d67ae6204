"""Checks on the trade-mission catalogue shared/data/missions.toml.

The file is read with tomllib only, so these tests hold whatever loads it.
"""

import functools
import re
import tomllib
from pathlib import Path
from typing import Any

MISSIONS_TOML = Path(__file__).resolve().parents[1] / "shared" / "data" / "missions.toml"

KINDS_IN_ORDER = ["regional", "central_enterprise", "nhc", "industrial"]

# GB/T 2260 provincial-level codes, in standard order.
PROVINCIAL_PREFIXES = [
    "11", "12", "13", "14", "15",
    "21", "22", "23",
    "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46",
    "50", "51", "52", "53", "54",
    "61", "62", "63", "64", "65",
]  # fmt: skip
MUNICIPALITIES = {"11": "beijing", "12": "tianjin", "31": "shanghai", "50": "chongqing"}
PLANNED_CITIES = {"dalian": "2102", "qingdao": "3702", "ningbo": "3302", "xiamen": "3502", "shenzhen": "4403"}
XPCC_PREFIXES = {"66", "6590"}

SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
REFERRAL = re.compile(r"^[A-Z0-9]{8,12}$")
CJK = re.compile(r"[\u4e00-\u9fff]")


@functools.cache
def _data() -> dict[str, Any]:
    with MISSIONS_TOML.open("rb") as f:
        return tomllib.load(f)


def _missions() -> list[dict[str, Any]]:
    missions: list[dict[str, Any]] = _data()["mission"]
    return missions


def _by_code() -> dict[str, dict[str, Any]]:
    return {m["code"]: m for m in _missions()}


def _subs(mission: dict[str, Any]) -> list[dict[str, Any]]:
    subs: list[dict[str, Any]] = mission.get("sub_mission", [])
    return subs


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [m for m in _missions() if m["kind"] == kind]


def _provincial() -> list[dict[str, Any]]:
    return [
        m
        for m in _of_kind("regional")
        if m["code"] != "xpcc" and any(len(p) == 2 for p in m["division_codes"])
    ]


def _route(division_code: str) -> str | None:
    """The regional mission whose prefix is the longest match (what the system does)."""
    best: tuple[int, str] | None = None
    for m in _of_kind("regional"):
        for p in m["division_codes"]:
            if division_code.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), m["code"])
    return None if best is None else best[1]


def _route_sub(division_code: str) -> str | None:
    mission = _route(division_code)
    if mission is None:
        return None
    best: tuple[int, str] | None = None
    for s in _subs(_by_code()[mission]):
        for p in s.get("division_codes", []):
            if division_code.startswith(p) and (best is None or len(p) > best[0]):
                best = (len(p), s["code"])
    return None if best is None else best[1]


def test_file_is_utf8_and_parses() -> None:
    MISSIONS_TOML.read_bytes().decode("utf-8")
    assert _missions()


def test_every_mission_has_the_schema_fields() -> None:
    for m in _missions():
        assert m["kind"] in KINDS_IN_ORDER, m["code"]
        for key in ("code", "name_zh", "name_en"):
            assert isinstance(m[key], str), (m.get("code"), key)
        assert isinstance(m.get("division_codes", []), list), m["code"]
        assert isinstance(m.get("referral_codes", []), list), m["code"]
        for s in _subs(m):
            for key in ("code", "name_zh", "name_en"):
                assert isinstance(s[key], str), (s.get("code"), key)


def test_missions_are_ordered_by_kind() -> None:
    ranks = [KINDS_IN_ORDER.index(m["kind"]) for m in _missions()]
    assert ranks == sorted(ranks)


def test_31_provincial_level_regions_in_gbt2260_order() -> None:
    provincial = _provincial()
    assert len(provincial) == 31
    prefixes = [p for m in provincial for p in m["division_codes"]]
    assert prefixes == PROVINCIAL_PREFIXES
    by_code = _by_code()
    for prefix, code in MUNICIPALITIES.items():
        assert by_code[code]["division_codes"] == [prefix]


def test_planned_cities_and_xpcc_are_their_own_missions() -> None:
    by_code = _by_code()
    for code, prefix in PLANNED_CITIES.items():
        assert by_code[code]["kind"] == "regional"
        assert by_code[code]["division_codes"] == [prefix]
    assert by_code["xpcc"]["kind"] == "regional"
    assert set(by_code["xpcc"]["division_codes"]) == XPCC_PREFIXES
    # the regional missions are exactly: 31 regions, 5 planned cities, XPCC
    assert len(_of_kind("regional")) == 31 + len(PLANNED_CITIES) + 1


def test_division_prefixes_are_well_formed_and_unambiguous() -> None:
    seen: dict[str, str] = {}
    for m in _missions():
        if m["kind"] != "regional":
            assert m.get("division_codes", []) == [], m["code"]
            for s in _subs(m):
                assert s.get("division_codes", []) == [], s["code"]
            continue
        assert m["division_codes"], m["code"]
        for p in m["division_codes"]:
            assert re.fullmatch(r"\d{2}|\d{4}|\d{6}", p), (m["code"], p)
            assert p not in seen, f"{p} on both {seen[p]} and {m['code']}"
            seen[p] = m["code"]


def test_regional_sub_missions_route_to_their_own_mission() -> None:
    planned = set(PLANNED_CITIES.values())
    all_sub_prefixes: set[str] = set()
    for m in _of_kind("regional"):
        for s in _subs(m):
            prefixes = s.get("division_codes", [])
            assert prefixes, s["code"]
            for p in prefixes:
                assert re.fullmatch(r"\d{4}|\d{6}", p), (s["code"], p)
                assert any(p.startswith(mp) and p != mp for mp in m["division_codes"]), (s["code"], p)
                assert p not in all_sub_prefixes, (s["code"], p)
                all_sub_prefixes.add(p)
                # longest prefix must land back on this mission
                assert _route(p) == m["code"], (s["code"], p, _route(p))
                if m["code"] not in PLANNED_CITIES:
                    assert p[:4] not in planned, (s["code"], p)
                if m["code"] != "xpcc":
                    assert not p.startswith("6590"), (s["code"], p)


def test_no_planned_city_under_its_province() -> None:
    by_code = _by_code()
    for province, city in [
        ("liaoning", "2102"),
        ("shandong", "3702"),
        ("zhejiang", "3302"),
        ("fujian", "3502"),
        ("guangdong", "4403"),
    ]:
        prefixes = {p for s in _subs(by_code[province]) for p in s["division_codes"]}
        assert not any(p.startswith(city) for p in prefixes), province


def test_prefecture_sub_missions_for_named_provinces() -> None:
    # prefecture-level units per province (GB/T 2260), less the planned city
    expected = {
        "jiangsu": 13,
        "zhejiang": 10,
        "guangdong": 20,
        "shandong": 15,
        "fujian": 8,
        "liaoning": 13,
        "hebei": 11,
        "henan": 17,
        "hubei": 13,
        "sichuan": 21,
        "anhui": 16,
    }
    by_code = _by_code()
    for code, n in expected.items():
        four = [s for s in _subs(by_code[code]) if any(len(p) == 4 for p in s["division_codes"])]
        assert len(four) == n, (code, len(four))


def test_municipalities_have_district_sub_missions() -> None:
    by_code = _by_code()
    for code in ("beijing", "tianjin", "shanghai"):
        subs = _subs(by_code[code])
        assert len(subs) == 16, code
        assert all(len(p) == 6 for s in subs for p in s["division_codes"])
    # first code of each sub-mission is the current one; any others are retired codes
    shanghai = {s["division_codes"][0] for s in _subs(by_code["shanghai"])}
    assert shanghai == {
        "310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112",
        "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151",
    }  # fmt: skip
    chongqing = [s for s in _subs(by_code["chongqing"]) if s["division_codes"][0].startswith("5001")]
    assert len(chongqing) == 26


def test_routing_of_sample_credit_codes() -> None:
    # characters 3-8 of a Unified Social Credit Code are the division code
    samples = {
        "91110105MA00000000": ("beijing", "beijing-chaoyang"),
        "91310115MA1K000000": ("shanghai", "shanghai-pudong"),
        "91440300MA5D000000": ("shenzhen", None),
        "91440305MA5D000000": ("shenzhen", "shenzhen-nanshan"),
        "91440104MA59000000": ("guangdong", "guangdong-guangzhou"),
        "91330212MA2C000000": ("ningbo", "ningbo-yinzhou"),
        "91330100MA27000000": ("zhejiang", "zhejiang-hangzhou"),
        "91320505MA1M000000": ("jiangsu", "jiangsu-suzhou"),
        "91370211MA3C000000": ("qingdao", "qingdao-huangdao"),
        "91210213MA0Q000000": ("dalian", "dalian-jinzhou"),
        "91350206MA2Y000000": ("xiamen", "xiamen-huli"),
        "91659001MA77000000": ("xpcc", None),
        "91660000MA77000000": ("xpcc", None),
        "91650102MA77000000": ("xinjiang", "xinjiang-urumqi"),
        "91500229MA5U000000": ("chongqing", "chongqing-chengkou"),
        "91429004MA49000000": ("hubei", "hubei-xiantao"),
        "91469005MA5T000000": ("hainan", "hainan-wenchang"),
        # retired codes in credit codes issued before a merger
        "91371202MA3C000000": ("shandong", "shandong-jinan"),
        "91310108MA1G000000": ("shanghai", "shanghai-jingan"),
    }
    for uscc, (mission, sub) in samples.items():
        division = uscc[2:8]
        assert _route(division) == mission, (uscc, _route(division))
        assert _route_sub(division) == sub, (uscc, _route_sub(division))


def test_codes_unique_slug_shaped_and_prefixed() -> None:
    seen: set[str] = set()
    for m in _missions():
        code = m["code"]
        assert SLUG.match(code), code
        assert code not in seen, code
        seen.add(code)
        for s in _subs(m):
            assert SLUG.match(s["code"]), s["code"]
            assert s["code"].startswith(code + "-"), s["code"]
            assert s["code"] not in seen, s["code"]
            seen.add(s["code"])


def test_names_present_in_both_languages() -> None:
    entries = [e for m in _missions() for e in [m, *_subs(m)]]
    for e in entries:
        zh, en = e["name_zh"], e["name_en"]
        assert zh.strip() == zh and zh, e["code"]
        assert en.strip() == en and en, e["code"]
        assert CJK.search(zh), (e["code"], zh)
        assert not CJK.search(en), (e["code"], en)
    regional_names = [m["name_zh"] for m in _of_kind("regional")]
    assert len(set(regional_names)) == len(regional_names)


def test_central_enterprise_mission() -> None:
    central = _of_kind("central_enterprise")
    assert [m["code"] for m in central] == ["central-enterprises"]
    groups = _subs(central[0])
    assert len(groups) >= 90
    zh = [g["name_zh"] for g in groups]
    en = [g["name_en"] for g in groups]
    assert len(set(zh)) == len(zh)
    assert len(set(en)) == len(en)
    joined = "".join(zh)
    for name in ("国家电网", "中国石油化工", "中国移动", "中国远洋海运", "中国宝武", "中国中车", "中粮"):
        assert name in joined, name


def test_nhc_mission() -> None:
    nhc = _of_kind("nhc")
    assert [m["code"] for m in nhc] == ["nhc"]
    assert nhc[0]["referral_codes"] == []


def test_industrial_missions_and_referral_codes() -> None:
    industrial = _of_kind("industrial")
    assert len(industrial) >= 6
    seen: set[str] = set()
    for m in _missions():
        refs = m.get("referral_codes", [])
        if m["kind"] != "industrial":
            assert refs == [], m["code"]
            continue
        assert m["code"].startswith("industrial-"), m["code"]
        assert 2 <= len(refs) <= 3, m["code"]
        for r in refs:
            assert REFERRAL.match(r), (m["code"], r)
            assert r not in seen, r
            seen.add(r)
    assert "industrial-cccme" in {m["code"] for m in industrial}
