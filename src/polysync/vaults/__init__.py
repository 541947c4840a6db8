"""Where secrets are read from: Secret Vaults (Azure Key Vault) and the host (env/file).

    host.py       env:NAME / file:PATH, read in this process's environment and file system
    keyvault.py   the Azure Key Vault provider (the only module importing the Key Vault SDK)
    checks.py     VaultCheck: one line of `vault test`
    resolver.py   SecretResolver: every kind, cached for a short time, one read in flight
                  per reference, each value registered with the redactor

Who may *write* which reference is ``polysync.domain.secrets.check_ref`` (decision 0010);
this package only reads them. Import the modules by name: this ``__init__`` imports
nothing, so commands that never read a secret do not load the Azure SDK.
"""
