"""000 traffic forecast flow."""
