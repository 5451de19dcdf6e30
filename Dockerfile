# Tracker: one image for `tracker run` (migrate, sync, scheduler, mailer, HTTP).

# The wheel carries the package with its templates and catalogs (setup.py copies templates/ and
# locale/ into it), so the image holds no source tree and reads nothing from its working folder
# but the timelines. Another set of templates: mount a folder and point TRACKER_TEMPLATES at it.
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY tracker/ tracker/
COPY templates/ templates/
COPY locale/ locale/
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The package first, timelines last: editing schedules/ does not reinstall the package.
COPY --from=wheel /wheels/ /wheels/
RUN pip install /wheels/*.whl \
    && rm -rf /wheels

# The default timelines: TRACKER_SCHEDULES is `schedules`, read from the working folder /app.
COPY schedules/ schedules/

# Run as an unprivileged user. var/ holds what the process writes (SQLite file,
# outbox .eml files, the generated secret key) and is a volume in docker-compose.yml.
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tracker \
    && mkdir -p /app/var \
    && chown tracker:tracker /app/var
USER tracker

ENV TRACKER_HOST=0.0.0.0 \
    TRACKER_PORT=8000
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["tracker", "run"]
