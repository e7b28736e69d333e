"""The what-if HTML report: numbers, totals, escaping, self-containment, accessibility, empties."""

from __future__ import annotations

import copy
import html as htmllib
import re
from html.parser import HTMLParser
from typing import Any

import pytest

from immigrationos.priority.report import (
    TOP_GROUPS,
    GroupRow,
    _luminance,
    build_matrix,
    heat_colour,
    ink_on,
    num,
    render_comparison_html,
    top_groups,
)

TIERS_A = [
    {"id": "national-security", "label": "Threat to national security", "rank": 1, "lead": True},
    {"id": "public-safety", "label": "Threat to public safety", "rank": 2, "lead": True},
    {"id": "border-security", "label": "Threat to border security", "rank": 3, "lead": True},
    {"id": "not-a-priority", "label": "Not an enforcement priority", "rank": 4, "lead": False},
]
TIERS_B = [
    {"id": "criminal", "label": "Criminal convictions", "rank": 1, "lead": True},
    {"id": "final-order", "label": "Final orders of removal", "rank": 2, "lead": True},
    {"id": "expedited", "label": "Eligible for expedited removal", "rank": 3, "lead": True},
    {"id": "removable", "label": "Other removable noncitizens", "rank": 4, "lead": True},
    {"id": "not-a-priority", "label": "Not removable on the record", "rank": 5, "lead": False},
]
MATRIX = [
    {"from": "national-security", "to": "criminal", "count": 3},
    {"from": "public-safety", "to": "criminal", "count": 85},
    {"from": "border-security", "to": "expedited", "count": 40},
    {"from": "border-security", "to": "removable", "count": 7},
    {"from": "not-a-priority", "to": "criminal", "count": 120},
    {"from": "not-a-priority", "to": "final-order", "count": 233},
    {"from": "not-a-priority", "to": "removable", "count": 412},
    {"from": "not-a-priority", "to": "not-a-priority", "count": 2130},
]
# Row totals 3, 85, 47, 2895; column totals 208, 233, 40, 419, 2130; all 3030.


def _groups(n: int, prefix: str = "G") -> list[dict[str, Any]]:
    """``n`` groups; group i has 1000 - i persons, i leads under A and 2i under B."""
    return [
        {"group": f"{prefix}{i:02d}", "leads_a": i, "leads_b": 2 * i, "persons": 1000 - i}
        for i in range(n)
    ]


def _sample() -> dict[str, Any]:
    return {
        "a": {
            "policy": "dhs-2021-guidelines@1.0.0",
            "title": "Guidelines for the enforcement of civil immigration law (2021 framework)",
            "run_id": "PR-0001",
        },
        "b": {
            "policy": "dhs-2025-enforcement@1.0.0",
            "title": "Enforcement against all removable noncitizens (2025 framework)",
            "run_id": "PR-0002",
        },
        "index_version": "IX-20261122-01",
        "as_of": "2026-11-22",
        "persons": 3030,
        "tiers_a": TIERS_A,
        "tiers_b": TIERS_B,
        "matrix": MATRIX,
        "by": {
            "nationality": _groups(18, "N"),
            "office": [{"group": "HOU", "leads_a": 30, "leads_b": 400, "persons": 1500}],
            "age_band": [
                {"group": "18-24", "leads_a": 20, "leads_b": 150, "persons": 600},
                {"group": "65+", "leads_a": 2, "leads_b": 60, "persons": 200},
            ],
        },
        "changed": [
            {
                "person_id": "P-000123",
                "from": "not-a-priority",
                "to": "removable",
                "score_a": -3.0,
                "score_b": 2.5,
                "rules_a": [
                    {
                        "id": "long_presence",
                        "label": "Lengthy presence in the United States",
                        "kind": "mitigating",
                        "weight": 3.0,
                    }
                ],
                "rules_b": [
                    {"id": "overstay", "label": "Overstay", "kind": "aggravating", "weight": 2.5}
                ],
            },
            {
                "person_id": "P-000456",
                "from": "not-a-priority",
                "to": "final-order",
                "score_a": 0.0,
                "score_b": 4.0,
                "rules_a": [],
                "rules_b": [
                    {
                        "id": "final_order",
                        "label": "Final order",
                        "kind": "aggravating",
                        "weight": 4,
                    }
                ],
            },
        ],
        "changed_total": 1234,
        "generated_at": "2026-11-22T10:00:00+00:00",
    }


class _Tables(HTMLParser):
    """Collects every table as caption plus rows of cell texts, and every svg's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self.svgs: list[dict[str, str | None]] = []
        self.svg_titles: list[str] = []
        self.headings: list[int] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._svg_depth = 0
        self._in_svg_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svgs.append(dict(attrs))
            self.svg_titles.append("")
        self._svg_depth += tag == "svg"
        self._in_svg_title = tag == "title" and self._svg_depth > 0
        if re.fullmatch(r"h[1-6]", tag):
            self.headings.append(int(tag[1]))
        if tag == "table":
            self.tables.append({"caption": "", "rows": [], "attrs": dict(attrs)})
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg_depth -= 1
        if tag == "title":
            self._in_svg_title = False
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1]["caption"] = " ".join("".join(self._caption).split())
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)
        if self._in_svg_title and self.svg_titles and not self.svg_titles[-1]:
            self.svg_titles[-1] = data


def _parse(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


def _table(parsed: _Tables, caption_starts: str) -> list[list[str]]:
    hits = [t for t in parsed.tables if t["caption"].startswith(caption_starts)]
    assert len(hits) == 1, [t["caption"] for t in parsed.tables]
    return hits[0]["rows"]


def _text(html: str) -> str:
    """The page's visible words: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture(scope="module")
def sample_html() -> str:
    return render_comparison_html(_sample())


def test_matrix_cells_and_totals(sample_html: str) -> None:
    rows = _table(_parse(sample_html), "Persons by tier under A")
    head, body, foot = rows[0], rows[1:-1], rows[-1]
    assert len(head) == 1 + len(TIERS_B) + 1  # corner, five tiers of B, total
    assert head[1].startswith("Criminal convictions (criminal) lead")
    assert head[5].startswith("Not removable on the record (not-a-priority)")
    assert "lead" not in head[5]
    assert [r[0].split(" (")[0] for r in body] == [t["label"] for t in TIERS_A]
    assert body[0][1:] == ["3", "0", "0", "0", "0", "3"]
    assert body[1][1:] == ["85", "0", "0", "0", "0", "85"]
    assert body[2][1:] == ["0", "0", "40", "7", "0", "47"]
    assert body[3][1:] == ["120", "233", "0", "412", "2,130", "2,895"]
    assert foot == ["Total under B", "208", "233", "40", "419", "2,130", "3,030"]


def test_header_names_both_policies_and_the_no_action_sentence(sample_html: str) -> None:
    text = _text(sample_html)
    for needle in (
        "dhs-2021-guidelines@1.0.0",
        "dhs-2025-enforcement@1.0.0",
        "(2021 framework)",
        "run PR-0002",
        "IX-20261122-01",
        "2026-11-22T10:00:00+00:00",
        "Persons 3,030",
        "Leads under A 135",  # 3 + 85 + 47
        "Leads under B 900",  # 3030 - 2130
        "A priority is never an action: a lead only lets an officer open an encounter",
        "legal blocks are shown on each person's explanation",
    ):
        assert needle in text, needle


def test_rows_follow_rank_not_input_order() -> None:
    comparison = _sample()
    comparison["tiers_a"] = list(reversed(TIERS_A))
    rows = _table(_parse(render_comparison_html(comparison)), "Persons by tier under A")
    assert [r[0].split(" (")[0] for r in rows[1:-1]] == [t["label"] for t in TIERS_A]


def test_matrix_tier_missing_from_the_tier_list_still_counts() -> None:
    matrix = build_matrix([], [], [{"from": "x", "to": "y", "count": 5}])
    assert matrix.cell("x", "y") == 5
    assert matrix.total == 5
    with pytest.raises(KeyError):
        matrix.cell("y", "x")


def test_no_external_references(sample_html: str) -> None:
    assert "http://" not in sample_html
    assert "https://" not in sample_html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:[a-z]+:)?//""", sample_html, re.I)
    assert not re.search(r"<(?:script|link|img|iframe|object)\b", sample_html, re.I)
    assert "@import" not in sample_html
    assert "url(" not in sample_html


def test_malicious_names_are_escaped() -> None:
    evil = '<script>alert("x")</script>'
    comparison = _sample()
    comparison["a"]["title"] = evil
    comparison["b"]["policy"] = evil
    comparison["by"]["office"] = [{"group": evil, "leads_a": 1, "leads_b": 2, "persons": 3}]
    comparison["changed"][0]["rules_b"][0]["label"] = evil
    comparison["tiers_b"] = [{**TIERS_B[0], "label": evil}, *TIERS_B[1:]]
    html = render_comparison_html(comparison)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    office = _table(_parse(html), "Leads by office")
    assert office[1][0] == evil  # the parser unescapes: the text survived, as text


def test_other_sums_groups_beyond_the_top_fifteen(sample_html: str) -> None:
    rows = _table(_parse(sample_html), "Leads by nationality")[1:-1]
    assert len(rows) == TOP_GROUPS + 1
    # Largest by persons first: N00 .. N14 shown, N15, N16, N17 summed.
    assert [r[0] for r in rows[:TOP_GROUPS]] == [f"N{i:02d}" for i in range(TOP_GROUPS)]
    persons, leads_a, leads_b = 985 + 984 + 983, 15 + 16 + 17, 30 + 32 + 34
    assert rows[-1] == ["other (3 groups)", f"{persons:,}", str(leads_a), str(leads_b), "+48"]


def test_top_groups_sorts_by_persons_and_keeps_small_inputs_whole() -> None:
    groups = [
        {"group": "B", "leads_a": 1, "leads_b": 1, "persons": 5},
        {"group": "A", "leads_a": 2, "leads_b": 0, "persons": 9},
    ]
    assert [r.group for r in top_groups(groups)] == ["A", "B"]
    rows = top_groups(_groups(20), limit=15)
    assert rows[-1] == GroupRow(
        "other", 15 + 16 + 17 + 18 + 19, 2 * 85, 985 + 984 + 983 + 982 + 981, 5
    )
    assert len(top_groups(_groups(15))) == 15  # exactly fifteen: no other row


def test_every_svg_is_an_image_with_a_title(sample_html: str) -> None:
    parsed = _parse(sample_html)
    assert len(parsed.svgs) == 4  # heat map and three bar charts
    for attrs, title in zip(parsed.svgs, parsed.svg_titles, strict=True):
        assert attrs.get("role") == "img"
        assert attrs.get("viewbox")
        assert attrs.get("width") == "100%"
        assert title.strip()
        labelled = (attrs.get("aria-labelledby") or "").split()
        assert f"{attrs['id']}-title" in labelled
    assert len({a["id"] for a in parsed.svgs}) == len(parsed.svgs)


def test_bar_chart_draws_both_values_of_each_group(sample_html: str) -> None:
    assert "HOU: 30 leads under A" in sample_html
    assert "HOU: 400 leads under B" in sample_html


def test_accessibility_basics(sample_html: str) -> None:
    parsed = _parse(sample_html)
    assert re.search(r'<html lang="en">', sample_html)
    assert parsed.headings[0] == 1
    assert all(b - a <= 1 for a, b in zip(parsed.headings, parsed.headings[1:], strict=False))
    assert all(t["caption"] for t in parsed.tables)
    assert 'name="viewport"' in sample_html


def test_changed_persons_with_both_explanations(sample_html: str) -> None:
    assert "Showing 2 of 1,234 persons whose tier changed" in sample_html
    rows = _table(_parse(sample_html), "Persons whose tier changed")
    assert rows[1][0] == "P-000123"
    assert rows[1][1].startswith("Not an enforcement priority")
    assert rows[1][2] == "-3"
    assert (
        rows[1][3] == "mitigating, weight 3: Lengthy presence in the United States (long_presence)"
    )
    assert rows[1][4].startswith("Other removable noncitizens (removable) lead")
    assert rows[1][5] == "2.5"
    assert rows[1][6] == "aggravating, weight 2.5: Overstay (overstay)"
    assert rows[2][3] == "No rule fired"


@pytest.mark.parametrize(
    "comparison",
    [
        {},
        {
            "a": {"policy": "p@1", "title": "t", "run_id": "r"},
            "b": {"policy": "q@1", "title": "t", "run_id": "s"},
            "tiers_a": TIERS_A,
            "tiers_b": TIERS_B,
            "matrix": [],
            "by": {"nationality": [], "office": [], "age_band": []},
            "changed": [],
            "changed_total": 0,
            "persons": 0,
        },
    ],
    ids=["bare", "empty-lists"],
)
def test_empty_comparison_says_nothing_changed(comparison: dict[str, Any]) -> None:
    html = render_comparison_html(comparison)
    parsed = _parse(html)
    assert parsed.tables == []
    assert parsed.svgs == []
    assert "no person was placed in a tier under either policy, so nothing changed" in html
    assert "No groups by nationality: nothing to compare" in html
    assert "No groups by age band: nothing to compare" in html
    assert "Nothing changed: no person's tier differs" in _text(html)


def test_no_changed_persons_listed_but_some_counted() -> None:
    comparison = _sample()
    comparison["changed"] = []
    html = render_comparison_html(comparison)
    assert "Showing 0 of 1,234 persons whose tier changed" in html
    assert "Nothing changed" not in html


def test_input_is_not_mutated() -> None:
    comparison = _sample()
    before = copy.deepcopy(comparison)
    render_comparison_html(comparison)
    assert comparison == before


def test_heat_map_text_keeps_contrast() -> None:
    for count in range(0, 101, 5):
        rgb = heat_colour(count, 100)
        lum = _luminance(rgb)
        ink = 0.0 if ink_on(rgb) == "#000000" else 1.0
        lighter, darker = max(lum, ink), min(lum, ink)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5


def test_num() -> None:
    assert num(3030) == "3,030"
    assert num(-3.0) == "-3"
    assert num(2.5) == "2.5"
    assert num(None) == "—"
