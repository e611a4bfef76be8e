"""004 DataFlow API (/api/dataflows…): endpoints, reply codes and OpenAPI schemas."""
