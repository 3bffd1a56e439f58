"""seq2seq_rdrop.reporting.statistics: the paired bootstraps against hand loops over the same generator's draws,
and Holm's adjustment."""
import numpy as np
import pytest

from seq2seq_rdrop.reporting.statistics import hierarchical_bootstrap, holm, mean_sd, paired_bootstrap


def test_bootstrap_resamples_example_indices_jointly_across_seeds():
    """One resample's statistic = mean over seeds of the mean difference at the SAME drawn indices:
    the percentile CI equals a hand loop over the same generator's draws."""
    diffs = np.array([[3.0, -1.0, 0.5, -2.0, 1.0], [0.2, -0.1, 0.4, 2.0, -3.0]])
    out = paired_bootstrap(diffs, n_boot=300, seed=7)
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 5, size=(300, 5))
    boot = np.array([np.mean([diffs[s, i].mean() for s in range(2)]) for i in idx])
    assert [out["ci_low"], out["ci_high"]] == pytest.approx(np.percentile(boot, [2.5, 97.5]).tolist())
    assert out["p_value"] == pytest.approx(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))


def test_hierarchical_bootstrap_resamples_seeds_and_one_shared_draw_of_examples():
    """One resample's statistic = mean over the drawn seeds of the mean difference at indices drawn once for
    all of them: the percentile CI equals a hand loop over the same generator's draws."""
    diffs = np.array([[3.0, -1.0, 0.5, -2.0, 1.0], [0.2, -0.1, 0.4, 2.0, -3.0], [1.0, 1.0, 0.0, 0.5, 0.5]])
    out = hierarchical_bootstrap(diffs, n_boot=200, seed=5)
    rng = np.random.default_rng(5)
    seeds, examples = rng.integers(0, 3, size=(200, 3)), rng.integers(0, 5, size=(200, 1, 5))
    boot = np.array([np.mean([diffs[s, examples[b, 0]].mean() for s in seeds[b]]) for b in range(200)])
    assert [out["ci_low"], out["ci_high"]] == pytest.approx(np.percentile(boot, [2.5, 97.5]).tolist())
    assert out["p_value"] == pytest.approx(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))


def test_seed_variance_widens_the_hierarchical_interval_beyond_the_example_only_one():
    """Seeds that disagree (one helps by 3, one hurts by 3, on every example alike): the example-only interval
    sees no noise, the interval over seeds and examples spans both."""
    diffs = np.array([[3.0] * 20, [-3.0] * 20, [1.0] * 20])
    examples_only = paired_bootstrap(diffs, n_boot=500, seed=0)
    both = hierarchical_bootstrap(diffs, n_boot=500, seed=0)
    assert examples_only["ci_low"] == examples_only["ci_high"] == pytest.approx(1 / 3)
    assert both["ci_low"] < 0 < both["ci_high"] and both["delta"] == pytest.approx(1 / 3)


def test_holm_multiplies_the_kth_smallest_p_by_m_minus_k_plus_1_and_keeps_the_order():
    assert holm([0.01, 0.04, 0.03, float("nan")]) == pytest.approx([0.03, 0.06, 0.06, float("nan")], nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_mean_sd_is_the_sample_sd_and_nan_where_undefined():
    assert mean_sd([1.0, 3.0]) == (2.0, pytest.approx(np.std([1.0, 3.0], ddof=1)))
    assert mean_sd([5.0])[0] == 5.0 and np.isnan(mean_sd([5.0])[1])
    assert all(np.isnan(v) for v in mean_sd([]))
