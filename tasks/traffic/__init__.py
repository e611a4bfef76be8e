"""000 traffic forecast: what its flow runs — reading the uploaded CSV (data) and the forecaster
(forecasting).
"""
