# The PerpLedger image: workers, producer CLI and tools (`perpledger ...`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY connectors ./connectors
COPY schemas ./schemas
RUN pip install --no-cache-dir .
ENV PERPLEDGER_SCHEMA_DIR=/app/schemas PERPLEDGER_DATA_DIR=/data PERPLEDGER_WEB_HOST=0.0.0.0
VOLUME /data
ENTRYPOINT ["perpledger"]
CMD ["worker"]
