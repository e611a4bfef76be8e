"""000 traffic-flow prediction API (/upload_flow_file, /get_flow, …): endpoints and reply codes."""
