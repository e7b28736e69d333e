"""Users, roles and their separation of duties."""
