"""001 offline algorithm platform API (/api/algorithm/…): endpoints and reply codes."""
