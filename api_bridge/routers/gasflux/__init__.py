"""002 GasFlux API (/api/upload, /task/{id}, /health, /stats, …): endpoints, reply codes and OpenAPI
schema.
"""
