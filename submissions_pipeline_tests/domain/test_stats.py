"""The one percentile: nearest rank, rank = ceil(q/100 x n) clamped to 1..n."""

import pytest

from submissions_pipeline.domain.stats import percentile

ONE_TO_TEN = [float(v) for v in range(1, 11)]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (ONE_TO_TEN, 50, 5),  # rank ceil(5.0) = 5, not 6
        (ONE_TO_TEN, 95, 10),  # rank ceil(9.5) = 10
        ([float(v) for v in range(1, 21)], 95, 19),  # rank ceil(19.0) = 19
        ([1.0, 2.0, 3.0, 4.0], 50, 2),  # rank ceil(2.0) = 2
        (ONE_TO_TEN, 100, 10),  # the maximum
        (ONE_TO_TEN, 0, 1),  # rank 0 clamps to 1: the minimum
        ([7.5], 0, 7.5),
        ([7.5], 50, 7.5),
        ([7.5], 100, 7.5),
        ([float(v) for v in range(1, 26)], 28, 7),  # 0.28 x 25 is 7.000000000000001 in floats
    ],
)
def test_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_no_values_have_no_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([], 0) is None


def test_unsorted_input_is_ranked_not_taken_in_order() -> None:
    values = [9.0, 1.0, 10.0, 4.0, 2.0, 7.0, 3.0, 8.0, 6.0, 5.0]
    assert percentile(values, 50) == 5
    assert percentile(values, 95) == 10
    assert percentile(values, 0) == 1
    assert values[0] == 9.0, "the caller's list was reordered"
