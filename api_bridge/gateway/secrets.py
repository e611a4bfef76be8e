"""Credentials a flow run needs, kept in Prefect Secret blocks so parameters carry only a block name."""

from __future__ import annotations

import time

from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from api_bridge.gateway.connection import PrefectConnection
from api_bridge.gateway.status import SubmitError


class Secrets(PrefectConnection):
    """Store and delete Secret blocks."""

    def store_secret(self, name: str, value: str) -> None:
        """Keep `value` in a Prefect Secret block (shown obfuscated in the UI) so a flow run receives only
        the block name as a parameter and resolves the value itself. Overwrites a block of that name.

        Prefect's Secret block API registers the block type and schema when missing and saves. On a fresh
        server that registers its block types in the background after it already answers, the first
        secret of its life can collide with that registration (409, or its type read back missing): try
        again shortly; a retried create whose first attempt landed is overwritten by `overwrite=True`.
        """
        from prefect.blocks.system import Secret

        for attempt in range(5):
            try:
                self._with_retries(
                    lambda: Secret(value=value).save(name, overwrite=True), what=f"store secret {name}"
                )
                return
            except (ObjectAlreadyExists, ObjectNotFound):
                time.sleep(0.2 * (attempt + 1))
        raise SubmitError(f"could not store secret {name}: the Prefect server kept answering 409")

    def delete_secret(self, name: str) -> bool:
        """Remove a Secret block; False when there was none (already cleaned up by the flow)."""
        from prefect.blocks.system import Secret

        try:
            self._with_retries(lambda: Secret.delete(name), what=f"delete secret {name}")
        except (ObjectNotFound, ValueError):  # Prefect's "Unable to find block document named …"
            return False
        return True
