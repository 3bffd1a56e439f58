"""seq2seq_rdrop.reporting.curves: a learning curve read at a step, and the mean curve over seeds."""
import numpy as np
import pytest

from seq2seq_rdrop.reporting.curves import mean_curve, value_at_step


def test_value_at_step_interpolates_caps_and_refuses_before_the_first_point():
    """Linear interpolation between evaluations; the last value past the end ('capped'); NaN before."""
    steps, values = np.array([50.0, 100.0, 150.0]), np.array([10.0, 20.0, 40.0])
    assert value_at_step(steps, values, 120) == (pytest.approx(28.0), "")
    assert value_at_step(steps, values, 100) == (20.0, "")
    assert value_at_step(steps, values, 400) == (40.0, "capped")
    assert np.isnan(value_at_step(steps, values, 10)[0])


def test_mean_curve_covers_the_steps_every_seed_has():
    """Two seeds evaluated at different steps: the mean is taken on the common range, each seed interpolated."""
    a = (np.array([0.0, 100.0, 200.0]), np.array([10.0, 20.0, 30.0]))
    b = (np.array([50.0, 150.0, 300.0]), np.array([12.0, 22.0, 40.0]))
    steps, mean, sd = mean_curve([a, b])
    assert steps.tolist() == [50.0, 100.0, 150.0, 200.0]
    assert mean.tolist() == pytest.approx([(15.0 + 12.0) / 2, (20.0 + 17.0) / 2, (25.0 + 22.0) / 2, (30.0 + 28.0) / 2])
    assert sd == pytest.approx(np.std([np.interp(steps, *a), np.interp(steps, *b)], axis=0, ddof=1))
