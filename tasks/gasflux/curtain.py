"""Curtain geometry: local metric coordinates, the vertical plane flown, transects and the normal wind.

Positions are projected twice with pyproj: to UTM (reported, as users expect ``utm_easting``) and to a
transverse Mercator centred on the flight with scale 1, which is what the geometry uses, so along-curtain
distances carry no UTM scale error (up to 0.04 %, more far from the central meridian).

The curtain is the vertical plane through a total-least-squares line fitted to the horizontal positions
(trimmed twice, so ferry legs do not tilt it). Its normal points along the mean wind; each sample's wind
component on that normal keeps its sign, so air blowing back through the curtain counts negative.
Transects are runs of consistent along-curtain motion of a time-smoothed track: at 10 Hz, GPS jitter is
as large as one sample's travel, so a sample-to-sample heading is noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer

from tasks.gasflux.baseline import seconds_since_start
from tasks.gasflux.config import GasFluxInputError

STAGE = "flux_calculation"
MIN_CURTAIN_POINTS = 20


def _error(message: str, code: str, **details: Any) -> GasFluxInputError:
    return GasFluxInputError(message, stage=STAGE, error_code=code, details=details)


def utm_crs(latitude: float, longitude: float) -> CRS:
    zone = int(np.floor((longitude + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if latitude >= 0 else 32700) + zone)


def project(frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """UTM and flight-centred metric coordinates of every sample (east, north in metres)."""
    lat = frame["latitude"].to_numpy(dtype=float)
    lon = frame["longitude"].to_numpy(dtype=float)
    lat0, lon0 = float(np.median(lat)), float(np.median(lon))
    utm = utm_crs(lat0, lon0)
    to_utm = Transformer.from_crs(CRS.from_epsg(4326), utm, always_xy=True)
    local = CRS.from_proj4(
        f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
    )
    to_local = Transformer.from_crs(CRS.from_epsg(4326), local, always_xy=True)
    utm_e, utm_n = to_utm.transform(lon, lat)
    east, north = to_local.transform(lon, lat)
    coords = {"utm_easting": np.asarray(utm_e), "utm_northing": np.asarray(utm_n),
              "east": np.asarray(east), "north": np.asarray(north)}  # fmt: skip
    info = {"utm_epsg": int(utm.to_epsg() or 0), "local_origin_lat": lat0, "local_origin_lon": lon0}
    return coords, info


def wind_to_vector(speed: np.ndarray, direction_from_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East and north components of the air motion, from meteorological 'blowing from' direction."""
    rad = np.radians(direction_from_deg)
    return -speed * np.sin(rad), -speed * np.cos(rad)


def fit_line_tls(east: np.ndarray, north: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and unit direction of the total-least-squares line (first principal axis)."""
    centre = np.array([east.mean(), north.mean()])
    pts = np.column_stack((east, north)) - centre
    _, _, vt = np.linalg.svd(pts, full_matrices=False)
    return centre, vt[0]


def fit_plane(
    east: np.ndarray, north: np.ndarray, max_distance_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust vertical-plane fit: fit, trim gross outliers (ferry legs), refit, trim at `max_distance_m`.

    Returns (centre, unit direction, boolean on-plane mask).
    """
    keep = np.ones(east.size, dtype=bool)
    centre, direction = fit_line_tls(east, north)
    for final in (False, True):
        normal = np.array([-direction[1], direction[0]])
        dist = np.abs((east - centre[0]) * normal[0] + (north - centre[1]) * normal[1])
        if final:
            limit = max_distance_m
        else:
            mad = float(np.median(np.abs(dist[keep] - np.median(dist[keep]))))
            limit = max(max_distance_m, float(np.median(dist[keep])) + 5.0 * 1.4826 * mad)
        keep = dist <= limit
        if keep.sum() < MIN_CURTAIN_POINTS:
            raise _error(
                f"Only {int(keep.sum())} samples lie within {limit:.0f} m of the fitted curtain plane",
                "NO_CURTAIN",
                max_plane_distance_m=max_distance_m,
            )
        centre, direction = fit_line_tls(east[keep], north[keep])
    return centre, direction, keep


def detect_transects(
    t_s: np.ndarray, s: np.ndarray, settings: Mapping[str, Any]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Label samples with a transect number (0..n-1, time order) or -1 (turns, climbs, hovering).

    The along-curtain velocity is the centred difference of the track over ``smooth_s`` seconds; a transect
    is a run of one velocity sign faster than ``min_speed_m_s`` (pauses up to ``max_gap_s`` bridged) that
    lasts ``min_transect_s`` and spans ``min_transect_extent_frac`` of the curtain.
    """
    n = s.size
    half = max(float(settings["smooth_s"]) / 2.0, 1e-6)
    ahead = np.interp(t_s + half, t_s, s)
    behind = np.interp(t_s - half, t_s, s)
    span = np.minimum(t_s + half, t_s[-1]) - np.maximum(t_s - half, t_s[0])
    velocity = np.divide(ahead - behind, span, out=np.zeros(n), where=span > 0)
    sign = np.where(np.abs(velocity) >= settings["min_speed_m_s"], np.sign(velocity), 0).astype(np.int8)
    sign = _bridge_pauses(sign, t_s, float(settings["max_gap_s"]))

    extent = float(np.percentile(s, 99.5) - np.percentile(s, 0.5))
    labels = np.full(n, -1, dtype=np.int64)
    edges = np.flatnonzero(np.diff(sign)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [n]))
    runs: list[dict[str, Any]] = []
    for start, stop in zip(starts, stops, strict=True):
        if sign[start] == 0:
            continue
        seg = slice(start, stop)
        duration = t_s[stop - 1] - t_s[start]
        length = float(s[seg].max() - s[seg].min())
        if duration < settings["min_transect_s"] or length < settings["min_transect_extent_frac"] * extent:
            continue
        labels[seg] = len(runs)
        runs.append(
            {"transect": len(runs), "start": int(start), "stop": int(stop), "direction": int(sign[start]),
             "duration_s": float(duration), "length_m": length}
        )  # fmt: skip
    return labels, runs


def _bridge_pauses(sign: np.ndarray, t_s: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Fill short zero-velocity gaps between runs of the same sign (a stall mid-transect)."""
    if max_gap_s <= 0:
        return sign
    out = sign.copy()
    edges = np.flatnonzero(np.diff(out)) + 1
    starts = np.concatenate(([0], edges))
    stops = np.concatenate((edges, [out.size]))
    for i in range(1, len(starts) - 1):
        a, b = starts[i], stops[i]
        if out[a] == 0 and out[a - 1] == out[b] != 0 and t_s[b - 1] - t_s[a] <= max_gap_s:
            out[a:b] = out[a - 1]
    return out


def build_curtain(
    frame: pd.DataFrame, settings: Mapping[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any], list[dict[str, Any]]]:
    """Add curtain columns and return (frame, geometry summary, transect table).

    Columns: utm_easting, utm_northing, x (along-curtain, m), plane_offset_m (signed, + downwind),
    on_curtain, transect (-1 = not a transect), windspeed_normal (m/s, signed), winddir_rel (deg between
    the air motion and the curtain normal).
    """
    frame = frame.copy()
    coords, crs_info = project(frame)
    east, north = coords["east"], coords["north"]
    centre, direction, on_plane = fit_plane(east, north, float(settings["max_plane_distance_m"]))

    u_e, u_n = wind_to_vector(frame["windspeed"].to_numpy(float), frame["winddir"].to_numpy(float))
    mean_wind = np.array([u_e[on_plane].mean(), u_n[on_plane].mean()])
    normal = np.array([-direction[1], direction[0]])
    if normal @ mean_wind < 0:
        normal = -normal
    direction = np.array([normal[1], -normal[0]])  # s grows left to right looking downwind
    rel_e, rel_n = east - centre[0], north - centre[1]
    s_raw = rel_e * direction[0] + rel_n * direction[1]
    s = s_raw - s_raw[on_plane].min()
    offset = rel_e * normal[0] + rel_n * normal[1]
    normal_wind = u_e * normal[0] + u_n * normal[1]
    along_wind = u_e * direction[0] + u_n * direction[1]

    t_s = seconds_since_start(frame["timestamp"])
    labels = np.full(len(frame), -1, dtype=np.int64)
    idx = np.flatnonzero(on_plane)
    sub_labels, runs = detect_transects(t_s[idx], s[idx], settings)
    labels[idx] = sub_labels
    for run in runs:
        members = idx[run.pop("start") : run.pop("stop")]
        heights = frame["height_ato"].to_numpy(float)[members]
        run.update(
            points=int(members.size),
            start_time=str(frame["timestamp"].iloc[members[0]]),
            end_time=str(frame["timestamp"].iloc[members[-1]]),
            height_median_m=float(np.median(heights)),
            height_std_m=float(np.std(heights)),
            x_min_m=float(s[members].min()),
            x_max_m=float(s[members].max()),
        )

    frame["utm_easting"] = coords["utm_easting"]
    frame["utm_northing"] = coords["utm_northing"]
    frame["x"] = s
    frame["plane_offset_m"] = offset
    frame["on_curtain"] = on_plane
    frame["transect"] = labels
    frame["windspeed_normal"] = normal_wind
    frame["winddir_rel"] = np.degrees(np.arctan2(along_wind, normal_wind))

    plane_azimuth = float(np.degrees(np.arctan2(direction[0], direction[1])) % 360.0)
    geometry = {
        **crs_info,
        "plane_azimuth_deg": plane_azimuth,
        "plane_angle_deg": plane_azimuth % 180.0,
        "normal_azimuth_deg": float(np.degrees(np.arctan2(normal[0], normal[1])) % 360.0),
        "curtain_length_m": float(s[on_plane].max()),
        "plane_offset_rms_m": float(np.sqrt(np.mean(offset[on_plane] ** 2))),
        "on_curtain_points": int(on_plane.sum()),
        "off_curtain_points": int((~on_plane).sum()),
        "transect_points": int((labels >= 0).sum()),
        "n_transects": len(runs),
        "height_min_m": float(frame["height_ato"][on_plane].min()),
        "height_max_m": float(frame["height_ato"][on_plane].max()),
    }
    return frame, geometry, runs
