"""`polysync server`: the REST API (FastAPI) over the same services the CLI uses.

Importing this package is cheap; FastAPI is imported by ``app`` and the routes only, so
`polysync token ...` does not pay for it.
"""
