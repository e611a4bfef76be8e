"""Config merge and validation: the document's YAML, the gasflux package's YAML, and rejected input."""

from __future__ import annotations

import pickle

import pytest

from tasks.gasflux.config import (
    DEFAULT_CONFIG,
    GasFluxInputError,
    config_to_yaml,
    gas_molar_mass,
    merge_config,
)

DOC_YAML = """
output_dir: ~/gasflux_reports
required_cols:
  latitude: [-90, 90]
  longitude: [-180, 180]
  height_ato: [-200, 500]
  windspeed: [0, 50]
  winddir: [0, 360]
  temperature: [-50, 60]
  pressure: [900, 1100]
gases:
  ch4: [1.5, 500]
  co2: [300, 5000]
  c2h6: [-0.5, 10]
strategies:
  background: "algorithmic"
  sensor: "insitu"
  spatial: "curtain"
  interpolation: "kriging"
"""

GASFLUX_PACKAGE_YAML = """
strategies: {background: "algorithm", sensor: "insitu", spatial: "curtain", interpolation: "kriging"}
algorithmic_baseline_settings:
  algorithm: fastchrom
  fastchrom: {"half_window": 6, "threshold": "custom"}
semivariogram_settings:
  model: spherical
  estimator: cressie
  n_lags: 20
  bin_func: even
  fit_method: lm
  maxlag: 100
  tolerance: 10
  azimuth: 0
  bandwidth: 20
ordinary_kriging_settings:
  min_points: 3
  max_points: 100
  grid_resolution: 500
  min_nodes: 10
  y_min: ~
  cut_ground: True
filters:
  course_filter: {azimuth_filter: 10}
"""


def test_no_config_gives_complete_defaults() -> None:
    config, warnings = merge_config(None)
    assert config == DEFAULT_CONFIG
    assert warnings == []


def test_document_yaml_is_accepted_unchanged() -> None:
    config, warnings = merge_config(DOC_YAML)
    assert warnings == []
    assert config["strategies"]["background"] == "algorithmic"
    assert config["gases"] == {"ch4": [1.5, 500.0], "co2": [300.0, 5000.0], "c2h6": [-0.5, 10.0]}


def test_algorithm_is_an_alias_of_algorithmic() -> None:
    config, _ = merge_config("strategies: {background: algorithm}")
    assert config["strategies"]["background"] == "algorithmic"


def test_gasflux_package_config_runs_with_warnings_for_unused_settings() -> None:
    config, warnings = merge_config(GASFLUX_PACKAGE_YAML)
    assert config["semivariogram_settings"]["estimator"] == "cressie"
    assert config["semivariogram_settings"]["maxlag"] == 100.0
    assert config["ordinary_kriging_settings"]["grid_resolution"] == 500
    assert config["algorithmic_baseline_settings"]["algorithm"] == "masked_rolling"
    joined = " ".join(warnings)
    for key in ("fastchrom", "bin_func", "max_points", "cut_ground", "filters"):
        assert key in joined


def test_unknown_keys_are_rejected_with_their_name() -> None:
    with pytest.raises(GasFluxInputError) as top:
        merge_config("gasses: {ch4: [1, 2]}")
    assert top.value.error_code == "UNKNOWN_CONFIG_KEY"
    assert "gasses" in str(top.value)
    with pytest.raises(GasFluxInputError) as nested:
        merge_config("semivariogram_settings: {n_lag: 5}")
    assert "semivariogram_settings.n_lag" in str(nested.value)
    assert nested.value.stage == "data_validation"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gases: {ch4: [5, 1]}", "gases.ch4"),
        ("gases: {ch4: high}", "gases.ch4"),
        ("strategies: {spatial: spiral}", "strategies.spatial"),
        ("semivariogram_settings: {model: cubic}", "semivariogram_settings.model"),
        ("ordinary_kriging_settings: {grid_resolution: 2.5}", "grid_resolution"),
        ("validation: {max_dropped_fraction: 2}", "max_dropped_fraction"),
        ("gases: {xyz: [0, 1]}", "molar mass"),
        ("- just\n- a list", "mapping"),
        ("gases: [unclosed", "YAML"),
        ("gases: " + "[" * 5000, "nested too deeply"),
        ("semivariogram_settings: {sill: 0.1, nugget: 0.5, range: 10}", "full sill"),
    ],
)
def test_invalid_values_fail_with_a_message(text: str, fragment: str) -> None:
    with pytest.raises(GasFluxInputError) as err:
        merge_config(text)
    assert err.value.error_code == "INVALID_CONFIG"
    assert fragment in str(err.value)


def test_gases_replace_defaults_and_sections_merge_key_by_key() -> None:
    config, _ = merge_config("gases: {CH4: [1, 100]}\nsemivariogram_settings: {model: exponential}")
    assert list(config["gases"]) == ["ch4"]
    assert config["semivariogram_settings"]["model"] == "exponential"
    assert config["semivariogram_settings"]["n_lags"] == DEFAULT_CONFIG["semivariogram_settings"]["n_lags"]


def test_molar_masses_from_formulas_and_overrides() -> None:
    assert gas_molar_mass("ch4") == pytest.approx(16.043, abs=0.01)
    assert gas_molar_mass("co2") == pytest.approx(44.009, abs=0.01)
    assert gas_molar_mass("c2h6") == pytest.approx(30.069, abs=0.01)
    assert gas_molar_mass("n2o") == pytest.approx(44.013, abs=0.01)
    assert gas_molar_mass("h2s") == pytest.approx(34.08, abs=0.01)
    config, _ = merge_config("gases: {ethane: [0, 1]}\ngas_molar_masses: {ethane: 30.07}")
    assert gas_molar_mass("ethane", config["gas_molar_masses"]) == 30.07


def test_error_keeps_stage_and_code_through_pickle() -> None:
    err = GasFluxInputError("bad", stage="flux_calculation", error_code="NO_CURTAIN", details={"n": 3})
    clone = pickle.loads(pickle.dumps(err))
    assert isinstance(clone, ValueError)
    assert clone.error_details() == {"stage": "flux_calculation", "error_code": "NO_CURTAIN", "n": 3}


def test_config_yaml_round_trip() -> None:
    import yaml

    config, _ = merge_config(DOC_YAML)
    text = config_to_yaml(config, ["header"])
    assert text.startswith("# header\n")
    assert yaml.safe_load(text) == config
