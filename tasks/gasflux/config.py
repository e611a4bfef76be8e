"""GasFlux configuration: complete defaults, the merge of a user's YAML over them, and its validation.

The document's YAML (output_dir, required_cols, gases, strategies) is accepted as is, and so is the
configuration file of the `gasflux` package (0.2.2), whose extra sections name settings of libraries we do
not use (pybaselines, scikit-gstat): those keys are accepted, ignored and reported as warnings, so an
existing gasflux config still runs. Any other unknown key is rejected with a message naming it, because a
silently ignored typo (``windspeed`` range, ``n_lag``) would change a reported emission rate.

Every expected failure of the pipeline raises `GasFluxInputError`, which carries the document's
``error_details`` fields (stage, error_code) for the API.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from typing import Any

import yaml

STAGES = (
    "data_validation",
    "background_correction",
    "flux_calculation",
    "spatial_interpolation",
    "report_generation",
)


class GasFluxInputError(ValueError):
    """An input (data file, config) the pipeline cannot process; `.stage`/`.error_code` go to the API."""

    def __init__(
        self, message: str, *, stage: str, error_code: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.error_code = error_code
        self.details: dict[str, Any] = dict(details or {})

    def error_details(self) -> dict[str, Any]:
        """The document's ``error_details`` object (the API adds the traceback)."""
        return {"stage": self.stage, "error_code": self.error_code, **self.details}

    def __reduce__(self) -> tuple[Any, ...]:
        """Keep stage and code when the error crosses a process boundary (Prefect, multiprocessing)."""
        return (_rebuild_error, (self.message, self.stage, self.error_code, self.details))


def _rebuild_error(message: str, stage: str, error_code: str, details: dict[str, Any]) -> GasFluxInputError:
    return GasFluxInputError(message, stage=stage, error_code=error_code, details=details)


def config_error(message: str, **details: Any) -> GasFluxInputError:
    return GasFluxInputError(message, stage="data_validation", error_code="INVALID_CONFIG", details=details)


DEFAULT_CONFIG: dict[str, Any] = {
    "output_dir": "~/gasflux_reports",
    "required_cols": {
        "latitude": [-90, 90],
        "longitude": [-180, 180],
        "height_ato": [-200, 500],
        "windspeed": [0, 50],
        "winddir": [0, 360],
        "temperature": [-50, 60],
        "pressure": [900, 1100],
    },
    "gases": {"ch4": [1.5, 500], "co2": [300, 5000], "c2h6": [-0.5, 10]},
    "strategies": {
        "background": "algorithmic",
        "sensor": "insitu",
        "spatial": "curtain",
        "interpolation": "kriging",
    },
    "validation": {
        "out_of_range": "drop",
        "max_dropped_fraction": 0.2,
        "min_rows": 50,
        "assumed_sample_rate_hz": 1.0,
    },
    "gas_molar_masses": {},
    "algorithmic_baseline_settings": {
        "algorithm": "masked_rolling",
        "window_s": 120.0,
        "initial_quantile": 0.1,
        "threshold_sigma": 3.0,
        "mask_margin_s": 5.0,
        "detect_smooth_s": 2.0,
        "smooth_s": 30.0,
        "max_iter": 6,
        "mask_mode": "union",
        "estimator": "mean",
    },
    "curtain_settings": {
        "max_plane_distance_m": 50.0,
        "smooth_s": 3.0,
        "min_speed_m_s": 0.5,
        "min_transect_s": 10.0,
        "min_transect_extent_frac": 0.3,
        "max_gap_s": 2.0,
        "density": "per_point",
    },
    "semivariogram_settings": {
        "model": "spherical",
        "estimator": "matheron",
        "n_lags": 20,
        "maxlag": None,
        "nugget": None,
        "nugget_floor_fraction": 0.001,
        "sill": None,
        "range": None,
        "anisotropy_scaling": 1.0,
        "max_fit_points": 2000,
    },
    "ordinary_kriging_settings": {
        "grid_resolution": 5000,
        "min_nodes": 10,
        "y_min": None,
        "y_max": None,
        "obs_bin_m": None,
        "obs_bins_per_transect": 50,
        "obs_bin_z_m": 2.0,
        "max_obs": 2500,
        "include_non_transect": True,
        "jackknife": True,
    },
}

# Keys of the gasflux 0.2.2 config that configure libraries we replaced; accepted and reported, not used.
LEGACY_IGNORED: dict[str, frozenset[str]] = {
    "algorithmic_baseline_settings": frozenset({"fastchrom", "fabc", "dietrich", "golotvin"}),
    "semivariogram_settings": frozenset(
        {"bin_func", "fit_method", "tolerance", "azimuth", "bandwidth", "fit_sigma"}
    ),
    "ordinary_kriging_settings": frozenset({"min_points", "max_points", "cut_ground"}),
}
LEGACY_IGNORED_SECTIONS = frozenset({"filters"})
PYBASELINES_ALGORITHMS = frozenset(
    {"fastchrom", "fabc", "dietrich", "golotvin", "std_distribution", "cwt_br", "fdbd", "snip", "imodpoly"}
)

_ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("strategies", "background"): ("algorithmic",),
    ("strategies", "sensor"): ("insitu",),
    ("strategies", "spatial"): ("curtain",),
    ("strategies", "interpolation"): ("kriging",),
    ("validation", "out_of_range"): ("drop", "error"),
    ("algorithmic_baseline_settings", "algorithm"): ("masked_rolling",),
    ("algorithmic_baseline_settings", "mask_mode"): ("union", "per_gas"),
    ("algorithmic_baseline_settings", "estimator"): ("median", "mean"),
    ("curtain_settings", "density"): ("per_point", "mean"),
    ("semivariogram_settings", "model"): ("spherical", "exponential", "gaussian", "linear", "power"),
    ("semivariogram_settings", "estimator"): ("matheron", "cressie"),
}
_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("strategies", "background"): {"algorithm": "algorithmic"},
}
# (section, key) -> (minimum, maximum, integer?, nullable?)
_NUMBERS: dict[tuple[str, str], tuple[float, float, bool, bool]] = {
    ("validation", "max_dropped_fraction"): (0.0, 1.0, False, False),
    ("validation", "min_rows"): (3, 1e9, True, False),
    ("validation", "assumed_sample_rate_hz"): (1e-3, 1e4, False, False),
    ("algorithmic_baseline_settings", "window_s"): (1.0, 1e6, False, False),
    ("algorithmic_baseline_settings", "initial_quantile"): (0.0, 0.5, False, False),
    ("algorithmic_baseline_settings", "threshold_sigma"): (0.5, 100.0, False, False),
    ("algorithmic_baseline_settings", "mask_margin_s"): (0.0, 1e5, False, False),
    ("algorithmic_baseline_settings", "smooth_s"): (0.0, 1e6, False, False),
    ("algorithmic_baseline_settings", "detect_smooth_s"): (0.0, 600.0, False, False),
    ("algorithmic_baseline_settings", "max_iter"): (1, 100, True, False),
    ("curtain_settings", "max_plane_distance_m"): (0.1, 1e5, False, False),
    ("curtain_settings", "smooth_s"): (0.0, 600.0, False, False),
    ("curtain_settings", "min_speed_m_s"): (0.0, 100.0, False, False),
    ("curtain_settings", "min_transect_s"): (0.0, 1e5, False, False),
    ("curtain_settings", "min_transect_extent_frac"): (0.0, 1.0, False, False),
    ("curtain_settings", "max_gap_s"): (0.0, 600.0, False, False),
    ("semivariogram_settings", "n_lags"): (3, 500, True, False),
    ("semivariogram_settings", "maxlag"): (0.0, 1e6, False, True),
    ("semivariogram_settings", "nugget"): (0.0, math.inf, False, True),
    ("semivariogram_settings", "sill"): (0.0, math.inf, False, True),
    ("semivariogram_settings", "nugget_floor_fraction"): (0.0, 1.0, False, False),
    ("semivariogram_settings", "range"): (0.0, 1e7, False, True),
    ("semivariogram_settings", "anisotropy_scaling"): (1e-3, 1e3, False, False),
    ("semivariogram_settings", "max_fit_points"): (50, 20000, True, False),
    ("ordinary_kriging_settings", "grid_resolution"): (100, 200000, True, False),
    ("ordinary_kriging_settings", "min_nodes"): (3, 2000, True, False),
    ("ordinary_kriging_settings", "y_min"): (-1e4, 1e4, False, True),
    ("ordinary_kriging_settings", "y_max"): (-1e4, 1e4, False, True),
    ("ordinary_kriging_settings", "obs_bin_m"): (0.01, 1e4, False, True),
    ("ordinary_kriging_settings", "obs_bins_per_transect"): (5, 2000, True, False),
    ("ordinary_kriging_settings", "obs_bin_z_m"): (0.01, 1e3, False, False),
    ("ordinary_kriging_settings", "max_obs"): (50, 6000, True, False),
}


def merge_config(user: str | Mapping[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Return (merged config, warnings): the user's YAML text or mapping over `DEFAULT_CONFIG`, validated.

    `gases`, when given, replaces the default gas set (the user chooses what to process); every other
    section is merged key by key, so a partial section keeps the remaining defaults.
    """
    raw = _parse(user)
    warnings: list[str] = []
    config = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in raw.items():
        if key in LEGACY_IGNORED_SECTIONS:
            warnings.append(f"config section '{key}' (gasflux 0.2.2) is not used by this pipeline; ignored")
            continue
        if key not in config:
            raise GasFluxInputError(
                f"Unknown config key '{key}'; allowed top-level keys: {', '.join(sorted(config))}",
                stage="data_validation",
                error_code="UNKNOWN_CONFIG_KEY",
                details={"key": key},
            )
        if key == "output_dir":
            if value is not None and not isinstance(value, str):
                raise config_error("output_dir must be a string path", key=key)
            config[key] = value if value is not None else config[key]
        elif key == "gases":
            config[key] = _ranges(value, key)
        elif key == "required_cols":
            config[key].update(_ranges(value, key))
        elif key == "gas_molar_masses":
            config[key] = _molar_masses(value)
        else:
            _merge_section(config, key, value, warnings)
    _check_values(config)
    for gas in config["gases"]:
        gas_molar_mass(gas, config["gas_molar_masses"])
    return config, warnings


def _parse(user: str | Mapping[str, Any] | None) -> dict[str, Any]:
    if user is None:
        return {}
    if isinstance(user, Mapping):
        return dict(user)
    try:
        loaded = yaml.safe_load(user)
    except yaml.YAMLError as exc:
        raise config_error(f"Config is not valid YAML: {exc}") from exc
    except RecursionError as exc:  # the parser recurses per nesting level
        raise config_error("Config is not valid YAML: nested too deeply") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise config_error("Config YAML must be a mapping of sections, e.g. 'gases: {ch4: [1.5, 500]}'")
    return loaded


def _ranges(value: Any, section: str) -> dict[str, list[float]]:
    if not isinstance(value, Mapping) or not value:
        raise config_error(f"'{section}' must be a non-empty mapping of column: [min, max]", key=section)
    out: dict[str, list[float]] = {}
    for name, bounds in value.items():
        col = str(name).strip().lower()
        if (
            not isinstance(bounds, list | tuple)
            or len(bounds) != 2
            or not all(_is_number(b) for b in bounds)
            or not float(bounds[0]) < float(bounds[1])
        ):
            raise config_error(
                f"'{section}.{name}' must be [min, max] with numeric min < max, got {bounds!r}",
                key=f"{section}.{name}",
            )
        out[col] = [float(bounds[0]), float(bounds[1])]
    return out


def _molar_masses(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise config_error("'gas_molar_masses' must map gas name to g/mol", key="gas_molar_masses")
    out: dict[str, float] = {}
    for name, mass in value.items():
        if not _is_number(mass) or float(mass) <= 0:
            raise config_error(f"'gas_molar_masses.{name}' must be a positive number (g/mol)")
        out[str(name).strip().lower()] = float(mass)
    return out


def _merge_section(config: dict[str, Any], section: str, value: Any, warnings: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise config_error(f"Config section '{section}' must be a mapping", key=section)
    target = config[section]
    legacy = LEGACY_IGNORED.get(section, frozenset())
    for key, item in value.items():
        if key in legacy:
            warnings.append(
                f"'{section}.{key}' (gasflux 0.2.2 setting) is not used by this pipeline; ignored"
            )
            continue
        if key not in target:
            raise GasFluxInputError(
                f"Unknown config key '{section}.{key}'; allowed: {', '.join(sorted(target))}",
                stage="data_validation",
                error_code="UNKNOWN_CONFIG_KEY",
                details={"key": f"{section}.{key}"},
            )
        if (
            section == "algorithmic_baseline_settings"
            and key == "algorithm"
            and item in PYBASELINES_ALGORITHMS
        ):
            warnings.append(
                f"baseline algorithm '{item}' (pybaselines) replaced by 'masked_rolling', "
                "a time-windowed baseline of the samples left after plume-peak masking"
            )
            continue
        if isinstance(item, str):
            item = _ALIASES.get((section, key), {}).get(item.strip().lower(), item.strip().lower())
        target[key] = item


def _check_values(config: dict[str, Any]) -> None:
    for (section, key), allowed in _ENUMS.items():
        value = config[section][key]
        if value not in allowed:
            raise config_error(
                f"'{section}.{key}' = {value!r} is not supported; use one of: {', '.join(allowed)}",
                key=f"{section}.{key}",
            )
    for (section, key), (low, high, integer, nullable) in _NUMBERS.items():
        value = config[section][key]
        if value is None and nullable:
            continue
        if not _is_number(value) or (integer and float(value) != int(value)):
            kind = "an integer" if integer else "a number"
            raise config_error(f"'{section}.{key}' must be {kind}, got {value!r}", key=f"{section}.{key}")
        if not low <= float(value) <= high:
            raise config_error(
                f"'{section}.{key}' = {value} is outside [{low}, {high}]", key=f"{section}.{key}"
            )
        config[section][key] = int(value) if integer else float(value)
    for key in ("jackknife", "include_non_transect"):
        if not isinstance(config["ordinary_kriging_settings"][key], bool):
            raise config_error(f"'ordinary_kriging_settings.{key}' must be true or false")
    oks = config["ordinary_kriging_settings"]
    if oks["y_min"] is not None and oks["y_max"] is not None and oks["y_min"] >= oks["y_max"]:
        raise config_error("'ordinary_kriging_settings.y_min' must be below 'y_max'")
    svs = config["semivariogram_settings"]
    if svs["sill"] is not None and svs["nugget"] is not None and svs["sill"] < svs["nugget"]:
        # the sill is the total (nugget + partial sill): below the nugget the variogram is not one
        raise config_error(
            "'semivariogram_settings.sill' is the full sill and must not be below 'nugget'",
            key="semivariogram_settings.sill",
        )
    clash = set(config["gases"]) & set(config["required_cols"])
    if clash:
        raise config_error(f"columns listed both as gases and required_cols: {sorted(clash)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


_ATOMIC_MASS = {
    "H": 1.008, "HE": 4.0026, "C": 12.011, "N": 14.007, "O": 15.999, "F": 18.998, "NE": 20.180,
    "P": 30.974, "S": 32.06, "CL": 35.45, "AR": 39.948, "BR": 79.904, "KR": 83.798, "I": 126.90,
    "XE": 131.29,
}  # fmt: skip
_TOKEN = re.compile(r"(HE|NE|CL|AR|BR|KR|XE|H|C|N|O|F|P|S|I)(\d*)")


def gas_molar_mass(gas: str, overrides: Mapping[str, float] | None = None) -> float:
    """Molar mass in g/mol of a gas column named by its formula (ch4, co2, c2h6, n2o, h2s...)."""
    name = gas.strip().lower()
    if overrides and name in overrides:
        return float(overrides[name])
    formula = name.upper()
    pos, mass = 0, 0.0
    while pos < len(formula):
        match = _TOKEN.match(formula, pos)
        if match is None:
            raise config_error(
                f"Cannot derive a molar mass from gas name '{gas}'; name the column by its formula "
                "(e.g. ch4) or add 'gas_molar_masses: {" + name + ": <g/mol>}' to the config",
                key=f"gases.{gas}",
            )
        mass += _ATOMIC_MASS[match.group(1)] * int(match.group(2) or 1)
        pos = match.end()
    if mass == 0.0:
        raise config_error(f"Gas name '{gas}' is empty")
    return mass


def config_to_yaml(config: Mapping[str, Any], header_lines: list[str] | None = None) -> str:
    """The merged config as YAML, with optional '# ' header lines (provenance, warnings)."""
    head = "".join(f"# {line}\n" for line in header_lines or [])
    return head + yaml.safe_dump(_plain(config), sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
