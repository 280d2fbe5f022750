"""Real servers for tests, started on loopback ports and always cleaned up.

``postgres.PostgresServer`` runs a throwaway PostgreSQL; ``ports.free_port`` picks a port;
``fixtures`` wraps them as pytest fixtures (``postgres_server``, ``postgres_url``).
"""
