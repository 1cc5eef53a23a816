# The precache service image (runtime dependencies only: no torch, no training extras).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY src ./src
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
EXPOSE 8000
CMD ["precache", "serve", "--host", "0.0.0.0", "--port", "8000"]
