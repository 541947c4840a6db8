"""A local Azure Key Vault *secrets* data-plane emulator for the official SDK.

The real ``azure-keyvault-secrets`` client talks to it over TLS, through the same bearer
challenge the service answers with. Never imports ``polysync``.
"""

__version__ = "0.1.0"

# The tenant named in the 401 challenge when none is configured. The SDK only forwards it
# to the credential's ``get_token``; it is not a real directory.
DEFAULT_TENANT = "00000000-0000-0000-0000-00000000ce11"
