"""003 MRMS API (/mrms/…): endpoints, reply codes and OpenAPI document."""
