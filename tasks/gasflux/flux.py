"""Point flux density through the curtain, wind statistics and a per-transect cross-check.

Flux density (kg m⁻² h⁻¹) = gas mass per ppm of enhancement, from the ideal-gas law with the sample's
own pressure and temperature (``curtain_settings.density: per_point``; ``mean`` uses the flight means)
× enhancement (ppm) × signed wind component normal to the curtain (m/s) × 3600.
Temperature is in °C and pressure in hPa, as the document's column ranges imply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, stats

from tasks.gasflux.config import gas_molar_mass

R_GAS = 8.314462618  # J mol⁻¹ K⁻¹
KELVIN = 273.15
SECONDS_PER_HOUR = 3600.0


def kg_per_m3_per_ppm(
    pressure_hpa: np.ndarray | float, temperature_c: np.ndarray | float, molar_mass: float
) -> Any:
    """Mass concentration of 1 ppm (µmol/mol) of the gas: 1e-6 · p · M / (R · T)."""
    return (
        1e-6
        * np.asarray(pressure_hpa)
        * 100.0
        * (molar_mass / 1000.0)
        / (R_GAS * (np.asarray(temperature_c) + KELVIN))
    )


def add_flux_density(
    frame: pd.DataFrame, gases: list[str], config: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Add ``<gas>_kg_m3`` and ``<gas>_kg_h_m2`` on curtain samples (NaN elsewhere)."""
    frame = frame.copy()
    on = frame["on_curtain"].to_numpy(bool)
    pressure = frame["pressure"].to_numpy(float)
    temperature = frame["temperature"].to_numpy(float)
    if config["curtain_settings"]["density"] == "mean":
        pressure = np.full_like(pressure, pressure[on].mean())
        temperature = np.full_like(temperature, temperature[on].mean())
    info: dict[str, dict[str, float]] = {}
    for gas in gases:
        molar_mass = gas_molar_mass(gas, config["gas_molar_masses"])
        per_ppm = kg_per_m3_per_ppm(pressure, temperature, molar_mass)
        mass = np.where(on, per_ppm * frame[f"{gas}_normalised"].to_numpy(float), np.nan)
        frame[f"{gas}_kg_m3"] = mass
        frame[f"{gas}_kg_h_m2"] = mass * frame["windspeed_normal"].to_numpy(float) * SECONDS_PER_HOUR
        info[gas] = {"molar_mass_g_mol": molar_mass, "kg_m3_per_ppm_mean": float(per_ppm[on].mean())}
    return frame, info


def wind_statistics(frame: pd.DataFrame) -> dict[str, float]:
    """Speed, direction spread and normal component over the curtain samples."""
    on = frame["on_curtain"].to_numpy(bool)
    speed = frame["windspeed"].to_numpy(float)[on]
    direction = frame["winddir"].to_numpy(float)[on]
    normal = frame["windspeed_normal"].to_numpy(float)[on]
    rel = frame["winddir_rel"].to_numpy(float)[on]
    rad = np.radians(direction)
    mean_from = float(
        np.degrees(np.arctan2(np.mean(speed * np.sin(rad)), np.mean(speed * np.cos(rad)))) % 360
    )
    return {
        "windspeed_mean_m_s": float(speed.mean()),
        "windspeed_std_m_s": float(speed.std()),
        "winddir_vector_mean_deg": mean_from,
        "winddir_circstd_deg": float(np.degrees(stats.circstd(rad))),
        "windspeed_normal_mean_m_s": float(normal.mean()),
        "windspeed_normal_std_m_s": float(normal.std()),
        "negative_normal_wind_fraction": float((normal < 0).mean()),
        "wind_angle_to_normal_mean_deg": float(
            np.degrees(stats.circmean(np.radians(rel), low=-np.pi, high=np.pi))
        ),
    }


def transect_fluxes(frame: pd.DataFrame, gases: list[str], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Line integral of flux density along each transect (kg h⁻¹ m⁻¹) and their trapezoid over height.

    An independent, interpolation-free estimate of the emission rate over the transects' height span,
    shown beside the kriged value as a sanity check.
    """
    out: dict[str, Any] = {"height_m": [r["height_median_m"] for r in runs]}
    x = frame["x"].to_numpy(float)
    labels = frame["transect"].to_numpy()
    for gas in gases:
        density = frame[f"{gas}_kg_h_m2"].to_numpy(float)
        lines = []
        for run in runs:
            sel = labels == run["transect"]
            order = np.argsort(x[sel])
            lines.append(float(integrate.trapezoid(density[sel][order], x[sel][order])))
        out[gas] = lines
    heights = np.asarray(out["height_m"])
    order = np.argsort(heights)
    out["total_kg_h"] = {
        gas: float(integrate.trapezoid(np.asarray(out[gas])[order], heights[order]))
        if len(runs) > 1
        else None
        for gas in gases
    }
    return out
