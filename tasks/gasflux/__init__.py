"""002 GasFlux: the flux science (measurements, baseline, curtain, flux, kriging), the five-stage pipeline
and the report writers.
"""
