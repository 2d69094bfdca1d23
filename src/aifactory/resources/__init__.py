"""The client's operations, one module per resource group (`accounts`, `requests`,
`executions`, `deliverables`): async classes written once over the session's transport, and
their blocking twins for the sync `Factory`, generated from them (`_sync`, by
`tools/gen_sync_resources.py`) with the same signatures and return types."""
