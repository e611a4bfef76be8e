"""Ordinary kriging of flux density on the curtain and its integration to an emission rate.

Memory is bounded by design: samples are first averaged into observation bins (per transect, along-curtain
bins of ``obs_bin_m``), so kriging sees at most ``max_obs`` points whatever the row count, and grid nodes
are kriged in chunks. The variogram is fitted on (a subsample of) those bins up to ``maxlag``, by default
the curtain's height: interpolation happens between neighbouring transects and bins, and fitting the
whole curtain length made a single spherical model trade its short-lag shape for a spurious nugget
(up to 0.4 of the sill on noise-free data), which smoothed peaks and cost 5-7 % of the flux. Lags are
weighted by pair count and fitted in relative terms, so short lags, which decide the interpolation, count.

The emission rate is the 2-D Simpson integral of the kriged grid with the real node spacing
(range/(n-1)). Its uncertainty combines, in quadrature, the block-kriging variance of that integral (the
kriging variance of the curtain-average, not a sum of point sigmas, which would assume every node's error
is the same error) and a delete-one-transect jackknife with the variogram held fixed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pykrige import variogram_models
from pykrige.ok import OrdinaryKriging
from scipy import integrate, optimize
from scipy.spatial.distance import cdist, pdist

from tasks.gasflux.config import GasFluxInputError

STAGE = "spatial_interpolation"
MIN_OBS = 10
CHUNK_ELEMENTS = 15_000_000
_MODELS = {
    "spherical": variogram_models.spherical_variogram_model,
    "exponential": variogram_models.exponential_variogram_model,
    "gaussian": variogram_models.gaussian_variogram_model,
    "linear": variogram_models.linear_variogram_model,
    "power": variogram_models.power_variogram_model,
}
_SILL_MODELS = ("spherical", "exponential", "gaussian")


def _error(message: str, code: str, **details: Any) -> GasFluxInputError:
    return GasFluxInputError(message, stage=STAGE, error_code=code, details=details)


@dataclass(frozen=True)
class Grid:
    """Kriging nodes over the sampled curtain and their 2-D Simpson weights (m²), shape (n_z, n_x)."""

    x: np.ndarray
    z: np.ndarray
    weights: np.ndarray

    @property
    def area(self) -> float:
        return float(self.weights.sum())

    def summary(self) -> dict[str, float | int]:
        return {
            "n_x": int(self.x.size), "n_z": int(self.z.size),
            "x_min_m": float(self.x[0]), "x_max_m": float(self.x[-1]),
            "z_min_m": float(self.z[0]), "z_max_m": float(self.z[-1]),
            "dx_m": float(self.x[1] - self.x[0]), "dz_m": float(self.z[1] - self.z[0]),
            "area_m2": self.area,
        }  # fmt: skip


def simpson_weights(nodes: np.ndarray) -> np.ndarray:
    """Weights w with Σ w·f = scipy's Simpson integral of f sampled at `nodes` (linear in f)."""
    return integrate.simpson(np.eye(nodes.size), x=nodes, axis=1)


def make_grid(
    x_range: tuple[float, float], z_range: tuple[float, float], resolution: int, min_nodes: int
) -> Grid:
    """Near-square cells, about `resolution` nodes in all, at least `min_nodes` per axis."""
    lx, lz = x_range[1] - x_range[0], z_range[1] - z_range[0]
    if lx <= 0 or lz <= 0:
        raise _error(
            f"The sampled curtain has no extent ({lx:.1f} m × {lz:.1f} m)",
            "INSUFFICIENT_DATA",
            width_m=lx,
            height_m=lz,
        )
    cell = np.sqrt(lx * lz / resolution)
    nx = max(round(lx / cell) + 1, min_nodes)
    nz = max(round(lz / cell) + 1, min_nodes)
    x = np.linspace(x_range[0], x_range[1], nx)
    z = np.linspace(z_range[0], z_range[1], nz)
    return Grid(x, z, np.outer(simpson_weights(z), simpson_weights(x)))


def curtain_extent(
    curtain: pd.DataFrame, settings: Mapping[str, Any]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Along-curtain span of the transects and height span between the lowest and highest transect.

    Transect heights are medians, so altimeter jitter and the climbs at the ends do not stretch the grid;
    ``y_min``/``y_max`` override (e.g. y_min: 0 to extrapolate to the ground).
    """
    in_transect = curtain["transect"].to_numpy() >= 0
    pts = curtain.loc[in_transect] if in_transect.sum() >= MIN_OBS else curtain
    x_range = (float(pts["x"].min()), float(pts["x"].max()))
    if in_transect.any() and pts["transect"].nunique() >= 2:
        heights = pts.groupby("transect")["height_ato"].median()
        z_range = (float(heights.min()), float(heights.max()))
    else:
        z_range = (float(pts["height_ato"].min()), float(pts["height_ato"].max()))
    z_lo = z_range[0] if settings["y_min"] is None else float(settings["y_min"])
    z_hi = z_range[1] if settings["y_max"] is None else float(settings["y_max"])
    return x_range, (z_lo, z_hi)


def bin_observations(
    curtain: pd.DataFrame, value_columns: list[str], settings: Mapping[str, Any], x_extent: float
) -> tuple[pd.DataFrame, float]:
    """Average samples per (transect, along-curtain bin); non-transect samples per (height bin, x bin).

    Returns the bins (x, height_ato, transect, n, value columns) and the bin width used.
    """
    width = settings["obs_bin_m"] or max(x_extent / settings["obs_bins_per_transect"], 1e-3)
    transect = curtain["transect"].to_numpy()
    zbin = np.floor(curtain["height_ato"].to_numpy(float) / settings["obs_bin_z_m"]).astype(np.int64)
    group = np.where(transect >= 0, transect, 1_000_000 + zbin - zbin.min())
    cols = ["x", "height_ato", *value_columns]
    for _ in range(8):
        xbin = np.floor(curtain["x"].to_numpy(float) / width).astype(np.int64)
        keys = pd.DataFrame({"group": group, "xbin": xbin})
        if keys.drop_duplicates().shape[0] <= settings["max_obs"]:
            break
        width *= 1.3 * np.sqrt(keys.drop_duplicates().shape[0] / settings["max_obs"])
    data = curtain[cols].copy()
    data["group"], data["xbin"] = group, xbin
    grouped = data.groupby(["group", "xbin"], sort=True)
    obs = grouped[cols].mean()
    obs["n"] = grouped.size()
    obs = obs.reset_index()
    obs["transect"] = np.where(obs["group"] < 1_000_000, obs["group"], -1)
    return obs.drop(columns=["group", "xbin"]), float(width)


def fit_variogram(
    coords: np.ndarray, values: np.ndarray, settings: Mapping[str, Any], seed: int = 0
) -> dict[str, Any]:
    """Experimental semivariogram up to `maxlag` and a weighted least-squares model fit.

    Values are expected normalised (unit scale); parameters fixed in the config are used as given.
    """
    model = settings["model"]
    n = values.size
    if n > settings["max_fit_points"]:
        pick = np.random.default_rng(seed).choice(n, settings["max_fit_points"], replace=False)
        coords, values = coords[pick], values[pick]
    dist = pdist(coords)
    diff = pdist(values[:, None])
    maxlag = float(settings["maxlag"]) if settings["maxlag"] else float(np.ptp(coords[:, 1]))
    edges = np.linspace(0.0, maxlag, settings["n_lags"] + 1)
    which = np.digitize(dist, edges) - 1
    ok = (which >= 0) & (which < settings["n_lags"]) & (dist > 0)
    which, dist, diff = which[ok], dist[ok], diff[ok]
    counts = np.bincount(which, minlength=settings["n_lags"]).astype(float)
    lag = np.bincount(which, weights=dist, minlength=settings["n_lags"]) / np.maximum(counts, 1)
    if settings["estimator"] == "cressie":
        root = np.bincount(which, weights=np.sqrt(diff), minlength=settings["n_lags"]) / np.maximum(counts, 1)
        gamma = 0.5 * root**4 / (0.457 + 0.494 / np.maximum(counts, 1))
    else:
        gamma = (
            0.5 * np.bincount(which, weights=diff**2, minlength=settings["n_lags"]) / np.maximum(counts, 1)
        )
    use = counts >= 5
    if use.sum() < 3:
        raise _error(
            "Too few observation pairs to fit a variogram", "INSUFFICIENT_DATA", pairs=int(counts.sum())
        )
    lag, gamma, counts = lag[use], gamma[use], counts[use]
    params, fitted = _fit_params(model, lag, gamma, counts, settings, maxlag)
    if fitted:
        params[-1] = max(params[-1], float(settings["nugget_floor_fraction"]) * float(gamma.max()))
    return {
        "model": model, "params": params, "fitted": fitted, "maxlag": maxlag,
        "lags": lag.tolist(), "semivariance": gamma.tolist(), "pairs": counts.astype(int).tolist(),
    }  # fmt: skip


def _fit_params(
    model: str,
    lag: np.ndarray,
    gamma: np.ndarray,
    counts: np.ndarray,
    settings: Mapping[str, Any],
    maxlag: float,
) -> tuple[list[float], bool]:
    fixed_nugget = settings["nugget"]
    if model in _SILL_MODELS and None not in (settings["sill"], settings["range"], fixed_nugget):
        return [
            float(settings["sill"]) - float(fixed_nugget),
            float(settings["range"]),
            float(fixed_nugget),
        ], False
    top = float(gamma.max())
    if model in _SILL_MODELS:
        start = [top, 0.5 * maxlag, 0.05 * top]
        low, high = [1e-12, 1e-3 * maxlag, 0.0], [10 * top, 4 * maxlag, top]
    elif model == "linear":
        start, low, high = [top / maxlag, 0.05 * top], [0.0, 0.0], [100 * top / maxlag, top]
    else:
        start, low, high = [top / maxlag, 1.0, 0.05 * top], [0.0, 0.01, 0.0], [1e6 * top, 1.99, top]
    free_nugget = fixed_nugget is None
    func = _MODELS[model]
    weight = np.sqrt(counts / counts.sum())

    def residual(p: np.ndarray) -> np.ndarray:
        full = list(p) if free_nugget else [*p, float(fixed_nugget)]
        model_gamma = func(full, lag)
        return weight * (model_gamma - gamma) / np.maximum(model_gamma, 1e-3 * top)

    sl = slice(None) if free_nugget else slice(0, -1)
    result = optimize.least_squares(
        residual, np.clip(start[sl], low[sl], high[sl]), bounds=(low[sl], high[sl]), method="trf"
    )
    params = list(map(float, result.x)) if free_nugget else [*map(float, result.x), float(fixed_nugget)]
    return params, True


def _gamma(model: str, params: list[float], dist: np.ndarray) -> np.ndarray:
    """Semivariance with γ(0) = 0 exactly (the nugget is a jump just off zero, as pykrige treats it)."""
    out = _MODELS[model](params, dist)
    out[dist <= 1e-10] = 0.0
    return out


def pykrige_parameters(model: str, params: list[float]) -> dict[str, float]:
    """Our [psill, range, nugget] (sill models), [slope, nugget] or [scale, exponent, nugget] as pykrige's
    named dict.

    Never hand pykrige a list for a sill model: it reads a list as [full sill, range, nugget] and subtracts
    the nugget itself, so our partial sill would krige the grid with a partial sill short by one nugget,
    another variogram than the one fitted and used by `block_kriging`.
    """
    names = {"linear": ("slope", "nugget"), "power": ("scale", "exponent", "nugget")}.get(
        model, ("psill", "range", "nugget")
    )
    if len(params) != len(names):
        raise ValueError(f"{model} variogram takes {len(names)} parameters, got {len(params)}")
    return {name: float(value) for name, value in zip(names, params, strict=True)}


def krige_grid(
    coords: np.ndarray,
    values: np.ndarray,
    grid_xz: tuple[np.ndarray, np.ndarray],
    variogram: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """pykrige ordinary kriging of the grid, in chunks of rows to bound memory; returns (field, variance)."""
    ok = OrdinaryKriging(
        coords[:, 0], coords[:, 1], values,
        variogram_model=variogram["model"],
        variogram_parameters=pykrige_parameters(variogram["model"], variogram["params"]),
        exact_values=True, pseudo_inv=False,
    )  # fmt: skip
    gx, gz = grid_xz
    rows = max(1, int(CHUNK_ELEMENTS // ((values.size + 1) * gx.size)))
    field = np.empty((gz.size, gx.size))
    variance = np.empty_like(field)
    for start in range(0, gz.size, rows):
        stop = min(start + rows, gz.size)
        zv, ss = ok.execute("grid", gx, gz[start:stop], backend="vectorized")
        field[start:stop] = np.asarray(zv)
        variance[start:stop] = np.asarray(ss)
    return field, np.maximum(variance, 0.0)


def block_kriging(
    coords: np.ndarray,
    values: np.ndarray,
    nodes: np.ndarray,
    weights: np.ndarray,
    coarse_nodes: np.ndarray,
    coarse_weights: np.ndarray,
    variogram: Mapping[str, Any],
    groups: np.ndarray,
) -> dict[str, Any]:
    """Curtain-mean estimate, its block-kriging variance and delete-one-group (transect) estimates.

    The block weights solve one kriging system whose right-hand side is the weight-averaged point
    right-hand side, so the estimate equals the Simpson integral of the point-kriged grid.
    """
    model, params = variogram["model"], list(variogram["params"])
    n = values.size
    w = weights / weights.sum()
    gbar = np.zeros(n)
    step = max(1, CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, nodes.shape[0], step):
        gbar += _gamma(model, params, cdist(coords, nodes[start : start + step])) @ w[start : start + step]
    cw = coarse_weights / coarse_weights.sum()
    g_bb = float(cw @ _gamma(model, params, cdist(coarse_nodes, coarse_nodes)) @ cw)
    a = np.ones((n + 1, n + 1))
    a[:n, :n] = _gamma(model, params, cdist(coords, coords))
    a[n, n] = 0.0
    rhs = np.append(gbar, 1.0)
    try:
        sol = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError as exc:
        raise _error(f"Kriging system is singular: {exc}", "KRIGING_FAILED") from exc
    lam, mu = sol[:n], sol[n]
    variance = max(float(lam @ gbar + mu - g_bb), 0.0)
    loo: list[float] = []
    for group in np.unique(groups[groups >= 0]):
        keep = np.append(groups != group, True)
        sub = np.linalg.solve(a[np.ix_(keep, keep)], rhs[keep])
        loo.append(float(sub[:-1] @ values[keep[:-1]]))
    return {"mean": float(lam @ values), "variance": variance, "leave_one_out": loo}


def krige_gas(
    obs: pd.DataFrame,
    column: str,
    grid: Grid,
    variogram_settings: Mapping[str, Any],
    jackknife: bool,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Krige one gas's flux density (kg m⁻² h⁻¹) and integrate it to kg/h with uncertainties."""
    if len(obs) < MIN_OBS:
        raise _error(f"Only {len(obs)} observation bins on the curtain; need {MIN_OBS}", "INSUFFICIENT_DATA")
    aniso = float(variogram_settings["anisotropy_scaling"])
    raw = obs[column].to_numpy(float)
    scale = float(np.std(raw)) or 1.0
    values = raw / scale
    coords = np.column_stack((obs["x"].to_numpy(float), obs["height_ato"].to_numpy(float) * aniso))
    settings = dict(variogram_settings)
    for key in ("nugget", "sill"):
        if settings[key] is not None:
            settings[key] = float(settings[key]) / scale**2
    variogram = fit_variogram(coords, values, settings)
    field_n, var_n = krige_grid(coords, values, (grid.x, grid.z * aniso), variogram)
    field, variance = field_n * scale, var_n * scale**2

    gx, gz = np.meshgrid(grid.x, grid.z * aniso)
    coarse = make_grid((grid.x[0], grid.x[-1]), (grid.z[0], grid.z[-1]), 1200, 9)
    cx, cz = np.meshgrid(coarse.x, coarse.z * aniso)
    block = block_kriging(
        coords, values, np.column_stack((gx.ravel(), gz.ravel())), grid.weights.ravel(),
        np.column_stack((cx.ravel(), cz.ravel())), coarse.weights.ravel(), variogram,
        obs["transect"].to_numpy() if jackknife else np.full(len(obs), -1),
    )  # fmt: skip
    area = grid.area
    total = float(np.sum(grid.weights * field))
    sigma_block = float(np.sqrt(block["variance"]) * scale * area)
    loo = np.asarray(block["leave_one_out"]) * scale * area
    sigma_jack = (
        float(np.sqrt((loo.size - 1) / loo.size * np.sum((loo - loo.mean()) ** 2))) if loo.size >= 3 else None
    )
    result = {
        "emission_rate_kg_h": total,
        "emission_rate_positive_kg_h": float(np.sum(grid.weights * np.maximum(field, 0.0))),
        "emission_rate_negative_kg_h": float(np.sum(grid.weights * np.minimum(field, 0.0))),
        "uncertainty_kg_h": float(np.hypot(sigma_block, sigma_jack or 0.0)),
        "uncertainty_kriging_kg_h": sigma_block,
        "uncertainty_jackknife_kg_h": sigma_jack,
        "uncertainty_method": "1σ: block-kriging variance ⊕ delete-one-transect jackknife (variogram fixed)",
        "jackknife_estimates_kg_h": loo.tolist(),
        "block_kriging_estimate_kg_h": float(block["mean"] * scale * area),
        "mean_kriging_sigma_kg_h_m2": float(np.sqrt(variance).mean()),
        "variogram": _variogram_summary(variogram, scale, aniso),
    }
    arrays = {
        "x": grid.x, "z": grid.z, "field": field, "variance": variance,
        "obs_x": obs["x"].to_numpy(float), "obs_z": obs["height_ato"].to_numpy(float), "obs_value": raw,
    }  # fmt: skip
    return result, arrays


def _variogram_summary(variogram: Mapping[str, Any], scale: float, aniso: float) -> dict[str, Any]:
    model, p = variogram["model"], variogram["params"]
    out: dict[str, Any] = {"model": model, "fitted": variogram["fitted"], "units": "(kg m-2 h-1)^2",
                           "anisotropy_scaling": aniso, "maxlag_m": variogram["maxlag"]}  # fmt: skip
    if model in _SILL_MODELS:
        out.update(psill=p[0] * scale**2, range_m=p[1], nugget=p[2] * scale**2, sill=(p[0] + p[2]) * scale**2)
    elif model == "linear":
        out.update(slope=p[0] * scale**2, nugget=p[1] * scale**2)
    else:
        out.update(scale=p[0] * scale**2, exponent=p[1], nugget=p[2] * scale**2)
    out["lags_m"] = variogram["lags"]
    out["semivariance"] = [g * scale**2 for g in variogram["semivariance"]]
    out["pairs"] = variogram["pairs"]
    return out
