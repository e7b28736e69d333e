"""The audited data gateway: the one choke point for reads and writes of personal data."""
