"""Pure pieces of the Azure Batch wire protocol (no I/O, no state).

``formats`` (ETags, timestamps, durations), ``errors`` (codes and the error envelope),
``auth`` (shared key / bearer), ``odata`` ($filter/$select/maxresults), ``paging``
(skip tokens, next links) and ``cmdline`` (commandLine splitting).
"""
