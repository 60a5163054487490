"""The run's decisions: attempts, plans, the breaker and the workers' facts. Knows pytest reports, not xdist."""
