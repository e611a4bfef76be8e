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
        the block name as a parameter and resolves the value itself. Overwrites a block of that name."""
        from prefect.client.schemas.actions import BlockDocumentCreate, BlockDocumentUpdate

        try:
            block_type = self._with_retries(
                lambda: self.client.read_block_type_by_slug("secret"), what="secret"
            )
            schema = self.client.get_most_recent_block_schema_for_block_type(block_type.id)
        except ObjectNotFound:
            block_type, schema = None, None
        if schema is None:
            # a fresh server registers its block types in the background, after it already answers; the
            # first secret of its life can come sooner, so register Secret ourselves (idempotent)
            from prefect.blocks.system import Secret

            Secret.register_type_and_schema()
            block_type = self.client.read_block_type_by_slug("secret")
            schema = self.client.get_most_recent_block_schema_for_block_type(block_type.id)
        if block_type is None or schema is None:
            raise SubmitError("the Prefect server has no Secret block schema")
        try:
            existing = self.client.read_block_document_by_name(name, "secret", include_secrets=False)
        except ObjectNotFound:
            existing = None
        if existing is not None:
            self.client.update_block_document(
                existing.id, BlockDocumentUpdate(data={"value": value}, block_schema_id=schema.id)
            )
            return
        create = BlockDocumentCreate(
            name=name, data={"value": value}, block_type_id=block_type.id, block_schema_id=schema.id
        )
        for attempt in range(5):
            try:
                self._with_retries(
                    lambda: self.client.create_block_document(create), what=f"store secret {name}"
                )
                return
            except ObjectAlreadyExists:
                # a retried create whose first attempt had landed: update it; otherwise a conflict with the
                # server's own block registration on a fresh server (its 409): try again shortly
                try:
                    existing = self.client.read_block_document_by_name(name, "secret", include_secrets=False)
                except ObjectNotFound:
                    time.sleep(0.2 * (attempt + 1))
                    continue
                self.client.update_block_document(
                    existing.id, BlockDocumentUpdate(data={"value": value}, block_schema_id=schema.id)
                )
                return
        raise SubmitError(f"could not store secret {name}: the Prefect server kept answering 409")

    def delete_secret(self, name: str) -> bool:
        """Remove a Secret block; False when there was none (already cleaned up by the flow)."""
        try:
            document = self.client.read_block_document_by_name(name, "secret", include_secrets=False)
            self.client.delete_block_document(document.id)
        except ObjectNotFound:
            return False
        return True
