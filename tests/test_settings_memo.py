"""TrainSettings checks each distinct set of values once: what was refused stays refused."""

import math

import pytest
from mnist_bench.core.config import ConfigError, TrainSettings


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ({"epochs": 1}, {"epochs": True}),  # 1 == True, but a bool is no epoch count
        ({"learning_rate": 1.0}, {"learning_rate": True}),
        ({"batch_size": 32}, {"batch_size": 32.5}),
        ({"train_limit": 600}, {"train_limit": 0}),
        ({"learning_rate": 0.001}, {"learning_rate": math.nan}),
    ],
)
def test_a_value_seen_valid_does_not_let_an_equal_looking_bad_one_through(good, bad):
    for _ in range(3):
        assert TrainSettings(**good)
        with pytest.raises(ConfigError):
            TrainSettings(**bad)


def test_an_unhashable_value_is_still_refused_in_one_line():
    with pytest.raises(ConfigError, match="epochs"):
        TrainSettings(epochs=[1])  # type: ignore[arg-type]
