# One image for the bridge and the Prefect workers (docker-compose.yml).
FROM python:3.11.13-slim-bookworm
ENV PYTHONUNBUFFERED=1 FLOWBRIDGE_APP_DIR=/app
WORKDIR /app
COPY pyproject.toml README.md ./
COPY flowbridge flowbridge
COPY flows flows
COPY tasks tasks
COPY deployments deployments
COPY api_bridge api_bridge
COPY storage storage
COPY prefect.yaml ./
RUN pip install --no-cache-dir -e .
