"""Key account management, the account side of the factory: client organisations, users,
sessions and API keys (`accounts`), requests and the template catalogue (`requests`,
`catalogue`, `recommend`), budgets and the settlement of finished executions
(`settlement`, `ratelimit`), deliverables, notifications and the audit log. It calls the
orchestrator and implements the sink the orchestrator reports to."""
