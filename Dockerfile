# One image for all six services: `docker run tradebus:latest run <service>`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Copy only what the wheel is built from, so a local .venv or .git never enters the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY libs ./libs
COPY services ./services
RUN pip install . && rm -rf /src

# Services never need root: they talk to NATS and PostgreSQL over the network.
RUN useradd --system --uid 10001 --create-home --home-dir /app tradebus
USER tradebus
WORKDIR /app

ENTRYPOINT ["tradebus"]
CMD ["--help"]
