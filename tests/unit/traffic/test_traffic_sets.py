"""The held-out batches of the traffic benchmark are the rule's, not someone's pick (issue #13)."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest

from tests.support import traffic_sets


@pytest.mark.parametrize("name", sorted(traffic_sets.SETS))
@pytest.mark.parametrize("batch", range(3, len(traffic_sets.BATCHES)))
def test_every_batch_from_the_third_on_is_what_the_rule_picks(name: str, batch: int) -> None:
    spec = traffic_sets.SETS[name]
    assert traffic_sets.rule_batch(name, batch) == spec.batches()[batch]


def test_the_unseen_batch_is_the_last_one_and_scored_windows_never_overlap() -> None:
    assert traffic_sets.BATCHES[-1] == traffic_sets.UNSEEN
    for spec in traffic_sets.SETS.values():
        ends = sorted(pd.Timestamp(end) for end in spec.windows().values())
        assert all((b - a).days >= 7 for a, b in pairwise(ends)), spec.name
