"""Background, curtain geometry, flux density and kriging/integration, each against a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist

from tasks.gasflux import baseline as background
from tasks.gasflux import curtain, flux, kriging
from tasks.gasflux.config import merge_config
from tests.support.plume import PlumeFlight, simulate

CONFIG = merge_config(None)[0]


def _series(rate_hz: float, seed: int) -> pd.DataFrame:
    """A drifting background with one Gaussian plume crossing, sampled at `rate_hz`."""
    rng = np.random.default_rng(seed)
    t = np.arange(0, 900, 1.0 / rate_hz)
    truth = 1.95 + 0.02 * t / 900
    plume = 1.5 * np.exp(-0.5 * ((t - 400) / 8.0) ** 2)
    noise = rng.normal(0, 0.002 * np.sqrt(rate_hz), t.size)
    return pd.DataFrame(
        {
            "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(t, unit="s"),
            "ch4": truth + plume + noise,
            "truth": truth,
        }
    )


def test_background_is_unbiased_and_rate_independent() -> None:
    settings = CONFIG["algorithmic_baseline_settings"]
    results = {}
    for rate in (1.0, 10.0):
        frame = _series(rate, seed=int(rate))
        out, stats = background.correct_background(frame, ["ch4"], settings)
        error = out["ch4_fit"] - frame["truth"]
        assert abs(error.mean()) < 3e-4
        core = (frame["timestamp"] - frame["timestamp"][0]).dt.total_seconds().between(390, 410)
        assert out.loc[core, "ch4_signal"].all()
        assert 0.95 < stats["ch4"]["enhancement_kept_fraction"] < 1.05
        results[rate] = stats["ch4"]["signal_fraction"]
    assert results[1.0] == pytest.approx(results[10.0], abs=0.03)


def test_union_mask_excludes_weak_plume_tails() -> None:
    frame = _series(1.0, seed=3)
    frame["c2h6"] = 0.002 + 0.04 * (frame["ch4"] - frame["truth"]) / 1.5
    out, _ = background.correct_background(frame, ["ch4", "c2h6"], CONFIG["algorithmic_baseline_settings"])
    assert (out["ch4_signal"] == out["c2h6_signal"]).all()
    assert abs((out["c2h6_fit"] - 0.002).mean()) < 5e-5


def test_dilate_is_time_based() -> None:
    t = np.arange(0, 10, 0.1)
    mask = np.zeros(t.size, dtype=bool)
    mask[50] = True
    wide = background.dilate(mask, t, 1.0)
    assert wide.sum() == 21


def _curtain_frame(wind_from: float, angle: float, rate: float = 10.0, ferry: float = 0.0) -> pd.DataFrame:
    p = PlumeFlight(wind_from_deg=wind_from, wind_angle_off_normal_deg=angle, rate_hz=rate, ferry_m=ferry)
    return simulate(p).frame


def test_plane_fit_transects_and_normal_wind_at_10hz_with_jitter() -> None:
    frame = _curtain_frame(250.0, 15.0, ferry=200.0)
    out, geometry, runs = curtain.build_curtain(frame, CONFIG["curtain_settings"])
    assert geometry["n_transects"] == 12
    assert geometry["off_curtain_points"] > 250
    assert geometry["normal_azimuth_deg"] == pytest.approx((250 + 180 + 15) % 360, abs=0.5)
    assert out.loc[out["on_curtain"], "windspeed_normal"].mean() > 0
    heights = sorted(r["height_median_m"] for r in runs)
    assert heights[0] == pytest.approx(5.0, abs=0.5)
    assert heights[-1] == pytest.approx(80.0, abs=0.5)
    angle = out.loc[out["on_curtain"], "winddir_rel"].median()
    assert abs(angle) == pytest.approx(15.0, abs=2.0)


def test_wind_blowing_back_through_the_curtain_counts_negative() -> None:
    frame = _curtain_frame(250.0, 0.0, rate=1.0)
    back = frame.index < 100
    frame.loc[back, "winddir"] = (frame.loc[back, "winddir"] + 180) % 360
    out, _, _ = curtain.build_curtain(frame, CONFIG["curtain_settings"])
    assert (out.loc[back, "windspeed_normal"] < 0).all()
    assert (out.loc[~back, "windspeed_normal"] > 0).mean() > 0.95


def test_ideal_gas_density() -> None:
    per_ppm = flux.kg_per_m3_per_ppm(1013.25, 0.0, 16.043)
    assert per_ppm == pytest.approx(16.043e-3 / 0.022414 * 1e-6, rel=1e-4)
    assert flux.kg_per_m3_per_ppm(1013.25, 100.0, 16.043) == pytest.approx(per_ppm * 273.15 / 373.15)


def test_simpson_weights_use_the_true_node_spacing() -> None:
    nodes = np.linspace(2.0, 12.0, 11)
    weights = kriging.simpson_weights(nodes)
    assert weights.sum() == pytest.approx(10.0)
    assert weights @ nodes**2 == pytest.approx((12.0**3 - 2.0**3) / 3)
    grid = kriging.make_grid((0.0, 300.0), (5.0, 65.0), 2000, 10)
    assert grid.area == pytest.approx(300.0 * 60.0)


def _obs(field, n_transects: int = 8, per: int = 40) -> pd.DataFrame:
    x = np.tile(np.linspace(0, 300, per), n_transects)
    z = np.repeat(np.linspace(5, 65, n_transects), per)
    return pd.DataFrame(
        {"x": x, "height_ato": z, "v": field(x, z), "transect": np.repeat(np.arange(n_transects), per)}
    )


def test_kriging_integrates_a_known_field() -> None:
    def bump(x: np.ndarray, z: np.ndarray) -> np.ndarray:
        return 0.01 * np.exp(-0.5 * ((x - 150) / 30) ** 2) * np.exp(-0.5 * ((z - 30) / 12) ** 2)

    obs = _obs(bump)
    grid = kriging.make_grid((0.0, 300.0), (5.0, 65.0), 3000, 10)
    result, arrays = kriging.krige_gas(obs, "v", grid, CONFIG["semivariogram_settings"], jackknife=True)
    xx, zz = np.meshgrid(np.linspace(0, 300, 3001), np.linspace(5, 65, 1201))
    truth = np.trapezoid(np.trapezoid(bump(xx, zz), dx=0.1, axis=1), dx=0.05)
    assert result["emission_rate_kg_h"] == pytest.approx(truth, rel=0.02)
    assert result["block_kriging_estimate_kg_h"] == pytest.approx(result["emission_rate_kg_h"], rel=1e-4)
    assert len(result["jackknife_estimates_kg_h"]) == 8
    assert result["uncertainty_kg_h"] > 0
    assert result["emission_rate_negative_kg_h"] <= 0 <= result["emission_rate_positive_kg_h"]
    assert arrays["field"].shape == (grid.z.size, grid.x.size)


def test_constant_field_integrates_to_value_times_area() -> None:
    obs = _obs(lambda x, z: np.full(x.shape, 0.002))
    obs["v"] += np.random.default_rng(0).normal(0, 1e-5, len(obs))
    grid = kriging.make_grid((0.0, 300.0), (5.0, 65.0), 1000, 10)
    result, _ = kriging.krige_gas(obs, "v", grid, CONFIG["semivariogram_settings"], jackknife=False)
    assert result["emission_rate_kg_h"] == pytest.approx(0.002 * 300 * 60, rel=0.01)
    assert result["uncertainty_jackknife_kg_h"] is None


def test_observation_bins_are_bounded_for_large_inputs() -> None:
    n = 200_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": rng.uniform(0, 500, n),
            "height_ato": rng.uniform(0, 80, n),
            "transect": rng.integers(-1, 30, n),
            "v": rng.normal(size=n),
        }
    )
    settings = dict(CONFIG["ordinary_kriging_settings"], max_obs=800)
    obs, width = kriging.bin_observations(frame, ["v"], settings, 500.0)
    assert len(obs) <= 800
    assert obs["n"].sum() == n
    assert width > 10.0


def _spherical(psill: float, rng: float, nugget: float, d: np.ndarray) -> np.ndarray:
    """γ(d) written out here, not from pykrige or tasks.gasflux.kriging: nugget jump off zero, γ(0) = 0."""
    h = np.minimum(d / rng, 1.0)
    return np.where(d > 1e-10, nugget + psill * (1.5 * h - 0.5 * h**3), 0.0)


def _direct_ordinary_kriging(
    coords: np.ndarray, values: np.ndarray, targets: np.ndarray, psill: float, rng: float, nugget: float
) -> tuple[np.ndarray, np.ndarray]:
    """The ordinary-kriging system solved with numpy: estimate λ·z and variance λ·γ₀ + μ per target."""
    n = values.size
    a = np.ones((n + 1, n + 1))
    a[:n, :n] = _spherical(psill, rng, nugget, cdist(coords, coords))
    a[n, n] = 0.0
    b = np.ones((n + 1, targets.shape[0]))
    b[:n] = _spherical(psill, rng, nugget, cdist(coords, targets))
    sol = np.linalg.solve(a, b)
    return sol[:n].T @ values, np.sum(sol * b, axis=0)


def _noisy_obs(seed: int = 4) -> pd.DataFrame:
    """A smooth bump plus white noise of a fifth of its peak: a variogram with a real nugget."""
    rng = np.random.default_rng(seed)
    obs = _obs(lambda x, z: np.exp(-0.5 * ((x - 150) / 40) ** 2) * np.exp(-0.5 * ((z - 30) / 15) ** 2), 6, 25)
    obs["v"] += rng.normal(0, 0.2, len(obs))
    return obs


def test_kriged_grid_uses_exactly_the_fitted_variogram_with_a_real_nugget() -> None:
    """pykrige reads a list of sill-model parameters as [full sill, range, nugget]; the grid must be the
    ordinary-kriging solution of the variogram we fitted (and block-krige with), value and variance."""
    obs = _noisy_obs()
    coords = obs[["x", "height_ato"]].to_numpy(float)
    values = obs["v"].to_numpy(float)
    variogram = kriging.fit_variogram(coords, values, CONFIG["semivariogram_settings"])
    psill, rng, nugget = variogram["params"]
    assert variogram["fitted"] and nugget > 0.1 * (psill + nugget)
    gx, gz = np.linspace(3.0, 297.0, 23), np.linspace(7.0, 63.0, 9)
    field, variance = kriging.krige_grid(coords, values, (gx, gz), variogram)
    mx, mz = np.meshgrid(gx, gz)
    est, var = _direct_ordinary_kriging(
        coords, values, np.column_stack((mx.ravel(), mz.ravel())), psill, rng, nugget
    )
    np.testing.assert_allclose(field.ravel(), est, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(variance.ravel(), var, rtol=1e-6, atol=1e-9)


def test_a_sill_fixed_in_the_config_is_the_full_sill_of_the_kriged_grid() -> None:
    """sill, range and nugget from the config: the grid is kriged with that sill (not sill − 2·nugget) and
    the block-kriging estimate, which uses the same model, equals the grid's Simpson integral."""
    obs = _noisy_obs(seed=5)
    settings = dict(CONFIG["semivariogram_settings"], sill=0.09, range=120.0, nugget=0.03)
    grid = kriging.make_grid((0.0, 300.0), (5.0, 65.0), 400, 10)
    result, arrays = kriging.krige_gas(obs, "v", grid, settings, jackknife=False)
    summary = result["variogram"]
    assert not summary["fitted"]
    assert summary["sill"] == pytest.approx(0.09) and summary["nugget"] == pytest.approx(0.03)
    mx, mz = np.meshgrid(grid.x, grid.z)
    est, var = _direct_ordinary_kriging(
        obs[["x", "height_ato"]].to_numpy(float), obs["v"].to_numpy(float),
        np.column_stack((mx.ravel(), mz.ravel())), 0.06, 120.0, 0.03,
    )  # fmt: skip
    np.testing.assert_allclose(arrays["field"].ravel(), est, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(arrays["variance"].ravel(), var, rtol=1e-6, atol=1e-9)
    assert result["block_kriging_estimate_kg_h"] == pytest.approx(result["emission_rate_kg_h"], rel=1e-6)


def test_pykrige_parameters_name_each_model_parameter() -> None:
    assert kriging.pykrige_parameters("spherical", [2.0, 50.0, 0.5]) == {
        "psill": 2.0,
        "range": 50.0,
        "nugget": 0.5,
    }
    assert kriging.pykrige_parameters("linear", [2.0, 0.5]) == {"slope": 2.0, "nugget": 0.5}
    assert kriging.pykrige_parameters("power", [2.0, 1.5, 0.5]) == {
        "scale": 2.0,
        "exponent": 1.5,
        "nugget": 0.5,
    }
