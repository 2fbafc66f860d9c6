"""A picture marks its stalls' spans without working out their victims (ui.problem_marks):
the same spans as the report's stall findings point at."""

from __future__ import annotations

import pytest

from loopscope.tracer.spans import derive_spans
from loopscope.tracer.stalls import find_stalls
from loopscope.ui.problem_marks import flagged_spans, stalled_spans
from tests.tracer.test_stall_victims import MS, random_trace


@pytest.mark.parametrize("seed", range(20))
def test_a_picture_marks_the_spans_of_the_reports_stalls(seed: int) -> None:
    trace = random_trace(seed)
    spans = derive_spans(trace)
    for threshold in (100 * MS, 20 * MS):
        findings = find_stalls(trace, spans, threshold)
        assert stalled_spans(trace, spans, threshold) == set(flagged_spans(spans, findings))
        assert len(findings) == len(stalled_spans(trace, spans, threshold))
