"""Which API key an asset's embedding provider is called with.

In order: the asset's LLM config (`embeddingLlmConfigId`, a tenant's stored credential, whose
newest revision is the published one), the asset's own `embedding.apiKey`, and otherwise the
server's FRUXON_OPENAI_API_KEY. Keys are stored sealed (fruxon_pipelines.secretbox) and opened
only here, in the process that calls the provider.
"""

from __future__ import annotations

from typing import Any

from fruxon_pipelines.embedding import KEYED_PROVIDERS
from fruxon_pipelines.errors import CREDENTIALS, CategorizedError
from fruxon_pipelines.secretbox import SecretBox, SecretUnreadable


def embedding_api_key(box: SecretBox, store: Any, asset: Any, provider: str) -> str | None:
    """The key to call ``provider`` with for ``asset``; None: the server-wide key.

    Raises CategorizedError(CREDENTIALS) when the asset names a config that is gone, or a
    key this server cannot decrypt: falling back to the server's key would bill someone else.
    """
    if provider not in KEYED_PROVIDERS:
        return None
    if asset.embedding_llm_config_id:
        config = store.get_llm_config(asset.embedding_llm_config_id)
        if config is None or config.tenant != asset.tenant:
            raise CategorizedError(
                f"the LLM config {asset.embedding_llm_config_id} this asset embeds with no "
                "longer exists; PATCH embeddingLlmConfigId or embedding.apiKey",
                CREDENTIALS,
            )
        sealed, what = config.api_key, f"the LLM config {config.id}'s API key"
    elif asset.embedding_api_key:
        sealed, what = asset.embedding_api_key, "the asset's embedding.apiKey"
    else:
        return None
    try:
        return box.open(sealed)
    except SecretUnreadable as error:
        raise CategorizedError(
            f"{what} cannot be decrypted with this server's FRUXON_SECRET_KEY (was it changed?)",
            CREDENTIALS,
        ) from error
