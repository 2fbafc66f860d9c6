"""One row per event code (tracer.events.CODES), and every place that must know each code.

A new state or instant added to `Code` but not to the table, to the narration, to a theme or
to the layout's merge order fails here instead of being drawn as "poll" or skipped silently.
"""

from __future__ import annotations

import pytest

from loopscope.tracer.events import CODE_INFO, CODE_NAMES, CODES, FIRST_INSTANT, Code
from loopscope.tracer.narrate import NARRATORS
from loopscope.ui.layout import LEGEND_STATE_ORDER, STATES_BY_RANK
from loopscope.ui.theme import THEMES


def test_every_code_has_exactly_one_row_with_a_name_of_its_own() -> None:
    assert sorted(info.code for info in CODES) == sorted(Code)
    names = [info.name for info in CODES]
    assert len(set(names)) == len(names)
    assert {info.code: info.name for info in CODES} == CODE_NAMES


@pytest.mark.parametrize("code", list(Code), ids=lambda code: code.name)
def test_every_code_is_narrated_coloured_and_placed(code: Code) -> None:
    info = CODE_INFO[code]
    assert code in NARRATORS, f"{code.name} has no narration"
    is_state = code < FIRST_INSTANT
    for theme in THEMES.values():
        if is_state:
            assert info.colour == code
            assert code in theme.states, f"the {theme.name} theme has no colour for {code.name}"
        elif info.colour is not None:
            assert isinstance(info.colour, str) and isinstance(getattr(theme, info.colour), str)
    if is_state:
        assert info.merge_rank is not None
        assert code in STATES_BY_RANK and code in LEGEND_STATE_ORDER
    else:
        assert info.merge_rank is None and code not in STATES_BY_RANK


def test_merged_columns_rank_every_state_once() -> None:
    ranks = [CODE_INFO[code].merge_rank for code in STATES_BY_RANK]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert STATES_BY_RANK[-1] == Code.RUNNING  # a lane that ran at all in a pixel shows running
    assert STATES_BY_RANK[0] == Code.POLL  # the loop waiting is what any other state hides
