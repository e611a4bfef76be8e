"""Synthetic drone curtain flights through a Gaussian plume with a known source, and the true flux.

A ground-reflected Gaussian plume (Pasquill-Gifford class D, Briggs rural sigmas) from a point source is
sampled by a drone flying serpentine transects on a vertical curtain downwind, with a power-law wind
profile, slowly drifting backgrounds, white sensor noise whose per-second precision is rate-independent
(σ_sample = σ_1Hz·√f), anemometer vector noise, GPS and altimeter jitter. Output columns are the ones the
GasFlux document requires.

`true_flux_kg_h` is what the analysis must recover: the mass flux of the plume through the curtain plane
over the flown along-curtain span and between the lowest and highest transect, integrated numerically
from the same concentration and wind fields (not the source rate Q, part of which passes below the
lowest transect).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from scipy import integrate

R_GAS = 8.314462618
MOLAR_MASS = {"ch4": 16.043, "co2": 44.009, "c2h6": 30.069}


@dataclass
class PlumeFlight:
    """Scenario parameters; defaults give CH4 ≈ 1.3 ppm, CO2 ≈ 13 ppm and C2H6 ≈ 0.04 ppm peaks."""

    emission_kg_h: dict[str, float] = field(default_factory=lambda: {"ch4": 20.0, "co2": 650.0, "c2h6": 1.1})
    source_height_m: float = 3.0
    wind_speed_10m: float = 5.0
    wind_from_deg: float = 250.0
    wind_angle_off_normal_deg: float = 0.0
    profile_exponent: float = 0.15
    distance_m: float = 300.0
    curtain_length_m: float = 500.0
    curtain_shift_m: float = 0.0
    z_low_m: float = 5.0
    z_high_m: float = 80.0
    n_transects: int = 12
    drone_speed_m_s: float = 5.0
    climb_rate_m_s: float = 2.0
    pause_s: float = 2.0
    rate_hz: float = 1.0
    noise_ppm_1hz: dict[str, float] = field(
        default_factory=lambda: {"ch4": 0.002, "co2": 0.1, "c2h6": 0.0025}
    )
    background_ppm: dict[str, float] = field(
        default_factory=lambda: {"ch4": 1.95, "co2": 415.0, "c2h6": 0.002}
    )
    drift_ppm: dict[str, float] = field(default_factory=lambda: {"ch4": 0.03, "co2": 2.0, "c2h6": 0.001})
    wave_ppm: dict[str, float] = field(default_factory=lambda: {"ch4": 0.003, "co2": 0.3, "c2h6": 0.0002})
    wave_period_s: float = 900.0
    wind_noise_m_s: float = 0.4
    gps_noise_m: float = 0.5
    altitude_noise_m: float = 0.3
    path_wobble_m: float = 1.0
    temperature_c: float = 15.0
    pressure_hpa: float = 1005.0
    ferry_m: float = 0.0
    origin_lat: float = 54.88
    origin_lon: float = 15.41
    start: str = "2024-06-01 10:00:00"
    seed: int = 0


@dataclass
class Simulation:
    frame: pd.DataFrame
    true_flux_kg_h: dict[str, float]
    info: dict[str, Any]


def sigma_y(x: np.ndarray) -> np.ndarray:
    return 0.08 * x / np.sqrt(1.0 + 0.0001 * x)


def sigma_z(x: np.ndarray) -> np.ndarray:
    return 0.06 * x / np.sqrt(1.0 + 0.0015 * x)


def _unit(azimuth_deg: float) -> np.ndarray:
    rad = np.radians(azimuth_deg)
    return np.array([np.sin(rad), np.cos(rad)])


class _Field:
    """The steady plume and atmosphere in local east/north/up metres, source at the origin."""

    def __init__(self, p: PlumeFlight) -> None:
        self.p = p
        self.wind_to = _unit(p.wind_from_deg + 180.0)
        self.cross = np.array([-self.wind_to[1], self.wind_to[0]])

    def wind_speed(self, z: np.ndarray) -> np.ndarray:
        return self.p.wind_speed_10m * (np.maximum(z, 1.0) / 10.0) ** self.p.profile_exponent

    def mass_kg_m3(self, gas: str, east: np.ndarray, north: np.ndarray, z: np.ndarray) -> np.ndarray:
        x = east * self.wind_to[0] + north * self.wind_to[1]
        y = east * self.cross[0] + north * self.cross[1]
        xs = np.maximum(x, 1.0)
        sy, sz = sigma_y(xs), sigma_z(xs)
        q = self.p.emission_kg_h[gas] / 3600.0
        h = self.p.source_height_m
        vertical = np.exp(-((z - h) ** 2) / (2 * sz**2)) + np.exp(-((z + h) ** 2) / (2 * sz**2))
        conc = q / (2 * np.pi * self.p.wind_speed_10m * sy * sz) * np.exp(-(y**2) / (2 * sy**2)) * vertical
        return np.where(x > 1.0, conc, 0.0)

    def pressure_hpa(self, z: np.ndarray) -> np.ndarray:
        return self.p.pressure_hpa * np.exp(-np.asarray(z) / 8400.0)

    def temperature_c(self, z: np.ndarray) -> np.ndarray:
        return self.p.temperature_c - 0.0065 * np.asarray(z)

    def ppm(self, gas: str, mass: np.ndarray, z: np.ndarray) -> np.ndarray:
        mol_per_m3 = self.pressure_hpa(z) * 100.0 / (R_GAS * (self.temperature_c(z) + 273.15))
        return mass / (MOLAR_MASS[gas] / 1000.0) / mol_per_m3 * 1e6


def _waypoints(p: PlumeFlight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, along-curtain s, height) corners of the serpentine, s in [-L/2, L/2]."""
    half = p.curtain_length_m / 2.0
    heights = np.linspace(p.z_low_m, p.z_high_m, p.n_transects)
    t, s, z = [0.0], [-half], [heights[0]]
    leg = p.curtain_length_m / p.drone_speed_m_s
    for i, height in enumerate(heights):
        end = half if i % 2 == 0 else -half
        t.append(t[-1] + leg)
        s.append(end)
        z.append(height)
        if i + 1 < len(heights):
            t.append(t[-1] + p.pause_s)
            s.append(end)
            z.append(height)
            t.append(t[-1] + (heights[i + 1] - height) / p.climb_rate_m_s)
            s.append(end)
            z.append(heights[i + 1])
    return np.array(t), np.array(s), np.array(z)


def simulate(p: PlumeFlight) -> Simulation:
    """Sample the flight at ``p.rate_hz`` and compute the true flux through the flown curtain."""
    rng = np.random.default_rng(p.seed)
    fld = _Field(p)
    normal = _unit(p.wind_from_deg + 180.0 + p.wind_angle_off_normal_deg)
    along = np.array([normal[1], -normal[0]])
    cos_a = float(normal @ fld.wind_to)
    axis_hit = p.distance_m / cos_a * fld.wind_to
    centre = axis_hit - (axis_hit @ normal - p.distance_m) * normal + p.curtain_shift_m * along

    tw, sw, zw = _waypoints(p)
    dt = 1.0 / p.rate_hz
    t = np.arange(0.0, tw[-1] + 1e-9, dt)
    s = np.interp(t, tw, sw)
    z = np.interp(t, tw, zw)
    wobble = p.path_wobble_m * np.sin(2 * np.pi * t / 37.0 + rng.uniform(0, 2 * np.pi))
    east = centre[0] + s * along[0] + wobble * normal[0]
    north = centre[1] + s * along[1] + wobble * normal[1]
    if p.ferry_m > 0:
        n_ferry = round(p.ferry_m / p.drone_speed_m_s / dt)
        first = np.array([east[0], north[0]])
        home = first - p.ferry_m * normal
        frac = np.arange(n_ferry) / n_ferry
        east = np.concatenate((home[0] + (first[0] - home[0]) * frac, east))
        north = np.concatenate((home[1] + (first[1] - home[1]) * frac, north))
        z = np.concatenate((np.full(n_ferry, z[0]), z))
        t = np.concatenate((np.arange(n_ferry) * dt, t + n_ferry * dt))

    n = t.size
    speed = fld.wind_speed(z)
    u_true = speed * fld.wind_to[0]
    v_true = speed * fld.wind_to[1]
    u_meas = u_true + rng.normal(0, p.wind_noise_m_s, n)
    v_meas = v_true + rng.normal(0, p.wind_noise_m_s, n)
    frame = pd.DataFrame(
        {
            "timestamp": pd.Timestamp(p.start) + pd.to_timedelta(np.round(t * 1e6), unit="us"),
            "height_ato": z + rng.normal(0, p.altitude_noise_m, n),
            "windspeed": np.hypot(u_meas, v_meas),
            "winddir": np.degrees(np.arctan2(-u_meas, -v_meas)) % 360.0,
            "temperature": fld.temperature_c(z) + rng.normal(0, 0.05, n),
            "pressure": fld.pressure_hpa(z) + rng.normal(0, 0.05, n),
        }
    )
    span = max(t[-1], 1.0)
    peaks = {}
    for gas in p.emission_kg_h:
        enhancement = fld.ppm(gas, fld.mass_kg_m3(gas, east, north, z), z)
        peaks[gas] = float(enhancement.max())
        background = (
            p.background_ppm[gas]
            + p.drift_ppm[gas] * t / span
            + p.wave_ppm[gas] * np.sin(2 * np.pi * t / p.wave_period_s + 1.0)
        )
        noise = rng.normal(0, p.noise_ppm_1hz[gas] * np.sqrt(p.rate_hz), n)
        frame[gas] = background + enhancement + noise

    gps_e = east + rng.normal(0, p.gps_noise_m, n)
    gps_n = north + rng.normal(0, p.gps_noise_m, n)
    local = CRS.from_proj4(
        f"+proj=tmerc +lat_0={p.origin_lat} +lon_0={p.origin_lon} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    )
    lon, lat = Transformer.from_crs(local, CRS.from_epsg(4326), always_xy=True).transform(gps_e, gps_n)
    frame.insert(1, "latitude", lat)
    frame.insert(2, "longitude", lon)
    columns = ["timestamp", "latitude", "longitude", "height_ato", "windspeed", "winddir", "temperature"]
    frame = frame[[*columns, "pressure", *p.emission_kg_h]]

    s_flown = (east - centre[0]) * along[0] + (north - centre[1]) * along[1]
    s_lo, s_hi = float(s_flown.min()), float(s_flown.max())
    truth = {gas: true_flux(fld, centre, along, normal, (s_lo, s_hi), (p.z_low_m, p.z_high_m), gas)
             for gas in p.emission_kg_h}  # fmt: skip
    info = {
        "peak_enhancement_ppm": peaks,
        "emission_kg_h": dict(p.emission_kg_h),
        "captured_fraction": {g: truth[g] / p.emission_kg_h[g] for g in truth},
        "s_range_m": (s_lo, s_hi),
        "z_range_m": (p.z_low_m, p.z_high_m),
        "wind_angle_off_normal_deg": p.wind_angle_off_normal_deg,
        "rows": n,
    }
    return Simulation(frame.reset_index(drop=True), truth, info)


def true_flux(
    fld: _Field,
    centre: np.ndarray,
    along: np.ndarray,
    normal: np.ndarray,
    s_range: tuple[float, float],
    z_range: tuple[float, float],
    gas: str,
    n_s: int = 1201,
    n_z: int = 401,
) -> float:
    """∫∫ C(s, z) · (wind · normal) ds dz over the curtain rectangle, in kg/h (Simpson, fine grid)."""
    s = np.linspace(*s_range, n_s)
    z = np.linspace(*z_range, n_z)
    ss, zz = np.meshgrid(s, z)
    east = centre[0] + ss * along[0]
    north = centre[1] + ss * along[1]
    normal_wind = fld.wind_speed(zz) * float(fld.wind_to @ normal)
    density = fld.mass_kg_m3(gas, east, north, zz) * normal_wind
    return float(integrate.simpson(integrate.simpson(density, x=s, axis=1), x=z)) * 3600.0
