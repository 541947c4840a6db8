"""A local Azure Batch data-plane emulator that really runs tasks as local processes.

Never imports ``polysync``.
"""

__version__ = "0.1.0"

DEFAULT_ACCOUNT = "devaccount"
# A fixed, well-known development key (like Azurite's), base64. Not a secret.
DEFAULT_KEY = (
    "cG9seXN5bmMtbG9jYWwtYmF0Y2gtZW11bGF0b3ItZGV2ZWxvcG1lbnQta2V5LW5vdC1hLXNlY3JldC0wMDAwMDAw"
)
