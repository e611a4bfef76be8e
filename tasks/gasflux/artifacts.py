"""GasFlux's result artifacts: emission rates, wind and curtain, links to every output."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from tasks.result_artifacts import (
    ArtifactSpec,
    base_url,
    join_url,
    key_part,
    md_table,
    num,
    pct,
)


def gasflux_artifacts(
    *, summary: Mapping[str, Any], output_vars: Mapping[str, Any] | None, base_url: str | None
) -> list[ArtifactSpec]:
    """Emission rates per gas, the wind and curtain summary, and links to every output file.

    `summary` is the run's result.json, `output_vars` its `<stem>.processed_output_vars.json` (wind,
    geometry, per-gas uncertainty parts); links use the GasFlux task id (`summary["job_id"]`).
    """
    rates = (output_vars or {}).get("emission_rates") or {}
    transect = ((output_vars or {}).get("transect_flux_kg_h_m") or {}).get("total_kg_h") or {}
    rows = []
    for gas in summary.get("gases") or list(summary.get("emission_rates_kg_h") or {}):
        detail = rates.get(gas) or {}
        rows.append(
            {
                "gas": gas,
                "emission_rate_kg_h": (summary.get("emission_rates_kg_h") or {}).get(gas),
                "uncertainty_kg_h": (summary.get("uncertainty_kg_h") or {}).get(gas),
                "uncertainty_kriging_kg_h": detail.get("uncertainty_kriging_kg_h"),
                "uncertainty_jackknife_kg_h": detail.get("uncertainty_jackknife_kg_h"),
                "transect_integration_kg_h": transect.get(gas, detail.get("transect_integration_kg_h")),
            }
        )
    specs = [
        ArtifactSpec(
            "table",
            "gasflux-emission-rates",
            "Emission rate per gas with its 1σ uncertainty (kg/h).",
            table=rows,
        )
    ]
    job_id = summary.get("job_id")
    links: list[tuple[str, str, str, str]] = []  # (key, description, name, url)
    for item in summary.get("files") or []:
        rel, name = str(item["rel"]), str(item["name"])
        url = join_url(base_url, "download/" + quote(f"{job_id}/{rel}")) if job_id else None
        if url is None:
            continue
        if name.endswith("_report.html"):
            gas = name.removesuffix("_report.html").rsplit("_", 1)[-1]
            links.append((f"gasflux-report-{key_part(gas)}", f"HTML report of {gas}.", name, url))
        elif name.endswith("_data.csv"):
            links.append(("gasflux-data-csv", "Every sample with its derived columns.", name, url))
        elif name.endswith("_output_vars.json"):
            links.append(("gasflux-output-json", "Machine-readable results.", name, url))
        elif name.endswith("_config.yaml"):
            links.append(("gasflux-config-yaml", "The merged config of the run.", name, url))
    wind = (output_vars or {}).get("wind") or {}
    geometry = (output_vars or {}).get("geometry") or {}
    observations = (output_vars or {}).get("observations") or {}
    lines = [
        f"## GasFlux `{job_id}`: {summary.get('source_name')}",
        "",
        md_table(
            ["gas", "emission rate (kg/h)", "± 1σ (kg/h)"],
            [[r["gas"], num(r["emission_rate_kg_h"]), num(r["uncertainty_kg_h"])] for r in rows],
        ),
        "",
        "### Wind",
        "",
        md_table(
            ["", ""],
            [
                [
                    "mean speed",
                    f"{num(wind.get('windspeed_mean_m_s'))} m/s ± {num(wind.get('windspeed_std_m_s'))}",
                ],
                [
                    "mean direction (from)",
                    f"{num(wind.get('winddir_vector_mean_deg'))}° "
                    f"(circular std {num(wind.get('winddir_circstd_deg'))}°)",
                ],
                [
                    "normal component",
                    f"{num(wind.get('windspeed_normal_mean_m_s'))} m/s ± "
                    f"{num(wind.get('windspeed_normal_std_m_s'))}",
                ],
                ["negative normal wind", pct(wind.get("negative_normal_wind_fraction"))],
            ],
        ),
        "",
        "### Curtain",
        "",
        md_table(
            ["", ""],
            [
                ["plane azimuth", f"{num(geometry.get('plane_azimuth_deg'))}°"],
                ["length", f"{num(geometry.get('curtain_length_m'))} m"],
                ["heights", f"{num(geometry.get('height_min_m'))} – {num(geometry.get('height_max_m'))} m"],
                ["transects", num(geometry.get("n_transects"))],
                [
                    "points on curtain",
                    f"{num(geometry.get('on_curtain_points'))} "
                    f"(off: {num(geometry.get('off_curtain_points'))})",
                ],
                [
                    "kriging bins",
                    f"{num(observations.get('bins'))} of {num(observations.get('bin_width_m'))} m",
                ],
            ],
        ),
    ]
    warnings = summary.get("warnings") or []
    if warnings:
        lines += ["", "### Warnings", "", *[f"- {w}" for w in warnings]]
    if links:
        lines += ["", "### Files", "", *[f"- [{name}]({url})" for _, _, name, url in links]]
    processing = summary.get("processing_time_seconds")
    if processing is not None:
        lines += ["", f"Processing time: {processing:.1f} s"]
    specs.append(
        ArtifactSpec(
            "markdown", "gasflux-summary", "Emission rates, wind and curtain.", markdown="\n".join(lines)
        )
    )
    specs += [ArtifactSpec("link", key, text, link=url, link_text=name) for key, text, name, url in links]
    return specs


def gasflux_from_run(run_id: str, summary: Mapping[str, Any]) -> list[ArtifactSpec]:
    """GasFlux artifacts from result.json content and the run's `_output_vars.json`."""
    from storage.filesystems import get_storage

    storage = get_storage()
    output_vars = None
    for item in summary.get("files") or []:
        if str(item["name"]).endswith("_output_vars.json"):
            output_vars = json.loads(storage.read_bytes(storage.run_path(run_id, str(item["rel"]))))
    base = base_url() if summary.get("job_id") != run_id else None  # 001 runs have no GasFlux task id
    return gasflux_artifacts(summary=summary, output_vars=output_vars, base_url=base)
