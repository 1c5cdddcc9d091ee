# equity-daemon container. Secrets come as Docker secrets (/run/secrets/<name>), referenced from
# the configuration as <field>_file = "<name>". Build: docker build -t equity-daemon .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY equity_daemon ./equity_daemon
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home /var/lib/equity-daemon --create-home equity

USER 10001
ENV EQUITY_DAEMON_HISTORY_PATH=/var/lib/equity-daemon/history.sqlite3 \
    EQUITY_DAEMON_HTTP__HOST=0.0.0.0
EXPOSE 9731
VOLUME ["/var/lib/equity-daemon"]
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-m", "equity_daemon.healthcheck"]
# exec form: the Python process is PID 1 and receives SIGTERM itself (it installs a handler)
ENTRYPOINT ["equity-daemon", "run"]
CMD ["--config", "/app/config/demo.toml"]
