# equity-daemon container image.
#
# Build from the package index:      docker build -t equity-daemon .
# Build offline from a wheelhouse:   pip wheel . -w wheelhouse    # the package and its dependencies
#                                    docker build --build-arg WHEELHOUSE=wheelhouse -t equity-daemon .
# Another base image:                --build-arg PYTHON_IMAGE=<an image with python3 and its venv
#                                    module, Python >= 3.11: Debian's python3 + python3-venv works>
#
# Run: the configuration is one file mounted at $EQUITY_DAEMON_CONFIG, the history lives in the
# volume /var/lib/equity-daemon, secrets are files in /run/secrets referenced from the
# configuration as <field>_file = "<name>" (Docker/Compose secrets, or a read-only bind mount):
#
#   docker run -d --name equity -p 127.0.0.1:9731:9731 \
#       -v "$PWD/equity.toml:/etc/equity-daemon/equity-daemon.toml:ro" \
#       -v equity-history:/var/lib/equity-daemon \
#       -v "$PWD/secrets:/run/secrets:ro" \
#       equity-daemon
#   docker run --rm equity-daemon once        # one valuation of the mounted configuration
#   docker run --rm -p 127.0.0.1:9731:9731 equity-daemon run --config /app/config/demo.toml
#
# Without a mounted configuration `run` exits 2 (config error): the image never falls back to the
# demo book, whose made-up equity would otherwise reach Prometheus.
# `docker stop` sends SIGTERM to the entrypoint (PID 1, exec form): the daemon finishes or cancels
# its cycle, flushes the history and exits 0 within 5 s, before Docker's 10 s SIGKILL.
# A bind-mounted history directory must be writable by uid 10001 (a named volume already is).
#
# Both stages start from the same base, so /opt/venv's python3 link points at the same
# interpreter: /usr/local/bin/python3 in python:3.11-slim, /usr/bin/python3 in Debian's.
# No compiler is needed or shipped: every dependency installs from a wheel.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtual environment in /opt/venv holding the package and its dependencies ----
FROM ${PYTHON_IMAGE} AS build
# empty: install from the package index; DIR (inside the build context): offline from DIR, which
# must hold the equity-daemon wheel and all its dependencies (`pip wheel . -w DIR` makes them)
ARG WHEELHOUSE=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# the whole context, less what .dockerignore leaves out: the wheelhouse, when given, is in it
COPY . .
RUN python3 -m venv /opt/venv \
    && if [ -n "$WHEELHOUSE" ]; then \
           /opt/venv/bin/pip install --no-index --find-links "/src/$WHEELHOUSE" equity-daemon; \
       else \
           /opt/venv/bin/pip install /src; \
       fi \
    && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools \
    && /opt/venv/bin/equity-daemon --version

# ---- final: the same base, the virtual environment, a non-root user; no pip cache, no sources ----
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EQUITY_DAEMON_CONFIG=/etc/equity-daemon/equity-daemon.toml \
    EQUITY_DAEMON_HISTORY_PATH=/var/lib/equity-daemon/history.sqlite3 \
    EQUITY_DAEMON_HTTP__HOST=0.0.0.0
RUN groupadd --system --gid 10001 equity \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/equity-daemon --no-create-home \
        --shell /usr/sbin/nologin equity \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/equity-daemon \
    && install -d -m 0755 /etc/equity-daemon
COPY --from=build /opt/venv /opt/venv
COPY config/demo.toml config/example.toml /app/config/
WORKDIR /var/lib/equity-daemon

USER 10001:10001
EXPOSE 9731
# a named volume starts as a copy of this directory, so it is writable by uid 10001
VOLUME ["/var/lib/equity-daemon"]
# GET http://127.0.0.1:<the daemon's port>/healthz (the image has no curl)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "equity_daemon.healthcheck"]
# exec form: equity-daemon is PID 1 and receives SIGTERM itself (it installs a handler)
ENTRYPOINT ["equity-daemon"]
CMD ["run"]
