"""MRMS training's result artifacts: per-step metrics, early stopping, model link."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from tasks.result_artifacts import (
    ArtifactSpec,
    base_url,
    join_url,
    md_table,
    num,
)

STEP_COLUMNS = ("step", "loss", "accuracy", "val_loss", "val_accuracy")


def mrms_artifacts(
    *,
    learn_hist_no: str,
    summary: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]],
    early_stop: str | None,
    algorithm: str | None,
    base_url: str | None,
) -> list[ArtifactSpec]:
    """Per-step metrics, the early-stopping decision with the best step, and the model's download link.

    `steps` are the recorded step results (what get_learn_result returns), `summary` the result.json.
    The best step is the one with the lowest validation loss.
    """
    rows = [{c: s.get(c) for c in STEP_COLUMNS} for s in steps]
    specs = [ArtifactSpec("table", "mrms-training-steps", "Loss and accuracy per training step.", table=rows)]
    scored = [r for r in rows if isinstance(r.get("val_loss"), (int, float)) and math.isfinite(r["val_loss"])]
    best = min(scored, key=lambda r: r["val_loss"]) if scored else None
    ran = summary.get("steps", len(rows))
    decision = (
        f"stopped early after step {ran} ({early_stop or 'early-stopping rule met'})"
        if summary.get("stopped_early")
        else f"ran all {ran} steps" + (f" (early-stopping rule {early_stop} not met)" if early_stop else "")
    )
    url = join_url(base_url, f"mrms/model_download?learn_hist_no={quote(learn_hist_no)}")
    final = summary.get("final") or (rows[-1] if rows else {})
    lines = [
        f"## MRMS training `{learn_hist_no}`",
        "",
        md_table(
            ["", ""],
            [
                ["algorithm", algorithm or "–"],
                ["early stopping", decision],
                [
                    "best step",
                    f"{best['step']} (val_loss {num(best['val_loss'])}, "
                    f"val_accuracy {num(best.get('val_accuracy'))})"
                    if best
                    else "–",
                ],
                [
                    "final step",
                    f"{final.get('step')} (loss {num(final.get('loss'))}, "
                    f"val_loss {num(final.get('val_loss'))}, "
                    f"val_accuracy {num(final.get('val_accuracy'))})",
                ],
                [
                    "model",
                    f"[{learn_hist_no}.skops]({url}) (skops, sha256 `{summary.get('sha256')}`)"
                    if url
                    else "–",
                ],
            ],
        ),
    ]
    specs.append(
        ArtifactSpec(
            "markdown",
            "mrms-training-summary",
            "Early-stopping decision, best step and final metrics.",
            markdown="\n".join(lines),
        )
    )
    if url:
        specs.append(
            ArtifactSpec(
                "link",
                "mrms-model",
                "The trained model (skops).",
                link=url,
                link_text=f"{learn_hist_no}.skops",
            )
        )
    return specs


def mrms_from_run(learn_hist_no: str, summary: Mapping[str, Any]) -> list[ArtifactSpec]:
    """MRMS artifacts from the recorded steps (as get_learn_result serves them) and the project's rule."""
    from storage.mrms import repository as records

    hist = records.learn_hist(learn_hist_no)
    rule = records.project_for_training(hist["project_id"])["early_stop"]
    return mrms_artifacts(
        learn_hist_no=learn_hist_no,
        summary=summary,
        steps=records.step_results(learn_hist_no),
        early_stop=json.dumps(rule.as_json()) if rule.key is not None else None,
        algorithm=hist.get("alg_id"),
        base_url=base_url(),
    )
